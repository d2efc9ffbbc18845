//! fstests (xfstests) results, offline: parse a results folder, compare
//! two runs, apply a baseline of known failures.
//!
//! fstests' `./check` leaves in its results folder (`results/` of the
//! tree, or `RESULT_BASE`) a `result.xml` per section (`-R xunit`), an
//! append-only `check.log`, `check.time` (the last passing duration of each
//! test), and per test `<test>.out.bad`, `.full`, `.dmesg`, `.notrun`,
//! `.hints`. [`FsResults::load`] reads all of them leniently (real files
//! break the rules, see [`xunit`] and [`checklog`]) into one
//! [`FsTest`] per (section, test), the unit bootrig reports as a trial
//! named [`FsTest::trial_name`].
//!
//! Layout read:
//!
//! ```text
//! results/                      without sections     with sections
//!   result.xml check.log          the run              -
//!   check.time                    the run              merged over sections
//!   check.log                     -                    every section's blocks, unmarked
//!   <fs>/<n>.out.bad ...          per test             -
//!   <section>/result.xml          -                    the section
//!   <section>/check.log check.time -                   the section
//!   <section>/<fs>/<n>.out.bad ... -                   per test
//! ```

mod baseline;
pub mod checklog;
mod checktime;
mod compare;
mod kmsg;
mod load;
mod message;
mod results;
mod sources;
mod summary;
pub mod xunit;

pub use baseline::{Baseline, BaselineEntry};
pub use checklog::{parse_check_log, CheckLogBlock};
pub use checktime::{parse_check_time, CheckTime};
pub use compare::{compare, Change, Comparison};
pub use kmsg::{kernel_log_per_test, tests_started_in_kernel_log, TestStart};
pub use results::{trial_name, FsDetails, FsOutcome, FsResults, FsSection, FsTest, FsTestFiles};
pub use sources::{load_all, load_any};
pub use summary::{flaky_label, FlakyLabel};

#[cfg(test)]
mod fixture_tests;
