//! The e2e suite's wall time, cold against warm, side by side in one run:
//! the scenarios of `scenarios/e2e` run with `bootrig run -j 1` as they
//! are (cold), then with `"start": "warm"` on every machine that can start
//! warm (not those with extra drives, a persistent disk, an ISO or UEFI)
//! twice: the first warm run boots and saves the snapshots, the second
//! restores them, as a nightly job does once the snapshots are cached.
//!
//! `cargo bench -p bootrig --bench suite_warm`. Snapshots and artifacts go
//! to a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Adds `"start": "warm"` to the machine of every scenario in `dir` that
/// can start warm; returns the names of those that do.
fn make_warm(dir: &Path) -> Vec<String> {
    let mut warm = Vec::new();
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
        if cold_only {
            continue;
        }
        m.insert("start".into(), "warm".into());
        warm.push(path.file_name().unwrap().to_string_lossy().into_owned());
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
    warm.sort();
    warm
}

fn run_suite(dir: &Path, artifacts: &Path, snapshots: &Path) -> (f64, bool) {
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
    eprintln!("  {}", text.lines().last().unwrap_or_default());
    (secs, out.status.success())
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/e2e");
    let tmp = tempfile::tempdir().unwrap();
    let cold = tmp.path().join("cold");
    let warm = tmp.path().join("warm");
    copy_tree(&root, &cold);
    copy_tree(&root, &warm);
    let warm_files = make_warm(&warm);
    let snapshots = tmp.path().join("snapshots");
    eprintln!(
        "e2e suite: {}; warm: {}",
        root.display(),
        warm_files.join(", ")
    );
    eprintln!("cold run");
    let (c, c_ok) = run_suite(&cold, &tmp.path().join("a-cold"), &snapshots);
    eprintln!("warm run, first (boots and saves the snapshots)");
    let (w1, w1_ok) = run_suite(&warm, &tmp.path().join("a-warm1"), &snapshots);
    eprintln!("warm run, second (restores them)");
    let (w2, w2_ok) = run_suite(&warm, &tmp.path().join("a-warm2"), &snapshots);
    println!("| run | wall time | ÷ cold | all passed |");
    println!("|---|---:|---:|---|");
    println!("| cold | {c:.1} s | 1.00 | {c_ok} |");
    println!(
        "| warm, first (boot + save) | {w1:.1} s | {:.2} | {w1_ok} |",
        w1 / c
    );
    println!(
        "| warm, snapshots cached | {w2:.1} s | {:.2} | {w2_ok} |",
        w2 / c
    );
}
