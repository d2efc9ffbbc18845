//! The run engine: runs tests under the runner's rules and reports what
//! happens as [`Event`]s. One engine serves `bootrig run` (its own worker
//! pool, [`Engine::run`]) and [`crate::Suite`] (libtest-mimic schedules,
//! each trial calls [`Engine::run_test`]).
//!
//! For each test: requirements (missing ones skip it, or fail it under
//! `CI=true`), a VM slot from the [`VmBudget`], the test's deadline
//! (bounding every wait of its VMs, and a watchdog that kills them when it
//! passes), the body with panics caught, and the postmortem
//! ([`TestContext::finish`]). The result is a typed [`TestRecord`]; the
//! engine never prints.
//!
//! ```text
//! Engine::run ── RunStarted ── worker × jobs ── run_test ── RunFinished
//!                                               │
//!               TestStarted ─ requirements ─ budget ─ deadline ─ body ─ finish ─ TestFinished
//! ```

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bootrig_diagnostics::metadata::Outcome;
use bootrig_diagnostics::results::{TestRecord, Totals};
use bootrig_diagnostics::run::{RunEntry, RunSummary};
use bootrig_diagnostics::TestDir;

use crate::deadline::Deadline;
use crate::errors::{Error, Result};
use crate::events::Event;
use crate::run::budget::{VmBudget, VmSlot};
use crate::run::context::TestContext;
use crate::run::hold::Held;
use crate::run::marks::Marks;
use crate::run::settings::RunSettings;

/// A test body.
pub type Body = Arc<dyn Fn(&TestContext) -> Result<()> + Send + Sync>;

/// A test the engine can run: its full name, markers and body.
#[derive(Clone)]
pub struct Test {
    /// Its full name (`scenario::test`, `module::name`).
    pub name: String,
    /// Its markers.
    pub marks: Marks,
    /// Its body.
    pub body: Body,
}

impl std::fmt::Debug for Test {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Test")
            .field("name", &self.name)
            .field("marks", &self.marks)
            .finish_non_exhaustive()
    }
}

impl Test {
    /// A test named `name` running `body`.
    pub fn new(
        name: impl Into<String>,
        marks: Marks,
        body: impl Fn(&TestContext) -> Result<()> + Send + Sync + 'static,
    ) -> Test {
        Test {
            name: name.into(),
            marks,
            body: Arc::new(body),
        }
    }
}

/// What [`Engine::run`] returns.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Every test that ran (or was skipped), in the order they ended.
    pub records: Vec<TestRecord>,
    /// Their counts.
    pub totals: Totals,
    /// The signal that interrupted the run, if one did.
    pub interrupted: Option<i32>,
}

impl RunReport {
    /// The process exit status for this run: 128 + the signal that
    /// interrupted it, 1 when a test failed, else 0.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if let Some(sig) = self.interrupted {
            return std::process::ExitCode::from((128 + sig) as u8);
        }
        if self.totals.failed_any() {
            std::process::ExitCode::from(1)
        } else {
            std::process::ExitCode::SUCCESS
        }
    }
}

/// Runs tests; see the module documentation.
#[derive(Debug)]
pub struct Engine {
    settings: RunSettings,
    budget: VmBudget,
    fail_fast: bool,
}

impl Engine {
    /// An engine for a run with `settings`, running at most `budget` VMs
    /// at once.
    pub fn new(settings: RunSettings, budget: VmBudget) -> Engine {
        Engine {
            settings,
            budget,
            fail_fast: false,
        }
    }

    /// With `on`, [`Engine::run`] starts no new test once one has failed
    /// (`bootrig run -x`); tests already running finish.
    pub fn fail_fast(mut self, on: bool) -> Engine {
        self.fail_fast = on;
        self
    }

