//! Settings shared by every test of a run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::events::Events;
use crate::image::ImageStore;
use crate::run::reporters::ProgressReporter;
use crate::vm::config::Accel;

/// Settings shared by every test of a run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The run's artifacts folder (`target/bootrig/<run-id>`).
    pub run_dir: PathBuf,
    /// Where images come from.
    pub images: ImageStore,
    /// Forces an accelerator for every VM (`BOOTRIG_ACCEL`).
    pub accel: Option<Accel>,
    /// A missing requirement fails the test instead of skipping it
    /// (`CI=true`), so CI cannot go green by skipping.
    pub strict_requirements: bool,
    /// Interruption state shared with a signal thread (`bootrig run`).
    pub interrupts: Arc<crate::run::signals::Interrupts>,
    /// The user's kernel for every VM of the run, replacing the image's
    /// (`bootrig run --kernel`, `BOOTRIG_KERNEL`; see
    /// [`crate::UserKernel`]).
    pub kernel: Option<crate::vm::kernel::UserKernel>,
    /// Where the run's events go (see [`crate::events`]); by default a
    /// [`ProgressReporter`] on stderr.
    pub events: Events,
    /// Keep a failed test's VMs running after its postmortem, for
    /// `bootrig attach`, until the run is interrupted (`bootrig run
    /// --hold`, `BOOTRIG_HOLD=1`; see [`crate::run::hold`]).
    pub hold: bool,
    /// The runner's attempt at this test process (nextest's
    /// `NEXTEST_ATTEMPT` when it retries), recorded in each test's
    /// `metadata.json`; `None` for a run of its own
    /// ([`RunSettings::standalone`]).
    pub attempt: Option<u64>,
}

impl RunSettings {
    /// Settings from the environment: `BOOTRIG_ARTIFACTS` (root folder),
    /// `BOOTRIG_RUN_ID` / `NEXTEST_RUN_ID` (run folder name),
    /// `NEXTEST_ATTEMPT`,
    /// `BOOTRIG_ACCEL`, `BOOTRIG_HOLD`, `BOOTRIG_KERNEL` (with
    /// `BOOTRIG_MODULES`, `BOOTRIG_APPEND`).
    pub fn from_env(default_root: PathBuf) -> RunSettings {
        let root = std::env::var_os("BOOTRIG_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or(default_root);
        RunSettings::for_root(root)
    }

    /// The same settings for a run of its own (`bootrig run`): its folder is
    /// named by `BOOTRIG_RUN_ID` or a fresh id, never by `NEXTEST_RUN_ID`
    /// (a `bootrig run` started from a test under nextest is not that
    /// test's run, and two of them must not share a folder).
    pub fn standalone(mut self) -> RunSettings {
        // Nor is it the test's attempt.
        self.attempt = None;
        if std::env::var_os("BOOTRIG_RUN_ID").is_none() {
            let root = self.run_dir.parent().map(PathBuf::from).unwrap_or_default();
            self.run_dir = root.join(bootrig_diagnostics::names::safe_name(&fresh_run_id()));
        }
        self
    }

    /// Settings with the artifacts under `root`, whatever
    /// `BOOTRIG_ARTIFACTS` says (an explicit `--artifacts` beats the
    /// environment); the rest as [`RunSettings::from_env`].
    ///
    /// Applies the artifact mode ([`apply_artifact_mode`]) to the process.
    pub fn for_root(root: PathBuf) -> RunSettings {
        apply_artifact_mode();
        let run_id = std::env::var("BOOTRIG_RUN_ID")
            .or_else(|_| std::env::var("NEXTEST_RUN_ID"))
            .unwrap_or_else(|_| fresh_run_id());
        let accel = std::env::var("BOOTRIG_ACCEL")
            .ok()
            .and_then(|a| a.parse().ok());
        RunSettings {
            run_dir: root.join(bootrig_diagnostics::names::safe_name(&run_id)),
            images: ImageStore::default(),
            accel,
            strict_requirements: std::env::var("CI").is_ok_and(|v| v == "true"),
            interrupts: Arc::default(),
            kernel: crate::vm::kernel::UserKernel::from_env(),
            events: Events::new(ProgressReporter::stderr()),
            hold: std::env::var("BOOTRIG_HOLD").is_ok_and(|v| !v.is_empty() && v != "0"),
            attempt: std::env::var("NEXTEST_ATTEMPT")
                .ok()
                .and_then(|a| a.parse().ok()),
        }
    }
}

/// The default artifacts root for a test binary: `<target>/bootrig`,
/// found from the binary's own path (`<target>/<profile>/deps/<bin>`).
pub fn default_artifacts_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("bootrig");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "target"))
                .map(|t| t.join("bootrig"))
        })
        .unwrap_or_else(|| PathBuf::from("target/bootrig"))
}

