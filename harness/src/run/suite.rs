//! A libtest-compatible runner for VM tests, on libtest-mimic.
//!
//! Scenario-file tests and Rust closures become trials named
//! `scenario::test` (or whatever path the Rust test is given), so the
//! standard filters, `--exact`, `--skip`, `--list`, `--ignored`,
//! `--test-threads` and cargo-nextest all work unchanged. Listing parses
//! scenario files and nothing else: it never builds, boots or hashes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::errors::{Error, Result};
use crate::run::context::{RunSettings, TestContext};
use crate::run::scenario::{self, Scenario};

/// A host capability a test needs; missing ones skip the test at run time
/// with the reason (under `CI=true` they fail it instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A working KVM.
    Kvm,
    /// `qemu-system-x86_64`.
    Qemu,
    /// OVMF firmware.
    Uefi,
    /// A host tool on PATH.
    Tool(String),
}

impl Requirement {
    /// Why the requirement is not met, or None.
    pub fn missing(&self) -> Option<String> {
        match self {
            Requirement::Kvm => crate::vm::accel::kvm_device_usable().err(),
            Requirement::Qemu => {
                crate::vm::machine::resolve_binary(Path::new("qemu-system-x86_64"))
                    .err()
                    .map(|e| e.to_string())
            }
            Requirement::Uefi => crate::vm::qemu_args::find_uefi_code()
                .is_none()
                .then(|| "OVMF firmware not found (apt-get install ovmf)".to_string()),
            Requirement::Tool(t) => crate::vm::machine::resolve_binary(Path::new(t))
                .err()
                .map(|_| format!("{t} is not installed")),
        }
    }
}

/// Markers on a test, as in pytest.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    requires: Vec<Requirement>,
    slow: bool,
    xfail: Option<String>,
    timeout: Option<Duration>,
}

impl Marks {
    /// No markers.
    pub fn new() -> Marks {
        Marks::default()
    }
    /// Skip at run time unless `req` is met.
    pub fn requires(mut self, req: Requirement) -> Marks {
        self.requires.push(req);
        self
    }
    /// Ignored unless `--include-ignored` / `--ignored`.
    pub fn slow(mut self) -> Marks {
        self.slow = true;
        self
    }
    /// Expected to fail, because `reason`.
    pub fn xfail(mut self, reason: impl Into<String>) -> Marks {
        self.xfail = Some(reason.into());
        self
    }
    /// A deadline for the whole test: the VMs are killed when it passes.
    pub fn timeout(mut self, timeout: Duration) -> Marks {
        self.timeout = Some(timeout);
        self
    }
}

/// A test body.
pub type Body = Arc<dyn Fn(&TestContext) -> Result<()> + Send + Sync>;

struct Spec {
    name: String,
    marks: Marks,
    body: Body,
}

/// How one trial ended, for the JUnit report and `run.json`.
#[derive(Debug, Clone)]
pub struct TrialRecord {
    /// Trial name.
    pub name: String,
    /// `passed`, `failed`, `skipped`, `xfail`, `xpass`.
    pub outcome: &'static str,
    /// Wall time.
    pub duration: Duration,
    /// The failure message, if any.
    pub message: Option<String>,
    /// The artifacts folder.
    pub artifacts: PathBuf,
    /// The console tail (system-out in JUnit).
    pub console_tail: String,
}

/// Limits how many VMs run at once in this process.
#[derive(Debug)]
pub struct VmBudget {
    free: Mutex<usize>,
    cv: Condvar,
}

/// A held VM slot.
#[derive(Debug)]
pub struct VmSlot<'a>(&'a VmBudget);

