//! fstests results as the VM side uses them: the offline reader of
//! `bootrig_diagnostics::fstests` (result.xml, check.log, per-test files,
//! check.time, baselines, comparisons), plus the few helpers the runner
//! needs on top.

use std::path::Path;

pub use bootrig_diagnostics::fstests::*;

/// A test that completed in a run that did not end normally (the VM died
/// later in the same section, so fstests never wrote that section's
/// `result.xml`): its outcome from the files fstests left, the rule
/// `check` itself applies.
pub fn salvage(section: Option<&str>, test: &str, report_dir: &Path) -> FsTest {
    FsTest::from_files(section, test, report_dir)
}

/// The record of `test` in `section` among `results`, if there is one.
pub fn result_of<'a>(
    results: &'a FsResults,
    section: Option<&str>,
    test: &str,
) -> Option<&'a FsTest> {
    results.get(section, test)
}

/// A results set made of `tests` (e.g. merged from several VM attempts).
pub fn results_from(tests: Vec<FsTest>) -> FsResults {
    let mut r = FsResults {
        tests,
        sections: Vec::new(),
    };
    r.recount();
    r
}
