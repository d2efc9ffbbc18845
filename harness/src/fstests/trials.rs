//! One trial per (section, test) over one shared run.
//!
//! Running every fstests test in its own VM would cost a boot per test;
//! running them all in one trial would hide them from libtest, nextest and
//! JUnit. So the trials of a process share one lazily started run: the
//! first trial to execute runs, in VMs, every fstests test *this process
//! selected* (the libtest filters, `--exact`, `--skip`), the others wait
//! for it, and each trial then reports its own slice: outcome, message,
//! and its fstests files as catalogued artifacts.
//!
//! Partitioning follows from it: cargo-nextest runs one process per trial,
//! so each process selects (and boots a VM for) exactly its own test;
//! `--partition count:K/N` splits the trials, and each slice runs its
//! tests and nothing else. `cargo test` runs one process with every trial,
//! so one run covers them all. The VMs belong to an extra test folder,
//! `fstests::run`, which keeps their consoles and the results disks read
//! back from each attempt.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use libtest_mimic::Trial;

use crate::fstests::config::{Plan, PlanSection};
use crate::fstests::rerun;
use crate::fstests::results_api::{self as api, Baseline, FsOutcome};
use crate::fstests::runner::{self, DeathKind, Entry, RunOutcome};
use crate::fstests::FstestsConfig;
use crate::{Error, Marks, Producer, Result, Suite, Test, TestContext};

/// The name of the test folder holding the run's VMs.
pub const RUN_FOLDER_TEST: &str = "fstests::run";

/// The run shared by the trials of one process.
struct Shared {
    cfg: FstestsConfig,
    /// Only the selected tests.
    plan: Plan,
    /// Whether some planned tests were not selected.
    partial: bool,
    outcome: OnceLock<std::result::Result<Arc<RunOutcome>, String>>,
}

impl Shared {
    /// Runs the plan once, whichever trial asks first.
    fn outcome(&self, ctx: &TestContext) -> std::result::Result<Arc<RunOutcome>, String> {
        self.outcome
            .get_or_init(|| {
                if let Some(sig) = ctx.settings().interrupts.interrupted() {
                    return Err(format!(
                        "the fstests run never started: {}",
                        Error::Interrupted(sig)
                    ));
                }
                // Several fstests configs in one process get one folder each.
                static RUNS: AtomicUsize = AtomicUsize::new(0);
                let n = RUNS.fetch_add(1, Ordering::Relaxed);
                let mut name = match n {
                    0 => RUN_FOLDER_TEST.to_string(),
                    n => format!("{RUN_FOLDER_TEST}-{}", n + 1),
                };
                // Processes that run parts of the plan (nextest: one trial
                // each) share the run folder: name theirs after their
                // first test.
                if self.partial {
                    if let Some((section, test)) = self.plan.pairs().next() {
                        let first = api::trial_name(section, test);
                        name.push_str(first.trim_start_matches("fstests"));
                    }
                }
                let run_ctx = TestContext::new(&name, ctx.settings().clone())
                    .map_err(|e| format!("could not set up the fstests run: {e}"))?;
                let result = runner::run(&run_ctx, &self.cfg, &self.plan).and_then(|mut o| {
                    rerun::rerun_failures(&run_ctx, &self.cfg, &self.plan, &mut o)?;
                    Ok(o)
                });
                let folder = run_ctx.artifacts_dir().display().to_string();
                catalogue_run(&run_ctx);
                let status = match (&result, ctx.settings().interrupts.interrupted()) {
                    (Err(e), _) => Err(Error::Check(e.to_string())),
                    // The run folder says the run was cut short.
                    (Ok(_), Some(sig)) => Err(Error::Interrupted(sig)),
                    (Ok(_), None) => Ok(()),
                };
                run_ctx.finish(&status, None);
                result
                    .map(Arc::new)
                    .map_err(|e| format!("the fstests run failed ({folder}): {e}"))
            })
            .clone()
    }

