//! The small initramfs that boots a user's kernel on a built-in root, as
//! virtme-ng does.
//!
//! Distribution kernels have virtio, ext4 and 9p as modules, so the image's
//! own initrd (made for the image's kernel) cannot reach the root disk.
//! [`prepare`] builds, on the host and without root, what the user's kernel
//! needs, cached under `<cache>/kernels/<key>` (the key hashes every input:
//! the modules folder's listing, the release, the host busybox, the image's
//! initrd, the scripts below):
//!
//! - the modules folder gets its `modules.dep` (Debian's kernel packages
//!   ship none: depmod writes it at install time): the host's `depmod -b`
//!   runs over a farm `lib/modules/<release>/host -> <modules folder>`, so
//!   every path in the index starts with `host/`, where the guest mounts
//!   the folder (a read-only 9p share, tag [`MODULES_TAG`]);
//! - the modules that reach the root disk and the share (and their
//!   dependencies, read from that `modules.dep`) are copied decompressed;
//! - a **disk root** (`debian`, `fstests`) gets a whole initramfs: the
//!   host's static busybox, those modules and `initramfs/init.sh`, which
//!   mounts `root=`, puts a tmpfs with the generated index and the share
//!   at `/lib/modules/<release>`, and switches root;
//! - an **initramfs root** (`busybox`) gets the image's initrd with one
//!   more (gzip) cpio archive concatenated: the kernel unpacks both, the
//!   later one adding the modules, the index and `/bootrig-init`
//!   (`initramfs/rdinit.sh`, started with `rdinit=`), which loads the
//!   modules, mounts the share and execs the image's own `/init`. The
//!   image is not rebuilt for it.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::errors::{Error, Result};
use crate::vm::config::{KernelBoot, MachineConfig};
use crate::vm::kernel::{is_module, module_name, read_module, KernelInfo, UserKernel};
use crate::vm::process::OwnedChild;

/// The 9p mount tag of the modules folder.
pub const MODULES_TAG: &str = "bootrig_modules";

/// This file's own text: part of the cache key, so a change to how the
/// initramfs is built never reuses an old one.
const FORMAT: &str = include_str!("initramfs.rs");

/// `/init` of a disk root's initramfs.
const INIT: &str = include_str!("initramfs/init.sh");
/// `rdinit=` of an initramfs root: runs before the image's `/init`.
const HOOK: &str = include_str!("initramfs/rdinit.sh");

/// Where an initramfs root's early init is.
const RDINIT: &str = "/bootrig-init";

/// How long `depmod` may take over a distribution kernel's modules.
const DEPMOD_TIMEOUT: Duration = Duration::from_secs(600);

/// Modules the root disk needs (loaded when they are modules).
const DISK_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "crc32c_generic",
    "ext4",
];
/// Modules the devices bootrig attaches need (as the busybox image loads).
const DEVICE_MODULES: &[&str] = &["virtio_net", "virtio_rng", "virtio_console"];
/// Modules the modules share needs.
const SHARE_MODULES: &[&str] = &["9pnet_virtio", "9p"];
/// Of these, the ones a disk root cannot boot without: an error when the
/// kernel has them neither built in nor as modules (as are
/// [`SHARE_MODULES`]).
const DISK_REQUIRED: &[&str] = &["virtio_blk", "ext4"];

/// What boots: the user's kernel, the initrd built for it, and the folder
/// to share as [`MODULES_TAG`].
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Direct kernel boot with the user's kernel.
    pub boot: KernelBoot,
    /// The modules folder to share read-only, if any.
    pub share: Option<PathBuf>,
    /// The kernel's release and modules.
    pub info: KernelInfo,
}

/// How the image's root is reached.
enum Root<'a> {
    /// A root disk: a whole initramfs.
    Disk,
    /// The image's initrd is the root: one more archive after it.
    Initrd(&'a Path),
}

