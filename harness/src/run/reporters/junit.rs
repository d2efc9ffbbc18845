//! The JUnit XML file of a run.

use std::path::PathBuf;
use std::sync::Mutex;

use bootrig_diagnostics::junit::{merge_junit, write_junit};
use bootrig_diagnostics::reserve::{Reserve, DEFAULT_RESERVE_BYTES};
use bootrig_diagnostics::results::TestRecord;

use crate::events::{Event, Reporter};

/// Collects every finished test and writes the JUnit report when the run
/// finishes (see [`bootrig_diagnostics::junit`]). A write error is kept
/// for [`JunitReporter::error`]: the caller decides the exit code.
#[derive(Debug)]
pub struct JunitReporter {
    path: PathBuf,
    suite: String,
    merge_run: Option<String>,
    records: Mutex<Vec<TestRecord>>,
    error: Mutex<Option<String>>,
    /// Space held next to the report from the run's start until it is
    /// written, so a disk filled by the run still takes the report.
    reserve: Mutex<Option<Reserve>>,
}

impl JunitReporter {
    /// Writes the run's tests to `path` (replacing the file).
    pub fn new(path: impl Into<PathBuf>, suite: impl Into<String>) -> JunitReporter {
        JunitReporter {
            path: path.into(),
            suite: suite.into(),
            merge_run: None,
            records: Mutex::default(),
            error: Mutex::default(),
            reserve: Mutex::default(),
        }
    }

    /// Adds the tests to those other processes of run `run_id` wrote to
    /// `path` (cargo-nextest runs one process per test); see
    /// [`merge_junit`].
    pub fn merging(
        path: impl Into<PathBuf>,
        suite: impl Into<String>,
        run_id: impl Into<String>,
    ) -> JunitReporter {
        JunitReporter {
            merge_run: Some(run_id.into()),
            ..JunitReporter::new(path, suite)
        }
    }

    /// The report's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Why the report could not be written, if it could not.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Holds space for the report (not when merging: the processes of a
    /// run share the file, and its size is that of one test's part).
    fn hold_space(&self) {
        if self.merge_run.is_some() {
            return;
        }
        let Some(name) = self.path.file_name() else {
            return;
        };
        let mut hidden = std::ffi::OsString::from(".");
        hidden.push(name);
        hidden.push(".bootrig-reserve");
        let at = self.path.with_file_name(hidden);
        *self.reserve.lock().unwrap_or_else(|p| p.into_inner()) =
            Reserve::at(&at, DEFAULT_RESERVE_BYTES).ok();
    }

    fn write(&self) {
        if let Some(mut r) = self
            .reserve
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            r.release();
        }
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let written = match &self.merge_run {
            Some(run) => merge_junit(&self.path, &self.suite, run, &records).map(drop),
            None => write_junit(&self.path, &self.suite, &records),
        };
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) =
            written.err().map(|e| e.to_string());
    }
}

impl Reporter for JunitReporter {
    fn report(&self, event: &Event) {
        match event {
            Event::TestFinished { record } => self
                .records
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record.clone()),
            Event::RunFinished { .. } => self.write(),
            Event::RunStarted { .. } => self.hold_space(),
            Event::TestStarted { .. }
            | Event::Phase { .. }
            | Event::Step { .. }
            | Event::Output { .. } => {}
        }
    }
}
