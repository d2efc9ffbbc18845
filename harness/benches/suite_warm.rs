//! A suite's wall time, cold against warm, side by side in one run: the
//! scenarios of a folder (or one scenario file) run with `bootrig run -j 1`
//! cold (any `"start"` removed), then with `"start": "warm"` on every
//! machine that can start warm (not those with extra drives, a persistent
//! disk, an ISO or UEFI) twice: the first warm run boots and saves the
//! snapshots, the second restores them, as a nightly job does once the
//! snapshots are cached.
//!
//! `cargo bench -p bootrig --bench suite_warm [-- PATH]`: `PATH` defaults
//! to `scenarios/e2e`; `scenarios/warm/debian-isolation.json` is the
//! acceptance suite of ten isolated Debian tests. Snapshots and artifacts
//! go to a temporary folder. Each run's line says how its tests started
//! (`extra.start` of their `metadata.json`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Copies the scenario `from` (a file or a folder) into folder `to`.
fn copy_scenarios(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    if from.is_file() {
        std::fs::copy(from, to.join(from.file_name().unwrap())).unwrap();
        return;
    }
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_scenarios(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Sets how the machine of every scenario in `dir` starts: `warm` on
/// those that can start warm, cold (no `"start"`) on all of them when
/// `warm` is false. Returns the names of the scenarios set to warm.
fn set_start(dir: &Path, warm: bool) -> Vec<String> {
    let mut set = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(m) = v.get_mut("machine").and_then(|m| m.as_object_mut()) else {
            continue;
        };
        let cold_only = ["drives", "persist", "iso"]
            .iter()
            .any(|k| m.contains_key(*k))
            || m.get("firmware").is_some_and(|f| f == "uefi");
        m.remove("start");
        if warm && !cold_only {
            m.insert("start".into(), "warm".into());
            set.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
    set.sort();
    set
}

/// How the tests of the run in `artifacts` started: (tests, booted and
/// saved a snapshot, restored one).
fn starts(artifacts: &Path) -> (usize, usize, usize) {
    let run = artifacts.join("latest");
    let (mut tests, mut created, mut restored) = (0, 0, 0);
    for e in std::fs::read_dir(&run).into_iter().flatten().flatten() {
        let Ok(md) = std::fs::read(e.path().join("metadata.json")) else {
            continue;
        };
        let md: serde_json::Value = serde_json::from_slice(&md).unwrap();
        let start = &md["extra"]["start"];
        tests += 1;
        if start["mode"] == "warm" {
            if start["created"] == true {
                created += 1;
            } else {
                restored += 1;
            }
        }
    }
    (tests, created, restored)
}

/// One run's wall time, whether all passed, and its starts.
struct Run {
    secs: f64,
    passed: bool,
    starts: (usize, usize, usize),
}

fn run_suite(dir: &Path, artifacts: &Path, snapshots: &Path) -> Run {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_bootrig"))
        .args(["run", "-j", "1", "--artifacts"])
        .arg(artifacts)
        .arg(dir)
        .env("BOOTRIG_SNAPSHOTS", snapshots)
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let starts = starts(artifacts);
    eprintln!(
        "  {} ({secs:.1} s; {} tests: {} booted and saved a snapshot, {} restored)",
        text.lines().last().unwrap_or_default(),
        starts.0,
        starts.1,
        starts.2
    );
    Run {
        secs,
        passed: out.status.success(),
        starts,
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let root = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/e2e"));
    let tmp = tempfile::tempdir().unwrap();
    let cold = tmp.path().join("cold");
    let warm = tmp.path().join("warm");
    copy_scenarios(&root, &cold);
    copy_scenarios(&root, &warm);
    set_start(&cold, false);
    let warm_files = set_start(&warm, true);
    let snapshots = tmp.path().join("snapshots");
    eprintln!("suite: {}; warm: {}", root.display(), warm_files.join(", "));
    eprintln!("cold run (load average {})", load());
    let c = run_suite(&cold, &tmp.path().join("a-cold"), &snapshots);
    eprintln!(
        "warm run, first (boots and saves the snapshots; load average {})",
        load()
    );
    let w1 = run_suite(&warm, &tmp.path().join("a-warm1"), &snapshots);
    eprintln!("warm run, second (restores them; load average {})", load());
    let w2 = run_suite(&warm, &tmp.path().join("a-warm2"), &snapshots);
    eprintln!("load average at the end {}", load());
    println!("| run | wall time | ÷ cold | tests | booted + saved | restored | all passed |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (name, r) in [
        ("cold", &c),
        ("warm, first (boot + save)", &w1),
        ("warm, snapshots cached", &w2),
    ] {
        println!(
            "| {name} | {:.1} s | {:.2} | {} | {} | {} | {} |",
            r.secs,
            r.secs / c.secs,
            r.starts.0,
            r.starts.1,
            r.starts.2,
            if r.passed { "yes" } else { "no" }
        );
    }
}
