//! Helpers for bootrig's own end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use bootrig::{Marks, Requirement};

/// Markers for a test that boots a VM: needs QEMU, 10 minute deadline.
pub fn vm_marks() -> Marks {
    Marks::new()
        .requires(Requirement::Qemu)
        .timeout(Duration::from_secs(600))
}

/// The `bootrig` binary of this workspace, (re)built once per test process
/// so a test never runs a stale binary (`cargo test -p bootrig-tests` does
/// not rebuild another package's binary; an up-to-date build is a no-op).
pub fn bootrig_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current exe");
            // <target>/<profile>/deps/<test binary>
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .expect("test binary lives in <target>/<profile>/deps")
                .to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "bootrig", "--bin", "bootrig"]);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("running cargo build");
            assert!(status.success(), "cargo build -p bootrig failed");
            profile_dir.join("bootrig")
        })
        .clone()
}

/// The `metadata.json` of the test folder `folder`, a load error as the
/// test's check failure (naming the file).
pub fn load_metadata(folder: &Path) -> bootrig::Result<bootrig_diagnostics::metadata::Metadata> {
    let path = folder.join("metadata.json");
    bootrig_diagnostics::metadata::Metadata::load(&path)
        .map_err(|e| bootrig::Error::Check(format!("{}: {e}", path.display())))
}

/// Pids of running QEMU processes whose command line contains `needle`.
pub fn qemu_pids_named(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline);
        // Zombies have an empty cmdline and do not count.
        if text.contains("qemu-system") && text.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Runs the workspace's `bootrig` in `cwd` with `args` and extra
/// environment variables, and waits for it.
pub fn run_bootrig(args: &[&str], cwd: &std::path::Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bootrig_bin());
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running bootrig")
}

/// A finished process's stdout and stderr, as text, for messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The test kernel: `(vmlinuz, modules staging folder, release)`, fetched
/// once into bootrig's cache.
pub fn test_kernel() -> bootrig::Result<(PathBuf, PathBuf, String)> {
    static FETCHED: OnceLock<std::result::Result<(PathBuf, PathBuf, String), String>> =
        OnceLock::new();
    FETCHED
        .get_or_init(|| {
            let cache = std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/bootrig/test-kernel"))
                .ok_or("HOME is not set")?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch-kernel.sh");
            let out = Command::new("bash")
                .arg(&script)
                .arg(&cache)
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !out.status.success() {
                return Err(format!(
                    "{} failed: {}",
                    script.display(),
                    output_text(&out)
                ));
            }
            let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok((cache.join("vmlinuz"), cache.join("modules"), release))
        })
        .clone()
        .map_err(bootrig::Error::Check)
}
