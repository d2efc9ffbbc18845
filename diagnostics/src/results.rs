//! The typed result model every report is made from.
//!
//! The run engine turns each finished test into a [`TestRecord`]; the
//! console summary lines, the totals line, JUnit and `run.json` are all
//! rendered from these records (never from strings matched back into
//! outcomes), and an offline reader that loads `run.json` gets the same
//! [`RunEntry`] values back.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metadata::{FailureClass, Outcome};
use crate::run::RunEntry;

/// One finished (or skipped) test, as the engine and every report see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    /// Its line in `run.json`: name, outcome, duration, folder, failure
    /// kind, one-line summary.
    pub entry: RunEntry,
    /// Its artifacts folder (absolute, or empty when the test never got
    /// one, e.g. skipped before it started).
    pub artifacts: PathBuf,
    /// The full, stand-alone message: the failure report for a failed test
    /// or an unexpected pass, the reason for a skip or an expected failure.
    pub message: Option<String>,
    /// The last console lines when the test ended (JUnit `system-out`).
    pub console_tail: String,
}

impl TestRecord {
    /// The test's full name.
    pub fn name(&self) -> &str {
        &self.entry.test
    }

    /// How it ended.
    pub fn outcome(&self) -> Outcome {
        self.entry.outcome
    }

    /// Its wall time.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.entry.duration_ms.unwrap_or(0))
    }

    /// One line saying why it did not pass: the entry's summary, else the
    /// message's first line.
    pub fn headline(&self) -> Option<&str> {
        self.entry
            .summary
            .as_deref()
            .or_else(|| self.message.as_deref().and_then(|m| m.lines().next()))
    }

    /// `PASS  name (1.5s)`, with the artifacts folder when it did not pass
    /// and the reason when it was skipped.
    pub fn summary_line(&self) -> String {
        let outcome = self.outcome();
        let mut line = format!(
            "{} {} ({:.1}s)",
            outcome.tag(),
            self.name(),
            self.duration().as_secs_f64()
        );
        let has_folder = !self.artifacts.as_os_str().is_empty();
        if matches!(outcome, Outcome::Failed | Outcome::Xpass | Outcome::Xfail) && has_folder {
            line.push_str(&format!("  artifacts: {}", self.artifacts.display()));
        }
        if outcome == Outcome::Skipped {
            if let Some(why) = self.headline() {
                line.push_str(&format!("  ({why})"));
            }
        }
        line
    }
}

/// How many tests ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped.
    pub skipped: usize,
    /// Failed as expected.
    pub xfail: usize,
    /// Passed although expected to fail.
    pub xpass: usize,
    /// Never finished.
    pub running: usize,
    /// Of the failed tests, those whose failure is the infrastructure's
    /// (`FailureClass::Infra`), not the test's.
    pub infra: usize,
}

impl Totals {
    /// Counts `outcomes`.
    pub fn of(outcomes: impl IntoIterator<Item = Outcome>) -> Totals {
        let mut t = Totals::default();
        for o in outcomes {
            t.add(o);
        }
        t
    }

    /// Counts `entries` (of `run.json` or records), with their failures'
    /// classes.
    pub fn of_entries<'a>(entries: impl IntoIterator<Item = &'a RunEntry>) -> Totals {
        let mut t = Totals::default();
        for e in entries {
            t.add(e.outcome);
            if e.outcome == Outcome::Failed
                && e.failure_kind
                    .is_some_and(|k| k.class() == FailureClass::Infra)
            {
                t.infra += 1;
            }
        }
        t
    }

    /// Counts one more test.
    pub fn add(&mut self, outcome: Outcome) {
        let slot = match outcome {
            Outcome::Passed => &mut self.passed,
            Outcome::Failed => &mut self.failed,
            Outcome::Skipped => &mut self.skipped,
            Outcome::Xfail => &mut self.xfail,
            Outcome::Xpass => &mut self.xpass,
            Outcome::Running => &mut self.running,
        };
        *slot += 1;
    }

    /// All tests counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped + self.xfail + self.xpass + self.running
    }

    /// Whether the run failed: a failure, an unexpected pass, or a test
    /// that never finished.
    pub fn failed_any(&self) -> bool {
        self.failed + self.xpass + self.running > 0
    }
}

impl fmt::Display for Totals {
    /// `3 passed, 1 failed, 0 skipped, 0 xfail, 0 xpass` (`2 failed (1
    /// infra)` when some failures are the infrastructure's, and `, N did
    /// not finish` when some never did).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.infra > 0 {
            write!(f, " ({} infra)", self.infra)?;
        }
        write!(
            f,
            ", {} skipped, {} xfail, {} xpass",
            self.skipped, self.xfail, self.xpass
        )?;
        if self.running > 0 {
            write!(f, ", {} did not finish", self.running)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome, summary: Option<&str>) -> TestRecord {
        TestRecord {
            entry: RunEntry {
                test: "sc::t".into(),
                outcome,
                duration_ms: Some(1500),
                folder: "sc__t".into(),
                failure_kind: None,
                summary: summary.map(str::to_string),
                attempts: Vec::new(),
                flaky: false,
            },
            artifacts: "/tmp/run/sc__t".into(),
            message: Some("first line\nsecond".into()),
            console_tail: String::new(),
        }
    }

    #[test]
    fn summary_lines_come_from_the_outcome() {
        assert_eq!(
            record(Outcome::Passed, None).summary_line(),
            "PASS  sc::t (1.5s)"
        );
        assert_eq!(
            record(Outcome::Failed, None).summary_line(),
            "FAIL  sc::t (1.5s)  artifacts: /tmp/run/sc__t"
        );
        assert_eq!(
            record(Outcome::Skipped, Some("no KVM")).summary_line(),
            "SKIP  sc::t (1.5s)  (no KVM)"
        );
        assert_eq!(record(Outcome::Failed, None).headline(), Some("first line"));
    }

    #[test]
    fn totals_count_and_decide() {
        let t = Totals::of([Outcome::Passed, Outcome::Xfail, Outcome::Passed]);
        assert_eq!(
            t.to_string(),
            "2 passed, 0 failed, 0 skipped, 1 xfail, 0 xpass"
        );
        assert!(!t.failed_any());
        assert!(Totals::of([Outcome::Xpass]).failed_any());
        assert!(Totals::of([Outcome::Running]).failed_any());
        assert_eq!(Totals::of([Outcome::Running]).total(), 1);
    }
}
