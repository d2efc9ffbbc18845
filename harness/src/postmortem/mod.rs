//! The harness side of the postmortem: records phases, boot sources and
//! QEMU facts in `metadata.json` while a test runs (rewritten atomically at
//! each phase, so a killed harness still leaves a valid file saying the
//! test did not finish), and when the test fails collects diagnostics from
//! the live guest and the host, catalogues every artifact with its sha256,
//! and renders the stand-alone failure message.
//!
//! The schema, catalog and report types are `bootrig-diagnostics`'; this
//! module is the part that needs a live VM.

pub mod collectors;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bootrig_diagnostics::catalog::Producer;
use bootrig_diagnostics::crash::{CrashConfig, CrashDetector, CrashReport};
use bootrig_diagnostics::hash::HashCache;
use bootrig_diagnostics::metadata::{
    parse_os_release, BootRole, BootSource, Failure, FailureKind, GuestInfo, HostInfo, Outcome,
    Phase, QemuInfo,
};
use bootrig_diagnostics::report::FailureReport;
use bootrig_diagnostics::run::RunSummary;
use bootrig_diagnostics::TestDir;

use crate::ansi::AnsiStripper;
use crate::errors::{Error, Result};
use crate::guest::console::ConsoleObserver;
use crate::guest::session::Session;
use crate::postmortem::collectors::{collect_guest, collect_host, Collected, COLLECTOR_TIMEOUT};
use crate::vm::machine::Machine;

/// Boot milestones seen on the console, as instants.
///
/// A quiet kernel (`loglevel=5`) prints few lines, often none before
/// userspace starts. The kernel's start is therefore worked out from the
/// first timestamped kernel line: it arrived at instant `t` carrying the
/// kernel's own clock `ts`, so the kernel started at `t - ts`. Userspace
/// starts with the first line that is not a kernel message and arrived
/// after the kernel started (firmware and boot-loader output arrive
/// before).
#[derive(Debug, Default, Clone)]
struct Timeline {
    first_output: Option<Instant>,
    kernel: Option<Instant>,
    /// Arrival of non-kernel lines (bounded), to find userspace's start.
    other_lines: Vec<Instant>,
    login_prompt: Option<Instant>,
}

/// How many non-kernel line arrivals are kept to find userspace's start.
const TIMELINE_LINES: usize = 256;

/// The kernel timestamp of a console line (`[    1.234567] ...`), in
/// seconds, if it is a kernel message.
fn kernel_timestamp(line: &str) -> Option<f64> {
    let rest = line.strip_prefix('[')?;
    let t = rest.split(']').next()?.trim();
    if t.is_empty() || !t.contains('.') || !t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    t.parse().ok()
}

/// Whether a console line is a kernel message.
#[cfg(test)]
fn is_kernel_line(line: &str) -> bool {
    kernel_timestamp(line).is_some() || line.starts_with("Linux version")
}

impl Timeline {
    /// Notes milestones from one console line that arrived at `now`.
    fn line(&mut self, line: &str, now: Instant) {
        if line.trim().is_empty() {
            return;
        }
        self.first_output.get_or_insert(now);
        if let Some(ts) = kernel_timestamp(line) {
            if self.kernel.is_none() {
                let started = now.checked_sub(Duration::from_secs_f64(ts)).unwrap_or(now);
                self.kernel = Some(started);
            }
        } else if line.starts_with("Linux version") {
            self.kernel.get_or_insert(now);
        } else if self.other_lines.len() < TIMELINE_LINES {
            self.other_lines.push(now);
        }
        if self.login_prompt.is_none() && line.contains("login:") && !line.contains("Last login") {
            self.login_prompt = Some(now);
        }
    }

    /// The first non-kernel line after the kernel started.
    fn userspace(&self) -> Option<Instant> {
        let k = self.kernel?;
        self.other_lines.iter().copied().find(|t| *t > k)
    }
}

