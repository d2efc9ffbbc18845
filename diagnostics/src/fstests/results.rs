//! The typed results of an fstests run: one [`FsTest`] per (section,
//! test), loaded from a results folder by [`FsResults::load`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::summary::{flaky_label, FlakyLabel};

/// How fstests recorded a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FsOutcome {
    /// It ran and its output matched.
    #[serde(rename = "passed")]
    Passed,
    /// Output mismatch, a failed check (fsck, dmesg), or a crash.
    #[serde(rename = "failed")]
    Failed,
    /// `_notrun`: the test does not apply (with fstests' reason).
    #[serde(rename = "notrun")]
    NotRun,
}

impl FsOutcome {
    /// `passed`, `failed` or `notrun` (the JSON spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            FsOutcome::Passed => "passed",
            FsOutcome::Failed => "failed",
            FsOutcome::NotRun => "notrun",
        }
    }
}

impl fmt::Display for FsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The per-test files fstests left, as absolute paths (`None` when absent):
/// `results/<section>/<test>.<ext>`, or `results/<test>.<ext>` without
/// sections.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FsTestFiles {
    /// `<test>.out.bad`: the output that did not match the golden one.
    pub out_bad: Option<PathBuf>,
    /// `<test>.full`: everything the test logged.
    pub full: Option<PathBuf>,
    /// `<test>.dmesg`: kernel messages that failed the test.
    pub dmesg: Option<PathBuf>,
    /// `<test>.notrun`: why it did not run.
    pub notrun: Option<PathBuf>,
    /// `<test>.hints`: what to look at (for failures).
    pub hints: Option<PathBuf>,
}

impl FsTestFiles {
    /// The files of `test` (`generic/001`) in the report folder `dir`
    /// (`results/<section>`, or `results/` without sections) that exist.
    pub fn in_dir(dir: &Path, test: &str) -> FsTestFiles {
        let mut files = FsTestFiles::default();
        for ext in TEST_FILE_EXTS {
            let p = dir.join(format!("{test}.{ext}"));
            if p.is_file() {
                files.set(ext, p);
            }
        }
        files
    }

    /// Every file present, with its kind (`out.bad`, `full`, ...).
    pub fn present(&self) -> Vec<(&'static str, &Path)> {
        [
            ("out.bad", &self.out_bad),
            ("full", &self.full),
            ("dmesg", &self.dmesg),
            ("notrun", &self.notrun),
            ("hints", &self.hints),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_deref().map(|p| (k, p)))
        .collect()
    }

    pub(super) fn set(&mut self, ext: &str, path: PathBuf) {
        let slot = match ext {
            "out.bad" => &mut self.out_bad,
            "full" => &mut self.full,
            "dmesg" => &mut self.dmesg,
            "notrun" => &mut self.notrun,
            "hints" => &mut self.hints,
            _ => return,
        };
        *slot = Some(path);
    }
}

/// Texts recorded about a test besides its files: what `result.xml` carried
/// for a failure, or the message a bootrig run recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FsDetails {
    /// `<system-err>`: fstests' diff of the golden output against `.out.bad`.
    pub diff: Option<String>,
    /// `<system-out>`: the test's `.full` as embedded in `result.xml`.
    pub system_out: Option<String>,
    /// `<kernel-log>`: the test's `.dmesg` as embedded in `result.xml`.
    pub kernel_log: Option<String>,
    /// The whole failure message of a bootrig trial (from its
    /// `metadata.json`), when the results came from a bootrig run.
    pub message: Option<String>,
}

