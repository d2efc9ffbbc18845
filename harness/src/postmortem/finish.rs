//! The end of a test, as a pipeline: snapshot → collectors → catalog →
//! verdict → rendering. Each stage is its own module; this one only runs
//! them in order and talks to the VMs through their [`VmHandle`]s.

use bootrig_diagnostics::layout::VmLayout;
use bootrig_diagnostics::metadata::{Failure, FailureKind, Outcome};
use bootrig_diagnostics::run::RunEntry;
use bootrig_diagnostics::TestDir;

use crate::errors::{Error, Result};
use crate::postmortem::catalog::Loss;
use crate::postmortem::collector::{run_collectors, Collected, VmHandle};
use crate::postmortem::collectors::COLLECTOR_TIMEOUT;
use crate::postmortem::recorder::Postmortem;
use crate::postmortem::snapshot::{self, Snapshot};
use crate::postmortem::verdict::Verdict;
use crate::postmortem::{catalog, render, run_summary};

/// How a test ended, as the postmortem recorded it.
#[derive(Debug, Clone)]
pub struct Ending {
    /// The outcome written to `metadata.json`.
    pub outcome: Outcome,
    /// The stand-alone failure report, when the test did not pass as
    /// expected (failed, or passed although marked xfail).
    pub message: Option<String>,
    /// The last console lines at the end of the test, markers made
    /// readable.
    pub console_tail: String,
    /// The test failed and its VMs were left running to be held.
    pub held: bool,
    /// Its line in `run.json`, from the record in memory (the same as its
    /// `metadata.json` when that could be written).
    pub entry: RunEntry,
}

impl Postmortem {
    /// Ends the test: takes the snapshot (console tail, guest identity),
    /// on failure runs the registered collectors on every VM while the
    /// guests still answer, stops the VMs, catalogues every file,
    /// finalises `metadata.json` and `run.json`, and renders the failure
    /// message.
    pub fn finish(&self, vms: &[VmHandle], outcome: &Result<()>, xfail: Option<&str>) -> Ending {
        self.finish_or_hold(vms, outcome, xfail, false)
    }

