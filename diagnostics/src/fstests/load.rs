//! Reading an fstests results folder into [`FsResults`]: which folders
//! are sections, and where each test's outcome, reason and duration come
//! from (see [`FsResults::load`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checklog::{parse_check_log, CheckLogBlock};
use super::checktime::CheckTime;
use super::results::{
    overall, FsDetails, FsOutcome, FsResults, FsSection, FsTest, FsTestFiles, TEST_FILE_EXTS,
};
use super::xunit::{parse_xunit, CaseStatus, XunitReport};
use crate::errors::{Error, ErrorKind, Result};

impl FsResults {
    /// Loads an fstests results folder (`results/`, or the folder holding
    /// it): each section's `result.xml`, else its last `check.log` block,
    /// else its `.out.bad`/`.notrun` files; durations from `result.xml`,
    /// else `check.time`. See [`super`] for the layout and
    /// [`super::xunit`] / [`super::checklog`] for what is tolerated.
    ///
    /// A section whose `result.xml` is incomplete (a crashed run) keeps
    /// the tests it lists: its `check.log` is then from an earlier run and
    /// is not used.
    pub fn load(results_dir: &Path) -> Result<FsResults> {
        let root = results_root(results_dir);
        let list = |dir: &Path| -> Result<Vec<PathBuf>> {
            let mut v = Vec::new();
            let rd =
                std::fs::read_dir(dir).map_err(|e| Error::io("reading fstests results", dir, e))?;
            for entry in rd {
                let entry = entry.map_err(|e| Error::io("reading fstests results", dir, e))?;
                v.push(entry.path());
            }
            v.sort();
            Ok(v)
        };
        let entries = list(&root)?;
        let sections: Vec<&PathBuf> = entries.iter().filter(|p| is_section_dir(p)).collect();
        let mut units: Vec<(PathBuf, Option<String>)> = Vec::new();
        let top_level = root.join("result.xml").is_file()
            || (sections.is_empty()
                && (root.join("check.log").is_file() || has_group_dirs(&entries)));
        if top_level {
            units.push((root.clone(), None));
        }
        for s in sections {
            let name = s.file_name().map(|n| n.to_string_lossy().into_owned());
            units.push((s.clone(), name));
        }
        if units.is_empty() {
            return Err(Error::new(
                "reading fstests results",
                &root,
                ErrorKind::Format(
                    "not an fstests results folder: no result.xml, check.log, section folder or test files"
                        .into(),
                ),
            ));
        }
        let mut loaded = Vec::new();
        for (folder, section) in units {
            loaded.push(load_unit(&folder, section, &list(&folder)?)?);
        }
        // Sections in the order they ran (folders sort by name).
        loaded.sort_by_key(|u| {
            let s = u.sections.first();
            let run = s.and_then(|s| s.run_started_at);
            let last = s.and_then(|s| s.last_test_at);
            (run.is_none(), run, last.is_none(), last)
        });
        let mut results = FsResults::default();
        for unit in loaded {
            results.merge(unit);
        }
        Ok(results)
    }
}

/// `dir`, or `dir/results` when `dir` is the folder holding fstests'
/// `results/` (a tree, or a copied-out run) rather than the results.
fn results_root(dir: &Path) -> PathBuf {
    let inner = dir.join("results");
    let own = ["result.xml", "check.log", "check.time"]
        .iter()
        .any(|f| dir.join(f).is_file());
    if !own && inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    }
}

/// Whether `dir` (or its `results/`) holds fstests results that
/// [`FsResults::load`] reads: a report file, a section folder, or test
/// files in group folders.
pub(crate) fn is_results_folder(dir: &Path) -> bool {
    let root = results_root(dir);
    if ["result.xml", "check.log", "check.time"]
        .iter()
        .any(|f| root.join(f).is_file())
    {
        return true;
    }
    let entries: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => return false,
    };
    entries.iter().any(|p| is_section_dir(p)) || has_group_dirs(&entries)
}

/// A section folder has a `result.xml`, `check.log` or `check.time`; a
/// test group folder (`generic/`) never does.
fn is_section_dir(p: &Path) -> bool {
    p.is_dir()
        && !is_job_dir(p)
        && ["result.xml", "check.log", "check.time"]
            .iter()
            .any(|f| p.join(f).is_file())
}

