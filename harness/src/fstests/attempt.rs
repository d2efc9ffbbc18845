//! One VM of an fstests run: the results disk with the driver, the
//! devices, the boot and login, following the kernel-log markers of a
//! batch-mode driver ([`Attempt::run`]), recording how the VM died under a
//! test, and reading the results disk back. The sharded run
//! ([`super::shard`]) drives the same VMs one job at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::console::ExpectError;
use crate::fstests::config::{
    device_key, device_sets, local_config, DeviceSet, Layout, PlanSection,
};
use crate::fstests::driver::{self, serial};
use crate::fstests::{disk, FstestsConfig};
use crate::{Deadline, Error, Image, Result, Session, TestContext};

/// How a VM died under a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeathKind {
    /// No progress within the test's deadline.
    Hang(Duration),
    /// The kernel crashed (title of the report), or QEMU exited.
    Crash(String),
    /// The run was interrupted (by this signal) while the test ran: the
    /// VM was stopped by bootrig, not by the test.
    Interrupted(i32),
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

/// What one attempt saw.
#[derive(Debug)]
pub(super) struct Watched {
    /// Tests that completed, per attempt-section index, with the time
    /// the host saw each take (from its start marker to the next).
    pub completed: Vec<(usize, String, Duration)>,
    /// Attempt-section indexes whose `check` ended (their result.xml exists).
    pub sections_ended: Vec<usize>,
    /// The test that killed the VM, with how.
    pub death: Option<(usize, String, Death)>,
    /// Why the VM stopped early with no test to blame (between a
    /// section's last test and its end marker, or interrupted).
    pub stopped: Option<String>,
    /// Where the results disk was read back to (`.../results`).
    pub results: PathBuf,
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
    /// Boots a VM for `sections` with a batch-mode driver and follows it
    /// until the driver is done or the VM dies.
    pub(super) fn run(&self, sections: &[(usize, PlanSection)]) -> Result<Watched> {
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
        let refs: Vec<&regex::bytes::Regex> = driver::batch_markers().iter().collect();
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
            match console.expect_any(&refs, deadline.min(self.run_deadline)) {
                Ok((0, m)) => {
                    let test = m.capture_str(1).unwrap_or_default();
                    if let Some((prev, at, _)) = current.take() {
                        self.done(&prev, at);
                        w.completed.push((section, prev, at.elapsed()));
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
                    let name = m.capture_str(1).unwrap_or_default();
                    section = sections
                        .iter()
                        .position(|(_, s)| s.name.as_deref().unwrap_or("-") == name)
                        .unwrap_or(section);
                    deadline = Deadline::after(self.cfg.deadlines.section_setup);
                }
                Ok((2, _)) => {
                    if let Some((prev, at, _)) = current.take() {
                        self.done(&prev, at);
                        w.completed.push((section, prev, at.elapsed()));
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
                                    !w.completed.iter().any(|(i, c, _)| *i == section && c == *t)
                                })
                                .cloned()
                        });
                        match next {
                            Some(test) => {
                                let limit = self.cfg.deadlines.section_setup;
                                let death = self.death(vm, &test, e, limit);
                                w.death = Some((section, test, death));
                            }
                            None => w.stopped = Some(format!("the VM stopped between tests: {e}")),
                        }
                        return w;
                    };
                    let _ = at;
                    let death = self.death(vm, &test, e, limit);
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
    /// its shell still answers. A VM that stopped because the run was
    /// interrupted is not the test's doing: that is said, and nothing
    /// more is collected.
    pub(super) fn death(
        &self,
        vm: &Arc<Session>,
        test: &str,
        e: ExpectError,
        limit: Duration,
    ) -> Death {
        let signal = self.ctx.settings().interrupts.interrupted();
        let (kind, mut detail) = match (&e, signal) {
            (ExpectError::Fault(report), _) => (
                DeathKind::Crash(report.title.clone()),
                format!(
                    "{test} crashed the kernel: {}\n{}",
                    report.title, report.excerpt
                ),
            ),
            (_, Some(sig)) => {
                let why = Error::Interrupted(sig);
                self.ctx.output(&format!(
                    "fstests: {test}: {why} while it ran in attempt {}",
                    self.number
                ));
                return Death {
                    kind: DeathKind::Interrupted(sig),
                    attempt: self.number,
                    detail: format!("{test} was running when the run was {why}"),
                    files: Vec::new(),
                };
            }
            (ExpectError::Timeout { .. }, None) => (
                DeathKind::Hang(limit),
                format!(
                    "{test} made no progress within its deadline of {}s",
                    limit.as_secs()
                ),
            ),
            (other, None) => (
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
                DeathKind::Interrupted(sig) => Error::Interrupted(*sig).to_string(),
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