/// Watches console lines for kernel crash reports and boot milestones.
#[derive(Debug)]
pub struct CrashWatch {
    detector: CrashDetector,
    timeline: Arc<Mutex<Timeline>>,
    /// First lines (with their kernel timestamps) of the reports seen, so
    /// a replay of the kernel log (`dmesg` in a test or a collector) does
    /// not report the same crash twice.
    seen: std::collections::HashSet<String>,
}

impl CrashWatch {
    fn new(config: CrashConfig, timeline: Arc<Mutex<Timeline>>) -> CrashWatch {
        CrashWatch {
            detector: CrashDetector::new(config),
            timeline,
            seen: Default::default(),
        }
    }
}

impl ConsoleObserver for CrashWatch {
    fn on_line(&mut self, line: &[u8], now: Instant) -> Option<CrashReport> {
        let text = String::from_utf8_lossy(line);
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .line(&text, now);
        let report = self.detector.feed_line(&text, now);
        self.first_time(report)
    }

    fn on_tick(&mut self, now: Instant) -> Option<CrashReport> {
        let report = self.detector.poll(now);
        self.first_time(report)
    }

    fn on_close(&mut self) -> Option<CrashReport> {
        let report = self.detector.flush();
        self.first_time(report)
    }
}

impl CrashWatch {
    /// Passes a report on unless the same report (same first line, kernel
    /// timestamp included) was already seen: `dmesg` prints old reports
    /// again, with their original timestamps.
    fn first_time(&mut self, report: Option<CrashReport>) -> Option<CrashReport> {
        let report = report?;
        let key = report
            .excerpt
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        self.seen.insert(key).then_some(report)
    }
}

struct Inner {
    dir: TestDir,
    units: Vec<String>,
    commands: Vec<String>,
    step: Option<(usize, String)>,
    qemu_started: Option<Instant>,
    shell_ready: Option<Instant>,
}

/// Per-test postmortem recorder. See the module documentation.
pub struct Postmortem {
    name: String,
    path: PathBuf,
    started: Instant,
    cache_dir: PathBuf,
    crash_config: Mutex<CrashConfig>,
    timeline: Arc<Mutex<Timeline>>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Postmortem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postmortem")
            .field("test", &self.name)
            .field("dir", &self.path)
            .finish()
    }
}

fn diag_err(doing: &str, e: bootrig_diagnostics::errors::Error) -> Error {
    Error::Config {
        what: doing.to_string(),
        message: e.to_string(),
    }
}

impl Postmortem {
    /// Creates the test's folder under `run_dir` and writes the first
    /// `metadata.json` (outcome `running`).
    pub fn begin(name: &str, run_dir: &Path, cache_dir: &Path) -> Result<Postmortem> {
        let mut dir = TestDir::create(run_dir, name, chrono::Utc::now())
            .map_err(|e| diag_err("creating the test's artifacts folder", e))?;
        dir.metadata_mut().host = Some(HostInfo::detect());
        let _ = dir.save_metadata();
        Ok(Postmortem {
            name: name.to_string(),
            path: dir.path().to_path_buf(),
            started: Instant::now(),
            cache_dir: cache_dir.to_path_buf(),
            crash_config: Mutex::new(CrashConfig::default()),
            timeline: Arc::default(),
            inner: Mutex::new(Inner {
                dir,
                units: Vec::new(),
                commands: Vec::new(),
                step: None,
                qemu_started: None,
                shell_ready: None,
            }),
        })
    }