impl VmBudget {
    /// A budget of `n` concurrent VMs.
    pub fn new(n: usize) -> VmBudget {
        VmBudget {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    /// `BOOTRIG_MAX_VMS`, else min(cores, available memory / 1.5 GiB).
    pub fn from_env() -> VmBudget {
        let n = std::env::var("BOOTRIG_MAX_VMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(default_max_vms);
        VmBudget::new(n)
    }

    /// Waits for a free slot.
    pub fn acquire(&self) -> VmSlot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        VmSlot(self)
    }
}

impl Drop for VmSlot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

fn default_max_vms() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let avail_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(4 << 20);
    let by_mem = (avail_kib / (1536 * 1024)) as usize;
    cores.min(by_mem).max(1)
}

/// The default artifacts root for a test binary: `<target>/bootrig`,
/// found from the binary's own path (`<target>/<profile>/deps/<bin>`).
pub fn default_artifacts_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("bootrig");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "target"))
                .map(|t| t.join("bootrig"))
        })
        .unwrap_or_else(|| PathBuf::from("target/bootrig"))
}

/// A suite of VM tests. See the crate documentation for an example.
pub struct Suite {
    args: Arguments,
    specs: Vec<Spec>,
    settings: Option<RunSettings>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("tests", &self.specs.len())
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
            specs: Vec::new(),
            settings: None,
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
                        let (name, marks, body) = scenario_trial(&sc, i);
                        self.specs.push(Spec { name, marks, body });
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
        self.push(name, Marks::new(), move |_| {
            Err(Error::Config {
                what: what.into(),
                message: message.clone(),
            })
        });
    }

    fn push(
        &mut self,
        name: String,
        marks: Marks,
        f: impl Fn(&TestContext) -> Result<()> + Send + Sync + 'static,
    ) {
        self.specs.push(Spec {
            name,
            marks,
            body: Arc::new(f),
        });
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
        self.push(name.to_string(), marks, f);
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
            self.push(format!("{name}::{label}"), marks.clone(), move |ctx| {
                f(ctx, &v)
            });
        }
        self
    }

    /// Uses these settings instead of the environment's.
    pub fn with_settings(mut self, settings: RunSettings) -> Suite {
        self.settings = Some(settings);
        self
    }

    /// The trial names, in order (what `--list` prints).
    pub fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    /// Runs the selected trials and returns the exit code; writes the
    /// JUnit report to `$BOOTRIG_JUNIT` if set.
    pub fn run(self) -> ExitCode {
        let junit = std::env::var_os("BOOTRIG_JUNIT").map(PathBuf::from);
        let (records, code) = self.run_collect();
        if let Some(path) = junit {
            if let Err(e) = crate::run::junit::write_junit(&path, "bootrig", &records) {
                eprintln!(
                    "bootrig: could not write the JUnit report {}: {e}",
                    path.display()
                );
                return ExitCode::FAILURE;
            }
        }
        code
    }

    /// Runs the trials; returns what happened to each and the exit code.
    pub fn run_collect(self) -> (Vec<TrialRecord>, ExitCode) {
        let records = Arc::new(Mutex::new(Vec::new()));
        // Settings are made lazily: listing must not touch the disk.
        let settings: Arc<Mutex<Option<RunSettings>>> = Arc::new(Mutex::new(self.settings));
        let budget = Arc::new(VmBudget::from_env());
        let trials: Vec<Trial> = self
            .specs
            .into_iter()
            .map(|spec| {
                let slow = spec.marks.slow;
                let (records, settings, budget) =
                    (records.clone(), settings.clone(), budget.clone());
                Trial::ignorable_test(spec.name.clone(), move || {
                    let settings = settings
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert_with(|| RunSettings::from_env(default_artifacts_root()))
                        .clone();
                    let record = execute(&spec.name, &spec.marks, &spec.body, settings, &budget);
                    let result = match record.outcome {
                        "skipped" => Ok(Completion::ignored_with(
                            record.message.clone().unwrap_or_default(),
                        )),
                        "failed" | "xpass" => {
                            Err(Failed::from(record.message.clone().unwrap_or_default()))
                        }
                        _ => Ok(Completion::Completed),
                    };
                    records
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(record);
                    result
                })
                .with_ignored_flag(slow)
            })
            .collect();
        let conclusion = libtest_mimic::run(&self.args, trials);
        let records = std::mem::take(&mut *records.lock().unwrap_or_else(|p| p.into_inner()));
        (records, conclusion.exit_code())
    }
}

