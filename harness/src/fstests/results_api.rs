//! The offline fstests results API this folder calls, in one place.
//!
//! The real parsers live in `bootrig_diagnostics::fstests` (written on
//! another branch: `check.log`, lenient `result.xml`, baselines, compare).
//! Until it is merged this file is a deliberately minimal STAND-IN with the
//! same names, enough for the VM runner and its end-to-end test: it reads
//! the `<testcase>` elements of fstests' own `result.xml` and the per-test
//! files next to it, nothing else. The switch is this one file:
//! `pub use bootrig_diagnostics::fstests::*;` plus [`salvage`] and
//! [`result_of`], which stay here (they use only the public fields).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What fstests recorded for a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FsOutcome {
    /// It ran and passed.
    Passed,
    /// It ran and failed.
    Failed,
    /// It did not run (`_notrun`), with fstests' reason.
    NotRun,
}

impl FsOutcome {
    /// `passed`, `failed`, `notrun`.
    pub fn as_str(self) -> &'static str {
        match self {
            FsOutcome::Passed => "passed",
            FsOutcome::Failed => "failed",
            FsOutcome::NotRun => "notrun",
        }
    }
}

/// The files fstests left for a test, where present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsTestFiles {
    /// `<test>.out.bad`.
    pub out_bad: Option<PathBuf>,
    /// `<test>.full`.
    pub full: Option<PathBuf>,
    /// `<test>.dmesg`.
    pub dmesg: Option<PathBuf>,
    /// `<test>.notrun`.
    pub notrun: Option<PathBuf>,
    /// `<test>.hints`.
    pub hints: Option<PathBuf>,
}

impl FsTestFiles {
    /// The files of `test` (`generic/001`) in the report folder `dir`.
    pub fn in_dir(dir: &Path, test: &str) -> FsTestFiles {
        let f = |ext: &str| {
            let p = dir.join(format!("{test}.{ext}"));
            p.is_file().then_some(p)
        };
        FsTestFiles {
            out_bad: f("out.bad"),
            full: f("full"),
            dmesg: f("dmesg"),
            notrun: f("notrun"),
            hints: f("hints"),
        }
    }

    /// The present files, with their suffix (`out.bad`, `full`, ...).
    pub fn present(&self) -> Vec<(&'static str, &Path)> {
        [
            ("out.bad", &self.out_bad),
            ("full", &self.full),
            ("dmesg", &self.dmesg),
            ("notrun", &self.notrun),
            ("hints", &self.hints),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.as_deref().map(|p| (n, p)))
        .collect()
    }
}

/// One fstests test in one section.
#[derive(Debug, Clone, PartialEq)]
pub struct FsTest {
    /// The section (`None` when the run had no sections).
    pub section: Option<String>,
    /// `generic/001`.
    pub name: String,
    /// What fstests recorded.
    pub outcome: FsOutcome,
    /// The failure or notrun reason.
    pub reason: Option<String>,
    /// How long it ran.
    pub duration: Option<Duration>,
    /// Its files.
    pub files: FsTestFiles,
    /// The diff `check` recorded (`<system-err>` of `result.xml`).
    pub diff: Option<String>,
}

impl FsTest {
    /// `fstests::<section>::<test>` (`fstests::<test>` without a section).
    pub fn trial_name(&self) -> String {
        trial_name(self.section.as_deref(), &self.name)
    }

    /// A failed test's message: the reason, the diff, the dmesg excerpt,
    /// the paths of `.full` and `.out.bad`.
    pub fn failure_message(&self) -> String {
        let mut m = format!(
            "{} failed: {}",
            self.name,
            self.reason.as_deref().unwrap_or("(no reason recorded)")
        );
        if let Some(diff) = &self.diff {
            m.push('\n');
            m.push_str(diff.trim_end());
            m.push('\n');
        } else if let Some(bad) = &self.files.out_bad {
            m.push_str(&format!("\n--- {}:\n", bad.display()));
            m.push_str(&fs::read_to_string(bad).unwrap_or_default());
        }
        if let Some(d) = &self.files.dmesg {
            let text = fs::read_to_string(d).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            m.push_str(&format!("\n--- dmesg ({}):\n", d.display()));
            for l in tail.into_iter().rev() {
                m.push_str(l);
                m.push('\n');
            }
        }
        if let Some(full) = &self.files.full {
            m.push_str(&format!("\nfull output: {}", full.display()));
        }
        m
    }
}

