//! Comparing two fstests runs: regressions, fixes, newly not-run tests,
//! added and removed tests.

use std::collections::HashSet;
use std::fmt;

use super::results::{FsOutcome, FsResults, FsTest};

/// A test whose outcome differs between two runs (or that is in one only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its section (`None` without sections).
    pub section: Option<String>,
    /// The test, `generic/001`.
    pub test: String,
    /// Its outcome in the old run (`None`: not in it).
    pub old: Option<FsOutcome>,
    /// Its outcome in the new run (`None`: not in it).
    pub new: Option<FsOutcome>,
    /// The new run's reason (failure message or notrun reason), else the
    /// old one's.
    pub reason: Option<String>,
}

impl Change {
    fn of(old: Option<&FsTest>, new: Option<&FsTest>) -> Change {
        let t = new.or(old).expect("a change has a test on one side");
        Change {
            section: t.section.clone(),
            test: t.name.clone(),
            old: old.map(|t| t.outcome),
            new: new.map(|t| t.outcome),
            reason: new
                .and_then(|t| t.reason.clone())
                .or_else(|| old.and_then(|t| t.reason.clone())),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |o: Option<FsOutcome>| o.map_or("absent", FsOutcome::as_str);
        match &self.section {
            Some(s) => write!(f, "{s} {}", self.test)?,
            None => write!(f, "{}", self.test)?,
        }
        write!(f, ": {} -> {}", side(self.old), side(self.new))?;
        if let Some(r) = &self.reason {
            write!(f, " ({})", r.lines().next().unwrap_or(""))?;
        }
        Ok(())
    }
}

/// What changed from an old run to a new one, keyed by (section, test).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    /// Failed now, and passed or was not run before, or was not in the old
    /// run at all (a new failure).
    pub regressions: Vec<Change>,
    /// Failed before, passes now.
    pub fixes: Vec<Change>,
    /// Not run now, but ran (passed or failed) before.
    pub new_notrun: Vec<Change>,
    /// Only in the new run (any outcome; a failing one is also a
    /// regression).
    pub added: Vec<Change>,
    /// Only in the old run.
    pub removed: Vec<Change>,
}

impl Comparison {
    /// Whether the new run has a failure the old one did not.
    pub fn has_regressions(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// Compares `old` with `new` (see [`Comparison`] for what goes where).
/// Lists follow the new run's order, removed tests the old run's.
pub fn compare(old: &FsResults, new: &FsResults) -> Comparison {
    let mut c = Comparison::default();
    for n in &new.tests {
        let o = old.get(n.section.as_deref(), &n.name);
        let change = || Change::of(o, Some(n));
        match (o.map(|o| o.outcome), n.outcome) {
            (None, outcome) => {
                if outcome == FsOutcome::Failed {
                    c.regressions.push(change());
                }
                c.added.push(change());
            }
            (Some(FsOutcome::Failed), FsOutcome::Failed) => {}
            (Some(_), FsOutcome::Failed) => c.regressions.push(change()),
            (Some(FsOutcome::Failed), FsOutcome::Passed) => c.fixes.push(change()),
            (Some(FsOutcome::Passed | FsOutcome::Failed), FsOutcome::NotRun) => {
                c.new_notrun.push(change())
            }
            _ => {}
        }
    }
    let in_new: HashSet<(Option<&str>, &str)> = new.tests.iter().map(FsTest::key).collect();
    for o in &old.tests {
        if !in_new.contains(&o.key()) {
            c.removed.push(Change::of(Some(o), None));
        }
    }
    c
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups = [
            ("Regressions", &self.regressions),
            ("Fixed", &self.fixes),
            ("Newly not run", &self.new_notrun),
            ("Added", &self.added),
            ("Removed", &self.removed),
        ];
        for (title, list) in groups {
            if list.is_empty() {
                continue;
            }
            writeln!(f, "{title} ({}):", list.len())?;
            for change in list.iter() {
                writeln!(f, "  {change}")?;
            }
        }
        writeln!(
            f,
            "{} regressions, {} fixed, {} newly not run, {} added, {} removed",
            self.regressions.len(),
            self.fixes.len(),
            self.new_notrun.len(),
            self.added.len(),
            self.removed.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fstests::results::{FsDetails, FsTestFiles};
    use FsOutcome::*;

    fn run(tests: &[(&str, FsOutcome)]) -> FsResults {
        let mut r = FsResults {
            tests: tests
                .iter()
                .map(|(n, o)| FsTest {
                    section: Some("s".into()),
                    name: n.to_string(),
                    outcome: *o,
                    reason: (*o != Passed).then(|| format!("{n} {o}")),
                    duration: None,
                    files: FsTestFiles::default(),
                    attempts: vec![*o],
                    details: FsDetails::default(),
                })
                .collect(),
            sections: Vec::new(),
        };
        r.recount();
        r
    }

    #[test]
    fn every_kind_of_change() {
        let old = run(&[
            ("g/1", Passed),
            ("g/2", Failed),
            ("g/3", Passed),
            ("g/4", Failed),
            ("g/5", NotRun),
            ("g/6", Passed),
        ]);
        let new = run(&[
            ("g/1", Failed),
            ("g/2", Passed),
            ("g/3", NotRun),
            ("g/4", Failed),
            ("g/5", Failed),
            ("g/7", Failed),
            ("g/8", Passed),
        ]);
        let c = compare(&old, &new);
        let names = |l: &[Change]| l.iter().map(|c| c.test.clone()).collect::<Vec<_>>();
        assert_eq!(names(&c.regressions), ["g/1", "g/5", "g/7"]);
        assert_eq!(names(&c.fixes), ["g/2"]);
        assert_eq!(names(&c.new_notrun), ["g/3"]);
        assert_eq!(names(&c.added), ["g/7", "g/8"]);
        assert_eq!(names(&c.removed), ["g/6"]);
        assert!(c.has_regressions());
        let text = c.to_string();
        assert!(
            text.contains("Regressions (3):\n  s g/1: passed -> failed (g/1 failed)\n"),
            "{text}"
        );
        assert!(
            text.contains("Fixed (1):\n  s g/2: failed -> passed (g/2 failed)\n"),
            "{text}"
        );
        assert!(
            text.contains("Newly not run (1):\n  s g/3: passed -> notrun (g/3 notrun)\n"),
            "{text}"
        );
        assert!(
            text.contains("Removed (1):\n  s g/6: passed -> absent\n"),
            "{text}"
        );
        assert!(
            text.ends_with("3 regressions, 1 fixed, 1 newly not run, 2 added, 1 removed\n"),
            "{text}"
        );
        // Same run: nothing.
        let same = compare(&new, &new);
        assert!(!same.has_regressions());
        assert_eq!(same, Comparison::default());
    }

    #[test]
    fn sections_are_part_of_the_key() {
        let mut old = run(&[("g/1", Passed)]);
        let mut new = run(&[("g/1", Failed)]);
        new.tests[0].section = Some("other".into());
        old.recount();
        new.recount();
        let c = compare(&old, &new);
        assert_eq!(c.added.len(), 1);
        assert_eq!(c.removed.len(), 1);
        assert_eq!(c.regressions.len(), 1);
        assert_eq!(c.regressions[0].old, None);
    }
}