/// The trial for test `index` of a scenario: its name
/// (`scenario::test`), markers (deadline from `timeouts.test`, `xfail`) and
/// body. Shared by [`Suite::scenarios`] and `bootrig run`.
pub fn scenario_trial(sc: &Arc<Scenario>, index: usize) -> (String, Marks, Body) {
    let test = &sc.tests[index];
    let mut marks = Marks::new();
    if let Some(t) = sc.test_timeout() {
        marks = marks.timeout(t);
    }
    if let Some(reason) = &test.xfail {
        marks = marks.xfail(reason.clone());
    }
    let sc2 = sc.clone();
    let body: Body = Arc::new(move |ctx| crate::run::steps::run_test(ctx, &sc2, &sc2.tests[index]));
    (format!("{}::{}", sc.name, test.name), marks, body)
}

/// Runs a named test body under the runner's rules: requirement check,
/// VM budget, deadline watchdog, the body (panics caught), postmortem.
pub fn execute(
    name: &str,
    marks: &Marks,
    body: &Body,
    settings: RunSettings,
    budget: &VmBudget,
) -> TrialRecord {
    let started = Instant::now();
    let mut record = TrialRecord {
        name: name.to_string(),
        outcome: "passed",
        duration: Duration::ZERO,
        message: None,
        artifacts: PathBuf::new(),
        console_tail: String::new(),
    };
    for req in &marks.requires {
        if let Some(why) = req.missing() {
            if settings.strict_requirements {
                record.outcome = "failed";
                record.message = Some(format!("requirement not met under CI=true: {why}"));
            } else {
                record.outcome = "skipped";
                record.message = Some(why);
            }
            return record;
        }
    }
    let settings_interrupts = settings.interrupts.clone();
    let ctx = match TestContext::new(name, settings) {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            record.outcome = "failed";
            record.message = Some(format!("could not set up the test: {e}"));
            return record;
        }
    };
    record.artifacts = ctx.artifacts_dir().to_path_buf();
    let _slot = budget.acquire();
    // The watchdog kills the VMs when the deadline passes; the body then
    // fails promptly because its console closes.
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let timed_out = Arc::new(Mutex::new(false));
    let watchdog = marks.timeout.map(|deadline| {
        let (ctx, done, timed_out) = (ctx.clone(), done.clone(), timed_out.clone());
        std::thread::spawn(move || {
            let (lock, cv) = &*done;
            let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let (guard, res) = cv
                .wait_timeout_while(guard, deadline, |d| !*d)
                .unwrap_or_else(|p| p.into_inner());
            if res.timed_out() && !*guard {
                *timed_out.lock().unwrap_or_else(|p| p.into_inner()) = true;
                ctx.kill_all();
            }
        })
    });
    let result = catch_unwind(AssertUnwindSafe(|| (body)(&ctx))).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        Err(Error::Panic(msg))
    });
    {
        let (lock, cv) = &*done;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    let result = if *timed_out.lock().unwrap_or_else(|p| p.into_inner()) {
        Err(Error::TestTimeout(marks.timeout.unwrap_or_default()))
    } else if let (Err(_), Some(sig)) = (&result, settings_interrupts.interrupted()) {
        Err(Error::Interrupted(sig))
    } else {
        result
    };
    let Ok(ctx) = Arc::try_unwrap(ctx) else {
        record.outcome = "failed";
        record.message = Some("internal error: the test context is still shared".into());
        return record;
    };
    let ending = ctx.finish(&result, marks.xfail.as_deref());
    record.duration = started.elapsed();
    record.console_tail = ending.console_tail;
    record.outcome = ending.outcome.as_str();
    record.message = match (&result, &marks.xfail) {
        (Ok(()), None) => None,
        (Err(_), None) => ending.message,
        (Err(e), Some(reason)) => Some(format!(
            "expected failure ({reason}): {}",
            first_line(&e.to_string())
        )),
        (Ok(()), Some(reason)) => Some(format!(
            "UNEXPECTED PASS: this test is marked xfail ({reason}) but it passed; remove the marker"
        )),
    };
    record
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}
