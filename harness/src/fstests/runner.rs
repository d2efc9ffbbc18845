//! One fstests run: the planned tests executed in as many VMs as it takes.
//!
//! Each attempt boots a fresh VM from the `fstests` image with the tree
//! (read-only), a results disk holding the driver, and sparse test and
//! scratch devices; starts the driver in the background and follows the
//! kernel-log markers (see [`driver`]). Every test gets a
//! deadline when its `run fstests` line appears ([`Deadlines`]). A test
//! that passes its deadline (hang) or takes the kernel down (crash) ends
//! the attempt: it is recorded as a [`Death`] with the console and, for a
//! hang, the guest's blocked tasks; the results disk is read back, and the
//! next attempt runs the tests not completed yet, the culprit first unless
//! it already killed [`MAX_DEATHS`] VMs.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(super) use crate::fstests::attempt::{Attempt, Watched};
pub use crate::fstests::attempt::{Death, DeathKind};
use crate::fstests::config::{Plan, PlanSection};
use crate::fstests::results_api::{self as api, FsResults, FsTest};
use crate::fstests::{disk, FstestsConfig};
use crate::{Deadline, Error, Result, TestContext};

/// How many times a test may take its VM down before it is not retried,
/// unless [`FstestsConfig::max_deaths`] says otherwise; also how many VMs
/// in a row may stop with nothing done before a run (or a worker) gives up.
pub const MAX_DEATHS: usize = 2;

/// Per-test and whole-run deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// A test's deadline is `factor` × its last duration in `check.time`...
    pub factor: u32,
    /// ...but never less than this.
    pub floor: Duration,
    /// A test with no history.
    pub unknown: Duration,
    /// From a section's start to its first test (mkfs of the test device).
    pub section_setup: Duration,
    /// The whole run, all attempts.
    pub run: Option<Duration>,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            factor: 5,
            floor: Duration::from_secs(300),
            unknown: Duration::from_secs(1800),
            section_setup: Duration::from_secs(600),
            run: None,
        }
    }
}

impl Deadlines {
    /// The deadline of a test that last took `last` seconds (if known).
    pub fn for_test(&self, last: Option<u64>) -> Duration {
        match last {
            Some(s) => (Duration::from_secs(s) * self.factor).max(self.floor),
            None => self.unknown,
        }
    }
}

/// What happened to one planned (section, test).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// What fstests recorded for its last completed run.
    pub result: Option<FsTest>,
    /// The VMs it took down.
    pub deaths: Vec<Death>,
    /// Why it never completed, if it did not.
    pub not_completed: Option<String>,
    /// The run was interrupted (by this signal) before the test completed:
    /// while it ran, or before it started.
    pub interrupted: Option<i32>,
    /// Outcomes of `--rerun-failures` reruns of a failure.
    pub reruns: Vec<api::FsOutcome>,
}

/// A finished run.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// Per (section, test).
    pub entries: BTreeMap<(Option<String>, String), Entry>,
    /// The results folder of each attempt, read back from its disk.
    pub results_dirs: Vec<PathBuf>,
}

impl RunOutcome {
    /// What fstests recorded for every test that completed, merged over
    /// the attempts.
    pub fn fs_results(&self) -> FsResults {
        api::results_from(
            self.entries
                .values()
                .filter_map(|e| e.result.clone())
                .collect(),
        )
    }

    /// `Interrupted by SIGINT: generic/002 generic/005`: the tests an
    /// interruption kept from completing, after the summary lines (each
    /// with `[section] ` when they are of several sections); `None` when
    /// the run was not interrupted.
    pub fn interrupted_line(&self) -> Option<String> {
        let cut: Vec<(&Option<String>, &String, i32)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.result.is_none())
            .filter_map(|((section, test), e)| Some((section, test, e.interrupted?)))
            .collect();
        let sig = cut.first()?.2;
        let several = cut.iter().any(|(s, _, _)| *s != cut[0].0);
        let tests: Vec<String> = cut
            .iter()
            .map(|(section, test, _)| match section {
                Some(s) if several => format!("[{s}] {test}"),
                _ => test.to_string(),
            })
            .collect();
        Some(format!(
            "Interrupted by {}: {}",
            crate::errors::signal_name(sig),
            tests.join(" ")
        ))
    }
}

