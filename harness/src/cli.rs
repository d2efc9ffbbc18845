//! The `bootrig` command line: parse, call the library, map to exit codes
//! (0 all passed, 1 a test failed, 2 bad usage or an invalid scenario).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::image::{Image, ImageStore, BUILTIN};
use crate::run::budget::VmBudget;
use crate::run::engine::{Engine, Test};
use crate::run::reporters::JunitReporter;
use crate::run::scenario::{self, Scenario};
use crate::run::scenario_test::scenario_test;
use crate::run::settings::RunSettings;
use crate::run::snapshots::SnapshotStore;

/// Test operating-system images in QEMU.
#[derive(Debug, Parser)]
#[command(name = "bootrig", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run scenario files (or folders of them).
    Run(RunArgs),
    /// Build and inspect built-in guest images.
    Image {
        #[command(subcommand)]
        action: ImageCmd,
    },
    /// Check this host: QEMU, accelerator, firmware, image tools.
    Doctor,
    /// Summarise a run folder offline: failures, console, diagnostics.
    Report(crate::cli_review::ReportArgs),
    /// Compare two runs: test regressions and boot-phase timings.
    Compare(crate::cli_review::CompareArgs),
    /// Boot-phase timings across many runs.
    History(crate::cli_review::HistoryArgs),
    /// Connect to a held VM's serial console, or run one command in it.
    Attach(crate::cli_attach::AttachArgs),
    /// List the VMs bootrig started on this host; end those whose run is
    /// gone (or a named run's).
    Kill(crate::cli_kill::KillArgs),
    /// Run fstests in VMs (each fstests test a test), or read its results.
    Fstests(Box<crate::fstests::cli::FstestsArgs>),
}

/// `bootrig run`'s arguments.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario files or folders.
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Where artifacts go (a run folder is made inside) [default:
    /// `BOOTRIG_ARTIFACTS`, else target/bootrig].
    #[arg(long)]
    artifacts: Option<PathBuf>,
    /// Only run tests whose `scenario::test` name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Only run tests whose markers match this expression, as pytest's
    /// `-m`: `slow`, `not slow`, `net and not slow`, parentheses.
    #[arg(short = 'm', long = "marks", value_name = "EXPR")]
    marks: Option<String>,
    /// A marker in `-m` that no test carries is an error (exit 2) instead
    /// of a warning.
    #[arg(long)]
    strict_markers: bool,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Force an accelerator for every VM: auto, kvm or tcg.
    #[arg(long)]
    accel: Option<crate::vm::config::Accel>,
    /// Run this many tests (VMs) at once [default: `BOOTRIG_MAX_VMS`, else
    /// as many as the cores and memory allow: min(cores, free GiB / 1.5)].
    #[arg(short, long, value_parser = parse_jobs)]
    jobs: Option<usize>,
    /// List the tests instead of running them.
    #[arg(long)]
    list: bool,
    /// Only the tests that failed in the last run (`<artifacts>/latest`);
    /// all of them when none failed.
    #[arg(long)]
    last_failed: bool,
    /// Start no new test after the first failure.
    #[arg(short = 'x', long)]
    fail_fast: bool,
    /// Keep a failed test's VMs running after its postmortem, for
    /// `bootrig attach ARTIFACT_DIR`, until Ctrl-C [also `BOOTRIG_HOLD=1`;
    /// refused under `CI=true`].
    #[arg(long)]
    hold: bool,
    #[command(flatten)]
    kernel: crate::cli_kernel::KernelArgs,
}

#[derive(Debug, Subcommand)]
enum ImageCmd {
    /// Build an image (no-op when the cached one is current).
    Build {
        /// `busybox`, `debian`, `iso`, or `all`.
        name: String,
    },
    /// Show the built-in images and whether they are built, and the
    /// warm-start snapshots.
    List,
    /// Remove the warm-start snapshots.
    Prune,
}

