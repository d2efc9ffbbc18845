//! A sharded run (`--vms N`): N VMs take their tests one at a time from
//! one shared queue on the host.
//!
//! The queue is ordered longest first (by the durations of the last runs,
//! `check.time`; a test never run counts as longest), so the long tests
//! start early and the short ones fill the gaps at the end. A VM prefers
//! the next test of the section it ran last (a change of section means a
//! `mkfs` of the test device) and otherwise takes the head of the queue.
//!
//! Each VM runs the driver in [`driver::Mode::Queue`]: the host writes one
//! job (`N section fstyp test`) into its FIFO when it is idle, `check`
//! runs that one test with its own `RESULT_BASE` (`results/job-N`), and
//! the driver marks the job's end in the kernel log. A test that hangs or
//! crashes its VM is recorded as a death, goes back to the queue unless it
//! killed [`MAX_DEATHS`] VMs, and the VM's worker boots a fresh VM; the
//! tests it had not taken yet were never out of the queue, so no test is
//! lost. The VMs' devices are their own (sparse files named after the
//! attempt).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::fstests::config::{device_key, Plan, PlanSection};
use crate::fstests::driver::{self, Mode};
use crate::fstests::results_api::{self as api, FsResults};
use crate::fstests::runner::{
    entry, interrupted, record_death, Attempt, Death, Queued, RunOutcome, MAX_DEATHS,
};
use crate::fstests::FstestsConfig;
use crate::{Deadline, Error, Image, Result, Session, TestContext};

/// How long a job may take to reach the driver (it reads its FIFO as soon
/// as the previous test ended).
const HAND_OVER: Duration = Duration::from_secs(120);

/// What every worker of a sharded run shares.
pub(super) struct Shared<'a> {
    pub ctx: &'a TestContext,
    pub cfg: &'a FstestsConfig,
    pub plan: &'a Plan,
    pub image: &'a Image,
    pub tree_img: &'a std::path::Path,
    pub history: &'a std::collections::BTreeMap<String, u64>,
    pub run_deadline: Deadline,
    pub started: Instant,
}

/// The queue and the outcome, under one lock.
struct State {
    queue: Vec<Queued>,
    out: RunOutcome,
    /// The last attempt number handed out.
    attempts: usize,
    /// The last job number handed out.
    jobs: usize,
    /// Errors that ended a worker (a VM that would not boot).
    errors: Vec<String>,
}

/// How one job ended.
enum JobEnd {
    /// The driver marked its end.
    Done,
    /// The VM died under it.
    Died(Death),
}