/// Builds (or finds in the cache) what boots `user` on `config`'s image
/// root. See the module documentation.
pub fn prepare(config: &MachineConfig, user: &UserKernel, cache: &Path) -> Result<Prepared> {
    let cfg_err = |message: String| Error::Config {
        what: format!("kernel of machine {}", config.name),
        message,
    };
    let info = user.check().map_err(cfg_err)?;
    let image = config.kernel.as_ref();
    let root = match (&config.disk, image.and_then(|k| k.initrd.as_deref())) {
        (Some(_), _) => Root::Disk,
        (None, Some(initrd)) => Root::Initrd(initrd),
        (None, None) => {
            return Err(cfg_err(
                "a kernel of your own boots an image's root: a root disk (debian, fstests) \
                 or an initramfs root (busybox); this machine has neither"
                    .into(),
            ))
        }
    };
    if config.iso.is_some() {
        return Err(cfg_err("a kernel of your own cannot boot an ISO".into()));
    }
    // The initramfs of a disk root runs the host's busybox: it must be
    // static (an initramfs root runs the image's own).
    let busybox = match root {
        Root::Disk => Some(static_busybox()?),
        Root::Initrd(_) => None,
    };
    let key = cache_key(&info, &root, busybox.as_deref())?;
    let dir = cache.join("kernels").join(&key);
    let initrd = dir.join("initrd.img");
    if initrd.is_file() {
        // Used now: pruning keeps the most recently used builds.
        let _ = File::open(&dir).and_then(|d| d.set_modified(std::time::SystemTime::now()));
    } else {
        build(&info, &root, busybox.as_deref(), &dir)?;
    }
    let mut append = image.map(|k| k.append.clone()).unwrap_or_default();
    if matches!(root, Root::Initrd(_)) {
        append = format!("{append} rdinit={RDINIT}");
    }
    if !user.append.trim().is_empty() {
        append = format!("{} {}", append.trim(), user.append.trim());
    }
    Ok(Prepared {
        boot: KernelBoot {
            kernel: user.kernel.clone(),
            initrd: Some(initrd),
            append: append.trim().to_string(),
        },
        share: info.modules.as_ref().map(|m| m.dir.clone()),
        info,
    })
}

/// A host tool from `PATH`, `/usr/sbin` or `/sbin`.
fn find_tool(name: &str, hint: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingTool {
            tool: name.into(),
            hint: hint.into(),
        })
}

/// The host's busybox, checked to be statically linked: Debian's
/// `busybox` package is dynamic, its `busybox-static` is not.
fn static_busybox() -> Result<PathBuf> {
    let hint = "install busybox-static (scripts/install-deps.sh)";
    let path = find_tool("busybox", hint)?;
    let bytes = fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if !is_static_elf64(&bytes) {
        return Err(Error::MissingTool {
            tool: format!(
                "a static busybox ({} is dynamically linked or not an x86-64 ELF)",
                path.display()
            ),
            hint: hint.into(),
        });
    }
    Ok(path)
}

