//! A libtest-compatible runner for VM tests, on libtest-mimic.
//!
//! Scenario-file tests and Rust closures become trials named
//! `scenario::test` (or whatever path the Rust test is given), so the
//! standard filters, `--exact`, `--skip`, `--list`, `--ignored`,
//! `--test-threads` and cargo-nextest all work unchanged. Listing parses
//! scenario files and nothing else: it never builds, boots or hashes.
//!
//! libtest-mimic schedules; each trial runs its test through the
//! [`Engine`], which sends the run's events to the settings' reporters.
//! A test marked xfail shows as `test [xfail] name ... ok`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use bootrig_diagnostics::metadata::Outcome;
use bootrig_diagnostics::results::TestRecord;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::errors::{Error, Result};
use crate::events::{Events, Fanout};
use crate::run::budget::VmBudget;
use crate::run::context::TestContext;
use crate::run::engine::{Engine, Test};
use crate::run::marks::Marks;
use crate::run::params::Params;
use crate::run::reporters::JunitReporter;
use crate::run::scenario::{self, Scenario};
use crate::run::scenario_test::scenario_test;
use crate::run::settings::{default_artifacts_root, RunSettings};

/// A suite of VM tests. See the crate documentation for an example.
pub struct Suite {
    args: Arguments,
    tests: Vec<Test>,
    settings: Option<RunSettings>,
    junit: Option<PathBuf>,
    marks: Option<(String, bool)>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("tests", &self.tests.len())
            .finish()
    }
}

impl Suite {
    /// A suite configured from the command line (libtest's arguments).
    pub fn from_args() -> Suite {
        Suite::with_args(Arguments::from_args())
    }

    /// A suite with explicit arguments.
    pub fn with_args(args: Arguments) -> Suite {
        Suite {
            args,
            tests: Vec::new(),
            settings: None,
            junit: None,
            marks: None,
        }
    }

    /// Adds every test of every scenario file under `path` (a file or a
    /// folder, searched recursively, `images/` excluded). A file that does
    /// not parse becomes a failing trial named after it, so the error is
    /// seen and the other tests still run.
    pub fn scenarios(mut self, path: impl AsRef<Path>) -> Suite {
        let files = match scenario::discover(&[path.as_ref().to_path_buf()]) {
            Ok(f) => f,
            Err(e) => {
                let name = format!("scenarios::{}", path.as_ref().display());
                self.push_failing(name, "scenario folder", e);
                return self;
            }
        };
        for file in files {
            match Scenario::load(&file) {
                Ok(sc) => {
                    let sc = Arc::new(sc);
                    for i in 0..sc.tests.len() {
                        self.tests.push(scenario_test(&sc, i));
                    }
                }
                Err(e) => {
                    let stem = file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    self.push_failing(format!("{stem}::load"), "scenario", e);
                }
            }
        }
        self
    }

    /// A trial that fails with `error`, so a broken input is reported
    /// where the tests it would have held appear.
    fn push_failing(&mut self, name: String, what: &'static str, error: Error) {
        let message = error.to_string();
        self.tests.push(Test::new(name, Marks::new(), move |_| {
            Err(Error::Config {
                what: what.into(),
                message: message.clone(),
            })
        }));
    }

    /// Adds a Rust test.
    pub fn test(
        self,
        name: &str,
        f: impl Fn(&TestContext) -> Result<()> + Send + Sync + 'static,
    ) -> Suite {
        self.test_with(name, Marks::new(), f)
    }

    /// Adds a Rust test with markers.
    pub fn test_with(
        mut self,
        name: &str,
        marks: Marks,
        f: impl Fn(&TestContext) -> Result<()> + Send + Sync + 'static,
    ) -> Suite {
        self.tests.push(Test::new(name, marks, f));
        self
    }