fn has_group_dirs(entries: &[PathBuf]) -> bool {
    entries.iter().any(|p| {
        p.is_dir()
            && !is_job_dir(p)
            && std::fs::read_dir(p).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| split_test_file(&e.file_name().to_string_lossy()).is_some())
            })
    })
}

/// A `job-N` folder: the whole results folder (`RESULT_BASE`) of one test
/// of a `--vms N` run, not a section.
pub(crate) fn is_job_dir(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("job-"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `001.out.bad` → (`001`, `out.bad`); `None` for other files (including
/// `-L` rerun copies like `001.full.rerun0`).
fn split_test_file(file: &str) -> Option<(&str, &'static str)> {
    TEST_FILE_EXTS.iter().find_map(|ext| {
        let stem = file.strip_suffix(ext)?.strip_suffix('.')?;
        (!stem.is_empty()).then_some((stem, *ext))
    })
}

/// One attempt of a test, before attempts are combined.
struct Attempt {
    outcome: FsOutcome,
    reason: Option<String>,
    duration: Option<Duration>,
    details: FsDetails,
}

/// Reads one section folder (or the results root without sections).
fn load_unit(
    folder: &Path,
    default_section: Option<String>,
    entries: &[PathBuf],
) -> Result<FsResults> {
    // Per-test files, from the group folders.
    let mut files: BTreeMap<String, FsTestFiles> = BTreeMap::new();
    for group in entries.iter().filter(|p| p.is_dir() && !is_section_dir(p)) {
        let gname = group
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Ok(rd) = std::fs::read_dir(group) else {
            continue;
        };
        for e in rd.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            if let Some((stem, ext)) = split_test_file(&fname) {
                files
                    .entry(format!("{gname}/{stem}"))
                    .or_default()
                    .set(ext, e.path());
            }
        }
    }
    let xml_path = folder.join("result.xml");
    let xml: Option<XunitReport> =
        if xml_path.is_file() {
            let bytes = std::fs::read(&xml_path)
                .map_err(|e| Error::io("reading fstests results", &xml_path, e))?;
            let text = String::from_utf8_lossy(&bytes);
            Some(parse_xunit(&text).map_err(|m| {
                Error::new("reading fstests results", &xml_path, ErrorKind::Format(m))
            })?)
        } else {
            None
        };
    let section = match &xml {
        Some(x)
            if x.properties.contains_key("SECTION")
                || x.cases.iter().any(|c| c.classname.is_some()) =>
        {
            x.section()
        }
        _ => default_section,
    };
    let check_time = CheckTime::load(&folder.join("check.time")).unwrap_or_default();
    let notrun_reason = |test: &str| -> Option<String> {
        let p = files.get(test)?.notrun.as_ref()?;
        let text = std::fs::read(p).ok()?;
        let text = String::from_utf8_lossy(&text).trim().to_string();
        (!text.is_empty()).then_some(text)
    };

    let mut order: Vec<String> = Vec::new();
    let mut attempts: HashMap<String, Vec<Attempt>> = HashMap::new();
    let mut add = |name: String, a: Attempt| {
        if !attempts.contains_key(&name) {
            order.push(name.clone());
        }
        attempts.entry(name).or_default().push(a);
    };
    let mut info = FsSection {
        name: section.clone(),
        tests: 0,
        failures: 0,
        notrun: 0,
        seconds: 0,
        failed: Vec::new(),
        flaky: Vec::new(),
        complete: false,
        properties: BTreeMap::new(),
        run_started_at: xml.as_ref().and_then(|x| x.start_timestamp),
        last_test_at: xml.as_ref().and_then(|x| x.timestamp),
    };
    let seconds_known;
    match &xml {
        Some(x) => {
            for c in &x.cases {
                let (outcome, reason) = match &c.status {
                    CaseStatus::Passed => (FsOutcome::Passed, None),
                    CaseStatus::Failed(m) => (
                        FsOutcome::Failed,
                        Some(
                            m.clone()
                                .unwrap_or_else(|| "failed (result.xml gives no message)".into()),
                        ),
                    ),
                    CaseStatus::Skipped(m) => (
                        FsOutcome::NotRun,
                        m.clone().or_else(|| notrun_reason(&c.name)),
                    ),
                };
                let details = FsDetails {
                    diff: c.system_err.clone(),
                    system_out: c.system_out.clone(),
                    kernel_log: c.kernel_log.clone(),
                    message: None,
                };
                add(
                    c.name.clone(),
                    Attempt {
                        outcome,
                        reason,
                        duration: c.time,
                        details,
                    },
                );
            }
            info.complete = x.complete();
            info.properties = x.properties.clone();
            info.seconds = x.time.unwrap_or(0);
            seconds_known = x.time.is_some();
        }
        None => {
            let log = std::fs::read(folder.join("check.log"))
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let blocks = log.as_deref().map(parse_check_log).unwrap_or_default();
            match blocks.last() {
                Some(block) => {
                    for (name, a) in attempts_from_block(block, &notrun_reason) {
                        add(name, a);
                    }
                    info.complete = !block.interrupted;
                }
                None => {
                    // No report at all: what the files say.
                    for (name, f) in &files {
                        if let Some(bad) = &f.out_bad {
                            let reason = format!("- output mismatch (see {})", bad.display());
                            add(
                                name.clone(),
                                Attempt {
                                    outcome: FsOutcome::Failed,
                                    reason: Some(reason),
                                    duration: None,
                                    details: FsDetails::default(),
                                },
                            );
                        } else if f.notrun.is_some() {
                            add(
                                name.clone(),
                                Attempt {
                                    outcome: FsOutcome::NotRun,
                                    reason: notrun_reason(name),
                                    duration: None,
                                    details: FsDetails::default(),
                                },
                            );
                        }
                    }
                }
            }
            seconds_known = false;
        }
    }

    let mut tests = Vec::new();
    for name in order {
        let mut list = attempts.remove(&name).unwrap_or_default();
        let outcomes: Vec<FsOutcome> = list.iter().map(|a| a.outcome).collect();
        let pick = list
            .iter()
            .position(|a| a.outcome == FsOutcome::Failed)
            .unwrap_or(list.len() - 1);
        let a = list.swap_remove(pick);
        let outcome = overall(&outcomes);
        let duration = a.duration.or_else(|| {
            (outcome == FsOutcome::Passed)
                .then(|| check_time.get(&name))
                .flatten()
        });
        tests.push(FsTest {
            section: section.clone(),
            files: files.get(&name).cloned().unwrap_or_default(),
            name,
            outcome,
            reason: a.reason,
            duration,
            attempts: outcomes,
            details: a.details,
        });
    }
    if !seconds_known {
        info.seconds = tests
            .iter()
            .filter_map(|t| t.duration)
            .map(|d| d.as_secs())
            .sum();
    }
    let mut r = FsResults {
        tests,
        sections: vec![info],
    };
    r.recount();
    Ok(r)
}

/// Attempts from a `check.log` block (used when there is no `result.xml`).
fn attempts_from_block(
    block: &CheckLogBlock,
    notrun_reason: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, Attempt)> {
    let last = block.ran.last().cloned();
    block
        .ran
        .iter()
        .map(|name| {
            let (outcome, reason) = if block.failures.contains(name) {
                (
                    FsOutcome::Failed,
                    Some("failed (listed in check.log's Failures)".to_string()),
                )
            } else if block.not_run.contains(name) {
                (FsOutcome::NotRun, notrun_reason(name))
            } else if block.interrupted && Some(name) == last.as_ref() {
                (
                    FsOutcome::Failed,
                    Some("check was interrupted while this test ran".to_string()),
                )
            } else {
                (FsOutcome::Passed, None)
            };
            let a = Attempt {
                outcome,
                reason,
                duration: None,
                details: FsDetails::default(),
            };
            (name.clone(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_file_names() {
        assert_eq!(split_test_file("001.out.bad"), Some(("001", "out.bad")));
        assert_eq!(split_test_file("1234.full"), Some(("1234", "full")));
        assert_eq!(split_test_file("001.full.rerun0"), None);
        assert_eq!(split_test_file("check_dmesg"), None);
        assert_eq!(split_test_file(".full"), None);
    }
}