    /// The test's artifacts folder.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(inner: &Inner) {
        if let Err(e) = inner.dir.save_metadata() {
            eprintln!("bootrig: could not update metadata.json: {e}");
        }
    }

    /// A console observer for a VM of this test: crash detection and boot
    /// milestones.
    pub fn console_observer(&self) -> CrashWatch {
        let config = *self.crash_config.lock().unwrap_or_else(|p| p.into_inner());
        CrashWatch::new(config, self.timeline.clone())
    }

    /// Whether kernel WARNINGs (and other non-fatal reports) fail the test
    /// or are only recorded (the default). Applies to VMs booted after.
    pub fn set_warnings_fatal(&self, fatal: bool) {
        self.crash_config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .warnings_fatal = fatal;
    }

    /// A phase begins.
    pub fn phase_start(&self, name: &str) {
        let at = self.started.elapsed();
        let mut inner = self.inner();
        inner.dir.metadata_mut().phase_start(name, at);
        Self::save(&inner);
    }

    /// A phase ends.
    pub fn phase_end(&self, name: &str) {
        let at = self.started.elapsed();
        let mut inner = self.inner();
        inner.dir.metadata_mut().phase_end(name, at);
        Self::save(&inner);
    }

    /// The scenario this test comes from.
    pub fn set_scenario(&self, name: &str, file: &Path) {
        let mut inner = self.inner();
        let md = inner.dir.metadata_mut();
        md.scenario = Some(name.to_string());
        md.extra
            .insert("scenario_file".into(), file.display().to_string().into());
        Self::save(&inner);
    }

    /// Units and commands to collect on failure.
    pub fn set_diagnostics_spec(&self, units: &[String], commands: &[String]) {
        let mut inner = self.inner();
        inner.units = units.to_vec();
        inner.commands = commands.to_vec();
    }

    /// The shell answers: records the `shell ready` milestone.
    pub fn mark_shell_ready(&self) {
        let at = self.started.elapsed();
        let mut inner = self.inner();
        inner.shell_ready.get_or_insert_with(Instant::now);
        let md = inner.dir.metadata_mut();
        md.phase_start(Phase::SHELL_READY, at);
        md.phase_end(Phase::SHELL_READY, at);
        Self::save(&inner);
    }

    /// Step `i` starts.
    pub fn step_start(&self, i: usize, what: &str) {
        self.inner().step = Some((i, what.to_string()));
        self.phase_start(&Phase::step_name(i, what));
    }

    /// Step `i` ends; a failed step stays the failing step.
    pub fn step_end(&self, i: usize, ok: bool) {
        let what = self.inner().step.clone();
        if let Some((idx, what)) = what {
            if idx == i {
                self.phase_end(&Phase::step_name(i, &what));
                if ok {
                    self.inner().step = None;
                }
            }
        }
    }

    /// Records QEMU facts and the boot sources with their sha256 (streamed,
    /// cached by path + mtime + size in `<cache>/hashes.json`).
    pub fn record_machine(&self, machine: &Machine) {
        let mut cache = HashCache::load(&self.cache_dir.join("hashes.json"));
        let mut sources = Vec::new();
        for f in machine.boot_files() {
            let role = match f.role {
                "kernel" => BootRole::Kernel,
                "initrd" => BootRole::Initrd,
                "iso" => BootRole::Iso,
                "disk" => BootRole::Disk,
                "firmware" => BootRole::Firmware,
                _ => BootRole::Drive,
            };
            match BootSource::from_file(role, &f.path, &mut cache) {
                Ok(s) => sources.push(s),
                Err(e) => eprintln!("bootrig: could not hash {}: {e}", f.path.display()),
            }
        }
        let _ = cache.save();
        let mut inner = self.inner();
        inner.qemu_started.get_or_insert(machine.started());
        let md = inner.dir.metadata_mut();
        md.boot_sources.extend(sources);
        md.qemu = Some(QemuInfo {
            binary: machine.qemu().display().to_string(),
            version: Some(machine.qemu_version().to_string()),
            accel: Some(machine.accel().accel.to_string()),
            argv: machine.argv().to_vec(),
        });
        if !machine.accel().reason.is_empty() {
            md.extra
                .insert("accel_reason".into(), machine.accel().reason.clone().into());
        }
        Self::save(&inner);
    }

    /// Boot milestone phases from the console timeline.
    fn boot_phases(&self, inner: &mut Inner) {
        let tl = self
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(q) = inner.qemu_started else { return };
        let (mut kernel, mut userspace, mut login) = (tl.kernel, tl.userspace(), tl.login_prompt);
        // Milestones after the shell was ready say nothing about boot.
        if let Some(ready) = inner.shell_ready {
            for m in [&mut kernel, &mut userspace, &mut login] {
                if m.is_some_and(|t| t > ready) {
                    *m = None;
                }
            }
        }
        let end_of_boot = login.or(inner.shell_ready);
        let rel = |t: Instant| t.saturating_duration_since(self.started);
        let md = inner.dir.metadata_mut();
        let mut mark = |name: &str, from: Option<Instant>, to: Option<Instant>| {
            if let (Some(a), Some(b)) = (from, to) {
                md.phase_start(name, rel(a));
                md.phase_end(name, rel(b.max(a)));
            }
        };
        mark(Phase::FIRMWARE, Some(q), kernel);
        mark(Phase::KERNEL, kernel, userspace);
        mark(Phase::USERSPACE, userspace, end_of_boot);
        mark(Phase::LOGIN_PROMPT, login, login);
    }

    /// Ends the test: records the guest's identity, on failure runs the
    /// collectors while the guests still answer, stops the VMs, catalogues
    /// every file, finalises `metadata.json` and `run.json`.
    pub fn finish(
        &self,
        vms: &[Arc<Session>],
        outcome: &Result<()>,
        xfail: Option<&str>,
    ) -> Ending {
        let err = outcome.as_ref().err();
        // The console as it was when the test ended, before the identity
        // query and the collectors add their own traffic.
        let tail = vms
            .first()
            .map(|vm| vm.console_tail(30))
            .unwrap_or_default();
        let (units, commands) = {
            let inner = self.inner();
            (inner.units.clone(), inner.commands.clone())
        };
        // Guest identity, from the first VM with a live shell.
        if let Some(vm) = vms
            .iter()
            .find(|v| v.has_shell() && v.machine().console().fault().is_none())
        {
            if let Ok(o) = vm.run_timeout(
                "uname -r; cat /etc/os-release 2>/dev/null",
                Duration::from_secs(3),
            ) {
                let mut lines = o.output.splitn(2, '\n');
                let kernel = lines
                    .next()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                let os = parse_os_release(lines.next().unwrap_or(""));
                self.inner().dir.metadata_mut().guest = Some(GuestInfo {
                    kernel_release: kernel,
                    os_release: os,
                });
            }
        }
        let mut collected: Vec<(String, Collected)> = Vec::new();
        if err.is_some() {
            for vm in vms {
                let prefix = self.prefix_of(vm);
                let screendump = self.path.join(format!("{prefix}screendump.png"));
                let shot = vm.machine().has_display().then_some(screendump.as_path());
                for c in collect_guest(vm, &units, &commands, COLLECTOR_TIMEOUT) {
                    collected.push((prefix.clone(), c));
                }
                for c in collect_host(vm, shot) {
                    collected.push((prefix.clone(), c));
                }
            }
        }
        let reports: Vec<CrashReport> = vms
            .iter()
            .flat_map(|vm| vm.machine().console().reports())
            .collect();
        for vm in vms {
            vm.machine().kill();
        }
        let mut inner = self.inner();
        self.boot_phases(&mut inner);
        for (prefix, c) in &collected {
            let rel = format!("{prefix}diagnostics/{}.txt", c.name);
            let producer = c.produced_by.clone();
            let name = format!("{prefix}{}", c.name);
            if inner
                .dir
                .write_artifact(
                    &name,
                    &rel,
                    c.output.as_bytes(),
                    producer,
                    c.exit,
                    Some(c.duration),
                )
                .is_ok()
            {
                if let Some(note) = &c.note {
                    inner.dir.set_note(&name, note.clone());
                }
            }
        }
        if !reports.is_empty() {
            // Also on passing tests: a WARNING that did not fail the test is
            // still something the reviewer must see.
            let titles: Vec<serde_json::Value> = reports
                .iter()
                .map(|r| serde_json::json!({ "title": r.title, "fatal": r.fatal }))
                .collect();
            inner
                .dir
                .metadata_mut()
                .extra
                .insert("kernel_reports".into(), titles.into());
            let text: String = reports
                .iter()
                .map(|r| {
                    format!(
                        "{}{}\n{}\n\n",
                        if r.fatal {
                            ""
                        } else {
                            "(recorded, not fatal) "
                        },
                        r.title,
                        r.excerpt
                    )
                })
                .collect();
            let _ = inner.dir.write_artifact(
                "kernel-reports",
                "kernel-reports.txt",
                text.as_bytes(),
                Producer::console("crash reports detected on the serial console"),
                None,
                None,
            );
        }
        for vm in vms {
            catalog_vm_files(&mut inner.dir, &self.prefix_of(vm));
        }
        let failure = err.map(|e| {
            let message = match e.crash() {
                Some(c) => format!("kernel crash: {}", c.title),
                None => e.to_string(),
            };
            let mut f = Failure::new(e.failure_kind(), message);
            if let Some((i, what)) = &inner.step {
                f = f.with_step(*i, what.clone());
            }
            if let Some(c) = e.crash() {
                f = f.with_crash(c);
            }
            f
        });
        let outcome = match (err.is_some(), xfail.is_some()) {
            (false, false) => Outcome::Passed,
            (true, false) => Outcome::Failed,
            (true, true) => Outcome::Xfail,
            (false, true) => Outcome::Xpass,
        };
        if let Some(reason) = xfail {
            inner
                .dir
                .metadata_mut()
                .extra
                .insert("xfail".into(), reason.into());
        }
        let report_failure = match outcome {
            Outcome::Failed => failure.clone(),
            Outcome::Xpass => Some(Failure::new(
                FailureKind::HarnessError,
                format!(
                    "UNEXPECTED PASS: marked xfail ({}) but passed",
                    xfail.unwrap_or("")
                ),
            )),
            _ => None,
        };
        if let Err(e) = inner.dir.finish(outcome, failure, chrono::Utc::now()) {
            eprintln!("bootrig: could not finalise metadata.json: {e}");
        }
        if let Some(run_dir) = self.path.parent() {
            let id = run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Err(e) = inner.dir.update_run_summary(run_dir, &id) {
                eprintln!("bootrig: could not update run.json: {e}");
            }
        }
        let Some(f) = report_failure else {
            return Ending {
                outcome,
                message: None,
                console_tail: tail,
            };
        };
        let mut report = FailureReport::new(self.name.clone(), f).console(tail.clone());
        for (prefix, c) in &collected {
            report = report.collector(
                format!("{prefix}{}", c.name),
                c.output.clone(),
                c.note.as_deref(),
            );
        }
        let message = report
            .artifacts_in(&self.path, inner.dir.artifacts())
            .render();
        Ending {
            outcome,
            message: Some(message),
            console_tail: tail,
        }
    }
}

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
}

