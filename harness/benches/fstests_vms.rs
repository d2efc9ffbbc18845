//! fstests on one VM against the same tests on N VMs from one shared queue
//! (`--vms N`), measured in the same run: wall time of each and the ratio.
//!
//! `cargo bench -p bootrig --bench fstests_vms [-- N TEST...]` (default: 2
//! VMs; generic/001 002 005 006 007 011 013 on ext4). Needs a built tree:
//! `BOOTRIG_FSTESTS_TREE=<tree>`, or `BOOTRIG_FSTESTS_SRC=<tarball>` to
//! build one (cached). Boots the `fstests` image (built on first use).
//! The two runs' outcomes must agree (the bench panics otherwise).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use bootrig::fstests::{build_from_source, Devices, FstestsConfig, FstestsTree};
use bootrig::{ImageStore, Outcome, RunSettings, Suite};

fn tree() -> FstestsTree {
    if let Some(dir) = std::env::var_os("BOOTRIG_FSTESTS_TREE") {
        return FstestsTree::open(dir).expect("BOOTRIG_FSTESTS_TREE is a built fstests tree");
    }
    let src = std::env::var_os("BOOTRIG_FSTESTS_SRC")
        .map(PathBuf::from)
        .expect("set BOOTRIG_FSTESTS_TREE (a built tree) or BOOTRIG_FSTESTS_SRC (a tarball)");
    let cache = ImageStore::default().cache;
    build_from_source(&src, &cache, &mut |l| eprintln!("{l}")).expect("fstests builds")
}

/// Runs `tests` on `vms` VMs; returns the wall time and each trial's outcome.
fn run(tree: &FstestsTree, tests: &[String], vms: usize) -> (f64, BTreeMap<String, Outcome>) {
    let dir = std::env::temp_dir().join(format!(
        "bootrig-bench-fstests-{}-{vms}",
        std::process::id()
    ));
    let settings = RunSettings::from_env(dir.clone()).standalone();
    let cfg = FstestsConfig::new(tree.clone(), "ext4")
        .with_tests(tests.iter().cloned())
        .with_devices(Devices {
            size: 3 << 30,
            ..Devices::default()
        })
        .with_vms(vms);
    let args = libtest_mimic::Arguments {
        test_threads: Some(1),
        quiet: true,
        ..Default::default()
    };
    let started = Instant::now();
    let (records, _) = Suite::with_args(args)
        .with_settings(settings)
        .fstests(cfg)
        .run_collect();
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    let outcomes = records
        .iter()
        .map(|r| (r.entry.test.clone(), r.outcome()))
        .collect();
    (secs, outcomes)
}

fn main() {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let vms = match args.first().and_then(|a| a.parse::<usize>().ok()) {
        Some(n) => {
            args.remove(0);
            n
        }
        None => 2,
    };
    let tests: Vec<String> = if args.is_empty() {
        ["001", "002", "005", "006", "007", "011", "013"]
            .iter()
            .map(|n| format!("generic/{n}"))
            .collect()
    } else {
        args
    };
    let tree = tree();
    println!(
        "fstests --vms {vms} vs one VM: {} tests on ext4",
        tests.len()
    );
    let (one, a) = run(&tree, &tests, 1);
    println!("  1 VM:      {one:7.1} s");
    let (many, b) = run(&tree, &tests, vms);
    println!("  {vms} VMs:     {many:7.1} s");
    println!("  ratio {vms} VMs / 1 VM: {:.2}", many / one);
    assert_eq!(a, b, "the outcomes differ between 1 and {vms} VMs");
    for (t, o) in &a {
        println!("  {t}: {o:?}");
    }
}