    /// The trial body of `test` in `section`.
    fn report(&self, ctx: &TestContext, section: Option<&str>, test: &str) -> Result<()> {
        let outcome =
            self.outcome(ctx)
                .map_err(|m| match ctx.settings().interrupts.interrupted() {
                    Some(sig) => Error::Interrupted(sig),
                    None => Error::Check(m),
                })?;
        let key = (section.map(str::to_string), test.to_string());
        let Some(entry) = outcome.entries.get(&key) else {
            return Err(Error::Check(format!("{test} was not in the run's plan")));
        };
        catalogue(ctx, entry)?;
        verdict(test, entry)
    }
}

/// Catalogues what the attempts read back (fstests' `results/` with
/// `check.log`, `result.xml`, `check.time`; check's output in `logs/`;
/// the inputs in `disk/`; death reports) in the run folder's
/// `metadata.json`. Disk images are not kept.
fn catalogue_run(ctx: &TestContext) {
    let root = ctx.artifacts_dir().to_path_buf();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(rel) = p.strip_prefix(&root) else {
                continue;
            };
            let top = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            if !top.is_some_and(|t| t.starts_with("attempt-")) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_none_or(|x| x != "ext4" && x != "raw") {
                let name = rel.to_string_lossy().into_owned();
                let _ = ctx.add_artifact(&name, p.clone(), Producer::harness("fstests"));
            }
        }
    }
}

/// Copies the test's fstests files and death reports into its folder.
fn catalogue(ctx: &TestContext, entry: &Entry) -> Result<()> {
    let producer = Producer::harness("fstests");
    if let Some(r) = &entry.result {
        let base = r.name.rsplit('/').next().unwrap_or(&r.name).to_string();
        for (suffix, path) in r.files.present() {
            let name = format!("fstests/{base}.{suffix}");
            ctx.add_artifact(&name, path.to_path_buf(), producer.clone())?;
        }
    }
    for d in &entry.deaths {
        for f in &d.files {
            let name = format!(
                "fstests/attempt-{}-{}",
                d.attempt,
                f.file_name().unwrap_or_default().to_string_lossy()
            );
            ctx.add_artifact(&name, f.clone(), producer.clone())?;
        }
    }
    Ok(())
}

/// The trial's verdict from what the run recorded.
fn verdict(test: &str, entry: &Entry) -> Result<()> {
    if !entry.deaths.is_empty() {
        let mut m = String::new();
        for d in &entry.deaths {
            let what = match &d.kind {
                DeathKind::Hang(t) => format!("hung (no progress within {}s)", t.as_secs()),
                DeathKind::Crash(t) => format!("took the VM down: {t}"),
                DeathKind::Interrupted(sig) => Error::Interrupted(*sig).to_string(),
            };
            m.push_str(&format!("{test} {what} in attempt {}\n", d.attempt));
        }
        match (&entry.result, &entry.not_completed) {
            (Some(r), _) => m.push_str(&format!(
                "then, in a fresh VM: {} {}\n",
                r.outcome.as_str(),
                r.reason.as_deref().unwrap_or("")
            )),
            (None, Some(why)) => m.push_str(&format!("{why}\n")),
            _ => {}
        }
        if let Some(d) = entry.deaths.last() {
            m.push_str(&d.detail);
        }
        return Err(Error::Check(m));
    }
    match (&entry.result, entry.interrupted, &entry.not_completed) {
        (Some(r), _, _) => match r.outcome {
            FsOutcome::Passed => Ok(()),
            FsOutcome::NotRun => Err(Error::Skip(
                r.reason.clone().unwrap_or_else(|| "not run".into()),
            )),
            FsOutcome::Failed => Err(Error::Check(match rerun::label(entry) {
                Some(label) => format!("{label}: {}", r.failure_message()),
                None => r.failure_message(),
            })),
        },
        (None, Some(sig), _) => Err(Error::Interrupted(sig)),
        (None, None, Some(why)) => Err(Error::Check(format!("{test}: {why}"))),
        (None, None, None) => Err(Error::Check(format!("{test}: no result recorded"))),
    }
}

