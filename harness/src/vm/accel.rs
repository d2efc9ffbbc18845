//! Choosing an accelerator: `auto` uses KVM only where KVM really works.
//!
//! A `/dev/kvm` that opens is not proof: on some hosts (nested setups,
//! restricted sandboxes) QEMU aborts in `kvm_buf_set_msrs`, or runs but a
//! stock kernel never prints a line. So `auto` boots a kernel under KVM
//! with no root device and `panic=-1 -no-reboot`: a working KVM prints the
//! banner and panics ("VFS: Unable to mount root fs") within a second or
//! two, and QEMU exits. Anything else (an abort, a hang past the deadline)
//! is a broken KVM, and bootrig falls back to TCG with one line saying why.
//!
//! The verdict is cached per host (host name, kernel release, boot id, QEMU
//! version) in `<cache>/accel.json`, so only the first VM after a host boot
//! pays for the probe.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::vm::config::Accel;
use crate::vm::process::OwnedChild;

/// How long a kernel may take to panic under a working KVM.
const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// The outcome of resolving `accel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelVerdict {
    /// The accelerator to use: KVM or TCG.
    pub accel: Accel,
    /// Why, in full (empty when KVM was simply asked for and used, or
    /// works). Kept in `metadata.json`; [`AccelVerdict::note`] is what to
    /// show the user.
    pub reason: String,
    /// The cache file the verdict was read from; `None` when it was
    /// decided now (asked for, or probed).
    #[serde(skip)]
    pub cached_in: Option<PathBuf>,
}

impl AccelVerdict {
    /// Whether the verdict came from the cache (no probe ran).
    pub fn cached(&self) -> bool {
        self.cached_in.is_some()
    }

    /// What to tell the user about the accelerator, if anything: the full
    /// explanation when the verdict was just decided, one short line when
    /// it came from the cache (the user has seen the explanation before;
    /// `bootrig doctor` shows it again), nothing when KVM works.
    pub fn note(&self) -> Option<String> {
        if self.reason.is_empty() {
            return None;
        }
        match (&self.cached_in, self.accel) {
            (Some(file), Accel::Tcg) => Some(format!(
                "using TCG: KVM does not work on this host (verdict cached in {}; \
                 `bootrig doctor` explains)",
                home_relative(file)
            )),
            (Some(_), _) => None,
            (None, _) => Some(self.reason.clone()),
        }
    }
}

/// `path` with the home folder shown as `~`.
fn home_relative(path: &Path) -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.as_deref().and_then(|h| path.strip_prefix(h).ok()) {
        Some(rest) if !rest.as_os_str().is_empty() => format!("~/{}", rest.display()),
        _ => path.display().to_string(),
    }
}

/// Resolves `requested` for this host and QEMU (`qemu_version` is its
/// `--version` line, already known to the caller). `probe_kernel` is a
/// kernel image to boot under KVM for the probe (the VM's own kernel, or a
/// built-in image's).
///
/// `Kvm` and `Tcg` are returned as they are (a broken KVM then fails at
/// boot, as asked); `Auto` probes.
pub fn resolve(
    requested: Accel,
    qemu: &Path,
    qemu_version: &str,
    probe_kernel: Option<&Path>,
    cache_dir: &Path,
) -> AccelVerdict {
    match requested {
        Accel::Kvm | Accel::Tcg => AccelVerdict {
            accel: requested,
            reason: String::new(),
            cached_in: None,
        },
        Accel::Auto => resolve_auto(qemu, qemu_version, probe_kernel, cache_dir),
    }
}

