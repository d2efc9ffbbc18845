//! The harness side of the postmortem: records phases and boot sources
//! while a test runs, and when it fails collects diagnostics from the live
//! guest and writes the artifacts and `metadata.json`.
//!
//! (Being written: this first version keeps the phase log and the failure
//! message; the metadata schema and catalog come from bootrig-diagnostics.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bootrig_diagnostics::crash::CrashReport;

use crate::console::ConsoleObserver;
use crate::errors::{Error, Result};
use crate::machine::Machine;
use crate::session::Session;
use crate::suite::TrialRecord;

/// Crash detection settings for a test.
#[derive(Debug, Clone, Copy, Default)]
pub struct CrashConfig {
    /// Fail on WARNINGs (otherwise they are only recorded).
    pub warnings_fatal: bool,
}

/// Watches console lines for kernel crash reports.
#[derive(Debug)]
pub struct CrashWatch {
    _config: CrashConfig,
}

impl CrashWatch {
    /// A watcher with `config`.
    pub fn new(config: CrashConfig) -> CrashWatch {
        CrashWatch { _config: config }
    }
}

impl ConsoleObserver for CrashWatch {
    fn on_line(&mut self, _line: &[u8], _now: Instant) -> Option<CrashReport> {
        None
    }
}

#[derive(Debug, Default)]
struct State {
    phases: Vec<(String, Duration, Option<Duration>)>,
    scenario: Option<(String, PathBuf)>,
    units: Vec<String>,
    commands: Vec<String>,
    console_tail: String,
}

/// Per-test postmortem recorder.
#[derive(Debug)]
pub struct Postmortem {
    name: String,
    dir: PathBuf,
    started: Instant,
    state: Arc<Mutex<State>>,
}

impl Postmortem {
    /// Starts recording for test `name` into `dir`.
    pub fn begin(name: &str, dir: &Path) -> Result<Postmortem> {
        Ok(Postmortem {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            started: Instant::now(),
            state: Arc::default(),
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Crash detection settings.
    pub fn crash_config(&self) -> CrashConfig {
        CrashConfig::default()
    }

    /// A phase begins.
    pub fn phase_start(&self, name: &str) {
        let at = self.started.elapsed();
        self.st().phases.push((name.to_string(), at, None));
    }

    /// A phase ends.
    pub fn phase_end(&self, name: &str) {
        let at = self.started.elapsed();
        if let Some(p) = self.st().phases.iter_mut().rev().find(|p| p.0 == name) {
            p.2 = Some(at - p.1);
        }
    }

    /// The scenario this test comes from.
    pub fn set_scenario(&self, name: &str, file: &Path) {
        self.st().scenario = Some((name.to_string(), file.to_path_buf()));
    }

    /// Units and commands to collect on failure.
    pub fn set_diagnostics_spec(&self, units: &[String], commands: &[String]) {
        let mut st = self.st();
        st.units = units.to_vec();
        st.commands = commands.to_vec();
    }

    /// The shell answers.
    pub fn mark_shell_ready(&self) {
        self.phase_start("shell ready");
        self.phase_end("shell ready");
    }

    /// Step `i` starts.
    pub fn step_start(&self, i: usize, what: &str) {
        self.phase_start(&format!("step {}: {what}", i + 1));
    }

    /// Step `i` ends.
    pub fn step_end(&self, i: usize, _ok: bool) {
        let name = self
            .st()
            .phases
            .iter()
            .rev()
            .find(|p| p.0.starts_with(&format!("step {}: ", i + 1)))
            .map(|p| p.0.clone());
        if let Some(n) = name {
            self.phase_end(&n);
        }
    }

    /// Records QEMU facts and boot sources.
    pub fn record_machine(&self, _machine: &Machine) {}

    /// The console tail captured at finish.
    pub fn console_tail(&self) -> String {
        self.st().console_tail.clone()
    }

    /// Finalises; returns the failure message when the test failed.
    pub fn finish(
        &self,
        vms: &[Arc<Session>],
        outcome: &Result<()>,
        _xfail: Option<&str>,
        elapsed: Duration,
    ) -> Option<String> {
        let tail = vms
            .first()
            .map(|vm| vm.machine().console().tail_lines(30))
            .unwrap_or_default();
        self.st().console_tail = tail.clone();
        let err: &Error = outcome.as_ref().err()?;
        Some(format!(
            "==== bootrig: {} FAILED after {:.1}s ({}) ====\n{err}\n---- console (last 30 lines) ----\n{tail}\n---- artifacts: {} ----",
            self.name,
            elapsed.as_secs_f64(),
            err.failure_kind(),
            self.dir.display()
        ))
    }
}

/// Writes `run.json` for a run.
pub fn write_run_json(_run_dir: &Path, _records: &[TrialRecord]) {}