/// A test waiting to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Queued {
    /// Index into the plan's sections.
    pub section: usize,
    /// `generic/001`.
    pub test: String,
}

/// Runs `plan` under `ctx` (the VMs belong to it, so its folder keeps
/// their consoles); `progress` gets one line per test.
pub fn run(ctx: &TestContext, cfg: &FstestsConfig, plan: &Plan) -> Result<RunOutcome> {
    let started = Instant::now();
    let run_deadline = cfg.deadlines.run.map_or(Deadline::never(), Deadline::after);
    let cache = ctx.settings().images.cache.clone();
    let history = super::history::load(cfg, &cache);
    let image = ctx.image(&cfg.image)?;
    let tree_img = ctx.artifacts_dir().join("fstests-tree.ext4");
    ctx.output(&format!(
        "fstests: copying {} into a disk image",
        cfg.tree.dir.display()
    ));
    disk::ext4_from_dir(&cfg.tree.dir, &tree_img, "fstests", 16 << 20)?;
    let mut queue: VecDeque<Queued> = plan
        .sections
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.tests.iter().map(move |t| Queued {
                section: i,
                test: t.clone(),
            })
        })
        .collect();
    let mut out = RunOutcome::default();
    for (s, t) in plan.pairs() {
        out.entries
            .insert((s.map(str::to_string), t.to_string()), Entry::default());
    }
    // Attempt folders continue the numbering of earlier runs in this
    // folder (reruns of failures).
    let mut attempt = (1..)
        .take_while(|n| ctx.artifacts_dir().join(format!("attempt-{n}")).exists())
        .count();
    if cfg.vms > 1 {
        let shared = super::shard::Shared {
            ctx,
            cfg,
            plan,
            image: &image,
            tree_img: &tree_img,
            history: &history,
            run_deadline,
            started,
        };
        let out = shared.run(queue, out, attempt)?;
        super::history::record(&cache, &cfg.tree.dir, &out.results_dirs);
        return Ok(out);
    }
    // Attempts in a row that stopped with nothing done.
    let mut stalls = 0;
    while !queue.is_empty() {
        if let Some(sig) = ctx.settings().interrupts.interrupted() {
            interrupted(&mut out, plan, queue.drain(..), sig);
            break;
        }
        if run_deadline.expired() {
            for q in queue.drain(..) {
                let e = entry(&mut out, plan, &q);
                e.not_completed = Some(format!(
                    "not run: the whole-run deadline passed after {:.0?}",
                    started.elapsed()
                ));
            }
            break;
        }
        attempt += 1;
        let dir = ctx.artifacts_dir().join(format!("attempt-{attempt}"));
        let sections = sections_of(plan, &queue);
        let watch = Attempt {
            ctx,
            cfg,
            image: &image,
            tree_img: &tree_img,
            dir: &dir,
            number: attempt,
            history: &history,
            run_deadline,
        }
        .run(&sections);
        let watch = match (watch, ctx.settings().interrupts.interrupted()) {
            (Ok(w), _) => w,
            // Interrupted while the VM booted: nothing of it to read.
            (Err(_), Some(sig)) => {
                interrupted(&mut out, plan, queue.drain(..), sig);
                break;
            }
            (Err(e), None) => return Err(e),
        };
        out.results_dirs.push(watch.results.clone());
        let progress = !watch.completed.is_empty() || watch.death.is_some();
        let stopped = watch.stopped.clone();
        absorb(cfg.max_deaths, &mut out, plan, &mut queue, &sections, watch);
        if let Some(why) = stopped {
            stalls = if progress { 0 } else { stalls + 1 };
            if stalls >= MAX_DEATHS {
                for q in queue.drain(..) {
                    entry(&mut out, plan, &q).not_completed = Some(why.clone());
                }
            }
        }
    }
    super::history::record(&cache, &cfg.tree.dir, &out.results_dirs);
    Ok(out)
}

/// The queue grouped into sections for one attempt, in plan order.
fn sections_of(plan: &Plan, queue: &VecDeque<Queued>) -> Vec<(usize, PlanSection)> {
    let mut out: Vec<(usize, PlanSection)> = Vec::new();
    for q in queue {
        match out.last_mut() {
            Some((i, s)) if *i == q.section => s.tests.push(q.test.clone()),
            _ => {
                let src = &plan.sections[q.section];
                out.push((
                    q.section,
                    PlanSection {
                        name: src.name.clone(),
                        fstyp: src.fstyp.clone(),
                        tests: vec![q.test.clone()],
                    },
                ));
            }
        }
    }
    out
}

