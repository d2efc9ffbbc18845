//! The review commands' error type.

use std::path::PathBuf;

/// Why a run (or a folder of runs) could not be reviewed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// Reading an artifact failed (the error names the file).
    #[error(transparent)]
    Artifacts(#[from] crate::errors::Error),
    /// The folder is neither a run folder nor holds one.
    #[error("{}: not a bootrig run folder (no run.json and no test folder with a metadata.json)", path.display())]
    NotARun {
        /// The folder given.
        path: PathBuf,
    },
    /// A folder of runs holds no run.
    #[error("{}: no bootrig run folder inside", dir.display())]
    NoRuns {
        /// The folder given.
        dir: PathBuf,
    },
    /// `--baseline latest-passing` found no run whose tests all passed.
    #[error("{}: none of its {looked} run(s) passed every test; no baseline to compare with", dir.display())]
    NoPassingRun {
        /// The folder of runs.
        dir: PathBuf,
        /// How many runs it holds.
        looked: usize,
    },
}