    /// The run's settings.
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// Runs `tests` on `jobs` workers; a worker takes the next test as soon
    /// as its last one ended. After an interruption (see
    /// [`crate::run::signals`]) no new test starts but those that only
    /// report what an earlier one did (fstests trials). Sends
    /// `RunStarted` first and `RunFinished` last.
    pub fn run(&self, tests: &[Test], jobs: usize) -> RunReport {
        self.start_run(tests.len());
        let queue = Mutex::new(tests.iter());
        let records = Mutex::new(Vec::new());
        let workers = jobs.clamp(1, tests.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let interrupted = self.settings.interrupts.interrupted().is_some();
                    if self.fail_fast
                        && records
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .iter()
                            .any(|r: &TestRecord| r.outcome().is_failure())
                    {
                        break;
                    }
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                    let Some(test) = next else { break };
                    if interrupted && !test.marks.after_interrupt {
                        continue;
                    }
                    let record = self.run_test(test);
                    records
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(record);
                });
            }
        });
        let records = records.into_inner().unwrap_or_else(|p| p.into_inner());
        let totals = self.finish_run(&records);
        RunReport {
            records,
            totals,
            interrupted: self.settings.interrupts.interrupted(),
        }
    }

    /// Announces a run of `tests` selected tests (0 when not known).
    pub fn start_run(&self, tests: usize) {
        self.settings.events.send(Event::RunStarted {
            tests,
            run_dir: self.settings.run_dir.clone(),
        });
    }

    /// Ends a run whose tests ended as `records`: marks `run.json` as
    /// ended (each test already recorded itself there) and sends
    /// `RunFinished` with the totals, which it returns.
    pub fn finish_run(&self, records: &[TestRecord]) -> Totals {
        let totals = Totals::of_entries(records.iter().map(|r| &r.entry));
        if let Err(e) = RunSummary::mark_ended(&self.settings.run_dir, chrono::Utc::now()) {
            self.settings.events.send(Event::Output {
                test: String::new(),
                line: format!("could not update run.json: {e}"),
            });
        }
        self.settings.events.send(Event::RunFinished {
            totals,
            run_dir: self.settings.run_dir.clone(),
            interrupted: self.settings.interrupts.interrupted(),
        });
        totals
    }

    /// Runs one test under the runner's rules (see the module
    /// documentation); sends `TestStarted` and `TestFinished`.
    pub fn run_test(&self, test: &Test) -> TestRecord {
        self.settings.events.send(Event::TestStarted {
            test: test.name.clone(),
        });
        let (record, held, slot) = self.execute(test);
        self.settings.events.send(Event::TestFinished {
            record: record.clone(),
        });
        if !held.is_empty() {
            // Held VMs keep their slots of the budget until the hold ends.
            crate::run::hold::hold(&self.settings, &test.name, &record.artifacts, held);
        }
        drop(slot);
        record
    }

    /// Runs the test; its record, its VMs (and networks) when they are to
    /// be held, and
    /// the slots of the VM budget it took (kept while they are held).
    fn execute(&self, test: &Test) -> (TestRecord, Held, Option<VmSlot<'_>>) {
        let started = Instant::now();
        let marks = &test.marks;
        let ended = |outcome, message: String, artifacts: &Path| {
            record(
                &test.name,
                outcome,
                started.elapsed(),
                Some(message),
                artifacts,
                None,
            )
        };
        if let Some(why) = marks.unmet() {
            let r = if self.settings.strict_requirements {
                let message = format!("requirement not met under CI=true: {why}");
                ended(Outcome::Failed, message, Path::new(""))
            } else {
                ended(Outcome::Skipped, why, Path::new(""))
            };
            return (r, Held::default(), None);
        }
        let ctx = match TestContext::new(&test.name, self.settings.clone()) {
            Ok(ctx) => Arc::new(ctx),
            Err(e) => {
                let message = format!("could not set up the test: {e}");
                let mut r = ended(Outcome::Failed, message, Path::new(""));
                // No folder, no metadata.json: the kind goes to run.json
                // and the summary from here (a full disk is `infra`).
                r.entry.failure_kind = Some(e.failure_kind());
                return (r, Held::default(), None);
            }
        };
        let artifacts = ctx.artifacts_dir().to_path_buf();
        let vms = marks.vms.max(1);
        if vms > self.budget.size() {
            self.settings.events.send(Event::Output {
                test: test.name.clone(),
                line: format!(
                    "{} runs {vms} VMs at once, more than the VM budget of {} \
                     (-j, BOOTRIG_MAX_VMS): it waits for the whole budget and runs alone",
                    test.name,
                    self.budget.size()
                ),
            });
        }
        let slot = self.budget.acquire_many(vms);
        ctx.set_vm_slots(vms);
        if let Some(timeout) = marks.timeout {
            ctx.set_deadline(Deadline::after(timeout));
        }
        let watchdog = marks.timeout.map(|t| Watchdog::start(ctx.clone(), t));
        let result = crate::run::panics::catch(marks.declarative, || (test.body)(&ctx));
        // A wait inside the body ends exactly at the test's deadline, so the
        // body may fail (console timeout) just before the watchdog fires:
        // that is the deadline too.
        let fired = watchdog.is_some_and(Watchdog::stop);
        let timed_out = fired || (result.is_err() && ctx.deadline().expired());
        let result = if timed_out {
            Err(Error::TestTimeout(marks.timeout.unwrap_or_default()))
        } else if let (Err(_), Some(sig), false) = (
            &result,
            self.settings.interrupts.interrupted(),
            marks.after_interrupt,
        ) {
            Err(Error::Interrupted(sig))
        } else {
            result
        };
        let Ok(ctx) = Arc::try_unwrap(ctx) else {
            let message = "internal error: the test context is still shared".to_string();
            return (
                ended(Outcome::Failed, message, &artifacts),
                Held::default(),
                None,
            );
        };
        let xfail = marks.xfail_reason();
        let (ending, held) = ctx.finish_or_hold(&result, xfail);
        let message = match (&result, xfail) {
            (Err(Error::Skip(why)), _) => Some(why.clone()),
            // A crash the postmortem found after the last step.
            (Ok(()), None) => ending.message,
            (Err(_), None) => ending.message,
            (Err(e), Some(reason)) => Some(format!(
                "expected failure ({reason}): {}",
                e.to_string().lines().next().unwrap_or("")
            )),
            (Ok(()), Some(reason)) if ending.outcome == Outcome::Xfail => Some(format!(
                "expected failure ({reason}): a kernel crash found when the test ended"
            )),
            (Ok(()), Some(reason)) => Some(format!(
                "UNEXPECTED PASS: this test is marked xfail ({reason}) but it passed; remove the marker"
            )),
        };
        let mut r = record(
            &test.name,
            ending.outcome,
            started.elapsed(),
            message,
            &artifacts,
            Some(ending.entry),
        );
        r.console_tail = ending.console_tail;
        (r, held, Some(slot))
    }
}

