//! `bootrig kill`: list the VMs bootrig started on this host (the registry
//! in [`crate::vm::registry`]) and end those whose bootrig is gone, or a
//! named run's, or all of them. A QEMU bootrig did not start has no record
//! and is never touched; a record whose pid now names another process is
//! only cleaned.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::vm::registry::{self, Liveness, Registry, VmRecord};

/// `bootrig kill`'s arguments.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Only this run's VMs (a run folder, or a folder above runs), whether
    /// its bootrig is alive or not (a hung run).
    #[arg(long, value_name = "RUN_DIR")]
    run: Option<PathBuf>,
    /// Every VM bootrig started on this host, even those of live runs.
    #[arg(long, conflicts_with = "run")]
    all: bool,
    /// Only say what would be done.
    #[arg(long)]
    dry_run: bool,
}

/// What `bootrig kill` does with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The VM is gone, or its pid names another process: remove the record.
    Clean,
    /// End the VM, then remove the record.
    Kill,
    /// Leave it (its run is alive and not selected).
    Keep,
}

/// The decision for `record`, given the selection.
fn decide(record: &VmRecord, liveness: Liveness, args: &KillArgs, run: Option<&Path>) -> Action {
    match liveness {
        Liveness::Gone | Liveness::Reused => return Action::Clean,
        Liveness::Running => {}
    }
    let selected = match run {
        Some(dir) => [&record.run_dir, &record.out_dir]
            .into_iter()
            .flatten()
            .any(|p| normalize(p).starts_with(dir)),
        None => args.all || !record.owner_alive(),
    };
    if selected {
        Action::Kill
    } else {
        Action::Keep
    }
}

/// `p` absolute and, when it still exists, with symlinks resolved.
fn normalize(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|_| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// One line describing `record`.
fn describe(record: &VmRecord, liveness: Liveness) -> String {
    let state = match liveness {
        Liveness::Running => "running",
        Liveness::Gone => "exited",
        Liveness::Reused => "pid reused by another process",
    };
    let owner = if record.owner_alive() {
        "alive"
    } else {
        "gone"
    };
    // A held VM's test folder (the VM's folder or its parent) says so.
    let held = record
        .out_dir
        .iter()
        .flat_map(|d| [Some(d.as_path()), d.parent()])
        .flatten()
        .find(|d| d.join(crate::run::hold::HOLD_FILE).is_file())
        .map(|d| format!(", held: bootrig attach {}", d.display()))
        .unwrap_or_default();
    format!(
        "qemu pid {} ({state}), test {}, run {}, started {}, bootrig pid {} ({owner}){held}",
        record.pid,
        record.test.as_deref().unwrap_or("?"),
        record
            .run_dir
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "?".into()),
        record.started_at,
        record.owner_pid,
    )
}

/// Runs `bootrig kill`: 0 when every selected VM was ended, 1 when one
/// could not be, 2 for a bad `--run` folder or an unreadable registry.
pub fn main(args: KillArgs) -> ExitCode {
    let registry = Registry::open_default();
    let run = match &args.run {
        Some(dir) if !dir.is_dir() => {
            eprintln!("bootrig kill: --run {}: no such folder", dir.display());
            return ExitCode::from(2);
        }
        Some(dir) => Some(normalize(dir)),
        None => None,
    };
    let records = match registry.list() {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "bootrig kill: cannot read the VM registry {}: {e}",
                registry.dir().display()
            );
            return ExitCode::from(2);
        }
    };
    let verb = |done: &str, would: &str| {
        if args.dry_run {
            would.to_string()
        } else {
            done.to_string()
        }
    };
    let mut failed = false;
    let (mut killed, mut kept, mut cleaned) = (0, 0, 0);
    for (path, record) in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "bootrig kill: {}: unreadable record ({e}); left alone",
                    path.display()
                );
                continue;
            }
        };
        let liveness = record.liveness();
        let action = decide(&record, liveness, &args, run.as_deref());
        let line = describe(&record, liveness);
        match action {
            Action::Keep => {
                kept += 1;
                println!("keep   {line}");
                continue;
            }
            Action::Clean => {
                cleaned += 1;
                println!("{} {line}", verb("clean ", "would clean"));
            }
            Action::Kill => {
                println!("{} {line}", verb("kill  ", "would kill"));
                if !args.dry_run {
                    if let Err(e) = registry::terminate(&record, registry::KILL_GRACE) {
                        eprintln!("bootrig kill: {e}");
                        failed = true;
                        continue;
                    }
                }
                killed += 1;
            }
        }
        if !args.dry_run {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("bootrig kill: removing {}: {e}", path.display());
                }
            }
        }
    }
    println!(
        "{}: {killed} VM(s) {}, {cleaned} stale record(s) {}, {kept} VM(s) of live runs left running{}",
        registry.dir().display(),
        verb("killed", "to kill"),
        verb("cleaned", "to clean"),
        if kept > 0 && args.run.is_none() && !args.all {
            " (--run RUN_DIR or --all ends them)"
        } else {
            ""
        }
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(owner_alive: bool) -> VmRecord {
        let me = std::process::id();
        VmRecord {
            pid: me,
            pgid: me,
            start_time: 0,
            cmdline: Vec::new(),
            owner_pid: me,
            owner_start_time: if owner_alive {
                registry::start_time(me).unwrap()
            } else {
                // This process, but started at another time: not it.
                registry::start_time(me).unwrap() + 1
            },
            run_dir: Some(PathBuf::from("/runs/r1")),
            test: Some("s::t".into()),
            out_dir: Some(PathBuf::from("/runs/r1/s.t/vm")),
            started_at: String::new(),
        }
    }

    fn args(run: Option<&str>, all: bool) -> KillArgs {
        KillArgs {
            run: run.map(PathBuf::from),
            all,
            dry_run: false,
        }
    }

    #[test]
    fn only_vms_of_gone_owners_are_killed_by_default() {
        let a = args(None, false);
        assert_eq!(
            decide(&record(false), Liveness::Running, &a, None),
            Action::Kill
        );
        assert_eq!(
            decide(&record(true), Liveness::Running, &a, None),
            Action::Keep
        );
        let all = args(None, true);
        assert_eq!(
            decide(&record(true), Liveness::Running, &all, None),
            Action::Kill
        );
    }

    #[test]
    fn run_selects_by_folder_whatever_the_owner() {
        let a = args(Some("/runs/r1"), false);
        let r1 = Some(Path::new("/runs/r1"));
        assert_eq!(
            decide(&record(true), Liveness::Running, &a, r1),
            Action::Kill
        );
        // A longer name is another run, not a sub-folder.
        let r10 = Some(Path::new("/runs/r10"));
        assert_eq!(
            decide(&record(false), Liveness::Running, &a, r10),
            Action::Keep
        );
    }

    #[test]
    fn gone_or_reused_records_are_only_cleaned() {
        let all = args(None, true);
        for l in [Liveness::Gone, Liveness::Reused] {
            assert_eq!(decide(&record(false), l, &all, None), Action::Clean);
        }
    }
}