/// Whether `bytes` is a 64-bit ELF executable without a program
/// interpreter (no `PT_INTERP` header): it runs without a libc on disk.
fn is_static_elf64(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let phoff = bytes
        .get(0x20..0x28)
        .and_then(|b| b.try_into().ok())
        .map(|b| u64::from_le_bytes(b) as usize);
    let (Some(phoff), Some(size), Some(count)) = (phoff, u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    bytes.starts_with(b"\x7fELF\x02")
        && !(0..count).any(|i| {
            let at = phoff + i * size;
            bytes.get(at..at + 4) == Some(&PT_INTERP.to_le_bytes()[..])
        })
}

fn cache_key(info: &KernelInfo, root: &Root, busybox: Option<&Path>) -> Result<String> {
    let mut h = Sha256::new();
    let mut stamp = |p: &Path| -> Result<()> {
        let m = fs::metadata(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        h.update(format!("{}\0{}\0{:?}\0", p.display(), m.len(), mtime).as_bytes());
        Ok(())
    };
    if let Some(busybox) = busybox {
        stamp(busybox)?;
    }
    if let Root::Initrd(initrd) = root {
        stamp(initrd)?;
    }
    if let Some(m) = &info.modules {
        let mut files = Vec::new();
        walk(&m.dir, &mut files)
            .map_err(|e| Error::io(format!("listing {}", m.dir.display()), e))?;
        files.sort();
        for f in &files {
            stamp(f)?;
        }
    }
    h.update(FORMAT);
    h.update(INIT);
    h.update(HOOK);
    h.update(&info.release);
    h.update(if matches!(root, Root::Disk) {
        "disk"
    } else {
        "initrd"
    });
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(hex[..16].to_string())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn build(info: &KernelInfo, root: &Root, busybox: Option<&Path>, dir: &Path) -> Result<()> {
    let io = |what: String| move |e| Error::io(what, e);
    let kernels = dir.parent().unwrap_or(dir);
    fs::create_dir_all(kernels).map_err(io(format!("creating {}", kernels.display())))?;
    // One build at a time across processes; released when the file closes.
    let lock_path = kernels.join("build.lock");
    let _lock = File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(io(format!("locking {}", lock_path.display())))?;
    if dir.join("initrd.img").is_file() {
        return Ok(());
    }
    let tmp = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(kernels)
        .map_err(io(format!("creating a folder in {}", kernels.display())))?;
    let release = &info.release;
    let mut cpio = Cpio::default();
    let mut wanted: Vec<&str> = DISK_MODULES.to_vec();
    if matches!(root, Root::Initrd(_)) {
        wanted.extend(DEVICE_MODULES);
    }
    let mut order = Vec::new();
    if let Some(m) = &info.modules {
        wanted.extend(SHARE_MODULES);
        let mut required = SHARE_MODULES.to_vec();
        if matches!(root, Root::Disk) {
            required.extend(DISK_REQUIRED);
        }
        let index = depmod(release, &m.dir, tmp.path())?;
        let deps = read_deps(&index.join("modules.dep"))?;
        let builtin = read_builtin(&index.join("modules.builtin"));
        for name in wanted.iter().copied() {
            if let Some(files) = deps.get(name) {
                for f in files {
                    if !order.contains(f) {
                        order.push(f.clone());
                    }
                }
            } else if required.contains(&name) && !m.flat && !builtin.contains(name) {
                return Err(Error::Config {
                    what: format!("kernel {}", info.kernel.display()),
                    message: format!(
                        "{release} has {name} neither built in nor among the modules in {}",
                        m.dir.display()
                    ),
                });
            }
        }
        cpio.dir(&format!("lib/modules/{release}"));
        for e in fs::read_dir(&index).map_err(io(format!("reading {}", index.display())))? {
            let e = e.map_err(io(format!("reading {}", index.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("modules.") {
                let bytes =
                    fs::read(e.path()).map_err(io(format!("reading {}", e.path().display())))?;
                cpio.file(&format!("lib/modules/{release}/{name}"), 0o644, &bytes);
            }
        }
    }
    let mut load_order = String::new();
    for rel in &order {
        let host = info
            .modules
            .as_ref()
            .map(|m| m.dir.join(rel.strip_prefix("host/").unwrap_or(rel)));
        let Some(host) = host else { continue };
        let file_name = host
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let name = format!("{}.ko", module_name(&file_name));
        let bytes = read_module(&host).map_err(|message| Error::Config {
            what: format!("kernel {}", info.kernel.display()),
            message,
        })?;
        cpio.file(&format!("lib/modules/{name}"), 0o644, &bytes);
        load_order.push_str(&name);
        load_order.push('\n');
    }
    cpio.file("lib/modules/load-order", 0o644, load_order.as_bytes());
    let conf = format!(
        "RELEASE='{release}'\nMODULES_TAG='{}'\n",
        if info.modules.is_some() {
            MODULES_TAG
        } else {
            ""
        }
    );
    cpio.dir("etc/bootrig");
    cpio.file("etc/bootrig/kernel.conf", 0o644, conf.as_bytes());

    let out = tmp.path().join("initrd.img");
    let mut bytes = Vec::new();
    match root {
        Root::Disk => {
            for d in ["bin", "dev", "proc", "sys", "newroot", "tmp"] {
                cpio.dir(d);
            }
            cpio.char_dev("dev/console", 0o600, 5, 1);
            let busybox = busybox.unwrap_or(Path::new("/bin/busybox"));
            let bb = fs::read(busybox).map_err(io(format!("reading {}", busybox.display())))?;
            cpio.file("bin/busybox", 0o755, &bb);
            cpio.file("init", 0o755, INIT.as_bytes());
        }
        Root::Initrd(initrd) => {
            cpio.dir("dev");
            cpio.char_dev("dev/console", 0o600, 5, 1);
            cpio.file(RDINIT.trim_start_matches('/'), 0o755, HOOK.as_bytes());
            bytes = fs::read(initrd).map_err(io(format!("reading {}", initrd.display())))?;
            // Archives start on a 4-byte boundary; the kernel skips zeros.
            bytes.resize(bytes.len().next_multiple_of(4), 0);
        }
    }
    let mut gz = flate2::write::GzEncoder::new(bytes, flate2::Compression::fast());
    gz.write_all(&cpio.finish())
        .map_err(io("compressing the initramfs".into()))?;
    let bytes = gz
        .finish()
        .map_err(io("compressing the initramfs".into()))?;
    fs::write(&out, bytes).map_err(io(format!("writing {}", out.display())))?;
    let _ = fs::remove_dir_all(tmp.path().join("farm"));
    let tmp = tmp.keep();
    let _ = fs::remove_dir_all(dir);
    fs::rename(&tmp, dir).map_err(io(format!("moving {} into place", tmp.display())))?;
    prune(kernels, KEEP);
    Ok(())
}

/// How many built initramfs the cache keeps (a kernel developer makes a
/// new one with every modules build).
const KEEP: usize = 8;

/// Removes all but the `keep` most recently built or used builds. Held under the build lock.
fn prune(kernels: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(kernels) else {
        return;
    };
    let mut builds: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.len() == 16 && n.chars().all(|c| c.is_ascii_hexdigit())
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    builds.sort();
    let excess = builds.len().saturating_sub(keep);
    for (_, old) in builds.into_iter().take(excess) {
        let _ = fs::remove_dir_all(old);
    }
}

/// Runs `depmod` over a farm whose `lib/modules/<release>/host` is the
/// modules folder; returns the folder holding the generated index.
fn depmod(release: &str, modules: &Path, work: &Path) -> Result<PathBuf> {
    let depmod = find_tool("depmod", "install kmod (scripts/install-deps.sh)")?;
    let farm = work.join("farm");
    let index = farm.join("lib/modules").join(release);
    let io = |what: String| move |e| Error::io(what, e);
    fs::create_dir_all(&index).map_err(io(format!("creating {}", index.display())))?;
    std::os::unix::fs::symlink(modules, index.join("host"))
        .map_err(io(format!("linking {}", modules.display())))?;
    for f in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        if modules.join(f).is_file() {
            fs::copy(modules.join(f), index.join(f)).map_err(io(format!("copying {f}")))?;
        }
    }
    let log_path = work.join("depmod.log");
    let log = File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
    let mut cmd = Command::new(&depmod);
    cmd.arg("-b")
        .arg(&farm)
        .arg(release)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("duplicating a handle".into()))?)
        .stderr(log);
    let mut child = OwnedChild::spawn("depmod", &mut cmd)
        .map_err(io(format!("running {}", depmod.display())))?;
    let status = child
        .wait_deadline(DEPMOD_TIMEOUT)
        .map_err(io("waiting for depmod".into()))?;
    if !status.is_some_and(|s| s.success()) {
        return Err(Error::Config {
            what: format!("modules {}", modules.display()),
            message: format!(
                "depmod failed ({}): {}",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "timed out".into()),
                fs::read_to_string(&log_path).unwrap_or_default().trim()
            ),
        });
    }
    fs::remove_file(index.join("host")).map_err(io("unlinking the farm".into()))?;
    Ok(index)
}

/// `modules.dep`: module name → its files in load order (dependencies
/// first, the module last), as paths relative to the index.
fn read_deps(path: &Path) -> Result<HashMap<String, Vec<String>>> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((file, deps)) = line.split_once(':') else {
            continue;
        };
        let name = module_name(file.rsplit('/').next().unwrap_or(file));
        // modprobe loads the listed dependencies last to first.
        let mut files: Vec<String> = deps.split_whitespace().rev().map(String::from).collect();
        files.push(file.to_string());
        out.insert(name, files);
    }
    Ok(out)
}