/// One fstests test of one section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsTest {
    /// The section (`ext4_4k`); `None` for a run without sections.
    pub section: Option<String>,
    /// The test, `generic/001`.
    pub name: String,
    /// Its outcome: failed if any attempt failed, notrun if every attempt
    /// was not run, passed otherwise.
    pub outcome: FsOutcome,
    /// Why it did not run, or the one-line failure message.
    pub reason: Option<String>,
    /// How long it ran (the failing attempt's, else the last one's).
    pub duration: Option<Duration>,
    /// Its files in the results folder.
    pub files: FsTestFiles,
    /// Every attempt's outcome, in order: more than one for `-L` reruns,
    /// `-i` iterations, or merged runs (see [`FsTest::flaky`]).
    pub attempts: Vec<FsOutcome>,
    /// What `result.xml` (or a bootrig run) said beyond the outcome.
    pub details: FsDetails,
}

/// The trial name of `test` in `section`: `fstests::<section>::<test>`,
/// or `fstests::<test>` without a section (see [`FsTest::trial_name`]).
pub fn trial_name(section: Option<&str>, test: &str) -> String {
    match section {
        Some(s) => format!("fstests::{s}::{test}"),
        None => format!("fstests::{test}"),
    }
}

impl FsTest {
    /// A test with one attempt of `outcome`, no duration, files or details.
    pub fn new(
        section: Option<&str>,
        name: &str,
        outcome: FsOutcome,
        reason: Option<String>,
    ) -> FsTest {
        FsTest {
            section: section.map(str::to_string),
            name: name.to_string(),
            outcome,
            reason,
            duration: None,
            files: FsTestFiles::default(),
            attempts: vec![outcome],
            details: FsDetails::default(),
        }
    }

    /// A test that completed but whose section has no report (the VM died
    /// later in the section, so check never rewrote `result.xml` with it):
    /// its outcome from the files check left in `report_dir`, by check's
    /// own rules: `.notrun` → not run with its reason; `.out.bad` → output
    /// mismatch; `.dmesg` → kernel messages failed it (check writes it
    /// only then); otherwise passed.
    pub fn from_files(section: Option<&str>, name: &str, report_dir: &Path) -> FsTest {
        let files = FsTestFiles::in_dir(report_dir, name);
        let (outcome, reason) = if let Some(n) = &files.notrun {
            let why = std::fs::read(n).map(|b| String::from_utf8_lossy(&b).trim().to_string());
            (FsOutcome::NotRun, why.ok().filter(|w| !w.is_empty()))
        } else if let Some(bad) = &files.out_bad {
            (
                FsOutcome::Failed,
                Some(format!("- output mismatch (see {})", bad.display())),
            )
        } else if let Some(d) = &files.dmesg {
            (
                FsOutcome::Failed,
                Some(format!(
                    "_check_dmesg: something found (see {})",
                    d.display()
                )),
            )
        } else {
            (FsOutcome::Passed, None)
        };
        let mut t = FsTest::new(section, name, outcome, reason);
        t.files = files;
        t
    }

    /// The trial's name: `fstests::<section>::<test>`, or `fstests::<test>`
    /// for a run without sections (`fstests::ext4_4k::generic/001`,
    /// `fstests::generic/001`).
    pub fn trial_name(&self) -> String {
        trial_name(self.section.as_deref(), &self.name)
    }

    /// The flakiness of its attempts (`2/5` failed, or consistent).
    pub fn flaky(&self) -> FlakyLabel {
        flaky_label(&self.attempts)
    }

    /// `section test` or `test`, for reports.
    pub fn label(&self) -> String {
        match &self.section {
            Some(s) => format!("{s} {}", self.name),
            None => self.name.clone(),
        }
    }

    pub(crate) fn key(&self) -> (Option<&str>, &str) {
        (self.section.as_deref(), self.name.as_str())
    }
}

