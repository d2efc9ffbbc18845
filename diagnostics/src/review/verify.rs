//! `bootrig report --verify`: re-hash every catalogued artifact and say
//! which are missing or changed since the run wrote them.

use std::fmt::Write as _;

use crate::hash::digest_file;
use crate::names::join_inside;

use super::Run;

/// What is wrong with one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file is gone.
    Missing,
    /// Its content changed: the sha256 (and size) no longer match the catalog.
    Modified {
        /// The catalog's sha256 and size.
        expected: (String, u64),
        /// The file's sha256 and size now.
        found: (String, u64),
    },
    /// It could not be read (permissions, a path outside the test folder).
    Unreadable(String),
    /// The test's `metadata.json` (the catalog) could not be read.
    NoCatalog(String),
}

/// One artifact that does not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The test.
    pub test: String,
    /// The artifact's catalog name.
    pub artifact: String,
    /// Its path relative to the run folder.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

/// The result of verifying a run.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// How many catalogued artifacts were checked.
    pub checked: usize,
    /// Those that did not check out.
    pub findings: Vec<Finding>,
}

impl Verification {
    /// Whether every artifact is there, unchanged.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// One line per finding, then a verdict line.
    pub fn render(&self) -> String {
        let mut o = String::new();
        for f in &self.findings {
            let what = match &f.problem {
                Problem::Missing => "MISSING".to_string(),
                Problem::Modified { expected, found } => format!(
                    "MODIFIED: catalog sha256 {} ({} bytes), file sha256 {} ({} bytes)",
                    expected.0, expected.1, found.0, found.1
                ),
                Problem::Unreadable(e) => format!("UNREADABLE: {e}"),
                Problem::NoCatalog(e) => format!("NO CATALOG: {e}"),
            };
            let _ = writeln!(o, "{}: {} [{}]: {what}", f.test, f.artifact, f.path);
        }
        let _ = writeln!(
            o,
            "verify: {} artifact(s) checked, {} problem(s){}",
            self.checked,
            self.findings.len(),
            if self.ok() {
                "; all match their catalog sha256"
            } else {
                ""
            }
        );
        o
    }
}

/// Re-hashes every artifact of every test of `run` against its catalog.
pub fn verify(run: &Run) -> Verification {
    let mut v = Verification::default();
    for t in &run.tests {
        let Some(m) = &t.metadata else {
            v.findings.push(Finding {
                test: t.name().to_string(),
                artifact: "metadata.json".into(),
                path: t.run_relative("metadata.json"),
                problem: Problem::NoCatalog(t.problem.clone().unwrap_or_default()),
            });
            continue;
        };
        for a in &m.artifacts {
            v.checked += 1;
            let finding = |problem| Finding {
                test: t.name().to_string(),
                artifact: a.name.clone(),
                path: t.run_relative(&a.path),
                problem,
            };
            let path = match join_inside(&t.dir, &a.path) {
                Ok(p) => p,
                Err(e) => {
                    v.findings.push(finding(Problem::Unreadable(e.to_string())));
                    continue;
                }
            };
            if !path.exists() {
                v.findings.push(finding(Problem::Missing));
                continue;
            }
            match digest_file(&path) {
                Ok(d) if d.sha256 == a.sha256 && d.size == a.bytes => {}
                Ok(d) => v.findings.push(finding(Problem::Modified {
                    expected: (a.sha256.clone(), a.bytes),
                    found: (d.sha256, d.size),
                })),
                Err(e) => v.findings.push(finding(Problem::Unreadable(e.to_string()))),
            }
        }
    }
    v
}
