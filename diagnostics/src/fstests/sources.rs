//! Where fstests results can come from: a results folder, a folder of
//! several (shards), or a bootrig run (`run.json` and its tests'
//! `metadata.json`), for `bootrig fstests results` and `compare`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::load::{is_job_dir, is_results_folder};
use super::results::{FsDetails, FsOutcome, FsResults, FsTest, FsTestFiles};
use crate::errors::{Error, ErrorKind, Result};
use crate::layout;
use crate::metadata::{Metadata, Outcome};
use crate::run::RunSummary;

/// Loads fstests results from `path`, whichever it is:
///
/// - an fstests results folder (or the folder holding `results/`, or its
///   `result.xml` / `check.log`), see [`FsResults::load`];
/// - a bootrig run folder (with `run.json`) or a `run.json` file: its
///   `fstests::…` trials (other tests are ignored). `fstests::<section>::<test>`
///   gives the section, `fstests::<test>` none. Outcomes map as passed and
///   xpass → passed, failed and xfail → failed (an expected failure still
///   failed), skipped → notrun, running (never finished) → failed. The
///   reason is the entry's one-line summary; the whole failure message and
///   the fstests files (`*.out.bad`, `*.full`, `*.dmesg`, `*.notrun`,
///   `*.hints` in the test's catalog) come from its `metadata.json` when
///   readable. Durations are the trials' (they include the VM's share).
///   A run has no sections' `result.xml`, so each section's seconds are
///   the sum of its tests';
/// - a folder holding several of the above (shards; no `run.json`,
///   `result.xml` or `check.log` of its own), such as the `results/` of a
///   VM of a `--vms N` run, one `job-N` results folder per test: all of
///   them merged. One that fails to load fails the whole (no silently
///   missing shard).
pub fn load_any(path: &Path) -> Result<FsResults> {
    if path.is_file() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let (Some("result.xml" | "check.log"), Some(dir)) = (name.as_deref(), path.parent()) {
            return FsResults::load(dir);
        }
        return load_run(path);
    }
    if path.join(RunSummary::FILE).is_file() {
        return load_run(&path.join(RunSummary::FILE));
    }
    if is_results_folder(path) {
        return FsResults::load(path);
    }
    // The folder of one VM of a `--vms N` run (`attempt-N`): its
    // `results/` holds a `job-N` results folder per test.
    let inner = path.join("results");
    if inner.is_dir() && holds_jobs(&inner) {
        return load_any(&inner);
    }
    // A folder of results or run folders (shards)?
    let mut children: Vec<PathBuf> = match std::fs::read_dir(path) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(_) => return FsResults::load(path),
    };
    children.sort();
    let mut merged = FsResults::default();
    let mut found = false;
    for child in children {
        let is_run = child.join(RunSummary::FILE).is_file();
        if is_run || is_results_folder(&child) || holds_jobs(&child.join("results")) {
            merged.merge(load_any(&child)?);
            found = true;
        }
    }
    if found {
        Ok(merged)
    } else {
        // Says why `path` is not a results folder.
        FsResults::load(path)
    }
}

/// Loads and merges every path with [`load_any`] (shards of one run, or
/// reruns: a test present in several becomes one with all attempts).
pub fn load_all<P: AsRef<Path>>(paths: &[P]) -> Result<FsResults> {
    let mut merged = FsResults::default();
    for p in paths {
        merged.merge(load_any(p.as_ref())?);
    }
    Ok(merged)
}

/// Whether `dir` holds `job-N` folders (a `--vms N` VM's results).
fn holds_jobs(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| rd.flatten().any(|e| is_job_dir(&e.path())))
}

/// The `fstests::` trials of a bootrig `run.json`.
fn load_run(run_json: &Path) -> Result<FsResults> {
    let summary = RunSummary::load(run_json)?;
    let run_dir = run_json.parent().unwrap_or(Path::new("."));
    let mut results = FsResults::default();
    for entry in &summary.tests {
        let Some(rest) = entry.test.strip_prefix("fstests::") else {
            continue;
        };
        // The folder that holds a run's VMs (`fstests::run`,
        // `fstests::run-2`, `fstests::run::<first test>` for a partial
        // run) is not an fstests test.
        if rest == "run" || rest.starts_with("run::") || rest.starts_with("run-") {
            continue;
        }
        let (section, name) = match rest.rsplit_once("::") {
            Some((s, n)) => (Some(s.to_string()), n.to_string()),
            None => (None, rest.to_string()),
        };
        let outcome = match entry.outcome {
            Outcome::Passed | Outcome::Xpass => FsOutcome::Passed,
            Outcome::Failed | Outcome::Xfail | Outcome::Running => FsOutcome::Failed,
            Outcome::Skipped => FsOutcome::NotRun,
        };
        let folder = run_dir.join(&entry.folder);
        let metadata = Metadata::load(&folder.join(layout::METADATA.path)).ok();
        let mut files = FsTestFiles::default();
        let mut details = FsDetails::default();
        if let Some(m) = &metadata {
            for a in m.artifacts.iter() {
                let path = folder.join(&a.path);
                let file = a.path.rsplit('/').next().unwrap_or(&a.path);
                for (ext, slot) in [
                    (".out.bad", &mut files.out_bad),
                    (".full", &mut files.full),
                    (".dmesg", &mut files.dmesg),
                    (".notrun", &mut files.notrun),
                    (".hints", &mut files.hints),
                ] {
                    if file.ends_with(ext) && slot.is_none() {
                        *slot = Some(path.clone());
                    }
                }
            }
            details.message = m
                .failure
                .as_ref()
                .map(|f| f.message.clone())
                .filter(|_| outcome != FsOutcome::Passed);
        }
        let reason = match entry.outcome {
            Outcome::Running => {
                Some("the trial never finished (outcome `running` in run.json)".to_string())
            }
            _ => entry.summary.clone(),
        };
        results.tests.push(FsTest {
            section,
            name,
            outcome,
            reason,
            duration: entry.duration_ms.map(Duration::from_millis),
            files,
            attempts: vec![outcome],
            details,
        });
    }
    if results.tests.is_empty() {
        return Err(Error::new(
            "reading fstests results",
            run_json,
            ErrorKind::Format("the run has no fstests:: trials".into()),
        ));
    }
    results.recount();
    for s in &mut results.sections {
        s.seconds = results
            .tests
            .iter()
            .filter(|t| t.section == s.name)
            .filter_map(|t| t.duration)
            .map(|d| d.as_secs())
            .sum();
        s.complete = summary.ended_at.is_some();
    }
    Ok(results)
}