    /// Adds one trial per value, named `<name>::<value>`.
    pub fn parametrize<T, F>(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = T>,
        marks: Marks,
        f: F,
    ) -> Suite
    where
        T: std::fmt::Display + Clone + Send + Sync + 'static,
        F: Fn(&TestContext, &T) -> Result<()> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        for v in values {
            let f = f.clone();
            let label = v.to_string();
            self.tests.push(Test::new(
                format!("{name}::{label}"),
                marks.clone(),
                move |ctx| f(ctx, &v),
            ));
        }
        self
    }

    /// Adds one trial per combination of the parameters' values (their
    /// cartesian product), named `<name>::<id>` with pytest's id, the
    /// values joined by `-`: `boot::debian-ext4` for
    /// `[("image", ["busybox", "debian"]), ("fs", ["ext4", "xfs"])]`.
    /// See [`Params::id`] for how values are made safe.
    pub fn parametrize_grid<K, I, V, F>(
        mut self,
        name: &str,
        axes: impl IntoIterator<Item = (K, I)>,
        marks: Marks,
        f: F,
    ) -> Suite
    where
        K: Into<String>,
        I: IntoIterator<Item = V>,
        V: std::fmt::Display,
        F: Fn(&TestContext, &Params) -> Result<()> + Send + Sync + 'static,
    {
        let axes: Vec<(String, Vec<String>)> = axes
            .into_iter()
            .map(|(k, vs)| (k.into(), vs.into_iter().map(|v| v.to_string()).collect()))
            .collect();
        let f = Arc::new(f);
        for case in Params::grid(&axes) {
            let f = f.clone();
            self.tests.push(Test::new(
                format!("{name}::{}", case.id()),
                marks.clone(),
                move |ctx| f(ctx, &case),
            ));
        }
        self
    }

    /// Runs only the tests whose markers match `expr` (pytest's `-m`; see
    /// `docs/writing-tests.md`); with `strict`, a marker no test carries
    /// is an error instead of a warning. [`Suite::run`] sets this from
    /// `BOOTRIG_MARKS` (and `BOOTRIG_STRICT_MARKERS=1`).
    pub fn select_marks(mut self, expr: impl Into<String>, strict: bool) -> Suite {
        self.marks = Some((expr.into(), strict));
        self
    }

    /// Uses these settings instead of the environment's.
    pub fn with_settings(mut self, settings: RunSettings) -> Suite {
        self.settings = Some(settings);
        self
    }

    /// Writes a JUnit report of the run to `path`. Tests of the same run
    /// written by other processes (cargo-nextest runs one process per
    /// test) are kept: the file holds the whole run. [`Suite::run`] sets
    /// this from `BOOTRIG_JUNIT`.
    pub fn junit(mut self, path: impl Into<PathBuf>) -> Suite {
        self.junit = Some(path.into());
        self
    }

    /// The libtest arguments the suite runs with (filters, `--exact`,
    /// `--skip`, `--list`): a builder that shares work between trials
    /// (e.g. one fstests run for all its trials) runs only what they
    /// select.
    pub fn arguments(&self) -> &Arguments {
        &self.args
    }

    /// The trial names, in order (what `--list` prints).
    pub fn names(&self) -> Vec<String> {
        self.tests.iter().map(|t| t.name.clone()).collect()
    }

    /// Runs the selected trials and returns the exit code; writes the
    /// JUnit report to `$BOOTRIG_JUNIT` if set, and selects by markers
    /// with `$BOOTRIG_MARKS` if set.
    pub fn run(mut self) -> ExitCode {
        if let Some(path) = std::env::var_os("BOOTRIG_JUNIT") {
            self.junit = Some(PathBuf::from(path));
        }
        if let Ok(expr) = std::env::var("BOOTRIG_MARKS") {
            let strict = std::env::var("BOOTRIG_STRICT_MARKERS").is_ok_and(|v| v == "1");
            self = self.select_marks(expr, strict);
        }
        self.run_collect().1
    }

    /// Runs the trials; returns what happened to each and the exit code.
    pub fn run_collect(self) -> (Vec<TestRecord>, ExitCode) {
        // Two trials of one name would share an artifacts folder and a
        // run.json entry: refused before anything runs (or is listed).
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&str> = self
            .tests
            .iter()
            .filter(|t| !seen.insert(t.name.as_str()))
            .map(|t| t.name.as_str())
            .collect();
        if !twice.is_empty() {
            eprintln!(
                "bootrig: these trial names are given to more than one test: {}; \
                 names must be unique in a run (nothing was run)",
                twice.join(", ")
            );
            return (Vec::new(), ExitCode::from(2));
        }
        let mut tests = self.tests;
        if let Some((expr, strict)) = &self.marks {
            match crate::run::select::select(&mut tests, expr, *strict) {
                Ok(unknown) if !unknown.is_empty() => eprintln!(
                    "bootrig: warning: no test carries the marker(s) {} of BOOTRIG_MARKS={expr:?} \
                     (BOOTRIG_STRICT_MARKERS=1 makes this an error)",
                    unknown.join(", ")
                ),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bootrig: BOOTRIG_MARKS: {e}");
                    return (Vec::new(), ExitCode::from(2));
                }
            }
        }
        // Settings only read the environment: listing touches no disk.
        let mut settings = self
            .settings
            .unwrap_or_else(|| RunSettings::from_env(default_artifacts_root()));
        if let Err(e) = crate::run::hold::check_allowed(settings.hold) {
            eprintln!("bootrig: BOOTRIG_HOLD: {e} (nothing was run)");
            return (Vec::new(), ExitCode::from(2));
        }
        if settings.hold && !self.args.list {
            // Ctrl-C ends the held VMs cleanly instead of killing the
            // process under them.
            if let Err(e) = crate::run::signals::install(settings.interrupts.clone()) {
                eprintln!("bootrig: cannot handle signals ({e}); Ctrl-C will still stop the VMs");
            }
        }
        let junit = self.junit.map(|path| {
            let run_id = settings
                .run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Arc::new(JunitReporter::merging(path, "bootrig", run_id))
        });
        if let Some(j) = &junit {
            settings.events = Events::new(Fanout(vec![
                Box::new(settings.events.clone()),
                Box::new(j.clone()),
            ]));
        }
        let engine = Arc::new(Engine::new(settings, VmBudget::from_env()));
        let records = Arc::new(Mutex::new(Vec::new()));
        let listing = self.args.list;
        let trials: Vec<Trial> = tests
            .into_iter()
            .map(|test| {
                let kind = match test.marks.xfail_reason() {
                    // The kind is part of a listed name; nextest must see
                    // the plain one.
                    Some(_) if !listing => "xfail",
                    _ => "",
                };
                let slow = test.marks.slow;
                let (engine, records) = (engine.clone(), records.clone());
                Trial::ignorable_test(test.name.clone(), move || {
                    let record = engine.run_test(&test);
                    let result = trial_result(&record);
                    records
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(record);
                    result
                })
                .with_ignored_flag(slow)
                .with_kind(kind)
            })
            .collect();
        let selected = trials
            .iter()
            .filter(|t| !self.args.is_filtered_out(t) && !self.args.is_ignored(t))
            .count();
        if !listing {
            engine.start_run(selected);
        }
        let conclusion = libtest_mimic::run(&self.args, trials);
        let records = std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()));
        let mut code = conclusion.exit_code();
        if !listing {
            engine.finish_run(&records);
            if let Some(e) = junit.as_ref().and_then(|j| j.error()) {
                let path = junit.as_ref().map(|j| j.path().display().to_string());
                eprintln!(
                    "bootrig: could not write the JUnit report {}: {e}",
                    path.unwrap_or_default()
                );
                code = ExitCode::FAILURE;
            }
        }
        (records, code)
    }
}

/// What libtest-mimic is told about a test that ended as `record`.
fn trial_result(record: &TestRecord) -> std::result::Result<Completion, Failed> {
    let message = || record.message.clone().unwrap_or_default();
    match record.outcome() {
        Outcome::Skipped => Ok(Completion::ignored_with(message())),
        Outcome::Failed | Outcome::Xpass | Outcome::Running => Err(Failed::from(message())),
        Outcome::Passed | Outcome::Xfail => Ok(Completion::Completed),
    }
}
