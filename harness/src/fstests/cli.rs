//! `bootrig fstests`: run fstests in VMs through the run engine (the same
//! trials as [`crate::Suite::fstests`]), or read results offline
//! (`results`, `compare`). Exit codes: 0 all passed, 1 a test failed (or
//! `compare` found a regression), 2 bad usage or input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::fstests::config::{load_config, Section, Selection};
use crate::fstests::results_api::{self as api};
use crate::fstests::runner::Deadlines;
use crate::fstests::tree::{build_from_source, FstestsTree};
use crate::fstests::{FstestsConfig, Trials};
use crate::{Accel, Engine, ImageStore, JunitReporter, RunSettings, VmBudget};

/// `bootrig fstests`'s arguments.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FstestsArgs {
    #[command(subcommand)]
    action: Option<FstestsCmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum FstestsCmd {
    /// Print the parsed outcome of existing results (several are merged:
    /// shards of one run, or reruns).
    Results {
        /// Results folders (fstests' `RESULT_BASE`), bootrig run folders or
        /// `run.json` files, or folders holding several of them.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Print a JSON array of {section, test, outcome, reason, duration_s}.
        #[arg(long)]
        json: bool,
    },
    /// Compare two runs: regressions, fixes, newly not-run tests; exit 1
    /// on a regression.
    Compare {
        /// The old results (folder or run.json).
        old: PathBuf,
        /// The new results.
        new: PathBuf,
        /// More old results merged into OLD (e.g. the other shards of a
        /// partitioned run); repeatable.
        #[arg(long = "old", value_name = "PATH")]
        more_old: Vec<PathBuf>,
        /// More new results merged into NEW; repeatable.
        #[arg(long = "new", value_name = "PATH")]
        more_new: Vec<PathBuf>,
    },
}

/// Arguments of a run.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A built fstests tree.
    #[arg(long, value_name = "DIR", conflicts_with = "fstests_src")]
    fstests: Option<PathBuf>,
    /// fstests source (folder or tarball) to build first (cached).
    #[arg(long, value_name = "DIR|TARBALL")]
    fstests_src: Option<PathBuf>,
    /// A bootrig fstests config (JSON: sections and devices).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["fstype", "local_config"])]
    config: Option<PathBuf>,
    /// Your own local.config, used as it is.
    #[arg(long, value_name = "FILE", conflicts_with = "fstype")]
    local_config: Option<PathBuf>,
    /// One section of this filesystem type [default: ext4].
    #[arg(long)]
    fstype: Option<String>,
    /// Tests to run (`generic/001`).
    tests: Vec<String>,
    /// Groups to run (`quick`).
    #[arg(short = 'g', long = "group")]
    groups: Vec<String>,
    /// Groups to exclude.
    #[arg(short = 'x', long = "exclude-group")]
    exclude_groups: Vec<String>,
    /// Files of tests to exclude (one a line, `#` comments).
    #[arg(short = 'E', long = "exclude-file")]
    exclude_files: Vec<PathBuf>,
    /// Only these sections.
    #[arg(short = 's', long = "section")]
    sections: Vec<String>,
    /// Run every test this many times.
    #[arg(short = 'i', long, default_value_t = 1)]
    iterations: u32,
    /// Run the named tests in the order given.
    #[arg(long)]
    exact_order: bool,
    /// Rerun each failure N times; label it flaky (with its failure rate)
    /// or consistent.
    #[arg(long, value_name = "N", default_value_t = 0)]
    rerun_failures: u32,
    /// Known failures: they become expected failures.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Run the tests on N VMs at once, from one shared queue (longest
    /// first), each VM with its own devices.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    vms: u64,
    /// vCPUs of each VM [default: 2]; under TCG, VMs times vCPUs beyond
    /// the host's cores only slows every guest down.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    cpus: Option<u32>,
    /// Memory of each VM (e.g. `4G`) [default: 2G].
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    /// A test that takes N VMs down (hang or crash) is not retried again.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    max_deaths: u64,
    /// A check.time whose durations set per-test deadlines.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Size of each test/scratch device (sparse) [default: 10G].
    #[arg(long)]
    device_size: Option<String>,
    /// SCRATCH_DEV_POOL of N devices.
    #[arg(long)]
    scratch_pool: Option<usize>,
    /// A LOGWRITES_DEV too.
    #[arg(long)]
    logwrites: bool,
    /// Existing files or block devices: test, scratch (each of the
    /// pool), logwrites, in this order.
    #[arg(long = "device", value_name = "PATH")]
    device_paths: Vec<PathBuf>,
    /// Allow block devices in --device (they are overwritten).
    #[arg(long)]
    allow_block_devices: bool,
    /// Where the device files go (e.g. /dev/shm for tmpfs).
    #[arg(long)]
    device_dir: Option<PathBuf>,
    /// The guest's I/O scheduler for the test and scratch devices.
    #[arg(long)]
    io_scheduler: Option<String>,
    /// Per-test deadline floor in seconds.
    #[arg(long)]
    test_timeout_floor: Option<u64>,
    /// Deadline of a test without history, in seconds.
    #[arg(long)]
    test_timeout: Option<u64>,
    /// Whole-run deadline in seconds.
    #[arg(long)]
    run_timeout: Option<u64>,
    /// Where artifacts go (a run folder is made inside).
    #[arg(long, default_value = "target/bootrig")]
    artifacts: PathBuf,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Force an accelerator: auto, kvm or tcg.
    #[arg(long)]
    accel: Option<Accel>,
    /// List the trials instead of running them.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    kernel: crate::cli_kernel::KernelArgs,
}

