//! The offline CLI commands: `bootrig report`, `bootrig compare` and
//! `bootrig history`. They read run folders through
//! [`bootrig_diagnostics::review`] and never boot anything.
//!
//! Exit codes: 0 done (for `report`, whatever the run's outcome), 1 a
//! regression (`compare`) or an artifact that does not match its catalog
//! (`report --verify`), 2 bad input (not a run folder, unreadable files,
//! an output that cannot be written).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bootrig_diagnostics::review::compare::{self, Comparison, FailOn, Options};
use bootrig_diagnostics::review::history::History;
use bootrig_diagnostics::review::{html, text, verify, Run};

/// `bootrig report`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// The run folder [default: `$BOOTRIG_ARTIFACTS/latest`, else
    /// `target/bootrig/latest`: the last run].
    run: Option<PathBuf>,
    /// Also write a self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Re-hash every catalogued artifact; exit 1 if any is missing or changed.
    #[arg(long)]
    verify: bool,
}

/// Which run `compare` takes as the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Baseline {
    /// OLD is the run folder.
    Run,
    /// OLD is a folder of runs: the newest whose tests all passed.
    LatestPassing,
}

/// `bootrig compare`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct CompareArgs {
    /// The old run folder (with `--baseline latest-passing`: a folder of runs).
    old: PathBuf,
    /// The new run folder.
    new: PathBuf,
    /// How OLD is read.
    #[arg(long, value_enum, default_value = "run")]
    baseline: Baseline,
    /// A phase is slower when its median grows by more than this many
    /// percent (`10` or `10%`).
    #[arg(long, default_value = "10", value_parser = parse_percent)]
    threshold: f64,
    /// ... and by more than this many milliseconds.
    #[arg(long, default_value_t = Options::default().min_delta_ms)]
    min_delta_ms: u64,
    /// What makes the exit code 1: tests, timing, both or none.
    #[arg(long, default_value = "both", value_parser = clap::builder::ValueParser::new(parse_fail_on))]
    fail_on: FailOn,
    /// Also write the comparison as HTML here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// `bootrig history`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct HistoryArgs {
    /// Folders of runs (or run folders).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Also write the table and a trend chart as HTML here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (e.g. 10 or 10%)"))?;
    if !(0.0..=10_000.0).contains(&v) {
        return Err(format!("{s:?} is out of range (0 to 10000 %)"));
    }
    Ok(v / 100.0)
}

fn parse_fail_on(s: &str) -> Result<FailOn, String> {
    s.parse()
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("bootrig: {e}");
    ExitCode::from(2)
}

fn open(path: &Path) -> Result<Run, ExitCode> {
    Run::open(path).map_err(fail)
}

fn write_html(path: &Path, page: &str) -> Result<(), ExitCode> {
    std::fs::write(path, page)
        .map_err(|e| fail(format!("writing the HTML report {}: {e}", path.display())))?;
    eprintln!("bootrig: wrote {}", path.display());
    Ok(())
}

/// The names of the tests that failed in the last run under the artifacts
/// root `artifacts` (`BOOTRIG_ARTIFACTS` wins, as for `bootrig run`):
/// `None` when none failed.
pub(crate) fn last_failed(artifacts: &Path) -> Result<Option<BTreeSet<String>>, String> {
    let root = std::env::var_os("BOOTRIG_ARTIFACTS")
        .map_or_else(|| artifacts.to_path_buf(), PathBuf::from);
    let latest = root.join("latest");
    if !latest.exists() {
        return Err(format!(
            "no earlier run in {} (no `latest`)",
            root.display()
        ));
    }
    let run = Run::open(&latest).map_err(|e| e.to_string())?;
    let failed: BTreeSet<String> = run.failures().map(|t| t.name().to_string()).collect();
    Ok((!failed.is_empty()).then_some(failed))
}

/// The artifacts root: `BOOTRIG_ARTIFACTS`, else `default` (as `bootrig
/// run` decides).
fn artifacts_root(default: &Path) -> PathBuf {
    std::env::var_os("BOOTRIG_ARTIFACTS").map_or_else(|| default.to_path_buf(), PathBuf::from)
}

/// `bootrig report [RUN] [--html FILE] [--verify]`.
pub(crate) fn report(args: ReportArgs) -> ExitCode {
    let path = args
        .run
        .clone()
        .unwrap_or_else(|| artifacts_root(Path::new("target/bootrig")).join("latest"));
    let run = match open(&path) {
        Ok(r) => r,
        Err(code) => return code,
    };
    print!("{}", text::render(&run));
    if let Some(path) = &args.html {
        if let Err(code) = write_html(path, &html::report(&run)) {
            return code;
        }
    }
    if args.verify {
        let v = verify::verify(&run);
        print!("\n{}", v.render());
        if !v.ok() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// `bootrig compare OLD NEW`.
pub(crate) fn compare(args: CompareArgs) -> ExitCode {
    let new = match open(&args.new) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let old = match args.baseline {
        Baseline::Run => open(&args.old),
        Baseline::LatestPassing => compare::latest_passing(&args.old, Some(&new.dir)).map_err(fail),
    };
    let old = match old {
        Ok(r) => r,
        Err(code) => return code,
    };
    if args.baseline == Baseline::LatestPassing {
        eprintln!("bootrig: baseline: {} ({})", old.id(), old.dir.display());
    }
    let options = Options {
        threshold: args.threshold,
        min_delta_ms: args.min_delta_ms,
        fail_on: args.fail_on,
    };
    let c = Comparison::new(&old, &new, options);
    print!("{}", c.render());
    if let Some(path) = &args.html {
        if let Err(code) = write_html(path, &html::compare(&c)) {
            return code;
        }
    }
    if c.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `bootrig history DIR...`.
pub(crate) fn history(args: HistoryArgs) -> ExitCode {
    let h = match History::load(&args.dirs) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    print!("{}", h.render());
    if let Some(path) = &args.html {
        if let Err(code) = write_html(path, &html::history(&h)) {
            return code;
        }
    }
    ExitCode::SUCCESS
}