/// One section of a run: the counts of fstests' own summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsSection {
    /// The section; `None` for a run without sections.
    pub name: Option<String>,
    /// The number of tests (notruns included, as fstests counts them).
    pub tests: usize,
    /// How many failed.
    pub failures: usize,
    /// How many were not run.
    pub notrun: usize,
    /// The section's wall time in seconds: `result.xml`'s, else the sum of
    /// the tests' durations.
    pub seconds: u64,
    /// The failed tests, in run order.
    pub failed: Vec<String>,
    /// The tests with both failed and passed attempts, and their rate.
    pub flaky: Vec<(String, FlakyLabel)>,
    /// Whether the section finished (`result.xml` whole, with a time).
    pub complete: bool,
    /// `result.xml`'s properties (`FSTYP`, `KERNEL`, `MKFS_OPTIONS`, ...).
    pub properties: BTreeMap<String, String>,
    /// When `check` started the run (`result.xml`'s `start_timestamp`).
    pub run_started_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// When the section's last test started (`result.xml`'s `timestamp`).
    pub last_test_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl FsSection {
    /// The name shown in the summary: the section, else the `FSTYP`
    /// property, else `global` (fstests' own name for a run without
    /// sections).
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.properties.get("FSTYP").map(String::as_str))
            .unwrap_or("global")
    }
}

/// Every test of a run (or of several merged runs), and its sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FsResults {
    /// One entry per (section, test), in run order.
    pub tests: Vec<FsTest>,
    /// One entry per section, in run order.
    pub sections: Vec<FsSection>,
}

/// The per-test files' extensions check writes.
pub(super) const TEST_FILE_EXTS: [&str; 5] = ["out.bad", "full", "dmesg", "notrun", "hints"];

impl FsResults {
    /// Adds `other`'s tests: a (section, test) present in both becomes one
    /// test with both runs' attempts (its outcome recomputed); sections of
    /// the same name add their seconds. Used for shards and rerun folders.
    pub fn merge(&mut self, other: FsResults) {
        let mut index: HashMap<(Option<String>, String), usize> = self
            .tests
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.section.clone(), t.name.clone()), i))
            .collect();
        for t in other.tests {
            match index.get(&(t.section.clone(), t.name.clone())) {
                Some(&i) => combine(&mut self.tests[i], t),
                None => {
                    index.insert((t.section.clone(), t.name.clone()), self.tests.len());
                    self.tests.push(t);
                }
            }
        }
        for s in other.sections {
            match self.sections.iter_mut().find(|x| x.name == s.name) {
                Some(x) => {
                    x.seconds += s.seconds;
                    x.complete &= s.complete;
                    x.properties.extend(s.properties);
                    x.run_started_at = earliest(x.run_started_at, s.run_started_at);
                    x.last_test_at = x.last_test_at.max(s.last_test_at);
                }
                None => self.sections.push(s),
            }
        }
        self.recount();
    }

    /// The test `name` of `section`.
    pub fn get(&self, section: Option<&str>, name: &str) -> Option<&FsTest> {
        self.tests.iter().find(|t| t.key() == (section, name))
    }

    /// Recomputes every section's counts, failed and flaky lists from the
    /// tests (adding a section for tests whose section is not listed).
    pub fn recount(&mut self) {
        // Sections made here have no check.log total: theirs is the sum of
        // their tests' durations (merged shards, several VMs).
        let mut made: Vec<Option<String>> = Vec::new();
        for t in &self.tests {
            if !self.sections.iter().any(|s| s.name == t.section) {
                made.push(t.section.clone());
                self.sections.push(FsSection {
                    name: t.section.clone(),
                    tests: 0,
                    failures: 0,
                    notrun: 0,
                    seconds: 0,
                    failed: Vec::new(),
                    flaky: Vec::new(),
                    complete: true,
                    properties: BTreeMap::new(),
                    run_started_at: None,
                    last_test_at: None,
                });
            }
        }
        for s in &mut self.sections {
            let tests: Vec<&FsTest> = self.tests.iter().filter(|t| t.section == s.name).collect();
            s.tests = tests.len();
            if made.contains(&s.name) {
                let total: Duration = tests.iter().filter_map(|t| t.duration).sum();
                s.seconds = total.as_secs_f64().round() as u64;
            }
            s.failures = tests
                .iter()
                .filter(|t| t.outcome == FsOutcome::Failed)
                .count();
            s.notrun = tests
                .iter()
                .filter(|t| t.outcome == FsOutcome::NotRun)
                .count();
            s.failed = tests
                .iter()
                .filter(|t| t.outcome == FsOutcome::Failed)
                .map(|t| t.name.clone())
                .collect();
            s.flaky = tests
                .iter()
                .filter_map(|t| match t.flaky() {
                    f @ FlakyLabel::Flaky { .. } => Some((t.name.clone(), f)),
                    FlakyLabel::Consistent => None,
                })
                .collect();
        }
    }
}

