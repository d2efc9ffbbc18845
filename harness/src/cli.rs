//! The `bootrig` command line: parse, call the library, map to exit codes
//! (0 all passed, 1 a test failed, 2 bad usage or an invalid scenario).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};

use crate::image::{Image, ImageStore, BUILTIN};
use crate::run::context::RunSettings;
use crate::run::junit::{summary_line, write_junit};
use crate::run::scenario::{self, Scenario};
use crate::run::suite::{execute, scenario_trial, TrialRecord, VmBudget};

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
    /// Run this many tests (VMs) at once.
    #[arg(short, long, default_value_t = 1)]
    jobs: usize,
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
    let selected: Vec<(Arc<Scenario>, usize)> = loaded
        .iter()
        .flat_map(|sc| (0..sc.tests.len()).map(move |i| (sc.clone(), i)))
        .filter(|(sc, i)| {
            filter
                .as_ref()
                .is_none_or(|f| format!("{}::{}", sc.name, sc.tests[*i].name).contains(f.as_str()))
        })
        .collect();
    if list {
        for (sc, i) in &selected {
            println!("{}::{}", sc.name, sc.tests[*i].name);
        }
        return ExitCode::SUCCESS;
    }
    let mut settings = RunSettings::from_env(artifacts);
    if let Err(e) = crate::run::signals::install(settings.interrupts.clone()) {
        eprintln!("bootrig: cannot handle signals ({e}); Ctrl-C will still stop the VMs");
    }
    if accel.is_some() {
        settings.accel = accel;
    }
    println!(
        "bootrig: running {} test(s); artifacts in {}",
        selected.len(),
        settings.run_dir.display()
    );
    let jobs = jobs.max(1);
    let budget = VmBudget::new(jobs);
    let queue = Mutex::new(selected.iter());
    let records: Mutex<Vec<TrialRecord>> = Mutex::new(Vec::new());
    // `jobs` workers take tests from the queue; each prints its test's
    // line (and failure message) as soon as the test ends.
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                if settings.interrupts.interrupted().is_some() {
                    break;
                }
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some((sc, index)) = next else { break };
                let (name, marks, body) = scenario_trial(sc, *index);
                let record = execute(&name, &marks, &body, settings.clone(), &budget);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", summary_line(&record));
                if matches!(record.outcome, "failed" | "xpass") {
                    if let Some(m) = &record.message {
                        let _ = writeln!(out, "{m}");
                    }
                }
                drop(out);
                records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(record);
            });
        }
    });
    let records = records.into_inner().unwrap_or_else(|p| p.into_inner());
    let count = |o: &str| records.iter().filter(|r| r.outcome == o).count();
    let failed = count("failed") + count("xpass");
    println!(
        "bootrig: {} passed, {} failed, {} skipped, {} xfail, {} xpass; artifacts in {}",
        count("passed"),
        count("failed"),
        count("skipped"),
        count("xfail"),
        count("xpass"),
        settings.run_dir.display()
    );
    if settings.run_dir.is_dir() {
        crate::postmortem::write_run_json(&settings.run_dir);
    }
    if let Some(path) = junit {
        if let Err(e) = write_junit(&path, "bootrig", &records) {
            eprintln!("bootrig: could not write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if let Some(sig) = settings.interrupts.interrupted() {
        eprintln!(
            "bootrig: interrupted by {}; {} of {} test(s) ran",
            crate::run::signals::signal_name(sig),
            records.len(),
            selected.len()
        );
        return ExitCode::from((128 + sig) as u8);
    }
    if failed > 0 {
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