/// Runs the CLI with the process arguments.
pub fn main() -> ExitCode {
    // A process started in the background by a non-interactive shell
    // inherits SIGINT/SIGQUIT as ignored; bootrig must still die on them
    // (its VMs die with it through the parent-death signal).
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
        // SAFETY: restoring the default disposition has no preconditions.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::Image { action } => image(action),
        Cmd::Doctor => crate::doctor::run(),
        Cmd::Report(args) => crate::cli_review::report(args),
        Cmd::Compare(args) => crate::cli_review::compare(args),
        Cmd::History(args) => crate::cli_review::history(args),
        Cmd::Attach(args) => crate::cli_attach::main(args),
        Cmd::Kill(args) => crate::cli_kill::main(args),
        Cmd::Fstests(args) => crate::fstests::cli::main(*args),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let RunArgs {
        scenarios: paths,
        artifacts,
        filter,
        marks,
        strict_markers,
        junit,
        accel,
        jobs,
        list,
        last_failed,
        fail_fast,
        hold,
        kernel,
    } = args;
    let kernel = match kernel.resolve() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("bootrig: {e}; nothing was run");
            return ExitCode::from(2);
        }
    };
    let files = match scenario::discover(&paths) {
        Ok(f) if f.is_empty() => {
            eprintln!("bootrig: no scenario files (*.json) in {paths:?}");
            return ExitCode::from(2);
        }
        Ok(f) => f,
        Err(e) => {
            eprintln!("bootrig: {e}");
            return ExitCode::from(2);
        }
    };
    // Every file is validated before anything boots.
    let mut loaded = Vec::new();
    let mut invalid = false;
    for f in &files {
        match Scenario::load(f) {
            Ok(sc) => loaded.push(Arc::new(sc)),
            Err(e) => {
                eprintln!("{e}");
                invalid = true;
            }
        }
    }
    if let Err(e) = scenario::check_unique_trials(&loaded) {
        eprintln!("{e}");
        invalid = true;
    }
    if invalid {
        eprintln!("bootrig: invalid scenario; nothing was run");
        return ExitCode::from(2);
    }
    let mut tests: Vec<Test> = loaded
        .iter()
        .flat_map(|sc| (0..sc.tests.len()).map(move |i| scenario_test(sc, i)))
        .filter(|t| filter.as_ref().is_none_or(|f| t.name.contains(f.as_str())))
        .collect();
    if let Some(expr) = &marks {
        match crate::run::select::select(&mut tests, expr, strict_markers) {
            Ok(unknown) if !unknown.is_empty() => eprintln!(
                "bootrig: warning: no test carries the marker(s) {} of -m {expr:?} \
                 (--strict-markers makes this an error)",
                unknown.join(", ")
            ),
            Ok(_) => {}
            Err(e) => {
                eprintln!("bootrig: -m: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if last_failed {
        // The same artifacts root the run would use.
        let root = artifacts
            .clone()
            .or_else(|| std::env::var_os("BOOTRIG_ARTIFACTS").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("target/bootrig"));
        match crate::cli_review::last_failed(&root) {
            Ok(Some(failed)) => {
                tests.retain(|t| failed.contains(&t.name));
                if tests.is_empty() {
                    eprintln!("bootrig: none of the last run's failed tests is in these scenarios; nothing was run");
                    return ExitCode::from(2);
                }
            }
            Ok(None) => eprintln!("bootrig: no test failed in the last run; running all"),
            Err(e) => {
                eprintln!("bootrig: --last-failed: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if list {
        for t in &tests {
            println!("{}", t.name);
        }
        return ExitCode::SUCCESS;
    }
    if let (Some(f), true) = (&filter, tests.is_empty()) {
        eprintln!("bootrig: no test matches the filter {f:?}; nothing was run");
        return ExitCode::from(2);
    }
    if let (Some(m), true) = (&marks, tests.is_empty()) {
        eprintln!("bootrig: no test matches -m {m:?}; nothing was run");
        return ExitCode::from(2);
    }
    let mut settings = match artifacts {
        Some(root) => RunSettings::for_root(root),
        None => RunSettings::from_env(PathBuf::from("target/bootrig")),
    }
    .standalone();
    settings.hold |= hold;
    if let Err(e) = crate::run::hold::check_allowed(settings.hold) {
        eprintln!("bootrig: {e}; nothing was run");
        return ExitCode::from(2);
    }
    if let Err(e) = crate::run::settings::check_outputs(&settings.run_dir, junit.as_deref()) {
        eprintln!("bootrig: {e}; nothing was run");
        return ExitCode::from(2);
    }
    if let Err(e) = crate::run::signals::install(settings.interrupts.clone()) {
        eprintln!("bootrig: cannot handle signals ({e}); Ctrl-C will still stop the VMs");
    }
    if accel.is_some() {
        settings.accel = accel;
    }
    if kernel.is_some() {
        settings.kernel = kernel;
    }
    let junit = junit.map(|path| Arc::new(JunitReporter::new(path, "bootrig")));
    settings.events = crate::run::reporters::console_events(junit.as_ref());
    let jobs = jobs.unwrap_or_else(VmBudget::default_size).max(1);
    let engine = Engine::new(settings, VmBudget::new(jobs)).fail_fast(fail_fast);
    let report = engine.run(&tests, jobs);
    if report.records.len() < tests.len() && report.interrupted.is_none() {
        eprintln!(
            "bootrig: -x: stopped after the first failure; {} test(s) not run",
            tests.len() - report.records.len()
        );
    }
    if let Some(j) = &junit {
        if let Some(e) = j.error() {
            eprintln!("bootrig: could not write {}: {e}", j.path().display());
            return ExitCode::from(2);
        }
    }
    report.exit_code()
}

/// The most tests `-j` runs at once: each is a VM with its own threads.
const MAX_JOBS: usize = 256;

/// `-j N`: 1..=[`MAX_JOBS`].
fn parse_jobs(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of jobs"))?;
    match n {
        0 => Err("0 jobs would run nothing: give at least 1".into()),
        n if n > MAX_JOBS => Err(format!("{n} jobs is too many (at most {MAX_JOBS})")),
        n => Ok(n),
    }
}

fn image(action: ImageCmd) -> ExitCode {
    let store = ImageStore::default();
    match action {
        ImageCmd::Build { name } => {
            let names: Vec<&str> = if name == "all" {
                BUILTIN.to_vec()
            } else {
                vec![name.as_str()]
            };
            for n in names {
                let mut progress = |line: &str| eprintln!("bootrig: {line}");
                match store.ensure(&Image::builtin(n), &mut progress) {
                    Ok(img) => println!("{}: {}", img.name, img.dir.display()),
                    Err(e) => {
                        eprintln!("bootrig: {e}");
                        return ExitCode::from(if matches!(e, crate::Error::Image { .. }) {
                            1
                        } else {
                            2
                        });
                    }
                }
            }
            ExitCode::SUCCESS
        }
        ImageCmd::List => {
            for n in BUILTIN {
                match store.cached(n) {
                    Ok(Some(img)) => println!("{n:8} built   {}", img.dir.display()),
                    Ok(None) => println!("{n:8} not built (bootrig image build {n})"),
                    Err(e) => println!("{n:8} error: {e}"),
                }
            }
            let snapshots = SnapshotStore::for_cache(&store.cache);
            let all = snapshots.list();
            println!(
                "{} warm-start snapshot(s) in {}",
                all.len(),
                snapshots.dir().display()
            );
            for s in all {
                let mib = (s.state_bytes + s.disk_bytes) as f64 / f64::from(1 << 20);
                println!(
                    "snapshot {}  {:.0} MiB  {}  {}  state sha256 {}",
                    s.key,
                    mib,
                    s.created,
                    s.machine,
                    &s.state_sha256[..16.min(s.state_sha256.len())]
                );
            }
            ExitCode::SUCCESS
        }
        ImageCmd::Prune => {
            let snapshots = SnapshotStore::for_cache(&store.cache);
            match snapshots.prune() {
                Ok((n, bytes)) => {
                    println!(
                        "removed {n} warm-start snapshot(s), {:.0} MiB, from {}",
                        bytes as f64 / f64::from(1 << 20),
                        snapshots.dir().display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bootrig: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
