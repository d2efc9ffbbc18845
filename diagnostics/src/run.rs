//! `run.json`: the summary of a run, in the run folder next to the tests'
//! folders.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::atomic::write_json_atomic;
use crate::errors::{Error, ErrorKind, Result};
use crate::json::load_versioned;
use crate::layout;
use crate::metadata::{FailureKind, Metadata, Outcome};

/// Version of the `run.json` format; same compatibility rules as
/// [`crate::metadata::SCHEMA_VERSION`].
pub const RUN_SCHEMA_VERSION: u32 = 1;

/// One test of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEntry {
    /// The test's full name.
    pub test: String,
    /// How it ended (`running` if it never finished).
    pub outcome: Outcome,
    /// Its duration, once finished.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Its folder, relative to the run folder.
    pub folder: String,
    /// The kind of failure, for failed tests.
    #[serde(default)]
    pub failure_kind: Option<FailureKind>,
    /// One line saying why the test did not pass (failure, skip reason,
    /// unexpected pass); absent for passed tests. Added in schema 1 as an
    /// optional field: older files simply lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Earlier attempts of the same test in this run (a runner such as
    /// nextest retried it), oldest first; each kept its own folder
    /// ([`attempt_folder`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Passed after an earlier attempt failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flaky: bool,
}

/// An earlier attempt of a test, as `run.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its folder, relative to the run folder.
    pub folder: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The kind of failure, if it failed.
    #[serde(default)]
    pub failure_kind: Option<FailureKind>,
    /// Its one-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// The folder the `n`-th (1-based) earlier attempt of the test in
/// `folder` is moved to when the test runs again: `<folder>~attempt-N`
/// (`~` is never in a test's own folder name, see
/// [`crate::names::safe_name`]).
pub fn attempt_folder(folder: &str, n: usize) -> String {
    format!("{folder}{ATTEMPT_MARK}{n}")
}

const ATTEMPT_MARK: &str = "~attempt-";

/// The test folder and attempt number of an attempt folder.
pub fn parse_attempt_folder(name: &str) -> Option<(&str, usize)> {
    let (folder, n) = name.rsplit_once(ATTEMPT_MARK)?;
    Some((folder, n.parse().ok()?))
}

impl RunEntry {
    /// What `flaky` says: it passed, and an earlier attempt failed.
    fn passed_after_a_failed_attempt(&self) -> bool {
        self.outcome == Outcome::Passed && self.attempts.iter().any(|a| a.outcome.is_failure())
    }

    /// The entry for a test with `metadata`, in `folder`.
    pub fn from_metadata(metadata: &Metadata, folder: &str) -> RunEntry {
        RunEntry {
            test: metadata.test.clone(),
            outcome: metadata.outcome,
            duration_ms: metadata.duration_ms(),
            folder: folder.to_string(),
            failure_kind: metadata.failure.as_ref().map(|f| f.kind),
            summary: metadata
                .failure
                .as_ref()
                .and_then(|f| f.message.lines().next())
                .map(str::to_string),
            attempts: Vec::new(),
            flaky: false,
        }
    }
}

/// The contents of `run.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// [`RUN_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The run's id (also the run folder's name, through `safe_name`).
    pub run_id: String,
    /// When the run started.
    #[serde(with = "crate::timestamp")]
    pub started_at: DateTime<Utc>,
    /// When it ended; `null` while running.
    #[serde(default, with = "crate::timestamp::option")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Its tests, in the order they were recorded.
    #[serde(default)]
    pub tests: Vec<RunEntry>,
}

impl RunSummary {
    /// The summary file's name in the run folder.
    pub const FILE: &'static str = layout::RUN_SUMMARY.path;

    /// A run `run_id` started at `started_at`, with no test yet.
    pub fn new(run_id: impl Into<String>, started_at: DateTime<Utc>) -> RunSummary {
        RunSummary {
            schema_version: RUN_SCHEMA_VERSION,
            run_id: run_id.into(),
            started_at,
            ended_at: None,
            tests: Vec::new(),
        }
    }

    /// Records `entry`, replacing an earlier entry for the same folder and
    /// keeping its earlier attempts; `flaky` when it passed after a failed
    /// attempt.
    pub fn record(&mut self, mut entry: RunEntry) {
        match self.tests.iter_mut().find(|e| e.folder == entry.folder) {
            Some(e) => {
                if entry.attempts.is_empty() {
                    entry.attempts = std::mem::take(&mut e.attempts);
                }
                entry.flaky = entry.passed_after_a_failed_attempt();
                *e = entry;
            }
            None => self.tests.push(entry),
        }
    }

    /// A test in `folder` starts again in this run: its finished entry
    /// becomes an earlier attempt in `moved_to` (where its folder was
    /// moved), and the test is `running` again.
    pub fn retire_attempt(&mut self, folder: &str, moved_to: &str) {
        let Some(e) = self.tests.iter_mut().find(|e| e.folder == folder) else {
            return;
        };
        let earlier = Attempt {
            folder: moved_to.to_string(),
            outcome: e.outcome,
            failure_kind: e.failure_kind,
            summary: e.summary.take(),
        };
        e.attempts.push(earlier);
        e.outcome = Outcome::Running;
        e.duration_ms = None;
        e.failure_kind = None;
        e.flaky = false;
    }