impl Shared<'_> {
    /// Runs `queue` on `cfg.vms` VMs; attempt folders are numbered after
    /// `attempts` (earlier runs in the same folder).
    pub fn run(
        &self,
        queue: VecDeque<Queued>,
        out: RunOutcome,
        attempts: usize,
    ) -> Result<RunOutcome> {
        let state = Mutex::new(State {
            queue: longest_first(queue.into(), self.history),
            out,
            attempts,
            jobs: 0,
            errors: Vec::new(),
        });
        let tests = state_len(&state);
        let vms = self.cfg.vms.min(tests).max(1);
        self.ctx.output(&format!(
            "fstests: {tests} test(s) on {vms} VMs from one queue, longest first"
        ));
        std::thread::scope(|s| {
            let workers: Vec<_> = (1..=vms)
                .map(|w| {
                    let state = &state;
                    s.spawn(move || self.worker(w, state))
                })
                .collect();
            for h in workers {
                if h.join().is_err() {
                    lock(&state)
                        .errors
                        .push("an fstests worker panicked".into());
                }
            }
        });
        let mut st = state.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(sig) = self.ctx.settings().interrupts.interrupted() {
            // What ran is reported; what did not says why.
            let left = std::mem::take(&mut st.queue);
            interrupted(&mut st.out, self.plan, left.into_iter(), sig);
            return Ok(st.out);
        }
        if !st.queue.is_empty() {
            // Every worker gave up: say why on each test left.
            let why = if st.errors.is_empty() {
                "no VM was left to run it".to_string()
            } else {
                format!("no VM could run it: {}", st.errors.join("; "))
            };
            if st.errors.len() >= vms && st.out.entries.values().all(|e| e.result.is_none()) {
                return Err(Error::Check(why));
            }
            for q in std::mem::take(&mut st.queue) {
                entry(&mut st.out, self.plan, &q).not_completed = Some(why.clone());
            }
        }
        Ok(st.out)
    }

    /// Worker `w`: boots VMs and feeds them tests until the queue is empty.
    fn worker(&self, w: usize, state: &Mutex<State>) -> Result<()> {
        // VMs in a row that stopped with nothing done.
        let mut stalls = 0;
        loop {
            if self.ctx.settings().interrupts.interrupted().is_some() {
                return Ok(());
            }
            let number = {
                let mut st = lock(state);
                if st.queue.is_empty() {
                    return Ok(());
                }
                if self.run_deadline.expired() {
                    let why = format!(
                        "not run: the whole-run deadline passed after {:.0?}",
                        self.started.elapsed()
                    );
                    for q in std::mem::take(&mut st.queue) {
                        entry(&mut st.out, self.plan, &q).not_completed = Some(why.clone());
                    }
                    return Ok(());
                }
                st.attempts += 1;
                st.attempts
            };
            let dir = self.ctx.artifacts_dir().join(format!("attempt-{number}"));
            let attempt = Attempt {
                ctx: self.ctx,
                cfg: self.cfg,
                image: self.image,
                tree_img: self.tree_img,
                dir: &dir,
                number,
                history: self.history,
                run_deadline: self.run_deadline,
            };
            match self.one_vm(w, &attempt, state) {
                Ok(true) => stalls = 0,
                Ok(false) => stalls += 1,
                Err(_) if self.ctx.settings().interrupts.interrupted().is_some() => return Ok(()),
                Err(e) => {
                    // A VM that would not boot (a TCG guest on a loaded
                    // host can stall in its boot): kept with the attempt,
                    // and the worker tries a fresh VM.
                    let msg = format!("VM {w} (attempt {number}): {e}");
                    self.ctx.output(&format!("fstests: {msg}"));
                    let _ = std::fs::create_dir_all(&dir);
                    let _ = std::fs::write(dir.join("error.txt"), format!("{msg}\n"));
                    lock(state).errors.push(msg);
                    stalls += 1;
                }
            }
            if stalls >= MAX_DEATHS {
                let msg = format!("VM {w} stopped {stalls} times in a row with no test done");
                self.ctx
                    .output(&format!("fstests: {msg}; its worker gives up"));
                lock(state).errors.push(msg.clone());
                return Err(Error::Check(msg));
            }
        }
    }

    /// One VM of worker `w`: runs jobs until the queue is empty or the VM
    /// dies; returns whether it got anything done.
    fn one_vm(&self, w: usize, attempt: &Attempt<'_>, state: &Mutex<State>) -> Result<bool> {
        let booted = attempt.boot(
            Mode::Queue,
            &self.plan.sections,
            &format!("the shared queue (VM {w} of {})", self.cfg.vms),
        )?;
        let vm = Arc::clone(&booted.vm);
        let mut done: Vec<(usize, Queued)> = Vec::new();
        let mut death: Option<(Queued, Death)> = None;
        let mut stopped: Option<String> = None;
        let mut last_section = None;
        loop {
            let job = {
                let mut st = lock(state);
                take(&mut st.queue, last_section).map(|q| {
                    st.jobs += 1;
                    (st.jobs, q)
                })
            };
            let Some((n, q)) = job else {
                self.finish_driver(&vm);
                break;
            };
            last_section = Some(q.section);
            let s: &PlanSection = &self.plan.sections[q.section];
            let console = vm.machine().console();
            let from = console.position();
            let key = device_key(&self.cfg.layout, s.name.as_deref());
            let job = driver::Job {
                number: n,
                section: s.name.as_deref(),
                fstyp: &s.fstyp,
                devices: &key,
                test: &q.test,
            };
            let handed = vm.run_timeout(&driver::job_command(Some(job)), HAND_OVER);
            // The test may have started while the command waited for its
            // own end on the console: look at that text again.
            console.rewind(from);
            if let Err(e) = handed {
                stopped = Some(format!("the driver did not take job {n} ({}): {e}", q.test));
                lock(state).queue.insert(0, q);
                break;
            }
            match self.watch_job(attempt, &vm, n, &q) {
                JobEnd::Done => done.push((n, q)),
                JobEnd::Died(d) => {
                    death = Some((q, d));
                    break;
                }
            }
        }
        let clean = death.is_none() && stopped.is_none();
        let results = attempt.end(booted, clean)?;
        let progress = !done.is_empty() || death.is_some();
        settle(
            self.cfg.max_deaths,
            &mut lock(state),
            self.plan,
            &results,
            done,
            death,
        );
        if let Some(why) = stopped {
            self.ctx.output(&format!("fstests: VM {w}: {why}"));
        }
        Ok(progress)
    }

    /// Follows job `n` (`q`) on the console until the driver marks its end
    /// or the VM dies.
    fn watch_job(&self, attempt: &Attempt<'_>, vm: &Arc<Session>, n: usize, q: &Queued) -> JobEnd {
        let refs: Vec<&regex::bytes::Regex> = driver::queue_markers().iter().collect();
        let console = vm.machine().console();
        let label = self.plan.sections[q.section]
            .name
            .as_ref()
            .map(|l| format!("[{l}] "))
            .unwrap_or_default();
        // Until the test starts: mkfs of the test device, check's start-up.
        let mut limit = self.cfg.deadlines.section_setup;
        let mut deadline = Deadline::after(limit);
        let mut started: Option<Instant> = None;
        loop {
            match console.expect_any(&refs, deadline.min(self.run_deadline)) {
                Ok((0, m)) => {
                    let test = m.capture_str(1).unwrap_or_default();
                    limit = self
                        .cfg
                        .deadlines
                        .for_test(self.history.get(&test).copied());
                    self.ctx.output(&format!(
                        "fstests: {label}{test} started on VM {} (deadline {}s)",
                        attempt.number,
                        limit.as_secs()
                    ));
                    deadline = Deadline::after(limit);
                    started = Some(Instant::now());
                }
                Ok((1, m)) if m.capture_str(1).as_deref() == Some(&n.to_string()) => {
                    if let Some(at) = started {
                        attempt.done(&q.test, at);
                    }
                    return JobEnd::Done;
                }
                // Another job's end (cannot happen: one job at a time) or
                // the driver's end (it was not sent `end`): keep waiting
                // until the deadline says otherwise.
                Ok(_) => {}
                Err(e) => {
                    return JobEnd::Died(attempt.death(vm, &q.test, e, limit));
                }
            }
        }
    }

    /// Tells the driver there is no more work and waits for it to sync.
    fn finish_driver(&self, vm: &Arc<Session>) {
        let console = vm.machine().console();
        let from = console.position();
        if vm
            .run_timeout(&driver::job_command(None), HAND_OVER)
            .is_err()
        {
            return;
        }
        console.rewind(from);
        let _ = console.expect(
            &driver::queue_markers()[2],
            self.cfg.deadlines.section_setup,
        );
    }
}