impl Postmortem {
    /// Where a VM's files are, relative to the test folder: `""` for the
    /// first VM, `<vm folder>/` for later ones.
    fn prefix_of(&self, vm: &Session) -> String {
        match vm.machine().out_dir().strip_prefix(&self.path) {
            Ok(rel) if !rel.as_os_str().is_empty() => format!("{}/", rel.display()),
            _ => String::new(),
        }
    }
}

/// Catalogues the files a VM wrote into the folder (`prefix` is `""` for
/// the first VM, `<vm name>/` for later ones), writing `serial.txt`, the
/// ANSI-stripped console, from `serial.log` first.
fn catalog_vm_files(dir: &mut TestDir, prefix: &str) {
    let serial = dir.path().join(format!("{prefix}serial.log"));
    let stripped = dir.path().join(format!("{prefix}serial.txt"));
    if serial.is_file() {
        if let Err(e) = strip_file(&serial, &stripped) {
            eprintln!("bootrig: could not write {}: {e}", stripped.display());
        }
    }
    let files: [(&str, &str, Producer); 7] = [
        (
            "serial.log",
            "serial.log",
            Producer::console("raw serial console bytes"),
        ),
        (
            "serial.txt",
            "serial.txt",
            Producer::harness("serial.log with terminal escapes removed"),
        ),
        (
            "transcript",
            "transcript.log",
            Producer::harness("login, escalation and every command with output and exit code"),
        ),
        (
            "login-transcript",
            "login-transcript.log",
            Producer::harness("every byte sent and received during login and escalation"),
        ),
        (
            "qemu-cmdline",
            "qemu-cmdline.txt",
            Producer::qemu("QEMU argv"),
        ),
        (
            "qemu-stderr",
            "qemu-stderr.log",
            Producer::qemu("QEMU stdout and stderr"),
        ),
        (
            "screendump",
            "screendump.png",
            Producer::qemu("QMP screendump"),
        ),
    ];
    for (name, rel, producer) in files {
        let rel = format!("{prefix}{rel}");
        if dir.path().join(&rel).is_file() {
            let _ = dir.add_existing(&format!("{prefix}{name}"), &rel, producer);
        }
    }
}