/// Records that the run was interrupted by `sig` before the tests of
/// `left` completed (they never started, or their VM was stopped).
pub(super) fn interrupted(
    out: &mut RunOutcome,
    plan: &Plan,
    left: impl Iterator<Item = Queued>,
    sig: i32,
) {
    for q in left {
        let e = entry(out, plan, &q);
        if e.result.is_none() && e.interrupted.is_none() {
            e.interrupted = Some(sig);
            e.not_completed = Some(format!("not run: the run was {}", Error::Interrupted(sig)));
        }
    }
}

pub(super) fn entry<'a>(out: &'a mut RunOutcome, plan: &Plan, q: &Queued) -> &'a mut Entry {
    let key = (plan.sections[q.section].name.clone(), q.test.clone());
    out.entries.entry(key).or_default()
}

/// Records that `q` took its VM down; returns whether it may run again
/// (it has killed fewer than `max_deaths` VMs), else says why not.
pub(super) fn record_death(
    out: &mut RunOutcome,
    plan: &Plan,
    q: &Queued,
    death: Death,
    max_deaths: usize,
) -> bool {
    let e = entry(out, plan, q);
    if let DeathKind::Interrupted(sig) = death.kind {
        // Not the test's doing: no death, no retry.
        e.interrupted = Some(sig);
        e.not_completed = Some(death.detail);
        return false;
    }
    e.deaths.push(death);
    if e.deaths.len() < max_deaths.max(1) {
        return true;
    }
    e.not_completed = Some(match e.deaths.len() {
        1 => "took its VM down; not retried (max_deaths 1)".to_string(),
        n => format!("took its VM down {n} times; not retried again"),
    });
    false
}

