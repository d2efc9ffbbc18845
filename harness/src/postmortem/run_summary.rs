//! `run.json` from the harness's side: each test records its line as it
//! ends (the one writer is `bootrig_diagnostics::run::RunSummary`).

use std::path::Path;

use bootrig_diagnostics::TestDir;

/// The id of the run in `run_dir` (its folder's name).
fn run_id(run_dir: &Path) -> String {
    run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Records the finished test `dir` in its run folder's `run.json`.
pub(crate) fn record(dir: &TestDir) {
    let Some(run_dir) = dir.path().parent() else {
        return;
    };
    if let Err(e) = dir.update_run_summary(run_dir, &run_id(run_dir)) {
        eprintln!("bootrig: could not update run.json: {e}");
    }
}
