//! Per-test durations, which set the per-test deadlines: a `check.time`
//! the user gives (`--history`), else the one bootrig keeps for the tree
//! in the cache (`<cache>/fstests/history/<hash of the tree path>.time`),
//! updated after every run with the durations fstests recorded (the
//! longest over the sections).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::fstests::results_api::parse_check_time;
use crate::fstests::FstestsConfig;

/// Where the cached history of `tree` lives.
pub fn cached_path(cache: &Path, tree: &Path) -> PathBuf {
    let digest = Sha256::digest(tree.to_string_lossy().as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    cache.join("fstests/history").join(format!("{hex}.time"))
}

fn read(path: &Path) -> BTreeMap<String, u64> {
    fs::read_to_string(path)
        .map(|t| {
            parse_check_time(&t)
                .into_iter()
                .map(|(k, d)| (k, d.as_secs()))
                .collect()
        })
        .unwrap_or_default()
}

/// Test → seconds of its last run: the config's `check.time`, else the
/// cached one.
pub fn load(cfg: &FstestsConfig, cache: &Path) -> BTreeMap<String, u64> {
    match &cfg.history {
        Some(p) => read(p),
        None => read(&cached_path(cache, &cfg.tree.dir)),
    }
}

/// Merges the `check.time` files under `results` (the folder and its
/// section folders) into the cached history of `tree`. Best effort.
pub fn record(cache: &Path, tree: &Path, results: &[PathBuf]) {
    let path = cached_path(cache, tree);
    let mut known = read(&path);
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for dir in results {
        let mut files = vec![dir.join("check.time")];
        if let Ok(rd) = fs::read_dir(dir) {
            files.extend(rd.flatten().map(|e| e.path().join("check.time")));
        }
        for f in files {
            for (test, secs) in read(&f) {
                let e = seen.entry(test).or_default();
                *e = (*e).max(secs);
            }
        }
    }
    if seen.is_empty() {
        return;
    }
    known.extend(seen);
    let text: String = known.iter().map(|(t, s)| format!("{t} {s}\n")).collect();
    if let Some(parent) = path.parent() {
        let _ = fs::create_dir_all(parent);
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if fs::write(&tmp, text).is_ok() {
        let _ = fs::rename(&tmp, &path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_feed_the_cached_history() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("tree");
        let results = d.path().join("results");
        fs::create_dir_all(results.join("ext4_1k")).unwrap();
        fs::write(results.join("check.time"), "generic/001 5\n").unwrap();
        fs::write(
            results.join("ext4_1k/check.time"),
            "generic/001 9\nxfs/001 2\n",
        )
        .unwrap();
        record(d.path(), &tree, &[results]);
        let got = read(&cached_path(d.path(), &tree));
        assert_eq!(got.get("generic/001"), Some(&9));
        assert_eq!(got.get("xfs/001"), Some(&2));
    }
}