/// The trial name of `test` in `section`.
pub fn trial_name(section: Option<&str>, test: &str) -> String {
    match section {
        Some(s) => format!("fstests::{s}::{test}"),
        None => format!("fstests::{test}"),
    }
}

/// A results folder, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FsResults {
    /// Every test, in report order.
    pub tests: Vec<FsTest>,
    /// The sections, in order.
    pub sections: Vec<String>,
}

impl FsResults {
    /// Reads `result.xml` in `dir` and in each section folder of it.
    pub fn load(dir: &Path) -> Result<FsResults, String> {
        let mut out = FsResults::default();
        if dir.join("result.xml").is_file() {
            out.tests.extend(read_xml(dir, None)?);
        }
        let mut subdirs: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("result.xml").is_file())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            let name = sub
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            out.tests.extend(read_xml(&sub, Some(&name))?);
            out.sections.push(name);
        }
        Ok(out)
    }

    /// One line per section: `ext4: 3 tests, 1 failures, 1 skipped, 9 seconds`
    /// and its `Failures:` line.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut by: BTreeMap<String, Vec<&FsTest>> = BTreeMap::new();
        for t in &self.tests {
            by.entry(t.section.clone().unwrap_or_else(|| "-".into()))
                .or_default()
                .push(t);
        }
        let mut lines = Vec::new();
        for (s, ts) in by {
            let failed: Vec<&str> = ts
                .iter()
                .filter(|t| t.outcome == FsOutcome::Failed)
                .map(|t| t.name.as_str())
                .collect();
            let skipped = ts.iter().filter(|t| t.outcome == FsOutcome::NotRun).count();
            let secs: u64 = ts
                .iter()
                .filter_map(|t| t.duration)
                .map(|d| d.as_secs())
                .sum();
            lines.push(format!(
                "{s}: {} tests, {} failures, {skipped} skipped, {secs} seconds",
                ts.len(),
                failed.len()
            ));
            if !failed.is_empty() {
                lines.push(format!("  Failures: {}", failed.join(" ")));
            }
        }
        lines
    }

    /// The JSON array `bootrig fstests results --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.tests
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "section": t.section,
                        "test": t.name,
                        "outcome": t.outcome.as_str(),
                        "reason": t.reason,
                        "duration_s": t.duration.map(|d| d.as_secs_f64()),
                    })
                })
                .collect(),
        )
    }
}