/// Failed if any attempt failed; notrun if all were not run; else passed.
pub(crate) fn overall(attempts: &[FsOutcome]) -> FsOutcome {
    if attempts.contains(&FsOutcome::Failed) {
        FsOutcome::Failed
    } else if !attempts.is_empty() && attempts.iter().all(|a| *a == FsOutcome::NotRun) {
        FsOutcome::NotRun
    } else {
        FsOutcome::Passed
    }
}

fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Folds `other` (the same test from another run) into `t`.
fn combine(t: &mut FsTest, other: FsTest) {
    let first_failure = t.outcome != FsOutcome::Failed && other.outcome == FsOutcome::Failed;
    t.attempts.extend(other.attempts);
    t.outcome = overall(&t.attempts);
    if first_failure || t.reason.is_none() {
        t.reason = other.reason;
        t.duration = other.duration.or(t.duration);
        t.details = other.details;
        t.files = other.files;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_attempts() {
        use FsOutcome::*;
        assert_eq!(overall(&[Passed, Failed, Passed]), Failed);
        assert_eq!(overall(&[NotRun, NotRun]), NotRun);
        assert_eq!(overall(&[NotRun, Passed]), Passed);
        assert_eq!(serde_json::to_string(&NotRun).unwrap(), "\"notrun\"");
        assert_eq!(serde_json::to_string(&Passed).unwrap(), "\"passed\"");
    }

    #[test]
    fn merged_tests_make_sections_timed_by_their_tests() {
        let mut a = FsTest::new(Some("ext4"), "generic/001", FsOutcome::Passed, None);
        a.duration = Some(Duration::from_millis(2600));
        let mut b = FsTest::new(Some("ext4"), "xfs/001", FsOutcome::Failed, None);
        b.duration = Some(Duration::from_secs(10));
        let c = FsTest::new(Some("ext4"), "generic/110", FsOutcome::NotRun, None);
        let mut r = FsResults {
            tests: vec![a, b, c],
            sections: Vec::new(),
        };
        r.recount();
        assert_eq!(
            r.summary_lines(),
            [
                "ext4: 3 tests, 1 failures, 1 skipped, 13 seconds",
                "  Failures: xfs/001"
            ]
        );
    }

    #[test]
    fn from_files_follows_checks_rules() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("generic");
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(g.join("001.full"), "log").unwrap();
        std::fs::write(g.join("002.notrun"), "no reflink\n").unwrap();
        std::fs::write(g.join("003.out.bad"), "x").unwrap();
        std::fs::write(g.join("004.dmesg"), "WARNING").unwrap();
        let t = |n: &str| FsTest::from_files(Some("s"), n, dir.path());
        assert_eq!(t("generic/001").outcome, FsOutcome::Passed);
        assert_eq!(t("generic/001").files.full, Some(g.join("001.full")));
        assert_eq!(t("generic/002").outcome, FsOutcome::NotRun);
        assert_eq!(t("generic/002").reason.as_deref(), Some("no reflink"));
        assert_eq!(t("generic/003").outcome, FsOutcome::Failed);
        assert!(t("generic/003")
            .reason
            .unwrap()
            .starts_with("- output mismatch (see "));
        assert_eq!(t("generic/004").outcome, FsOutcome::Failed);
        assert_eq!(t("generic/004").trial_name(), "fstests::s::generic/004");
        assert_eq!(trial_name(None, "generic/004"), "fstests::generic/004");
    }
}