/// The trials of an fstests config, and the run they share.
#[derive(Clone)]
pub struct Trials {
    /// One test per planned (section, test), in run order.
    pub tests: Vec<Test>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Trials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trials")
            .field("tests", &self.tests.len())
            .finish_non_exhaustive()
    }
}

impl Trials {
    /// The trials of `cfg`'s plan, named `fstests::<section>::<test>`;
    /// the run executes the tests for which `selected(name, xfail)` holds
    /// (the others are never started by it). Fails when the config does
    /// not plan (bad selection, unknown test, unreadable baseline).
    pub fn new(cfg: FstestsConfig, selected: &dyn Fn(&str, bool) -> bool) -> Result<Trials> {
        let plan = cfg.plan()?;
        let baseline = match &cfg.baseline {
            Some(p) => Some(Baseline::load(p).map_err(|e| Error::Config {
                what: format!("baseline {}", p.display()),
                message: e.to_string(),
            })?),
            None => None,
        };
        let mut planned = Vec::new();
        for (section, test) in plan.pairs() {
            let name = api::trial_name(section, test);
            let xfail = baseline
                .as_ref()
                .and_then(|b| b.known_failure(section, test))
                .map(str::to_string);
            let chosen = selected(&name, xfail.is_some());
            planned.push((
                section.map(str::to_string),
                test.to_string(),
                name,
                xfail,
                chosen,
            ));
        }
        let chosen: BTreeSet<(Option<String>, String)> = planned
            .iter()
            .filter(|t| t.4)
            .map(|t| (t.0.clone(), t.1.clone()))
            .collect();
        let selected_plan = Plan {
            sections: plan
                .sections
                .iter()
                .map(|s| PlanSection {
                    tests: s
                        .tests
                        .iter()
                        .filter(|t| chosen.contains(&(s.name.clone(), (*t).clone())))
                        .cloned()
                        .collect(),
                    ..s.clone()
                })
                .filter(|s| !s.tests.is_empty())
                .collect(),
        };
        let partial = chosen.len() < planned.len();
        let vms = cfg.vms;
        let shared = Arc::new(Shared {
            cfg,
            partial,
            plan: selected_plan,
            outcome: OnceLock::new(),
        });
        let tests = planned
            .into_iter()
            .map(|(section, test, name, xfail, _)| {
                // The trial that starts the run boots its VMs: every trial
                // asks the VM budget for as many as the run uses.
                let marks = match xfail {
                    Some(why) => Marks::new().xfail(why),
                    None => Marks::new(),
                }
                .vms(vms)
                // After Ctrl-C every trial still reports what the run did.
                .reports_after_interrupt();
                let shared = shared.clone();
                Test::new(name, marks, move |ctx| {
                    shared.report(ctx, section.as_deref(), &test)
                })
            })
            .collect();
        Ok(Trials { tests, shared })
    }

    /// What the run recorded, once it ran (`None` before, or when it
    /// could not start).
    pub fn outcome(&self) -> Option<Arc<RunOutcome>> {
        self.shared
            .outcome
            .get()
            .and_then(|o| o.as_ref().ok().cloned())
    }
}

