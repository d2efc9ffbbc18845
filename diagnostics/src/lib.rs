//! bootrig-diagnostics: the postmortem half of bootrig.
//!
//! It defines the versioned `metadata.json` schema, the artifact layout
//! (`layout`: every file's name, producer and path), the artifact catalog
//! with streamed sha256 hashes, test folders (`TestDir`), safe artifact
//! names, atomic writes, kernel crash detection on console text, and the
//! stand-alone failure reports. It never
//! starts QEMU, so it works offline on the artifacts a run left behind.
#![warn(missing_docs)]

pub mod ansi;
pub mod atomic;
pub mod catalog;
pub mod crash;
pub mod errors;
pub mod fstests;
pub mod hash;
pub mod junit;
pub mod layout;
pub mod markers;
pub mod metadata;
pub mod names;
pub mod report;
pub mod reserve;
pub mod results;
pub mod review;
pub mod run;
pub mod testdir;
pub mod timestamp;

mod json;

pub use testdir::TestDir;

#[cfg(test)]
mod schema_tests;
