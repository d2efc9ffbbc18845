//! The `bootrig` command line: parse, call the library, map to exit codes
//! (0 all passed, 1 a test failed, 2 bad usage or an invalid scenario).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::events::{Events, Fanout, Reporter};
use crate::image::{Image, ImageStore, BUILTIN};
use crate::run::budget::VmBudget;
use crate::run::engine::{Engine, Test};
use crate::run::reporters::{HumanReporter, JunitReporter, ProgressReporter};
use crate::run::scenario::{self, Scenario};
use crate::run::scenario_test::scenario_test;
use crate::run::settings::RunSettings;

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
    /// Run fstests in VMs (each fstests test a test), or read its results.
    Fstests(Box<crate::fstests::cli::FstestsArgs>),
}

/// `bootrig run`'s arguments.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario files or folders.
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Where artifacts go (a run folder is made inside).
    #[arg(long, default_value = "target/bootrig")]
    artifacts: PathBuf,
    /// Only run tests whose `scenario::test` name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Force an accelerator for every VM: auto, kvm or tcg.
    #[arg(long)]
    accel: Option<crate::vm::config::Accel>,
    /// Run this many tests (VMs) at once [default: `BOOTRIG_MAX_VMS`, else
    /// as many as the cores and memory allow: min(cores, free GiB / 1.5)].
    #[arg(short, long)]
    jobs: Option<usize>,
    /// List the tests instead of running them.
    #[arg(long)]
    list: bool,
}

#[derive(Debug, Subcommand)]
enum ImageCmd {
    /// Build an image (no-op when the cached one is current).
    Build {
        /// `busybox`, `debian`, `iso`, or `all`.
        name: String,
    },
    /// Show the built-in images and whether they are built.
    List,
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
        Cmd::Fstests(args) => crate::fstests::cli::main(*args),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let RunArgs {
        scenarios: paths,
        artifacts,
        filter,
        junit,
        accel,
        jobs,
        list,
    } = args;
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
    if invalid {
        eprintln!("bootrig: invalid scenario; nothing was run");
        return ExitCode::from(2);
    }
    let tests: Vec<Test> = loaded
        .iter()
        .flat_map(|sc| (0..sc.tests.len()).map(move |i| scenario_test(sc, i)))
        .filter(|t| filter.as_ref().is_none_or(|f| t.name.contains(f.as_str())))
        .collect();
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
    let mut settings = RunSettings::from_env(artifacts);
    if let Err(e) = crate::run::signals::install(settings.interrupts.clone()) {
        eprintln!("bootrig: cannot handle signals ({e}); Ctrl-C will still stop the VMs");
    }
    if accel.is_some() {
        settings.accel = accel;
    }
    let junit = junit.map(|path| Arc::new(JunitReporter::new(path, "bootrig")));
    let mut reporters: Vec<Box<dyn Reporter>> = vec![
        Box::new(ProgressReporter::stderr()),
        Box::new(HumanReporter::stdout()),
    ];
    if let Some(j) = &junit {
        reporters.push(Box::new(j.clone()));
    }
    settings.events = Events::new(Fanout(reporters));
    let jobs = jobs.unwrap_or_else(VmBudget::default_size).max(1);
    let engine = Engine::new(settings, VmBudget::new(jobs));
    let report = engine.run(&tests, jobs);
    if let Some(j) = &junit {
        if let Some(e) = j.error() {
            eprintln!("bootrig: could not write {}: {e}", j.path().display());
            return ExitCode::from(2);
        }
    }
    if let Some(sig) = report.interrupted {
        return ExitCode::from((128 + sig) as u8);
    }
    if report.totals.failed_any() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
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
            ExitCode::SUCCESS
        }
    }
}
