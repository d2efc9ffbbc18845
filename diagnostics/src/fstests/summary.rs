//! What fstests users read: the per-section summary lines, the JSON
//! array of `bootrig fstests results --json`, and flakiness labels.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::results::{FsOutcome, FsResults};

/// Whether a test's failures repeat: of its runs (`-L` reruns,
/// iterations, `--rerun-failures`), some failed and some passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlakyLabel {
    /// Failed `failed` of `runs` runs, and passed the others; shown as
    /// `2/5`.
    Flaky {
        /// Runs that failed.
        failed: usize,
        /// Runs that ran (not-run attempts are not counted).
        runs: usize,
    },
    /// Every run ended the same way (all failed, or all passed).
    Consistent,
}

impl fmt::Display for FlakyLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlakyLabel::Flaky { failed, runs } => write!(f, "{failed}/{runs}"),
            FlakyLabel::Consistent => f.write_str("consistent"),
        }
    }
}

/// The label of a test from its attempts' outcomes: flaky when, among the
/// attempts that ran, some failed and some passed.
pub fn flaky_label(attempts: &[FsOutcome]) -> FlakyLabel {
    let runs = attempts.iter().filter(|a| **a != FsOutcome::NotRun).count();
    let failed = attempts.iter().filter(|a| **a == FsOutcome::Failed).count();
    if failed > 0 && failed < runs {
        FlakyLabel::Flaky { failed, runs }
    } else {
        FlakyLabel::Consistent
    }
}

impl FsResults {
    /// The summary fstests users read, per section:
    ///
    /// ```text
    /// ext4_4k: 793 tests, 2 failures, 308 skipped, 9837 seconds
    ///   Failures: generic/001 xfs/050
    ///   Flaky: generic/475 (2/5)
    /// ```
    ///
    /// A run without sections is named by its `FSTYP` (else `global`). A
    /// section that did not finish says `(incomplete)`.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for s in &self.sections {
            let mut head = format!(
                "{}: {} tests, {} failures, {} skipped, {} seconds",
                s.display_name(),
                s.tests,
                s.failures,
                s.notrun,
                s.seconds
            );
            if !s.complete {
                head.push_str(" (incomplete)");
            }
            lines.push(head);
            if !s.failed.is_empty() {
                lines.push(format!("  Failures: {}", s.failed.join(" ")));
            }
            if !s.flaky.is_empty() {
                let flaky: Vec<String> =
                    s.flaky.iter().map(|(t, l)| format!("{t} ({l})")).collect();
                lines.push(format!("  Flaky: {}", flaky.join(" ")));
            }
        }
        lines
    }

    /// [`FsResults::to_json`] as pretty-printed text, each object's keys in
    /// the documented order (`section`, `test`, `outcome`, `reason`,
    /// `duration_s`), for `bootrig fstests results --json`.
    pub fn to_json_string(&self) -> String {
        #[derive(Serialize)]
        struct Row<'a> {
            section: Option<&'a str>,
            test: &'a str,
            outcome: FsOutcome,
            reason: Option<&'a str>,
            duration_s: Option<f64>,
        }
        let rows: Vec<Row<'_>> = self
            .tests
            .iter()
            .map(|t| Row {
                section: t.section.as_deref(),
                test: &t.name,
                outcome: t.outcome,
                reason: t.reason.as_deref(),
                duration_s: t.duration.map(|d| d.as_secs_f64()),
            })
            .collect();
        serde_json::to_string_pretty(&rows).expect("plain data serialises")
    }

    /// The tests as a JSON array of `{"section", "test", "outcome",
    /// "reason", "duration_s"}` (`section` null without sections,
    /// `outcome` `passed`|`failed`|`notrun`, `reason` and `duration_s` null
    /// when unknown).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.tests
                .iter()
                .map(|t| {
                    json!({
                        "section": t.section,
                        "test": t.name,
                        "outcome": t.outcome,
                        "reason": t.reason,
                        "duration_s": t.duration.map(|d| d.as_secs_f64()),
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FsOutcome::*;

    #[test]
    fn labels() {
        assert_eq!(
            flaky_label(&[Failed, Passed, Failed, Passed, Passed]),
            FlakyLabel::Flaky { failed: 2, runs: 5 }
        );
        assert_eq!(
            flaky_label(&[Failed, Passed, Failed, Passed, Passed]).to_string(),
            "2/5"
        );
        assert_eq!(
            flaky_label(&[Failed, Failed, Failed]),
            FlakyLabel::Consistent
        );
        assert_eq!(flaky_label(&[Passed]), FlakyLabel::Consistent);
        assert_eq!(flaky_label(&[]), FlakyLabel::Consistent);
        assert_eq!(flaky_label(&[Failed, NotRun]), FlakyLabel::Consistent);
        assert_eq!(FlakyLabel::Consistent.to_string(), "consistent");
    }
}