/// Runs `bootrig fstests`.
pub fn main(args: FstestsArgs) -> ExitCode {
    match args.action {
        Some(FstestsCmd::Results { dirs, json }) => results(&dirs, json),
        Some(FstestsCmd::Compare {
            old,
            new,
            more_old,
            more_new,
        }) => compare(
            &[vec![old], more_old].concat(),
            &[vec![new], more_new].concat(),
        ),
        None => run(args.run),
    }
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("bootrig: {message}");
    ExitCode::from(2)
}

fn results(dirs: &[PathBuf], json: bool) -> ExitCode {
    let parsed = match api::load_all(dirs) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&parsed.to_json()).unwrap_or_default()
        );
    } else {
        for t in &parsed.tests {
            println!(
                "{:<40} {:<7} {}",
                t.trial_name(),
                t.outcome.as_str(),
                t.reason.as_deref().unwrap_or("")
            );
        }
        for l in parsed.summary_lines() {
            println!("{l}");
        }
    }
    ExitCode::SUCCESS
}

fn compare(old: &[PathBuf], new: &[PathBuf]) -> ExitCode {
    let (old, new) = match (api::load_all(old), api::load_all(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let c = api::compare(&old, &new);
    print!("{c}");
    if c.has_regressions() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The config a run's arguments describe; builds the tree if asked (after
/// the other arguments are found valid).
fn config(a: &RunArgs) -> crate::Result<FstestsConfig> {
    let size = |what: &str, text: &str| {
        crate::parse_size(text).map_err(|message| crate::Error::Config {
            what: what.into(),
            message,
        })
    };
    let device_size = a
        .device_size
        .as_deref()
        .map(|t| size("--device-size", t))
        .transpose()?;
    let memory = a
        .memory
        .as_deref()
        .map(|t| {
            let bytes = size("--memory", t)?;
            crate::vm::config::check_memory(bytes).map_err(|message| crate::Error::Config {
                what: "--memory".into(),
                message,
            })?;
            Ok::<_, crate::Error>(bytes >> 20)
        })
        .transpose()?;
    let tree =
        match (&a.fstests, &a.fstests_src) {
            (Some(dir), _) => FstestsTree::open(dir)?,
            (None, Some(src)) => {
                let cache = ImageStore::default().cache;
                build_from_source(src, &cache, &mut |l| eprintln!("bootrig: {l}"))?
            }
            (None, None) => return Err(crate::Error::Config {
                what: "bootrig fstests".into(),
                message:
                    "give a built tree (--fstests DIR) or its source (--fstests-src DIR|TARBALL)"
                        .into(),
            }),
        };
    let fstype = a.fstype.clone().unwrap_or_else(|| "ext4".into());
    let mut cfg = FstestsConfig::new(tree, &fstype);
    if let Some(path) = &a.config {
        let (sections, devices) = load_config(path)?;
        cfg = cfg.with_sections(sections).with_devices(devices);
    } else if let Some(path) = &a.local_config {
        cfg = cfg.with_local_config(path);
    } else {
        cfg = cfg.with_sections(vec![Section::new(&fstype, &fstype)]);
    }
    if let Some(size) = device_size {
        cfg.devices.size = size;
    }
    if let Some(n) = a.scratch_pool {
        cfg.devices.scratch_pool = n;
    }
    cfg.devices.logwrites |= a.logwrites;
    if !a.device_paths.is_empty() {
        cfg.devices.paths = a.device_paths.clone();
    }
    cfg.devices.allow_block_devices |= a.allow_block_devices;
    if let Some(s) = &a.io_scheduler {
        cfg.devices.scheduler = Some(s.clone());
    }
    if let Some(d) = &a.device_dir {
        cfg.devices.dir = Some(d.clone());
    }
    cfg.selection = Selection {
        tests: a.tests.clone(),
        groups: a.groups.clone(),
        exclude_groups: a.exclude_groups.clone(),
        exclude_files: a.exclude_files.clone(),
        sections: a.sections.clone(),
        iterations: a.iterations.max(1),
        exact_order: a.exact_order,
    };
    let mut d = Deadlines::default();
    if let Some(s) = a.test_timeout_floor {
        d.floor = Duration::from_secs(s);
    }
    if let Some(s) = a.test_timeout {
        d.unknown = Duration::from_secs(s);
    }
    d.run = a.run_timeout.map(Duration::from_secs);
    cfg.deadlines = d;
    cfg.history = a.history.clone();
    cfg.baseline = a.baseline.clone();
    cfg.rerun_failures = a.rerun_failures;
    cfg.vms = a.vms as usize;
    cfg.max_deaths = a.max_deaths as usize;
    if let Some(n) = a.cpus {
        cfg.cpus = n;
    }
    if let Some(mib) = memory {
        cfg.memory_mib = mib;
    }
    Ok(cfg)
}

fn run(a: RunArgs) -> ExitCode {
    let cfg = match config(&a) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let trials = match Trials::new(cfg, &|_, _| true) {
        Ok(t) => t,
        Err(e) => return usage(format!("{e}; nothing was run")),
    };
    if a.list {
        for t in &trials.tests {
            println!("{}", t.name);
        }
        return ExitCode::SUCCESS;
    }
    let kernel = match a.kernel.resolve() {
        Ok(k) => k,
        Err(e) => return usage(format!("{e}; nothing was run")),
    };
    let mut settings = RunSettings::from_env(a.artifacts.clone()).standalone();
    if kernel.is_some() {
        settings.kernel = kernel;
    }
    if let Err(e) = crate::install_signal_handlers(settings.interrupts.clone()) {
        eprintln!("bootrig: cannot handle signals ({e}); Ctrl-C will still stop the VMs");
    }
    if a.accel.is_some() {
        settings.accel = a.accel;
    }
    let junit = a
        .junit
        .as_ref()
        .map(|path| Arc::new(JunitReporter::new(path.clone(), "bootrig-fstests")));
    settings.events = crate::run::reporters::console_events(junit.as_ref());
    // The first trial runs the VMs (--vms of them at once), the others
    // report their slice.
    let engine = Engine::new(settings, VmBudget::new(a.vms as usize));
    let report = engine.run(&trials.tests, 1);
    if let Some(outcome) = trials.outcome() {
        for l in outcome.fs_results().summary_lines() {
            println!("{l}");
        }
        if let Some(l) = outcome.interrupted_line() {
            println!("{l}");
        }
    }
    if let Some(e) = junit.as_ref().and_then(|j| j.error()) {
        return usage(format!("could not write the JUnit report: {e}"));
    }
    report.exit_code()
}
