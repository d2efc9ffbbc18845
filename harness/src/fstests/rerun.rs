//! `--rerun-failures N`: after the run, every failed test runs N more
//! times (each round in a fresh VM, all the failures together) and is
//! labelled `flaky` with its failure rate (`flaky 2/5`) when some runs
//! passed, `consistent` when none did.

use crate::fstests::config::{Plan, PlanSection};
use crate::fstests::results_api::FsOutcome;
use crate::fstests::runner::{self, Entry, RunOutcome};
use crate::fstests::FstestsConfig;
use crate::{Result, TestContext};

/// Reruns the failures of `outcome` (not the tests that took a VM down:
/// they were retried already) `cfg.rerun_failures` times, recording each
/// rerun's outcome in their entries.
pub fn rerun_failures(
    ctx: &TestContext,
    cfg: &FstestsConfig,
    plan: &Plan,
    outcome: &mut RunOutcome,
) -> Result<()> {
    let failed = |s: &PlanSection, t: &String| {
        outcome
            .entries
            .get(&(s.name.clone(), t.clone()))
            .is_some_and(|e| e.deaths.is_empty() && failed(e))
    };
    let again = Plan {
        sections: plan
            .sections
            .iter()
            .map(|s| PlanSection {
                tests: s.tests.iter().filter(|t| failed(s, t)).cloned().collect(),
                ..s.clone()
            })
            .filter(|s| !s.tests.is_empty())
            .collect(),
    };
    if again.sections.is_empty() {
        return Ok(());
    }
    for round in 1..=cfg.rerun_failures {
        if ctx.settings().interrupts.interrupted().is_some() {
            // The reruns done so far are the failure rates' sample.
            break;
        }
        ctx.output(&format!(
            "fstests: rerunning {} failure(s), round {round} of {}",
            again.pairs().count(),
            cfg.rerun_failures
        ));
        let rerun = runner::run(ctx, cfg, &again)?;
        for (key, e) in rerun.entries {
            if e.interrupted.is_some() {
                continue;
            }
            if let Some(entry) = outcome.entries.get_mut(&key) {
                let o = match &e.result {
                    Some(r) if e.deaths.is_empty() => r.outcome,
                    _ => FsOutcome::Failed,
                };
                entry.reruns.push(o);
            }
        }
    }
    Ok(())
}

fn failed(e: &Entry) -> bool {
    e.result
        .as_ref()
        .is_some_and(|r| r.outcome == FsOutcome::Failed)
}

/// `flaky 2/5` or `consistent 5/5` for a failed test that was rerun.
pub fn label(e: &Entry) -> Option<String> {
    if e.reruns.is_empty() || !failed(e) {
        return None;
    }
    let total = e.reruns.len() + 1;
    let failures = 1 + e.reruns.iter().filter(|o| **o == FsOutcome::Failed).count();
    let kind = if failures < total {
        "flaky"
    } else {
        "consistent"
    };
    Some(format!("{kind} {failures}/{total}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_give_the_failure_rate() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("generic")).unwrap();
        std::fs::write(d.path().join("generic/001.out.bad"), "x").unwrap();
        let mut e = Entry {
            result: Some(crate::fstests::results_api::salvage(
                None,
                "generic/001",
                d.path(),
            )),
            ..Entry::default()
        };
        assert_eq!(label(&e), None);
        e.reruns = vec![
            FsOutcome::Passed,
            FsOutcome::Failed,
            FsOutcome::Passed,
            FsOutcome::Passed,
        ];
        assert_eq!(label(&e).as_deref(), Some("flaky 2/5"));
        e.reruns = vec![FsOutcome::Failed, FsOutcome::Failed];
        assert_eq!(label(&e).as_deref(), Some("consistent 3/3"));
    }
}
