//! Settings shared by every test of a run.

use std::path::PathBuf;
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
    /// Where the run's events go (see [`crate::events`]); by default a
    /// [`ProgressReporter`] on stderr.
    pub events: Events,
}

impl RunSettings {
    /// Settings from the environment: `BOOTRIG_ARTIFACTS` (root folder),
    /// `BOOTRIG_RUN_ID` / `NEXTEST_RUN_ID` (run folder name),
    /// `BOOTRIG_ACCEL`.
    pub fn from_env(default_root: PathBuf) -> RunSettings {
        let root = std::env::var_os("BOOTRIG_ARTIFACTS")
            .map(PathBuf::from)
            .unwrap_or(default_root);
        let run_id = std::env::var("BOOTRIG_RUN_ID")
            .or_else(|_| std::env::var("NEXTEST_RUN_ID"))
            .unwrap_or_else(|_| {
                format!(
                    "{}-{}",
                    chrono::Local::now().format("%Y%m%d-%H%M%S"),
                    std::process::id()
                )
            });
        let accel = std::env::var("BOOTRIG_ACCEL")
            .ok()
            .and_then(|a| a.parse().ok());
        RunSettings {
            run_dir: root.join(bootrig_diagnostics::names::safe_name(&run_id)),
            images: ImageStore::default(),
            accel,
            strict_requirements: std::env::var("CI").is_ok_and(|v| v == "true"),
            interrupts: Arc::default(),
            events: Events::new(ProgressReporter::stderr()),
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