    /// [`RunSummary::retire_attempt`] in `run_dir/run.json`, under the run
    /// lock (nothing to do without a `run.json`).
    pub fn retire_attempt_in(run_dir: &Path, folder: &str, moved_to: &str) -> Result<()> {
        if !run_dir.join(RunSummary::FILE).is_file() {
            return Ok(());
        }
        RunSummary::locked(run_dir, |summary| {
            let mut summary = summary?;
            summary.retire_attempt(folder, moved_to);
            Some(summary)
        })
        .map(|_| ())
    }

    /// Number of tests with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.tests.iter().filter(|e| e.outcome == outcome).count()
    }

    /// Rebuilds the summary from the `metadata.json` of every test folder
    /// in `run_dir` (sorted by folder name). Useful when several processes
    /// ran the tests (one per test, as with nextest), since each wrote only
    /// its own folder. Folders without a readable `metadata.json` are skipped.
    pub fn scan(run_dir: &Path, run_id: impl Into<String>) -> Result<RunSummary> {
        let err = |e| Error::io("listing the run folder", run_dir, e);
        let mut entries = Vec::new();
        let mut attempts = Vec::new();
        for d in std::fs::read_dir(run_dir).map_err(err)? {
            let d = d.map_err(err)?;
            if !d.file_type().map_err(err)?.is_dir() {
                continue;
            }
            let folder = d.file_name().to_string_lossy().into_owned();
            if let Ok(m) = Metadata::load(&d.path().join(layout::METADATA.path)) {
                match parse_attempt_folder(&folder) {
                    Some((test_folder, n)) => attempts.push((
                        test_folder.to_string(),
                        n,
                        RunEntry::from_metadata(&m, &folder),
                    )),
                    None => entries.push((m.started_at, RunEntry::from_metadata(&m, &folder))),
                }
            }
        }
        entries.sort_by(|a, b| a.1.folder.cmp(&b.1.folder));
        attempts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let started_at = entries.iter().map(|e| e.0).min().unwrap_or_else(Utc::now);
        let mut s = RunSummary::new(run_id, started_at);
        s.tests = entries.into_iter().map(|e| e.1).collect();
        for (test_folder, _, a) in attempts {
            if let Some(e) = s.tests.iter_mut().find(|e| e.folder == test_folder) {
                e.attempts.push(Attempt {
                    folder: a.folder,
                    outcome: a.outcome,
                    failure_kind: a.failure_kind,
                    summary: a.summary,
                });
            }
        }
        for e in &mut s.tests {
            e.flaky = e.passed_after_a_failed_attempt();
        }
        Ok(s)
    }

    /// Reads `run.json` at `path`.
    pub fn load(path: &Path) -> Result<RunSummary> {
        load_versioned(path, "loading run summary", RUN_SCHEMA_VERSION)
    }

    /// The run's `run.json` (None when there is none yet). One that
    /// exists but cannot be read (truncated by a full disk, damaged) is
    /// never silently restarted: it is kept as `run.json.damaged` and the
    /// summary is rebuilt from the tests' `metadata.json` files, so no
    /// entry is lost. A version newer than this bootrig understands is an
    /// error (rewriting it would lose what it holds).
    pub fn load_or_recover(run_dir: &Path) -> Result<Option<RunSummary>> {
        let path = run_dir.join(RunSummary::FILE);
        if !path.exists() {
            return Ok(None);
        }
        match RunSummary::load(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if matches!(e.kind, ErrorKind::UnsupportedSchema { .. }) => Err(e),
            // A read that failed (permissions, I/O) is no damage: say so.
            Err(e) if matches!(e.kind, ErrorKind::Io(_)) => Err(e),
            Err(_) => {
                let damaged = run_dir.join(format!("{}.damaged", RunSummary::FILE));
                std::fs::rename(&path, &damaged)
                    .map_err(|e| Error::io("keeping the damaged run.json", &damaged, e))?;
                let run_id = run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok(Some(RunSummary::scan(run_dir, run_id)?))
            }
        }
    }

    /// Writes it atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_json_atomic(path, self)
    }

    /// Records one test's `entry` (started at `started_at`) in
    /// `run_dir/run.json`: read, update,
    /// write, under an exclusive lock on `run_dir/.run.lock`, so tests
    /// finishing at the same time in several processes (nextest runs one
    /// process per test) never lose each other's entries. Costs one small
    /// file per test, not a scan of the whole run.
    pub fn update(
        run_dir: &Path,
        run_id: &str,
        started_at: DateTime<Utc>,
        entry: RunEntry,
    ) -> Result<RunSummary> {
        RunSummary::locked(run_dir, |summary| {
            let mut summary = summary.unwrap_or_else(|| RunSummary::new(run_id, started_at));
            summary.started_at = summary.started_at.min(started_at);
            summary.record(entry);
            summary.ended_at = Some(Utc::now());
            Some(summary)
        })
        .map(|s| s.unwrap_or_else(|| RunSummary::new(run_id, started_at)))
    }

    /// Marks the run in `run_dir` as ended at `at` (the run engine does at
    /// the end of a run). Nothing to do when no test wrote a `run.json`.
    pub fn mark_ended(run_dir: &Path, at: DateTime<Utc>) -> Result<Option<RunSummary>> {
        if !run_dir.join(RunSummary::FILE).is_file() {
            return Ok(None);
        }
        RunSummary::locked(run_dir, |summary| {
            let mut summary = summary?;
            summary.ended_at = Some(summary.ended_at.map_or(at, |e| e.max(at)));
            Some(summary)
        })
    }

    /// The one writer of `run.json`: loads it (None when missing or
    /// unreadable) under the run lock, lets `change` update it, and saves
    /// what `change` returns.
    fn locked(
        run_dir: &Path,
        change: impl FnOnce(Option<RunSummary>) -> Option<RunSummary>,
    ) -> Result<Option<RunSummary>> {
        let lock_path = run_dir.join(".run.lock");
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| Error::io("creating the run lock", &lock_path, e))?;
        lock.lock()
            .map_err(|e| Error::io("locking the run", &lock_path, e))?;
        let path = run_dir.join(RunSummary::FILE);
        let summary = change(RunSummary::load_or_recover(run_dir)?);
        if let Some(s) = &summary {
            s.save(&path)?;
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn record_replaces_the_entry_of_the_same_folder() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let mut s = RunSummary::new("r", t0);
        let mut m = Metadata::new("a::one", t0);
        s.record(RunEntry::from_metadata(&m, "a.one"));
        m.finish(Outcome::Passed, None, t0);
        s.record(RunEntry::from_metadata(&m, "a.one"));
        assert_eq!(s.tests.len(), 1);
        assert_eq!(s.count(Outcome::Passed), 1);
    }

    #[test]
    fn mark_ended_sets_the_end_and_keeps_the_tests() {
        let run = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        assert_eq!(RunSummary::mark_ended(run.path(), t0).unwrap(), None);
        assert!(!run.path().join(RunSummary::FILE).exists());
        let m = Metadata::new("a::one", t0);
        RunSummary::update(run.path(), "r", t0, RunEntry::from_metadata(&m, "a.one")).unwrap();
        let end = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
        let s = RunSummary::mark_ended(run.path(), end).unwrap().unwrap();
        assert_eq!(s.ended_at, Some(end));
        assert_eq!(s.tests.len(), 1);
        let loaded = RunSummary::load(&run.path().join(RunSummary::FILE)).unwrap();
        assert_eq!(loaded, s);
    }

    #[test]
    fn a_damaged_run_json_is_kept_and_rebuilt_not_restarted() {
        let run = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        for name in ["a::one", "a::two"] {
            let dir = crate::testdir::TestDir::create(run.path(), name, t0).unwrap();
            dir.update_run_summary(run.path(), "r").unwrap();
        }
        // A full disk truncated it.
        let path = run.path().join(RunSummary::FILE);
        std::fs::write(&path, "{\"schema_version\": 1, \"run_id\": \"r\", \"tes").unwrap();
        let m = Metadata::new("a::three", t0);
        std::fs::create_dir(run.path().join("a.three")).unwrap();
        m.save(&run.path().join("a.three/metadata.json")).unwrap();
        let s = RunSummary::update(run.path(), "r", t0, RunEntry::from_metadata(&m, "a.three"))
            .unwrap();
        let mut folders: Vec<_> = s.tests.iter().map(|e| e.folder.as_str()).collect();
        folders.sort();
        assert_eq!(folders, ["a.one", "a.three", "a.two"]);
        assert!(run.path().join("run.json.damaged").is_file());
    }

    #[test]
    fn a_rerun_keeps_the_earlier_attempt() {
        let run = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let mut first = crate::testdir::TestDir::create(run.path(), "a::flaky", t0).unwrap();
        first
            .finish(
                Outcome::Failed,
                Some(crate::metadata::Failure::new(FailureKind::Check, "no")),
                t0,
            )
            .unwrap();
        first.update_run_summary(run.path(), "r").unwrap();
        let mut second = crate::testdir::TestDir::create(run.path(), "a::flaky", t0).unwrap();
        second.finish(Outcome::Passed, None, t0).unwrap();
        let s = second.update_run_summary(run.path(), "r").unwrap();
        assert_eq!(s.tests.len(), 1);
        let e = &s.tests[0];
        assert!(e.flaky && e.outcome == Outcome::Passed, "{e:?}");
        assert_eq!(e.attempts.len(), 1);
        assert_eq!(e.attempts[0].folder, "a.flaky~attempt-1");
        assert!(run.path().join("a.flaky~attempt-1/metadata.json").is_file());
        // A rebuild from the folders finds the same.
        let scanned = RunSummary::scan(run.path(), "r").unwrap();
        assert_eq!(scanned.tests.len(), 1);
        assert!(scanned.tests[0].flaky);
    }
}