/// Moves what an attempt saw into the outcome and the queue.
fn absorb(
    max_deaths: usize,
    out: &mut RunOutcome,
    plan: &Plan,
    queue: &mut VecDeque<Queued>,
    sections: &[(usize, PlanSection)],
    watched: Watched,
) {
    let parsed = FsResults::load(&watched.results).unwrap_or_default();
    for (si, test, took) in &watched.completed {
        let (plan_index, s) = &sections[*si];
        let name = s.name.as_deref();
        let report_dir = match name {
            Some(n) => watched.results.join(n),
            None => watched.results.clone(),
        };
        let result = if watched.sections_ended.contains(si) {
            api::result_of(&parsed, name, test).cloned()
        } else {
            None
        }
        .unwrap_or_else(|| {
            // check did not finish (the VM died or the run was
            // interrupted): its files, and the time the host saw.
            let mut r = api::salvage(name, test, &report_dir);
            r.duration = r.duration.or(Some(*took));
            r
        });
        let q = Queued {
            section: *plan_index,
            test: test.clone(),
        };
        entry(out, plan, &q).result = Some(result);
        queue.retain(|x| *x != q);
    }
    if let Some((si, test, death)) = watched.death {
        let q = Queued {
            section: sections[si].0,
            test,
        };
        if !record_death(out, plan, &q, death, max_deaths) {
            queue.retain(|x| *x != q);
        }
    } else if watched.stopped.is_none() {
        // The run ended: anything left never ran (check skipped it).
        for q in queue.drain(..) {
            let e = entry(out, plan, &q);
            if e.result.is_none() {
                e.not_completed = Some("check never started this test".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_scale_history_with_a_floor() {
        let d = Deadlines {
            factor: 5,
            floor: Duration::from_secs(60),
            unknown: Duration::from_secs(900),
            ..Deadlines::default()
        };
        assert_eq!(d.for_test(Some(2)), Duration::from_secs(60));
        assert_eq!(d.for_test(Some(100)), Duration::from_secs(500));
        assert_eq!(d.for_test(None), Duration::from_secs(900));
    }

    /// A plan of one section (`name`) with generic/001-003, all queued.
    fn one_section(name: Option<&str>) -> (Plan, VecDeque<Queued>) {
        let tests = ["generic/001", "generic/002", "generic/003"].map(String::from);
        let queue = tests
            .iter()
            .map(|t| Queued {
                section: 0,
                test: t.clone(),
            })
            .collect();
        let plan = Plan {
            sections: vec![PlanSection {
                name: name.map(String::from),
                fstyp: "ext4".into(),
                tests: tests.to_vec(),
            }],
        };
        (plan, queue)
    }

    #[test]
    fn a_test_that_kills_twice_is_not_retried() {
        let (plan, mut queue) = one_section(Some("s"));
        let mut out = RunOutcome::default();
        let d = tempfile::tempdir().unwrap();
        let death = || Death {
            kind: DeathKind::Hang(Duration::from_secs(1)),
            attempt: 1,
            detail: String::new(),
            files: vec![],
        };
        for _ in 0..2 {
            let sections = sections_of(&plan, &queue);
            let watched = Watched {
                completed: vec![(0, "generic/001".into(), Duration::from_secs(7))],
                sections_ended: vec![],
                death: Some((0, "generic/002".into(), death())),
                stopped: None,
                results: d.path().into(),
            };
            absorb(MAX_DEATHS, &mut out, &plan, &mut queue, &sections, watched);
        }
        let left: Vec<&str> = queue.iter().map(|q| q.test.as_str()).collect();
        assert_eq!(left, ["generic/003"]);
        let e = &out.entries[&(Some("s".into()), "generic/002".into())];
        assert_eq!(e.deaths.len(), 2);
        assert!(e.not_completed.as_ref().unwrap().contains("not retried"));
        let ok = &out.entries[&(Some("s".into()), "generic/001".into())];
        assert_eq!(ok.result.as_ref().unwrap().outcome, api::FsOutcome::Passed);
        // check never wrote its result.xml: the host's time stands in.
        assert_eq!(
            ok.result.as_ref().unwrap().duration,
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn an_interrupted_run_is_no_death_and_reports_what_was_left() {
        let (plan, mut queue) = one_section(None);
        let mut out = RunOutcome::default();
        let d = tempfile::tempdir().unwrap();
        let sections = sections_of(&plan, &queue);
        let watched = Watched {
            completed: vec![(0, "generic/001".into(), Duration::from_secs(3))],
            sections_ended: vec![],
            death: Some((
                0,
                "generic/002".into(),
                Death {
                    kind: DeathKind::Interrupted(libc::SIGINT),
                    attempt: 1,
                    detail: "generic/002 was running when the run was interrupted by SIGINT".into(),
                    files: vec![],
                },
            )),
            stopped: None,
            results: d.path().into(),
        };
        absorb(MAX_DEATHS, &mut out, &plan, &mut queue, &sections, watched);
        // Not requeued: only the test never started is left.
        let left: Vec<&str> = queue.iter().map(|q| q.test.as_str()).collect();
        assert_eq!(left, ["generic/003"]);
        interrupted(&mut out, &plan, queue.drain(..), libc::SIGINT);
        let e = |t: &str| &out.entries[&(None, t.to_string())];
        assert!(e("generic/002").deaths.is_empty());
        assert_eq!(e("generic/002").interrupted, Some(libc::SIGINT));
        assert!(e("generic/002")
            .not_completed
            .as_ref()
            .unwrap()
            .contains("was running"));
        assert_eq!(e("generic/003").interrupted, Some(libc::SIGINT));
        assert!(e("generic/003")
            .not_completed
            .as_ref()
            .unwrap()
            .contains("not run"));
        assert_eq!(e("generic/001").interrupted, None);
        assert_eq!(
            e("generic/001").result.as_ref().unwrap().outcome,
            api::FsOutcome::Passed
        );
        assert_eq!(
            out.interrupted_line().as_deref(),
            Some("Interrupted by SIGINT: generic/002 generic/003")
        );
        assert_eq!(RunOutcome::default().interrupted_line(), None);
        // Of several sections: each says its own.
        out.entries
            .entry((Some("xfs".into()), "xfs/001".into()))
            .or_default()
            .interrupted = Some(libc::SIGINT);
        assert_eq!(
            out.interrupted_line().as_deref(),
            Some("Interrupted by SIGINT: generic/002 generic/003 [xfs] xfs/001")
        );
    }
}
