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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::console::ExpectError;
use crate::fstests::config::{
    device_key, device_sets, local_config, DeviceSet, Layout, Plan, PlanSection,
};
use crate::fstests::driver::{self, serial};
use crate::fstests::results_api::{self as api, FsResults, FsTest};
use crate::fstests::{disk, FstestsConfig};
use crate::{Deadline, Error, Image, Result, Session, TestContext};

/// How many times a test may take its VM down before it is not retried.
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

/// How a VM died under a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeathKind {
    /// No progress within the test's deadline.
    Hang(Duration),
    /// The kernel crashed (title of the report), or QEMU exited.
    Crash(String),
}

/// A VM that died while a test ran.
#[derive(Debug, Clone)]
pub struct Death {
    /// Hang or crash.
    pub kind: DeathKind,
    /// Which attempt (1-based).
    pub attempt: usize,
    /// Console tail, crash report, guest diagnostics.
    pub detail: String,
    /// Files written for it (console tail, diagnostics).
    pub files: Vec<PathBuf>,
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
            return Err(Error::Interrupted(sig));
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
        .run(&sections)?;
        out.results_dirs.push(watch.results.clone());
        let progress = !watch.completed.is_empty() || watch.death.is_some();
        let stopped = watch.stopped.clone();
        absorb(&mut out, plan, &mut queue, &sections, watch);
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

pub(super) fn entry<'a>(out: &'a mut RunOutcome, plan: &Plan, q: &Queued) -> &'a mut Entry {
    let key = (plan.sections[q.section].name.clone(), q.test.clone());
    out.entries.entry(key).or_default()
}

/// What one attempt saw.
#[derive(Debug)]
struct Watched {
    /// Tests that completed, per attempt-section index.
    completed: Vec<(usize, String)>,
    /// Attempt-section indexes whose `check` ended (their result.xml exists).
    sections_ended: Vec<usize>,
    /// The test that killed the VM, with how.
    death: Option<(usize, String, Death)>,
    /// Why the VM stopped early with no test to blame (between a
    /// section's last test and its end marker, or interrupted).
    stopped: Option<String>,
    /// Where the results disk was read back to (`.../results`).
    results: PathBuf,
}