/// Streams `from` through the ANSI stripper into `to`.
fn strip_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut input = BufReader::new(File::open(from)?);
    let mut out = BufWriter::new(File::create(to)?);
    let mut stripper = AnsiStripper::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut text = Vec::with_capacity(1 << 16);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        text.clear();
        stripper.feed(&buf[..n], &mut text);
        out.write_all(&text)?;
    }
    out.flush()
}

/// Rewrites `run.json` from the `metadata.json` files in `run_dir`.
pub fn write_run_json(run_dir: &Path) {
    let id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match RunSummary::scan(run_dir, id) {
        Ok(mut summary) => {
            summary.ended_at = Some(chrono::Utc::now());
            let _ = bootrig_diagnostics::atomic::write_json_atomic(
                &run_dir.join(RunSummary::FILE),
                &summary,
            );
        }
        Err(e) => eprintln!("bootrig: could not write run.json: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_are_recognised() {
        assert!(is_kernel_line("[    0.000000] Linux version 6.1"));
        assert!(is_kernel_line("[ 1234.5] x"));
        assert!(!is_kernel_line("[  OK  ] Started foo"));
        assert!(!is_kernel_line("[1] foo"));
        assert!(!is_kernel_line("login:"));
    }

    #[test]
    fn timeline_marks_milestones_in_order() {
        let mut t = Timeline::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        t.line("SeaBIOS (version x)", at(100));
        t.line("GRUB loading", at(200));
        // A quiet kernel: its first printed line says it has run 0.5 s.
        t.line(
            "[    0.500000] mtrr: your CPUs had inconsistent settings",
            at(1300),
        );
        t.line("Loading, please wait...", at(1500));
        t.line("[    2.000000] late kernel line", at(2800));
        t.line("bootrig-guest login: ", at(4000));
        assert_eq!(t.first_output, Some(at(100)));
        assert_eq!(
            t.kernel,
            Some(at(800)),
            "kernel start = arrival - its timestamp"
        );
        assert_eq!(
            t.userspace(),
            Some(at(1500)),
            "firmware and GRUB lines are not userspace"
        );
        assert_eq!(t.login_prompt, Some(at(4000)));
    }

    #[test]
    fn a_replayed_report_is_not_reported_again() {
        let mut w = CrashWatch::new(CrashConfig::default(), Arc::default());
        let report = [
            "[   12.000001] WARNING: CPU: 0 PID: 1 at fs/ext4/inode.c:100 ext4_foo+0x1/0x2",
            "[   12.000002] Call Trace:",
            "[   12.000003]  <TASK>",
            "[   12.000004]  ext4_foo+0x1/0x2",
            "[   12.000005]  </TASK>",
            "[   12.000006] ---[ end trace 0000000000000000 ]---",
        ];
        let t0 = Instant::now();
        let feed = |w: &mut CrashWatch| -> Vec<CrashReport> {
            let mut out: Vec<CrashReport> = report
                .iter()
                .filter_map(|l| w.on_line(l.as_bytes(), t0))
                .collect();
            out.extend(w.on_close());
            out
        };
        let first = feed(&mut w);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].title.contains("ext4_foo"), "{}", first[0].title);
        // `dmesg` prints the same lines again: no second report.
        assert!(feed(&mut w).is_empty());
    }

    #[test]
    fn stripping_a_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("serial.log");
        std::fs::write(&raw, b"\x1b[1;32mok\x1b[0m\r\nline2\r\n").unwrap();
        let out = dir.path().join("serial.txt");
        strip_file(&raw, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"ok\nline2\n");
    }
}