impl Suite {
    /// Adds one trial per (section, test) of `cfg`'s plan, named
    /// `fstests::<section>::<test>`: passed → ok, not run → skipped with
    /// fstests' reason, failed → failed with the diff, dmesg and file
    /// paths; a baseline's known failures are xfail. The shared run
    /// executes only the trials this process's arguments select (see the
    /// module documentation of `fstests::trials`). A config that does not
    /// plan becomes one failing trial `fstests::config`.
    pub fn fstests(self, cfg: FstestsConfig) -> Suite {
        let args = self.arguments().clone();
        let selected = |name: &str, xfail: bool| {
            let kind = if xfail && !args.list { "xfail" } else { "" };
            let probe = Trial::test(name.to_string(), || Ok(())).with_kind(kind);
            !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
        };
        match Trials::new(cfg, &selected) {
            Ok(trials) => trials.tests.into_iter().fold(self, |suite, t| {
                let body = t.body.clone();
                suite.test_with(&t.name, t.marks, move |ctx| body(ctx))
            }),
            Err(e) => {
                let message = e.to_string();
                self.test("fstests::config", move |_| {
                    Err(Error::Config {
                        what: "fstests".into(),
                        message: message.clone(),
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fstests::FstestsTree;
    use std::fs;

    /// A tree that passes the "built" check, with tests generic/001, 002.
    fn fake_tree(dir: &std::path::Path) -> FstestsTree {
        fs::write(dir.join("check"), "#!/bin/sh\n").unwrap();
        fs::create_dir_all(dir.join("tests/generic")).unwrap();
        fs::write(
            dir.join("tests/generic/group.list"),
            "001 auto quick\n002 auto\n",
        )
        .unwrap();
        for t in ["001", "002"] {
            fs::write(dir.join("tests/generic").join(t), "#!/bin/bash\n").unwrap();
        }
        fs::create_dir_all(dir.join("ltp")).unwrap();
        fs::create_dir_all(dir.join("src")).unwrap();
        fs::copy("/bin/true", dir.join("ltp/fsstress")).unwrap();
        fs::copy("/bin/true", dir.join("src/helper")).unwrap();
        FstestsTree::open(dir).unwrap()
    }

    #[test]
    fn trials_follow_the_plan_the_selection_and_the_baseline() {
        let d = tempfile::tempdir().unwrap();
        let tree = fake_tree(d.path());
        let baseline = d.path().join("known");
        fs::write(&baseline, "# known failures\ngeneric/002 # bug 123\n").unwrap();
        let cfg = FstestsConfig::new(tree, "ext4")
            .with_sections(vec![
                crate::fstests::Section::new("a", "ext4"),
                crate::fstests::Section::new("b", "ext4"),
            ])
            .with_groups(["auto"])
            .with_baseline(&baseline);
        let trials = Trials::new(cfg, &|name, _| name.starts_with("fstests::b::")).unwrap();
        let names: Vec<&str> = trials.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fstests::a::generic/001",
                "fstests::a::generic/002",
                "fstests::b::generic/001",
                "fstests::b::generic/002"
            ]
        );
        assert_eq!(trials.tests[1].marks.xfail_reason(), Some("bug 123"));
        assert_eq!(trials.tests[0].marks.xfail_reason(), None);
        // The run executes only what this process selected.
        let run: Vec<_> = trials.shared.plan.pairs().collect();
        assert_eq!(
            run,
            [(Some("b"), "generic/001"), (Some("b"), "generic/002")]
        );
        assert!(trials.outcome().is_none());
    }

    #[test]
    fn a_verdict_per_fstests_outcome() {
        let d = tempfile::tempdir().unwrap();
        let entry = |files: &[(&str, &str)]| {
            let dir = d.path().join(format!("{}", files.len()));
            fs::create_dir_all(dir.join("generic")).unwrap();
            for (suffix, text) in files {
                fs::write(dir.join(format!("generic/001.{suffix}")), text).unwrap();
            }
            Entry {
                result: Some(api::salvage(None, "generic/001", &dir)),
                ..Entry::default()
            }
        };
        assert!(verdict("generic/001", &entry(&[])).is_ok());
        let skip = verdict("generic/001", &entry(&[("notrun", "no reflink\n")]));
        assert!(matches!(skip, Err(Error::Skip(ref r)) if r == "no reflink"));
        let fail = verdict(
            "generic/001",
            &entry(&[("out.bad", "QA output\n+y\n"), ("full", "")]),
        );
        let msg = fail.unwrap_err().to_string();
        assert!(
            msg.contains("output mismatch") && msg.contains("+y"),
            "{msg}"
        );
        let never = Entry {
            not_completed: Some("check never started this test".into()),
            ..Entry::default()
        };
        assert!(verdict("generic/001", &never).is_err());
    }
}