/// The `<testcase>` elements of `dir/result.xml` (stand-in: attributes and
/// the first `<failure>`/`<skipped>` message only).
fn read_xml(dir: &Path, section: Option<&str>) -> Result<Vec<FsTest>, String> {
    let path = dir.join("result.xml");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let case = regex::Regex::new(r#"(?s)<testcase\b([^>]*?)(/>|>(.*?)</testcase>)"#)
        .map_err(|e| e.to_string())?;
    let attr = |s: &str, name: &str| {
        regex::Regex::new(&format!(r#"\b{name}="([^"]*)""#))
            .ok()
            .and_then(|re| re.captures(s).map(|c| c[1].to_string()))
    };
    let mut out = Vec::new();
    for c in case.captures_iter(&text) {
        let attrs = &c[1];
        let body = c.get(3).map_or("", |m| m.as_str());
        let Some(name) = attr(attrs, "name") else {
            continue;
        };
        let (outcome, reason) = if let Some(i) = body.find("<failure") {
            (FsOutcome::Failed, attr(&body[i..], "message"))
        } else if let Some(i) = body.find("<skipped") {
            (FsOutcome::NotRun, attr(&body[i..], "message"))
        } else {
            (FsOutcome::Passed, None)
        };
        let diff = body.find("<system-err>").map(|i| {
            let rest = &body[i + "<system-err>".len()..];
            let rest = rest.split("</system-err>").next().unwrap_or(rest);
            let rest = rest.trim().trim_start_matches("<![CDATA[");
            rest.trim_end().trim_end_matches("]]>").trim().to_string()
        });
        let duration = attr(attrs, "time")
            .and_then(|t| t.parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        out.push(FsTest {
            section: section.map(str::to_string),
            files: FsTestFiles::in_dir(dir, &name),
            name,
            outcome,
            reason: reason.map(|r| unescape(&r)),
            duration,
            diff,
        });
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `check.time`: test → seconds of its last run.
pub fn parse_check_time(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// Known failures: one test a line, `# reason` comments.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    known: BTreeMap<String, String>,
}

impl Baseline {
    /// Reads an expunge / known-failures file.
    pub fn load(path: &Path) -> Result<Baseline, String> {
        let text =
            fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let mut known = BTreeMap::new();
        for line in text.lines() {
            let (test, why) = line.split_once('#').unwrap_or((line, ""));
            let test = test.trim();
            if !test.is_empty() {
                let why = why.trim();
                let why = if why.is_empty() {
                    "in the baseline"
                } else {
                    why
                };
                known.insert(test.to_string(), why.to_string());
            }
        }
        Ok(Baseline { known })
    }

    /// Why `test` is a known failure in `section`, if it is.
    pub fn known_failure(&self, _section: Option<&str>, test: &str) -> Option<&str> {
        self.known.get(test).map(String::as_str)
    }
}

/// What changed between two runs.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// Passed (or absent) before, failed now.
    pub regressions: Vec<String>,
    /// Failed before, passed now.
    pub fixed: Vec<String>,
    /// Ran before, not run now.
    pub new_notrun: Vec<String>,
}

impl Comparison {
    /// Whether anything regressed.
    pub fn has_regressions(&self) -> bool {
        !self.regressions.is_empty()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (what, list) in [
            ("regressions", &self.regressions),
            ("fixed", &self.fixed),
            ("newly not run", &self.new_notrun),
        ] {
            writeln!(f, "{what} ({}): {}", list.len(), list.join(" "))?;
        }
        Ok(())
    }
}

/// Compares two parsed runs test by test.
pub fn compare(old: &FsResults, new: &FsResults) -> Comparison {
    let key = |t: &FsTest| t.trial_name();
    let before: BTreeMap<String, FsOutcome> =
        old.tests.iter().map(|t| (key(t), t.outcome)).collect();
    let mut c = Comparison::default();
    for t in &new.tests {
        let was = before.get(&key(t)).copied();
        match (was, t.outcome) {
            (Some(FsOutcome::Failed), FsOutcome::Failed) => {}
            (_, FsOutcome::Failed) => c.regressions.push(key(t)),
            (Some(FsOutcome::Failed), FsOutcome::Passed) => c.fixed.push(key(t)),
            (Some(FsOutcome::Passed | FsOutcome::Failed), FsOutcome::NotRun) => {
                c.new_notrun.push(key(t))
            }
            _ => {}
        }
    }
    c
}

/// A results folder (or a run folder holding one).
pub fn load_any(path: &Path) -> Result<FsResults, String> {
    FsResults::load(path)
}

/// A test that completed in a run that did not end normally (the VM died
/// later in the same section, so fstests never wrote that section's
/// `result.xml`): its outcome from the files fstests left, the rule
/// `check` itself applies (`.notrun` = not run with its reason; `.out.bad`
/// or `.dmesg` = failed; otherwise passed).
pub fn salvage(section: Option<&str>, test: &str, report_dir: &Path) -> FsTest {
    let files = FsTestFiles::in_dir(report_dir, test);
    let (outcome, reason) = if let Some(n) = &files.notrun {
        let why = fs::read_to_string(n).unwrap_or_default().trim().to_string();
        (FsOutcome::NotRun, Some(why))
    } else if files.out_bad.is_some() {
        (FsOutcome::Failed, Some("- output mismatch".to_string()))
    } else if files.dmesg.is_some() {
        (
            FsOutcome::Failed,
            Some("- kernel messages in dmesg".to_string()),
        )
    } else {
        (FsOutcome::Passed, None)
    };
    FsTest {
        section: section.map(str::to_string),
        name: test.to_string(),
        outcome,
        reason,
        duration: None,
        files,
        diff: None,
    }
}

/// The record of `test` in `section` among `results`, if there is one
/// (the last, for `-i`/`-L` repeats).
pub fn result_of<'a>(
    results: &'a FsResults,
    section: Option<&str>,
    test: &str,
) -> Option<&'a FsTest> {
    results
        .tests
        .iter()
        .rev()
        .find(|t| t.name == test && t.section.as_deref() == section)
}

/// A results set made of `tests` (e.g. merged from several VM attempts).
pub fn results_from(tests: Vec<FsTest>) -> FsResults {
    let mut sections: Vec<String> = Vec::new();
    for s in tests.iter().filter_map(|t| t.section.clone()) {
        if !sections.contains(&s) {
            sections.push(s);
        }
    }
    FsResults { tests, sections }
}