/// Makes the files and folders bootrig creates from now on private to the
/// user (0600 and 0700: umask 077), since artifacts hold guest output,
/// transcripts and host details that CI may upload; unless
/// `BOOTRIG_ARTIFACT_MODE=shared`, which keeps the process's umask
/// (usually 0644 and 0755). Any other value is treated as `private`, with
/// a warning. The umask is process-wide: QEMU and the image recipes
/// inherit it.
pub fn apply_artifact_mode() {
    match std::env::var("BOOTRIG_ARTIFACT_MODE").as_deref() {
        Ok("shared") => {}
        Ok("private") | Err(_) => set_private_umask(),
        Ok(other) => {
            eprintln!(
                "bootrig: BOOTRIG_ARTIFACT_MODE={other:?} is neither \"private\" nor \"shared\"; \
                 artifacts stay private"
            );
            set_private_umask();
        }
    }
}

fn set_private_umask() {
    // SAFETY: umask has no preconditions; it only changes this process's
    // file creation mask.
    unsafe { libc::umask(0o077) };
}

/// Checks, before anything boots, that a run can write its outputs: the
/// artifacts root (`run_dir`'s parent) is a folder or can be created, and
/// a file can be created in it; the JUnit report's folder exists (or is
/// created) and takes a file. The error names the path and what is wrong.
pub fn check_outputs(run_dir: &Path, junit: Option<&Path>) -> Result<(), String> {
    let root = run_dir
        .parent()
        .filter(|r| !r.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Some(junit) = junit {
        if junit.is_dir() {
            return Err(format!(
                "--junit {} is a folder, not a file",
                junit.display()
            ));
        }
        let parent = junit
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // The report's folder is created as the writer would, now.
        std::fs::create_dir_all(parent).map_err(|e| {
            format!(
                "--junit {}: cannot create the folder {}: {e}",
                junit.display(),
                parent.display()
            )
        })?;
        probe_write(parent).map_err(|e| {
            format!(
                "--junit {}: cannot write in {}: {e}",
                junit.display(),
                parent.display()
            )
        })?;
    }
    if root.exists() && !root.is_dir() {
        return Err(format!(
            "artifacts folder {} is not a folder",
            root.display()
        ));
    }
    std::fs::create_dir_all(root)
        .map_err(|e| format!("cannot create the artifacts folder {}: {e}", root.display()))?;
    probe_write(root).map_err(|e| {
        format!(
            "cannot write in the artifacts folder {}: {e}",
            root.display()
        )
    })?;
    Ok(())
}

/// Creates and removes a file in `dir`.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    tempfile::Builder::new()
        .prefix(".bootrig-probe")
        .tempfile_in(dir)
        .map(drop)
}

/// A new run's id: local time and process id (`20261130-054512-4242`).
fn fresh_run_id() -> String {
    format!(
        "{}-{}",
        chrono::Local::now().format("%Y%m%d-%H%M%S"),
        std::process::id()
    )
}