    /// [`Postmortem::finish`]; with `hold`, the VMs of a test that failed
    /// are left running (the caller holds them, see [`crate::run::hold`])
    /// and [`Ending::held`] says so.
    pub fn finish_or_hold(
        &self,
        vms: &[VmHandle],
        outcome: &Result<()>,
        xfail: Option<&str>,
        hold: bool,
    ) -> Ending {
        // A crash a console wait already failed on was the body's to see
        // (a test may provoke one on purpose and pass); one nobody was told
        // of is judged here.
        let fault_at_end: Vec<bool> = vms
            .iter()
            .map(|vm| vm.machine().console().fault_delivered())
            .collect();
        // Before anything else talks to the VMs: did one die of a signal
        // bootrig did not send?
        let killed = vms.iter().find_map(|vm| {
            let m = vm.machine();
            m.killed_from_outside()
                .map(|sig| (m.name().to_string(), sig))
        });
        let snapshot = Snapshot::take(vms);
        // The identity query went through every console, so what the guest
        // printed before the end is read; a report still held by a crash
        // watch is judged now, and a crash recorded after the body ended
        // fails a test that passed.
        let held_reports = self.flush_watches();
        let late_crash = outcome.is_ok().then(|| {
            held_reports
                .iter()
                .find(|r| r.fatal)
                .cloned()
                .or_else(|| {
                    vms.iter()
                        .zip(&fault_at_end)
                        .filter(|(_, before)| !**before)
                        .find_map(|(vm, _)| vm.machine().console().fault())
                })
                .map(Error::KernelCrash)
        });
        let late_crash = late_crash.flatten();
        let err = outcome.as_ref().err().or(late_crash.as_ref());

        let mut collected: Vec<(VmLayout, Collected)> = Vec::new();
        if err.is_some_and(|e| !matches!(e, Error::Skip(_))) {
            let collectors = self.collectors();
            for vm in vms {
                for c in run_collectors(vm, &collectors, COLLECTOR_TIMEOUT) {
                    collected.push((vm.layout().clone(), c));
                }
            }
        }
        let step = self.inner().step.clone();
        let held = hold
            && Verdict::of(err, xfail, step.as_ref(), None)
                .outcome
                .is_failure();
        let mut reports = if held {
            snapshot::reports(vms)
        } else {
            snapshot::stop(vms)
        };
        // `kernel-reports.txt` lists every report, the fatal ones too.
        let faults = vms.iter().filter_map(|vm| vm.machine().console().fault());
        for r in faults.chain(held_reports) {
            if !reports.contains(&r) {
                reports.push(r);
            }
        }

        let mut inner = self.inner();
        if let Some(guest) = snapshot.guest {
            inner.dir.metadata_mut().guest = Some(guest);
        }
        self.boot_phases(&mut inner);
        let mut lost = Vec::new();
        for (vm, c) in &collected {
            catalog::collected(&mut inner.dir, vm, std::slice::from_ref(c), &mut lost);
        }
        catalog::kernel_reports(&mut inner.dir, &reports, &mut lost);
        for vm in vms {
            catalog::vm_files(&mut inner.dir, vm.layout(), &mut lost);
            raw_log_loss(&mut inner.dir, vm, &mut lost);
        }
        let live = inner.live_files.clone();
        catalog::live_files(&mut inner.dir, &live, &mut lost);

        // Evidence lost to a full disk fails a test that passed as the
        // host's (`host-resources`); a test that failed keeps its failure.
        let disk_full = lost.iter().any(|l| l.disk_full).then(|| Error::Io {
            context: format!(
                "writing the test's artifacts in {} (the disk is full; lost: {})",
                self.path.display(),
                lost.iter()
                    .map(|l| l.what.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        });
        if !lost.is_empty() {
            let list: Vec<serde_json::Value> = lost.iter().map(|l| l.what.clone().into()).collect();
            inner
                .dir
                .metadata_mut()
                .extra
                .insert("artifacts_lost".into(), list.into());
        }
        let err = err.or(disk_full.as_ref());

        let killed = killed.as_ref().map(|(vm, sig)| (vm.as_str(), *sig));
        let mut verdict = Verdict::of(err, xfail, inner.step.as_ref(), killed);
        if let Some(reason) = xfail {
            inner
                .dir
                .metadata_mut()
                .extra
                .insert("xfail".into(), reason.into());
        }
        // The final records get the space held for them since the test
        // began, whatever filled the disk since.
        if let Some(reserve) = inner.reserve.as_mut() {
            reserve.release();
        }
        if let Err(e) =
            inner
                .dir
                .finish(verdict.outcome, verdict.failure.clone(), chrono::Utc::now())
        {
            // The test's record is lost: that fails it, whatever it was,
            // and bootrig says so (its summary, run.json if that can be
            // written, the exit status).
            eprintln!(
                "bootrig: error: could not write the final metadata.json of {}: {e}",
                self.name
            );
            if !verdict.outcome.is_failure() {
                let failure = Failure::new(
                    FailureKind::HostResources,
                    format!("could not write the final metadata.json: {e}"),
                );
                verdict = Verdict {
                    outcome: Outcome::Failed,
                    failure: Some(failure.clone()),
                    reported: Some(failure),
                };
                let md = inner.dir.metadata_mut();
                md.outcome = Outcome::Failed;
                md.failure = verdict.failure.clone();
            }
        }
        run_summary::record(&inner.dir);

        let message = verdict.reported.map(|f| {
            render::failure_message(
                &self.name,
                f,
                &snapshot.console_tail,
                &collected,
                &self.path,
                inner.dir.artifacts(),
            )
        });
        Ending {
            entry: inner.dir.run_entry(),
            outcome: verdict.outcome,
            message,
            console_tail: snapshot.console_tail,
            held,
        }
    }

    /// Boot milestone phases from the console timeline, in time order
    /// among the phases already recorded.
    fn boot_phases(&self, inner: &mut crate::postmortem::recorder::Inner) {
        let Some(q) = inner.qemu_started else { return };
        let timeline = self
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, from, to) in timeline.boot_phases(q, inner.shell_ready) {
            self.phase_between(inner, name, from, to);
        }
    }
}

/// Records that the console log of `vm` stopped early (its writes failed:
/// a full disk, most often): a note on `serial.log` and a loss.
fn raw_log_loss(dir: &mut TestDir, vm: &VmHandle, lost: &mut Vec<Loss>) {
    let Some(e) = vm.machine().console().raw_log_io_error() else {
        return;
    };
    let layout = vm.layout();
    let rel = layout.file(&bootrig_diagnostics::layout::SERIAL_LOG);
    let size = std::fs::metadata(dir.path().join(&rel))
        .map(|m| m.len())
        .unwrap_or(0);
    let doing = format!("incomplete, logging stopped after {size} bytes");
    dir.set_note(
        &layout.name(bootrig_diagnostics::layout::SERIAL_LOG.name),
        format!("{doing}: {e}"),
    );
    lost.push(Loss::io(&rel, &doing, &e));
}