fn resolve_auto(
    qemu: &Path,
    qemu_version: &str,
    probe_kernel: Option<&Path>,
    cache_dir: &Path,
) -> AccelVerdict {
    if let Err(why) = kvm_device_usable() {
        return AccelVerdict {
            accel: Accel::Tcg,
            reason: format!("accel=auto: {why}; using TCG (software emulation)"),
            cached_in: None,
        };
    }
    let key = host_key(qemu, qemu_version);
    let cache_file = cache_dir.join("accel.json");
    let mut cache: BTreeMap<String, AccelVerdict> = fs::read(&cache_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(v) = cache.get(&key) {
        let mut v = v.clone();
        v.cached_in = Some(cache_file);
        return v;
    }
    let Some(kernel) = probe_kernel else {
        // Nothing to probe with: do not cache, try KVM.
        return AccelVerdict {
            accel: Accel::Kvm,
            reason: "accel=auto: /dev/kvm opens; no kernel to probe it with, trying KVM".into(),
            cached_in: None,
        };
    };
    let verdict = match probe_kvm(qemu, kernel, cache_dir) {
        Ok(()) => AccelVerdict {
            accel: Accel::Kvm,
            reason: String::new(),
            cached_in: None,
        },
        Err(why) => AccelVerdict {
            accel: Accel::Tcg,
            reason: format!(
                "accel=auto: /dev/kvm is present but unusable ({why}); using TCG (software emulation). \
                 Cached in {}; delete it to probe again",
                cache_file.display()
            ),
            cached_in: None,
        },
    };
    cache.insert(key, verdict.clone());
    if fs::create_dir_all(cache_dir).is_ok() {
        if let Ok(json) = serde_json::to_vec_pretty(&cache) {
            let _ = bootrig_diagnostics::atomic::write_atomic(&cache_file, &json);
        }
    }
    verdict
}

/// Whether `/dev/kvm` exists and opens read-write.
pub fn kvm_device_usable() -> Result<(), String> {
    let dev = Path::new("/dev/kvm");
    if !dev.exists() {
        return Err("/dev/kvm does not exist (no hardware virtualisation here)".into());
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map(drop)
        .map_err(|e| format!("/dev/kvm cannot be opened: {e} (is the user in group kvm?)"))
}

/// Identifies "this host as it is now booted, with this QEMU".
fn host_key(qemu: &Path, version: &str) -> String {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_string();
    format!(
        "{}|{}|{}|{}|{}",
        read("/proc/sys/kernel/hostname"),
        read("/proc/sys/kernel/osrelease"),
        read("/proc/sys/kernel/random/boot_id"),
        qemu.display(),
        version
    )
}

/// Boots `kernel` under KVM with no root device; Ok if it panics in time.
fn probe_kvm(qemu: &Path, kernel: &Path, scratch: &Path) -> Result<(), String> {
    let _ = fs::create_dir_all(scratch);
    let log = scratch.join(format!("accel-probe-{}.log", std::process::id()));
    let out = fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-machine",
        "q35,accel=kvm",
        "-cpu",
        "host",
        "-m",
        "256M",
        "-smp",
        "2",
    ])
    .args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ])
    .args(["-serial", "stdio", "-kernel"])
    .arg(kernel)
    .args(["-append", "console=ttyS0 panic=-1 loglevel=4"])
    .stdin(Stdio::null())
    .stdout(out)
    .stderr(err);
    let started = Instant::now();
    let mut child = OwnedChild::spawn("qemu (kvm probe)", &mut cmd)
        .map_err(|e| format!("could not start {}: {e}", qemu.display()))?;
    let status = child
        .wait_deadline(PROBE_DEADLINE)
        .map_err(|e| e.to_string())?;
    drop(child);
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(&log) {
        let _ = f.read_to_string(&mut text);
    }
    let _ = fs::remove_file(&log);
    let booted = text.contains("Linux version") && text.contains("Kernel panic");
    match status {
        Some(_) if booted => Ok(()),
        Some(status) => {
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim()
                .to_string();
            Err(format!(
                "QEMU exited with {status} after {:.1}s: {last}",
                started.elapsed().as_secs_f64()
            ))
        }
        None => Err(format!(
            "a kernel printed {} under KVM within {}s",
            if text.contains("Linux version") {
                "its banner but did not finish booting"
            } else {
                "nothing"
            },
            PROBE_DEADLINE.as_secs()
        )),
    }
}

