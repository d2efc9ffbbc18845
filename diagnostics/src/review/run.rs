//! A run folder, loaded for review.

use std::path::{Path, PathBuf};

use crate::errors::Error;
use crate::layout;
use crate::metadata::{Metadata, Outcome};
use crate::names::join_inside;
use crate::results::Totals;
use crate::run::{RunEntry, RunSummary};
use crate::testdir::TestDir;

use super::ReviewError;

/// A run folder: its `run.json` and every test's `metadata.json`.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run folder, with symbolic links resolved (`target/bootrig/latest`
    /// becomes the run it points to).
    pub dir: PathBuf,
    /// Its summary: `run.json`, completed with test folders it does not
    /// list (a test whose process died before recording itself), or
    /// rebuilt from the folders when there is no `run.json`.
    pub summary: RunSummary,
    /// Its tests, in `run.json` order.
    pub tests: Vec<RunTest>,
}

/// One test of a [`Run`].
#[derive(Debug, Clone)]
pub struct RunTest {
    /// Its line in `run.json`.
    pub entry: RunEntry,
    /// Its folder.
    pub dir: PathBuf,
    /// Its `metadata.json`, when it could be read.
    pub metadata: Option<Metadata>,
    /// Why `metadata.json` could not be read.
    pub problem: Option<String>,
}

impl RunTest {
    fn load(run_dir: &Path, entry: RunEntry) -> RunTest {
        let (dir, metadata, problem) = match join_inside(run_dir, &entry.folder) {
            Ok(dir) => match TestDir::open(&dir) {
                Ok(t) => (dir, Some(t.metadata().clone()), None),
                Err(e) => (dir, None, Some(e.to_string())),
            },
            Err(e) => (run_dir.to_path_buf(), None, Some(e.to_string())),
        };
        RunTest {
            entry,
            dir,
            metadata,
            problem,
        }
    }

    /// The test's full name.
    pub fn name(&self) -> &str {
        &self.entry.test
    }

    /// How it ended: from `metadata.json` (written last), else `run.json`.
    pub fn outcome(&self) -> Outcome {
        self.metadata
            .as_ref()
            .map_or(self.entry.outcome, |m| m.outcome)
    }

    /// Its duration in milliseconds, if it finished.
    pub fn duration_ms(&self) -> Option<u64> {
        self.metadata
            .as_ref()
            .and_then(Metadata::duration_ms)
            .or(self.entry.duration_ms)
    }

    /// Whether it failed the run: a failure, an unexpected pass, or a test
    /// that never finished.
    pub fn failed(&self) -> bool {
        let o = self.outcome();
        o.is_failure() || o == Outcome::Running
    }

    /// Whether it passed only after being retried (the harness records
    /// the attempt number in `metadata.json`'s `extra.attempt` when a
    /// runner such as nextest retries a test).
    pub fn flaky(&self) -> bool {
        self.entry.flaky
            || (self.outcome() == Outcome::Passed
                && self
                    .metadata
                    .as_ref()
                    .and_then(|m| m.extra.get("attempt"))
                    .and_then(|a| a.as_u64())
                    .is_some_and(|a| a > 1))
    }

    /// `rel` (a catalog path) relative to the run folder: what the report
    /// prints, valid wherever the run folder was copied to.
    pub fn run_relative(&self, rel: &str) -> String {
        format!("{}/{rel}", self.entry.folder)
    }

    /// One line saying why it did not pass.
    pub fn headline(&self) -> Option<String> {
        if let Some(f) = self.metadata.as_ref().and_then(|m| m.failure.as_ref()) {
            if let Some(c) = &f.crash {
                return Some(c.title.clone());
            }
            return f.message.lines().next().map(str::to_string);
        }
        self.entry.summary.clone().or_else(|| self.problem.clone())
    }
}

impl Run {
    /// Loads the run in `path` (a run folder or a link to one, such as
    /// `target/bootrig/latest`). Tests whose `metadata.json` is missing or
    /// invalid are kept, with the reason in [`RunTest::problem`].
    pub fn open(path: &Path) -> Result<Run, ReviewError> {
        let dir = std::fs::canonicalize(path)
            .map_err(|e| Error::io("opening the run folder", path, e))?;
        if !dir.is_dir() {
            return Err(ReviewError::NotARun { path: dir });
        }
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let run_json = dir.join(RunSummary::FILE);
        let scanned = RunSummary::scan(&dir, id.clone())?;
        let summary = if run_json.is_file() {
            let mut s = RunSummary::load(&run_json)?;
            for e in scanned.tests {
                if !s.tests.iter().any(|t| t.folder == e.folder) {
                    s.tests.push(e);
                }
            }
            s
        } else if scanned.tests.is_empty() {
            return Err(ReviewError::NotARun { path: dir });
        } else {
            scanned
        };
        let tests = summary
            .tests
            .iter()
            .map(|e| RunTest::load(&dir, e.clone()))
            .collect();
        Ok(Run {
            dir,
            summary,
            tests,
        })
    }

    /// The run's id.
    pub fn id(&self) -> &str {
        &self.summary.run_id
    }

    /// How many tests ended each way.
    pub fn totals(&self) -> Totals {
        Totals::of_entries(self.tests.iter().map(|t| &t.entry))
    }

    /// How many tests passed only after a retry.
    pub fn flaky(&self) -> usize {
        self.tests.iter().filter(|t| t.flaky()).count()
    }

    /// Wall time from the run's start to its end, if it ended.
    pub fn duration_ms(&self) -> Option<u64> {
        let end = self.summary.ended_at?;
        Some((end - self.summary.started_at).num_milliseconds().max(0) as u64)
    }

    /// Whether it has tests and none failed (skips and expected failures
    /// are fine).
    pub fn all_passed(&self) -> bool {
        !self.tests.is_empty() && !self.tests.iter().any(RunTest::failed)
    }

    /// The tests that failed the run, in run order.
    pub fn failures(&self) -> impl Iterator<Item = &RunTest> {
        self.tests.iter().filter(|t| t.failed())
    }

    /// The test called `name`.
    pub fn test(&self, name: &str) -> Option<&RunTest> {
        self.tests.iter().find(|t| t.name() == name)
    }
}

/// The runs in `path`: `path` itself when it is a run folder, else every
/// run folder directly inside it (each once, links such as `latest`
/// resolved), oldest first by start time. Folders that are not runs are
/// skipped.
pub fn find_runs(path: &Path) -> Result<Vec<Run>, ReviewError> {
    if path.join(layout::RUN_SUMMARY.path).is_file() {
        return Ok(vec![Run::open(path)?]);
    }
    let err = |e| Error::io("listing the folder of runs", path, e);
    let mut runs: Vec<Run> = Vec::new();
    for d in std::fs::read_dir(path).map_err(err)? {
        let d = d.map_err(err)?;
        let p = d.path();
        if !p.join(layout::RUN_SUMMARY.path).is_file() {
            continue;
        }
        let Ok(run) = Run::open(&p) else { continue };
        if !runs.iter().any(|r| r.dir == run.dir) {
            runs.push(run);
        }
    }
    if runs.is_empty() {
        return Err(ReviewError::NoRuns {
            dir: path.to_path_buf(),
        });
    }
    runs.sort_by(|a, b| (a.summary.started_at, &a.dir).cmp(&(b.summary.started_at, &b.dir)));
    Ok(runs)
}