/// The names in `modules.builtin` (empty when there is none).
fn read_builtin(path: &Path) -> BTreeSet<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| is_module(l))
        .map(|l| module_name(l.rsplit('/').next().unwrap_or(l)))
        .collect()
}

/// A `newc` cpio archive in memory (what the kernel unpacks). Every
/// entry's parent folders are added before it (once), since the kernel
/// creates no missing parents.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let mut parent = String::new();
        for part in name
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if !self.dirs.contains(&parent) {
                let dir = parent.clone();
                self.dir(&dir);
            }
        }
        if mode & 0o170000 == 0o040000 && !self.dirs.insert(name.to_string()) {
            return;
        }
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }

    fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, 0o020000 | perm, (major, minor), &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_lists_with_the_host_tool() {
        let mut c = Cpio::default();
        c.file("etc/x/a", 0o644, b"hello");
        c.dir("etc");
        c.char_dev("console", 0o600, 5, 1);
        let bytes = c.finish();
        assert_eq!(bytes.len() % 4, 0);
        let Ok(mut child) = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            return; // no cpio on this host: the format is checked in the VM tests
        };
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("etc/x/a") && text.contains(" 5 ") && text.contains("console"),
            "{text}"
        );
        // Parents first, each once.
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[0].starts_with('d') && lines[0].ends_with(" etc"),
            "{text}"
        );
        assert!(
            lines[1].starts_with('d') && lines[1].ends_with(" etc/x"),
            "{text}"
        );
    }

    #[test]
    fn the_cache_keeps_the_newest_builds() {
        let dir = tempfile::tempdir().unwrap();
        for (i, name) in ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"]
            .iter()
            .enumerate()
        {
            let p = dir.path().join(name);
            fs::create_dir(&p).unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000 * (i as u64 + 1));
            File::open(&p).unwrap().set_modified(t).unwrap();
        }
        fs::write(dir.path().join("build.lock"), "").unwrap();
        prune(dir.path(), 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["bbbbbbbbbbbbbbbb", "build.lock", "cccccccccccccccc"]);
    }

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        // scripts/install-deps.sh installs busybox-static; ls is dynamic.
        let bb = fs::read("/bin/busybox").unwrap();
        assert!(is_static_elf64(&bb));
        assert!(!is_static_elf64(&fs::read("/bin/ls").unwrap()));
        assert!(!is_static_elf64(b"#!/bin/sh\n"));
        assert!(!is_static_elf64(&bb[..0x30]));
    }

    #[test]
    fn dependencies_load_first() {
        let dir = tempfile::tempdir().unwrap();
        let dep = dir.path().join("modules.dep");
        fs::write(
            &dep,
            "host/kernel/fs/9p/9p.ko.xz: host/kernel/net/9p/9pnet.ko.xz host/kernel/fs/netfs/netfs.ko.xz\n\
             host/kernel/drivers/net/dummy.ko.xz:\n",
        )
        .unwrap();
        let deps = read_deps(&dep).unwrap();
        assert_eq!(
            deps["9p"],
            [
                "host/kernel/fs/netfs/netfs.ko.xz",
                "host/kernel/net/9p/9pnet.ko.xz",
                "host/kernel/fs/9p/9p.ko.xz"
            ]
        );
        assert_eq!(deps["dummy"], ["host/kernel/drivers/net/dummy.ko.xz"]);
    }

    #[test]
    fn a_machine_without_an_image_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bz = dir.path().join("bzImage");
        fs::write(
            &bz,
            crate::vm::kernel::tests::fake_bzimage("6.12.9-test #1"),
        )
        .unwrap();
        let cfg = MachineConfig::new("m").with_kernel(&bz, None, "");
        let e = prepare(&cfg, &UserKernel::new(&bz), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither"), "{e}");
    }
}