/// The default cache folder: `$BOOTRIG_CACHE`, else `$XDG_CACHE_HOME/bootrig`,
/// else `~/.cache/bootrig`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BOOTRIG_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("bootrig");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/tmp".into());
    home.join(".cache").join("bootrig")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_are_not_probed() {
        let dir = tempfile::tempdir().unwrap();
        let v = resolve(
            Accel::Tcg,
            Path::new("/nonexistent/qemu"),
            "",
            None,
            dir.path(),
        );
        assert_eq!(v.accel, Accel::Tcg);
        let v = resolve(
            Accel::Kvm,
            Path::new("/nonexistent/qemu"),
            "",
            None,
            dir.path(),
        );
        assert_eq!(v.accel, Accel::Kvm);
        assert!(!dir.path().join("accel.json").exists());
    }

    #[test]
    fn a_cached_verdict_is_reused() {
        if kvm_device_usable().is_err() {
            // Without /dev/kvm the cache is never consulted; the fallback
            // reason must say so.
            let dir = tempfile::tempdir().unwrap();
            let v = resolve(
                Accel::Auto,
                Path::new("qemu-system-x86_64"),
                "",
                None,
                dir.path(),
            );
            assert_eq!(v.accel, Accel::Tcg);
            assert!(v.reason.contains("/dev/kvm"), "{}", v.reason);
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let qemu = Path::new("/nonexistent/qemu-for-test");
        let key = host_key(qemu, "test-version");
        let mut cache = BTreeMap::new();
        cache.insert(
            key,
            AccelVerdict {
                accel: Accel::Tcg,
                reason: "from cache".into(),
                cached_in: None,
            },
        );
        fs::write(
            dir.path().join("accel.json"),
            serde_json::to_vec(&cache).unwrap(),
        )
        .unwrap();
        let v = resolve(
            Accel::Auto,
            qemu,
            "test-version",
            Some(Path::new("/nonexistent/kernel")),
            dir.path(),
        );
        assert_eq!(v.accel, Accel::Tcg);
        assert_eq!(v.reason, "from cache");
        assert!(v.cached());
        assert_eq!(v.cached_in, Some(dir.path().join("accel.json")));
    }

    #[test]
    fn the_note_is_short_once_the_verdict_is_cached() {
        let long = "accel=auto: /dev/kvm is present but unusable (QEMU exited with exit status: 1 \
                    after 0.1s: qemu-system-x86_64: error: failed to set MSR 0x48f to \
                    0x7fefff00036dfb; kvm_buf_set_msrs: Assertion failed); using TCG (software \
                    emulation). Cached in /home/u/.cache/bootrig/accel.json; delete it to probe again";
        let mut v = AccelVerdict {
            accel: Accel::Tcg,
            reason: long.into(),
            cached_in: None,
        };
        // Just probed: the full explanation.
        assert_eq!(v.note().as_deref(), Some(long));
        // Cached: one short line naming the cache and the doctor.
        v.cached_in = Some(PathBuf::from("/var/cache/bootrig/accel.json"));
        let note = v.note().unwrap();
        assert!(note.len() < 160, "{note}");
        assert!(!note.contains('\n'));
        assert!(note.contains("using TCG"), "{note}");
        assert!(note.contains("/var/cache/bootrig/accel.json"), "{note}");
        assert!(note.contains("bootrig doctor"), "{note}");
        // The full reason stays for metadata.
        assert_eq!(v.reason, long);
        // KVM works: nothing to say, cached or not.
        let kvm = AccelVerdict {
            accel: Accel::Kvm,
            reason: String::new(),
            cached_in: None,
        };
        assert_eq!(kvm.note(), None);
        let kvm = AccelVerdict {
            cached_in: Some(PathBuf::from("/c/accel.json")),
            ..kvm
        };
        assert_eq!(kvm.note(), None);
        // KVM tried without a probe: say so.
        let tried = AccelVerdict {
            accel: Accel::Kvm,
            reason: "accel=auto: /dev/kvm opens; no kernel to probe it with, trying KVM".into(),
            cached_in: None,
        };
        assert!(tried.note().unwrap().contains("trying KVM"));
    }

    #[test]
    fn cache_paths_under_home_are_shortened() {
        if let Some(home) = std::env::var_os("HOME") {
            let p = PathBuf::from(home).join(".cache/bootrig/accel.json");
            assert_eq!(home_relative(&p), "~/.cache/bootrig/accel.json");
        }
        assert_eq!(
            home_relative(Path::new("/nonexistent-root/accel.json")),
            "/nonexistent-root/accel.json"
        );
    }
}