/// Moves what one VM did into the state: each completed job's result
/// (from its `job-N` folder under `results`; from the files fstests left
/// when its `result.xml` is missing), and the death of the test it died
/// under, which goes back to the head of the queue unless it has killed
/// `max_deaths` VMs.
fn settle(
    max_deaths: usize,
    st: &mut State,
    plan: &Plan,
    results: &std::path::Path,
    done: Vec<(usize, Queued)>,
    death: Option<(Queued, Death)>,
) {
    for (n, q) in done {
        let dir = results.join(driver::job_dir(n));
        let name = plan.sections[q.section].name.clone();
        let parsed = FsResults::load(&dir).unwrap_or_default();
        let report_dir = match &name {
            Some(s) => dir.join(s),
            None => dir.clone(),
        };
        let result = api::result_of(&parsed, name.as_deref(), &q.test)
            .cloned()
            .unwrap_or_else(|| api::salvage(name.as_deref(), &q.test, &report_dir));
        entry(&mut st.out, plan, &q).result = Some(result);
        st.out.results_dirs.push(dir);
    }
    if let Some((q, d)) = death {
        if record_death(&mut st.out, plan, &q, d, max_deaths) {
            // First in line: the next VM to ask retries it.
            st.queue.insert(0, q);
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn state_len(state: &Mutex<State>) -> usize {
    lock(state).queue.len()
}

/// `queue` ordered longest first by `history` (a test without one first
/// of all: it may be long), plan order among equals.
fn longest_first(
    mut queue: Vec<Queued>,
    history: &std::collections::BTreeMap<String, u64>,
) -> Vec<Queued> {
    queue.sort_by_key(|q| std::cmp::Reverse(history.get(&q.test).copied().unwrap_or(u64::MAX)));
    queue
}

/// The next test for a VM that last ran a test of `section`: the first of
/// that section in the queue, else the head.
fn take(queue: &mut Vec<Queued>, section: Option<usize>) -> Option<Queued> {
    if queue.is_empty() {
        return None;
    }
    let i = section
        .and_then(|s| queue.iter().position(|q| q.section == s))
        .unwrap_or(0);
    Some(queue.remove(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(section: usize, test: &str) -> Queued {
        Queued {
            section,
            test: test.into(),
        }
    }

    #[test]
    fn the_queue_runs_longest_first_unknown_first_plan_order_among_equals() {
        let history = [("generic/001", 5), ("generic/002", 50), ("generic/003", 5)]
            .into_iter()
            .map(|(t, s)| (t.to_string(), s))
            .collect();
        let queue = vec![
            q(0, "generic/001"),
            q(0, "generic/002"),
            q(0, "generic/003"),
            q(0, "generic/004"),
        ];
        let sorted: Vec<String> = longest_first(queue, &history)
            .into_iter()
            .map(|q| q.test)
            .collect();
        assert_eq!(
            sorted,
            ["generic/004", "generic/002", "generic/001", "generic/003"]
        );
    }

    #[test]
    fn a_dead_vm_loses_no_test_and_a_double_killer_is_not_retried() {
        use crate::fstests::results_api::FsOutcome;
        use crate::fstests::runner::DeathKind;
        let plan = Plan {
            sections: vec![PlanSection {
                name: Some("ext4".into()),
                fstyp: "ext4".into(),
                tests: ["generic/001", "generic/002", "generic/003", "generic/004"]
                    .map(String::from)
                    .to_vec(),
            }],
        };
        let mut st = State {
            queue: vec![q(0, "generic/004")],
            out: RunOutcome::default(),
            attempts: 0,
            jobs: 0,
            errors: Vec::new(),
        };
        // VM 1 ran job 1 (generic/001: not run, as its files say) and died
        // under generic/002; generic/003 had gone to another VM; 004 was
        // still queued.
        let results = tempfile::tempdir().unwrap();
        let job = results.path().join("job-1/ext4/generic");
        std::fs::create_dir_all(&job).unwrap();
        std::fs::write(job.join("001.notrun"), "no reflink\n").unwrap();
        let death = || Death {
            kind: DeathKind::Crash("BUG".into()),
            attempt: 1,
            detail: String::new(),
            files: vec![],
        };
        settle(
            MAX_DEATHS,
            &mut st,
            &plan,
            results.path(),
            vec![(1, q(0, "generic/001"))],
            Some((q(0, "generic/002"), death())),
        );
        let e = |st: &State, t: &str| st.out.entries[&(Some("ext4".into()), t.into())].clone();
        let first = e(&st, "generic/001").result.unwrap();
        assert_eq!(first.outcome, FsOutcome::NotRun);
        assert_eq!(first.reason.as_deref(), Some("no reflink"));
        assert_eq!(st.out.results_dirs, [results.path().join("job-1")]);
        // The culprit is first in line again; nothing else was lost.
        let queued: Vec<&str> = st.queue.iter().map(|q| q.test.as_str()).collect();
        assert_eq!(queued, ["generic/002", "generic/004"]);
        // It kills a second VM: recorded twice, not queued again.
        let taken = take(&mut st.queue, Some(0)).unwrap();
        settle(
            MAX_DEATHS,
            &mut st,
            &plan,
            results.path(),
            vec![],
            Some((taken, death())),
        );
        let culprit = e(&st, "generic/002");
        assert_eq!(culprit.deaths.len(), 2);
        assert!(culprit.not_completed.unwrap().contains("not retried again"));
        let queued: Vec<&str> = st.queue.iter().map(|q| q.test.as_str()).collect();
        assert_eq!(queued, ["generic/004"]);
    }

    #[test]
    fn a_vm_keeps_to_its_section_while_it_has_tests() {
        let mut queue = vec![q(1, "a"), q(0, "b"), q(1, "c"), q(0, "d")];
        assert_eq!(take(&mut queue, Some(0)).unwrap().test, "b");
        assert_eq!(take(&mut queue, Some(0)).unwrap().test, "d");
        // Section 0 is used up: the head of the queue.
        assert_eq!(take(&mut queue, Some(0)).unwrap().test, "a");
        assert_eq!(take(&mut queue, None).unwrap().test, "c");
        assert!(take(&mut queue, Some(1)).is_none());
    }
}
