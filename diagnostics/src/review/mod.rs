//! Offline review of runs: what `bootrig report`, `bootrig compare` and
//! `bootrig history` print.
//!
//! Everything here reads a run folder's artifacts (`run.json`, each test's
//! `metadata.json` and the files its catalog lists) and never starts
//! QEMU, so it works on a run folder copied from another machine (a CI
//! artifact download): paths are taken relative to the run folder.
//!
//! - [`Run`]: a run folder loaded (`run.json` plus every test's metadata).
//! - [`text`]: the terminal report (summary, then each failure).
//! - [`html`]: the self-contained HTML report.
//! - [`verify`]: re-hash every catalogued artifact.
//! - [`timings`]: boot-phase samples per image.
//! - [`compare`]: what changed between two runs (tests and timings).
//! - [`history`]: boot-phase timings across many runs.

pub mod compare;
pub mod console;
mod error;
mod escape;
pub mod history;
pub mod html;
mod run;
mod svg;
pub mod text;
pub mod timings;
pub mod verify;

pub use error::ReviewError;
pub use run::{find_runs, Run, RunTest};