/// Moves what an attempt saw into the outcome and the queue.
fn absorb(
    out: &mut RunOutcome,
    plan: &Plan,
    queue: &mut VecDeque<Queued>,
    sections: &[(usize, PlanSection)],
    watched: Watched,
) {
    let parsed = FsResults::load(&watched.results).unwrap_or_default();
    for (si, test) in &watched.completed {
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
        .unwrap_or_else(|| api::salvage(name, test, &report_dir));
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
        let e = entry(out, plan, &q);
        e.deaths.push(death);
        if e.deaths.len() >= MAX_DEATHS {
            e.not_completed = Some(format!(
                "took its VM down {} times; not retried again",
                e.deaths.len()
            ));
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

/// One VM and the tests it runs.
pub(super) struct Attempt<'a> {
    pub ctx: &'a TestContext,
    pub cfg: &'a FstestsConfig,
    pub image: &'a Image,
    pub tree_img: &'a Path,
    pub dir: &'a Path,
    pub number: usize,
    pub history: &'a BTreeMap<String, u64>,
    pub run_deadline: Deadline,
}

/// A VM an attempt booted, with the disks it owns.
pub(super) struct Booted {
    /// The guest, logged in as root, its driver started.
    pub vm: Arc<Session>,
    results_img: PathBuf,
    /// Path, virtio serial, and whether bootrig made it (a sparse file to
    /// delete) rather than the user.
    devices: Vec<(PathBuf, String, bool)>,
}

impl Attempt<'_> {
    fn run(&self, sections: &[(usize, PlanSection)]) -> Result<Watched> {
        let plan: Vec<PlanSection> = sections.iter().map(|(_, s)| s.clone()).collect();
        let tests = plan.iter().map(|s| s.tests.len()).sum::<usize>();
        let booted = self.boot(driver::Mode::Batch, &plan, &format!("{tests} test(s)"))?;
        let mut watched = self.watch(&booted.vm, sections);
        watched.results = self.end(booted, watched.death.is_none())?;
        Ok(watched)
    }

    /// Writes the results disk (driver in `mode`, `local.config`, the
    /// plan), makes the devices, boots the VM, logs in as root and starts
    /// the driver; `what` says what the VM is for in the progress line.
    pub(super) fn boot(
        &self,
        mode: driver::Mode,
        plan: &[PlanSection],
        what: &str,
    ) -> Result<Booted> {
        let io = |what: &str, e| Error::io(format!("{what} in {}", self.dir.display()), e);
        let input = self.dir.join("disk");
        std::fs::create_dir_all(&input).map_err(|e| io("creating the results disk folder", e))?;
        let config = match &self.cfg.layout {
            Layout::Sections(s) => local_config(s, &self.cfg.devices),
            Layout::LocalConfig(p) => std::fs::read_to_string(p)
                .map_err(|e| Error::io(format!("reading {}", p.display()), e))?,
        };
        let sets = device_sets(&self.cfg.layout, &self.cfg.devices);
        let keys: Vec<String> = plan
            .iter()
            .map(|s| device_key(&self.cfg.layout, s.name.as_deref()))
            .collect();
        driver::write_inputs(
            &input,
            &driver::Inputs {
                mode,
                local_config: &config,
                sections: plan,
                keys: &keys,
                sets: &sets,
                iterations: self.cfg.selection.iterations,
                exact_order: self.cfg.selection.exact_order,
                scheduler: self.cfg.devices.scheduler.as_deref(),
            },
        )?;
        let results_img = self.dir.join("results.ext4");
        disk::ext4_from_dir(&input, &results_img, "results", 512 << 20)?;
        let devices = self.make_devices(&sets)?;
        let mut machine = self
            .image
            .machine_config(&format!("fstests-{}", self.number), None)
            .with_memory_mib(self.cfg.memory_mib)
            .with_cpus(self.cfg.cpus);
        machine = machine.with_extra_args(drive(self.tree_img, serial::TREE, true));
        machine = machine.with_extra_args(drive(&results_img, serial::RESULTS, false));
        for (path, serial, _) in &devices {
            machine = machine.with_extra_args(drive(path, serial, false));
        }
        self.ctx.output(&format!(
            "fstests: attempt {} boots a VM for {what}",
            self.number
        ));
        let started = self.ctx.boot(machine).and_then(|vm| {
            let login = self.image.manifest.login.clone();
            let (user, password) =
                login.map_or(("root".into(), "root".into()), |c| (c.user, c.password));
            vm.login(&user, &password)?;
            if user != "root" {
                vm.become_root()?;
            }
            vm.succeed(&driver::start_command(mode))?;
            Ok(vm)
        });
        match started {
            Ok(vm) => Ok(Booted {
                vm,
                results_img,
                devices,
            }),
            Err(e) => {
                // Nothing ran: the disks made for it go.
                for (path, _, made) in &devices {
                    if *made {
                        let _ = std::fs::remove_file(path);
                    }
                }
                let _ = std::fs::remove_file(&results_img);
                Err(e)
            }
        }
    }

    /// Ends the VM (shut down cleanly if `clean`, else killed), removes
    /// the sparse devices, reads the results disk back; returns where the
    /// results went (`<attempt>/results`).
    pub(super) fn end(&self, booted: Booted, clean: bool) -> Result<PathBuf> {
        let vm = booted.vm;
        if clean {
            let _ = vm.run(&format!("sync; umount {}", driver::RESULTS_MNT));
            let _ = vm.shutdown(Duration::from_secs(60));
        } else {
            vm.machine().kill();
        }
        for (path, _, made) in &booted.devices {
            if *made {
                let _ = std::fs::remove_file(path);
            }
        }
        disk::read_back(&booted.results_img, driver::LOGS_SUBDIR, self.dir)?;
        let results = disk::read_back(&booted.results_img, driver::RESULTS_SUBDIR, self.dir)?;
        let _ = std::fs::remove_file(&booted.results_img);
        Ok(results)
    }

    /// The test, scratch (or pool) and logwrites devices of every device
    /// set: the user's paths as they are, else sparse files made here.
    fn make_devices(&self, sets: &[DeviceSet]) -> Result<Vec<(PathBuf, String, bool)>> {
        let tag = format!("{}-{}", std::process::id(), self.number);
        let mut out = Vec::new();
        for set in sets {
            let d = &set.devices;
            if !d.paths.is_empty() {
                // Existing files or block devices, checked by validate.
                out.extend(
                    d.paths
                        .iter()
                        .cloned()
                        .zip(set.serials())
                        .map(|(p, s)| (p, s, false)),
                );
                continue;
            }
            let base = d.dir.clone().unwrap_or_else(|| self.dir.to_path_buf());
            std::fs::create_dir_all(&base)
                .map_err(|e| Error::io(format!("creating {}", base.display()), e))?;
            for s in set.serials() {
                let path = base.join(format!("{s}-{tag}.raw"));
                disk::sparse(&path, d.size)?;
                out.push((path, s, true));
            }
        }
        Ok(out)
    }

    /// Follows the markers until the driver is done or the VM dies.
    fn watch(&self, vm: &Arc<Session>, sections: &[(usize, PlanSection)]) -> Watched {
        let res: Vec<regex::bytes::Regex> = driver::marker_patterns()
            .iter()
            .map(|p| regex::bytes::Regex::new(p).expect("marker patterns are valid"))
            .collect();
        let refs: Vec<&regex::bytes::Regex> = res.iter().collect();
        let mut w = Watched {
            completed: Vec::new(),
            sections_ended: Vec::new(),
            death: None,
            stopped: None,
            results: PathBuf::new(),
        };
        let mut section = 0usize;
        let mut current: Option<(String, Instant, Duration)> = None;
        let mut deadline = Deadline::after(self.cfg.deadlines.section_setup);
        let console = vm.machine().console();
        loop {
            let interrupted = self.ctx.settings().interrupts.interrupted().is_some();
            let got = console.expect_any(&refs, deadline.min(self.run_deadline));
            let text = |m: &crate::console::Match, i: usize| {
                m.captures
                    .get(i)
                    .and_then(|c| c.as_deref())
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .unwrap_or_default()
            };
            match got {
                Ok((0, m)) => {
                    let test = text(&m, 1);
                    if let Some((prev, at, _)) = current.take() {
                        self.done(&prev, at);
                        w.completed.push((section, prev));
                    }
                    let limit = self
                        .cfg
                        .deadlines
                        .for_test(self.history.get(&test).copied());
                    let label = sections.get(section).and_then(|s| s.1.name.clone());
                    self.ctx.output(&format!(
                        "fstests: {}{test} started (deadline {}s)",
                        label.map(|l| format!("[{l}] ")).unwrap_or_default(),
                        limit.as_secs()
                    ));
                    deadline = Deadline::after(limit);
                    current = Some((test, Instant::now(), limit));
                }
                Ok((1, m)) => {
                    let name = text(&m, 1);
                    section = sections
                        .iter()
                        .position(|(_, s)| s.name.as_deref().unwrap_or("-") == name)
                        .unwrap_or(section);
                    deadline = Deadline::after(self.cfg.deadlines.section_setup);
                }
                Ok((2, _)) => {
                    if let Some((prev, at, _)) = current.take() {
                        self.done(&prev, at);
                        w.completed.push((section, prev));
                    }
                    w.sections_ended.push(section);
                    deadline = Deadline::after(self.cfg.deadlines.section_setup);
                }
                Ok(_) => return w,
                Err(e) => {
                    let Some((test, at, limit)) = current.take() else {
                        // Died between tests (mkfs, check start-up): blame the
                        // section's next test, so the run still moves on.
                        let next = sections.get(section).and_then(|(_, s)| {
                            s.tests
                                .iter()
                                .find(|t| {
                                    !w.completed.iter().any(|(i, c)| *i == section && c == *t)
                                })
                                .cloned()
                        });
                        match next {
                            Some(test) => {
                                let limit = self.cfg.deadlines.section_setup;
                                let death = self.death(vm, &test, e, limit, interrupted);
                                w.death = Some((section, test, death));
                            }
                            None => w.stopped = Some(format!("the VM stopped between tests: {e}")),
                        }
                        return w;
                    };
                    let _ = at;
                    let death = self.death(vm, &test, e, limit, interrupted);
                    w.death = Some((section, test, death));
                    return w;
                }
            }
        }
    }

    pub(super) fn done(&self, test: &str, at: Instant) {
        self.ctx.output(&format!(
            "fstests: {test} ended after {:.0}s",
            at.elapsed().as_secs_f64()
        ));
    }

    /// Records how the VM died under `test`: the console tail, the crash
    /// report, and for a hang the guest's blocked tasks (sysrq `w`) while
    /// its shell still answers.
    pub(super) fn death(
        &self,
        vm: &Arc<Session>,
        test: &str,
        e: ExpectError,
        limit: Duration,
        interrupted: bool,
    ) -> Death {
        let (kind, mut detail) = match &e {
            ExpectError::Timeout { .. } if !interrupted => (
                DeathKind::Hang(limit),
                format!(
                    "{test} made no progress within its deadline of {}s",
                    limit.as_secs()
                ),
            ),
            ExpectError::Fault(report) => (
                DeathKind::Crash(report.title.clone()),
                format!(
                    "{test} crashed the kernel: {}\n{}",
                    report.title, report.excerpt
                ),
            ),
            other => (
                DeathKind::Crash("the VM stopped".into()),
                format!("{test}: the VM stopped: {other}"),
            ),
        };
        if matches!(kind, DeathKind::Hang(_)) {
            let cmd = "echo w > /proc/sysrq-trigger; ps -eo pid,stat,wchan:32,args --sort=-pid | head -n 60; dmesg | tail -n 300";
            match vm.run_timeout(cmd, Duration::from_secs(60)) {
                Ok(o) => detail.push_str(&format!("\n--- guest: {cmd}\n{}", o.output)),
                Err(err) => detail.push_str(&format!("\n(guest diagnostics failed: {err})")),
            }
        }
        let tail = vm.console_tail(200);
        detail.push_str(&format!("\n--- console (last 200 lines):\n{tail}"));
        self.ctx.output(&format!(
            "fstests: {test}: {} in attempt {}",
            match &kind {
                DeathKind::Hang(d) => format!("hung (no progress in {}s)", d.as_secs()),
                DeathKind::Crash(t) => format!("crash: {t}"),
            },
            self.number
        ));
        let file = self
            .dir
            .join(format!("death-{}.txt", test.replace('/', "-")));
        let files = std::fs::write(&file, &detail)
            .map(|()| vec![file])
            .unwrap_or_default();
        Death {
            kind,
            attempt: self.number,
            detail,
            files,
        }
    }
}

/// `-drive`/`-device` arguments attaching `path` as a virtio disk with
/// `serial`, read-only if `readonly`.
fn drive(path: &Path, serial: &str, readonly: bool) -> Vec<String> {
    let ro = if readonly {
        ",readonly=on"
    } else {
        ",cache=unsafe"
    };
    vec![
        "-drive".into(),
        format!(
            "file={},if=none,id={serial},format=raw{ro}",
            path.display().to_string().replace(',', ",,")
        ),
        "-device".into(),
        format!("virtio-blk-pci,drive={serial},serial={serial}"),
    ]
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

    #[test]
    fn a_test_that_kills_twice_is_not_retried() {
        let plan = Plan {
            sections: vec![PlanSection {
                name: Some("s".into()),
                fstyp: "ext4".into(),
                tests: vec![
                    "generic/001".into(),
                    "generic/002".into(),
                    "generic/003".into(),
                ],
            }],
        };
        let mut queue: VecDeque<Queued> = plan.sections[0]
            .tests
            .iter()
            .map(|t| Queued {
                section: 0,
                test: t.clone(),
            })
            .collect();
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
                completed: vec![(0, "generic/001".into())],
                sections_ended: vec![],
                death: Some((0, "generic/002".into(), death())),
                stopped: None,
                results: d.path().into(),
            };
            absorb(&mut out, &plan, &mut queue, &sections, watched);
        }
        let left: Vec<&str> = queue.iter().map(|q| q.test.as_str()).collect();
        assert_eq!(left, ["generic/003"]);
        let e = &out.entries[&(Some("s".into()), "generic/002".into())];
        assert_eq!(e.deaths.len(), 2);
        assert!(e.not_completed.as_ref().unwrap().contains("not retried"));
        let ok = &out.entries[&(Some("s".into()), "generic/001".into())];
        assert_eq!(ok.result.as_ref().unwrap().outcome, api::FsOutcome::Passed);
    }
}