/// The record of a test that ended `outcome` after `duration`. Its
/// `run.json` entry is the postmortem's (`recorded`: failure kind,
/// one-line failure), else the one in its folder's `metadata.json`, when
/// there is one.
fn record(
    name: &str,
    outcome: Outcome,
    duration: Duration,
    message: Option<String>,
    artifacts: &Path,
    recorded: Option<RunEntry>,
) -> TestRecord {
    let recorded = recorded.or_else(|| {
        (!artifacts.as_os_str().is_empty())
            .then(|| TestDir::open(artifacts).ok())
            .flatten()
            .map(|dir| dir.run_entry())
    });
    let mut entry = recorded.unwrap_or_else(|| RunEntry {
        test: name.to_string(),
        outcome,
        duration_ms: None,
        folder: artifacts
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        failure_kind: None,
        summary: None,
        attempts: Vec::new(),
        flaky: false,
    });
    entry.outcome = outcome;
    entry.duration_ms = Some(duration.as_millis() as u64);
    if entry.summary.is_none() && outcome != Outcome::Passed {
        entry.summary = message
            .as_deref()
            .and_then(|m| m.lines().next())
            .map(str::to_string);
    }
    TestRecord {
        entry,
        artifacts: artifacts.to_path_buf(),
        message,
        console_tail: String::new(),
    }
}

/// Kills a test's VMs when its deadline passes; the body then fails
/// promptly because its consoles close.
struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<bool>,
}

impl Watchdog {
    fn start(ctx: Arc<TestContext>, timeout: Duration) -> Watchdog {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let (lock, cv) = &*flag;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, res) = cv
                .wait_timeout_while(guard, timeout, |d| !*d)
                .unwrap_or_else(|p| p.into_inner());
            let fired = res.timed_out() && !*guard;
            drop(guard);
            if fired {
                ctx.kill_all();
            }
            fired
        });
        Watchdog { done, thread }
    }

    /// Stops the watchdog; whether it fired.
    fn stop(self) -> bool {
        let (lock, cv) = &*self.done;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        self.thread.join().unwrap_or(false)
    }
}
