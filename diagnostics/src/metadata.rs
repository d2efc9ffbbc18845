//! The versioned `metadata.json` written into every test's folder: what
//! ran, how it ended, how long each phase took, what it booted, on what,
//! and which artifacts it left. Documented field by field in
//! `docs/metadata.md`; `docs/metadata.schema.json` is its JSON Schema.
//!
//! Compatibility: readers ignore fields they do not know, and fields added
//! later are optional, so a newer bootrig's file with the same
//! [`SCHEMA_VERSION`] still loads. Any breaking change (a field removed,
//! renamed or retyped, a new enum value) bumps [`SCHEMA_VERSION`];
//! [`Metadata::load`] refuses files with a newer version.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::atomic::write_json_atomic;
use crate::catalog::ArtifactCatalog;
use crate::crash::CrashReport;
use crate::errors::Result;
use crate::hash::HashCache;
use crate::json::load_versioned;

/// Version of the `metadata.json` format this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// How a test ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Still running, or the harness died before finishing: a reader that
    /// finds `running` in a folder whose run is over knows the test did not
    /// finish.
    Running,
    /// The test passed.
    Passed,
    /// The test failed (see [`Metadata::failure`]).
    Failed,
    /// The test was skipped (e.g. a missing host tool or image).
    Skipped,
    /// The test failed as expected.
    Xfail,
    /// The test was expected to fail but passed.
    Xpass,
}

impl Outcome {
    /// The JSON spelling (`passed`, `xfail`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
        }
    }

    /// Whether this outcome fails a run: a failure, or an unexpected pass.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Xpass)
    }

    /// The five-column tag of a summary line (`PASS `, `FAIL `, `XFAIL`, ...).
    pub fn tag(self) -> &'static str {
        match self {
            Outcome::Running => "RUN  ",
            Outcome::Passed => "PASS ",
            Outcome::Failed => "FAIL ",
            Outcome::Skipped => "SKIP ",
            Outcome::Xfail => "XFAIL",
            Outcome::Xpass => "XPASS",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure ended a test. Each kind is either the test's
/// (the image, the kernel or the test's own expectations failed) or the
/// infrastructure's (the host, QEMU or bootrig failed): see
/// [`FailureKind::class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The guest did not reach a boot milestone (login prompt, shell) in time.
    BootTimeout,
    /// Logging in failed.
    Login,
    /// Becoming root (`sudo -i`, `su -`) failed.
    Escalation,
    /// A command's exit code or output was not what the test expected.
    Command,
    /// A Rust test's own check (`check!`, an assertion, a panic in its
    /// code) failed.
    Check,
    /// A systemd unit entered the `failed` state.
    UnitFailed,
    /// The kernel crashed (panic, BUG, Oops, KASAN, ...).
    KernelCrash,
    /// QEMU exited while the test ran (the guest powered off, reset or
    /// triple-faulted: machines run with `-no-reboot`).
    QemuExit,
    /// A command or wait condition did not finish in time (the guest hung
    /// or was too slow).
    Timeout,
    /// Infrastructure: QEMU could not start (bad arguments, a missing
    /// firmware or device, its sockets never connected).
    QemuStart,
    /// Infrastructure: QEMU was killed by a signal bootrig did not send
    /// (another process, the OOM killer) or crashed.
    QemuKilled,
    /// Infrastructure: the host ran out of disk space, memory or file
    /// descriptors.
    HostResources,
    /// Infrastructure: building a guest image failed.
    ImageBuild,
    /// Infrastructure: bootrig itself failed (configuration, host I/O, a
    /// bug).
    HarnessError,
}

/// Whose failure a [`FailureKind`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// The test failed: the image, the kernel or the test's expectations.
    #[default]
    Test,
    /// The infrastructure failed: host, QEMU or bootrig. JUnit reports it
    /// as an `<error>`, not a `<failure>`; rerunning may pass.
    Infra,
}

impl FailureClass {
    /// The JSON spelling (`test`, `infra`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Test => "test",
            FailureClass::Infra => "infra",
        }
    }
}

impl FailureKind {
    /// The JSON spelling (`boot-timeout`, `kernel-crash`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::BootTimeout => "boot-timeout",
            FailureKind::Login => "login",
            FailureKind::Escalation => "escalation",
            FailureKind::Command => "command",
            FailureKind::Check => "check",
            FailureKind::UnitFailed => "unit-failed",
            FailureKind::KernelCrash => "kernel-crash",
            FailureKind::QemuExit => "qemu-exit",
            FailureKind::Timeout => "timeout",
            FailureKind::QemuStart => "qemu-start",
            FailureKind::QemuKilled => "qemu-killed",
            FailureKind::HostResources => "host-resources",
            FailureKind::ImageBuild => "image-build",
            FailureKind::HarnessError => "harness-error",
        }
    }

    /// Whether this kind of failure is the test's or the infrastructure's.
    pub fn class(self) -> FailureClass {
        match self {
            FailureKind::BootTimeout
            | FailureKind::Login
            | FailureKind::Escalation
            | FailureKind::Command
            | FailureKind::Check
            | FailureKind::UnitFailed
            | FailureKind::KernelCrash
            | FailureKind::QemuExit
            | FailureKind::Timeout => FailureClass::Test,
            FailureKind::QemuStart
            | FailureKind::QemuKilled
            | FailureKind::HostResources
            | FailureKind::ImageBuild
            | FailureKind::HarnessError => FailureClass::Infra,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a phase begins or ends (what a session or the run engine
/// reports as it goes; `metadata.json` records both edges in one
/// [`Phase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseEdge {
    /// The phase begins.
    Start,
    /// The phase ends.
    End,
}

/// The test step that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedStep {
    /// 0-based index in the test's steps (shown to people as `index + 1`).
    pub index: usize,
    /// What the step does (`run: systemctl is-system-running`).
    pub description: String,
}

/// A kernel crash report, as recorded in a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashInfo {
    /// One-line title (`BUG: unable to handle page fault in ext4_map_blocks`).
    pub title: String,
    /// The report's console lines, from its first line to its end marker.
    pub excerpt: String,
}

impl From<&CrashReport> for CrashInfo {
    fn from(r: &CrashReport) -> CrashInfo {
        CrashInfo {
            title: r.title.clone(),
            excerpt: r.excerpt.clone(),
        }
    }
}

/// Why a test failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// Whose failure it is: `kind`'s class, written for readers of the
    /// file ([`FailureKind::class`]; files without it are read as `test`).
    #[serde(default)]
    pub class: FailureClass,
    /// The one-paragraph failure message.
    pub message: String,
    /// The step that failed, if the failure happened in a step.
    #[serde(default)]
    pub step: Option<FailedStep>,
    /// The kernel crash, if one was detected.
    #[serde(default)]
    pub crash: Option<CrashInfo>,
}

impl Failure {
    /// A failure of `kind` with `message`, no step and no crash.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            class: kind.class(),
            message: message.into(),
            step: None,
            crash: None,
        }
    }

    /// The same failure, attributed to step `index` (0-based).
    pub fn with_step(mut self, index: usize, description: impl Into<String>) -> Failure {
        self.step = Some(FailedStep {
            index,
            description: description.into(),
        });
        self
    }

    /// The same failure, with a crash report.
    pub fn with_crash(mut self, crash: &CrashReport) -> Failure {
        self.crash = Some(crash.into());
        self
    }
}

/// A timed phase of a test: boot milestones and test steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Its name: one of the `Phase::*` constants, or `step N: description`.
    pub name: String,
    /// When it started, in milliseconds after [`Metadata::started_at`]
    /// (measured on a monotonic clock).
    pub start_ms: u64,
    /// How long it took; `null` while it runs (or if it never ended).
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

impl Phase {
    /// From starting QEMU until it runs the guest.
    pub const QEMU_START: &'static str = "qemu start";
    /// Firmware (SeaBIOS/OVMF/bootloader) until the kernel starts.
    pub const FIRMWARE: &'static str = "firmware";
    /// Kernel boot until userspace (init) starts.
    pub const KERNEL: &'static str = "kernel";
    /// Userspace boot until the login prompt.
    pub const USERSPACE: &'static str = "userspace";
    /// From the login prompt until logged in.
    pub const LOGIN_PROMPT: &'static str = "login prompt";
    /// Until the shell answers.
    pub const SHELL_READY: &'static str = "shell ready";

    /// The conventional name of test step `index` (0-based): `step 3: run: ls`.
    pub fn step_name(index: usize, description: &str) -> String {
        format!("step {}: {description}", index + 1)
    }
}

/// The role of a file QEMU boots from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootRole {
    /// `-kernel`.
    Kernel,
    /// `-initrd`.
    Initrd,
    /// A CD-ROM image.
    Iso,
    /// A disk image.
    Disk,
    /// Another `-drive` (data disk, cloud-init seed).
    Drive,
    /// Firmware (`-bios`, OVMF code/vars).
    Firmware,
}

/// A file the VM booted from, with its hash so a failure can be reproduced
/// with exactly the same inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSource {
    /// What QEMU used it for.
    pub role: BootRole,
    /// Its path on the host, as given to QEMU.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
}

impl BootSource {
    /// Describes the file at `path`, hashing it through `cache`.
    pub fn from_file(role: BootRole, path: &Path, cache: &mut HashCache) -> Result<BootSource> {
        let d = cache.digest(path)?;
        Ok(BootSource {
            role,
            path: path.to_path_buf(),
            size: d.size,
            sha256: d.sha256,
        })
    }
}

/// The QEMU that ran the guest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QemuInfo {
    /// The binary (`/usr/bin/qemu-system-x86_64`).
    pub binary: String,
    /// First line of `--version` (`QEMU emulator version 8.2.2`), if known.
    #[serde(default)]
    pub version: Option<String>,
    /// Accelerator (`kvm`, `tcg`, `hvf`), if known.
    #[serde(default)]
    pub accel: Option<String>,
    /// The full command line, binary first: enough to rerun it by hand.
    #[serde(default)]
    pub argv: Vec<String>,
}

/// The machine that ran the test.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Kernel release (`uname -r`).
    pub kernel_release: String,
    /// Number of CPUs available to the process.
    pub cpus: u32,
}

impl HostInfo {
    /// Facts about this host (from `/proc` on Linux; empty strings where
    /// unavailable).
    pub fn detect() -> HostInfo {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut hostname = read("/proc/sys/kernel/hostname");
        if hostname.is_empty() {
            hostname = std::env::var("HOSTNAME").unwrap_or_default();
        }
        HostInfo {
            hostname,
            kernel_release: read("/proc/sys/kernel/osrelease"),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(0),
        }
    }
}

/// Facts about the guest, once it answered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuestInfo {
    /// `uname -r` in the guest.
    #[serde(default)]
    pub kernel_release: Option<String>,
    /// The guest's `/etc/os-release` as key/value pairs (see
    /// [`parse_os_release`]); empty if unknown.
    #[serde(default)]
    pub os_release: BTreeMap<String, String>,
}

/// Parses `os-release(5)` text: `KEY=value` lines, values optionally
/// quoted with `"` or `'` (backslash escapes inside double quotes);
/// comments and malformed lines are skipped.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
            let mut s = String::new();
            let mut chars = v[1..v.len() - 1].chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                } else {
                    s.push(c);
                }
            }
            s
        } else if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
            v[1..v.len() - 1].to_string()
        } else {
            v.to_string()
        };
        out.insert(k.to_string(), v);
    }
    out
}

/// The contents of `metadata.json`.
///
/// Every field is always written; unknown values are `null` (or empty lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The test's full name (`boot::debian::smoke`).
    pub test: String,
    /// The scenario the test comes from, if any.
    #[serde(default)]
    pub scenario: Option<String>,
    /// How the test ended; `running` until it does.
    pub outcome: Outcome,
    /// Why it failed (for `failed` and `xfail`).
    #[serde(default)]
    pub failure: Option<Failure>,
    /// When the test started.
    #[serde(with = "crate::timestamp")]
    pub started_at: DateTime<Utc>,
    /// When it ended; `null` while running.
    #[serde(default, with = "crate::timestamp::option")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Timed phases, in the order they started (by `start_ms`; phases
    /// with the same start in the order they were recorded).
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// The files the VM booted from.
    #[serde(default)]
    pub boot_sources: Vec<BootSource>,
    /// The QEMU that ran the guest, once started.
    #[serde(default)]
    pub qemu: Option<QemuInfo>,
    /// The host.
    #[serde(default)]
    pub host: Option<HostInfo>,
    /// The guest, once it answered.
    #[serde(default)]
    pub guest: Option<GuestInfo>,
    /// Every file in the test's folder besides `metadata.json`.
    #[serde(default)]
    pub artifacts: ArtifactCatalog,
    /// Free-form data for tools and forward compatibility; bootrig never
    /// interprets it.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Metadata {
    /// Metadata of test `test`, started at `started_at` and still running.
    pub fn new(test: impl Into<String>, started_at: DateTime<Utc>) -> Metadata {
        Metadata {
            schema_version: SCHEMA_VERSION,
            test: test.into(),
            scenario: None,
            outcome: Outcome::Running,
            failure: None,
            started_at,
            ended_at: None,
            phases: Vec::new(),
            boot_sources: Vec::new(),
            qemu: None,
            host: None,
            guest: None,
            artifacts: ArtifactCatalog::default(),
            extra: serde_json::Map::new(),
        }
    }

    /// Whether the test finished: false for `running` (still running, or
    /// the harness was killed mid-test).
    pub fn finished(&self) -> bool {
        self.outcome != Outcome::Running
    }

    /// Records the end of the test.
    pub fn finish(&mut self, outcome: Outcome, failure: Option<Failure>, ended_at: DateTime<Utc>) {
        self.outcome = outcome;
        self.failure = failure;
        self.ended_at = Some(ended_at);
        let end = self.duration_ms().unwrap_or(0);
        for p in &mut self.phases {
            if p.duration_ms.is_none() {
                p.duration_ms = Some(end.saturating_sub(p.start_ms));
            }
        }
    }

    /// Wall-clock duration, once ended.
    pub fn duration_ms(&self) -> Option<u64> {
        let end = self.ended_at?;
        Some((end - self.started_at).num_milliseconds().max(0) as u64)
    }

    /// Phase `name` started `at` after the test's start. Phases stay in
    /// time order: one recorded late (a boot milestone worked out at the
    /// end of the test) goes before the phases that started after it.
    pub fn phase_start(&mut self, name: impl Into<String>, at: Duration) {
        let start_ms = at.as_millis() as u64;
        let i = self.phases.partition_point(|p| p.start_ms <= start_ms);
        self.phases.insert(
            i,
            Phase {
                name: name.into(),
                start_ms,
                duration_ms: None,
            },
        );
    }

    /// The most recent phase called `name` ended `at` after the test's
    /// start. Returns false if no such phase is running.
    pub fn phase_end(&mut self, name: &str, at: Duration) -> bool {
        let at = at.as_millis() as u64;
        match self
            .phases
            .iter_mut()
            .rev()
            .find(|p| p.name == name && p.duration_ms.is_none())
        {
            Some(p) => {
                p.duration_ms = Some(at.saturating_sub(p.start_ms));
                true
            }
            None => false,
        }
    }

    /// Pretty JSON, as written to `metadata.json` (with a trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("Metadata always serialises");
        s.push('\n');
        s
    }

    /// Parses `text`, the contents of `path` (used in errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Metadata> {
        crate::json::parse_versioned(text, path, "loading metadata", SCHEMA_VERSION)
    }

    /// Reads `metadata.json` at `path`. Errors name the file and, for
    /// malformed content, the line, column and field; files from a newer
    /// [`SCHEMA_VERSION`] are refused.
    pub fn load(path: &Path) -> Result<Metadata> {
        load_versioned(path, "loading metadata", SCHEMA_VERSION)
    }

    /// Writes it atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_json_atomic(path, self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::{Artifact, Producer};
    use crate::errors::ErrorKind;
    use chrono::TimeZone;

    /// A Metadata with every field populated.
    pub(crate) fn full() -> Metadata {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 0).unwrap();
        let mut m = Metadata::new("boot::debian::smoke", t0);
        m.scenario = Some("debian".into());
        m.phase_start(Phase::QEMU_START, Duration::from_millis(0));
        m.phase_end(Phase::QEMU_START, Duration::from_millis(120));
        m.phase_start(
            Phase::step_name(0, "run: uname -a"),
            Duration::from_millis(9000),
        );
        m.boot_sources.push(BootSource {
            role: BootRole::Disk,
            path: "/var/cache/bootrig/debian-12.qcow2".into(),
            size: 123_456_789,
            sha256: "ab".repeat(32),
        });
        m.qemu = Some(QemuInfo {
            binary: "/usr/bin/qemu-system-x86_64".into(),
            version: Some("QEMU emulator version 8.2.2".into()),
            accel: Some("kvm".into()),
            argv: vec!["qemu-system-x86_64".into(), "-m".into(), "1024".into()],
        });
        m.host = Some(HostInfo {
            hostname: "ci-7".into(),
            kernel_release: "6.8.0-45-generic".into(),
            cpus: 8,
        });
        m.guest = Some(GuestInfo {
            kernel_release: Some("6.1.0-18-amd64".into()),
            os_release: parse_os_release("ID=debian\nVERSION_ID=\"12\"\n"),
        });
        m.artifacts.insert(Artifact {
            name: "journal".into(),
            path: "collect/journal.txt".into(),
            bytes: 10,
            sha256: "cd".repeat(32),
            produced_by: Producer::command("journalctl -b --no-pager"),
            exit_code: Some(0),
            duration_ms: Some(340),
            note: Some("truncated".into()),
        });
        m.extra
            .insert("ci_job".into(), serde_json::json!({"id": 42}));
        let crash = CrashReport {
            title: "kernel panic: sysrq triggered crash".into(),
            excerpt: "Kernel panic - not syncing: sysrq triggered crash".into(),
            fatal: true,
        };
        m.finish(
            Outcome::Failed,
            Some(
                Failure::new(FailureKind::KernelCrash, "the kernel crashed")
                    .with_step(0, "run: uname -a")
                    .with_crash(&crash),
            ),
            t0 + chrono::Duration::milliseconds(12_345),
        );
        m
    }

    #[test]
    fn round_trip() {
        let m = full();
        let json = m.to_json();
        let back = Metadata::from_json(&json, Path::new("m.json")).unwrap();
        assert_eq!(back, m);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["failure"]["kind"], "kernel-crash");
        assert_eq!(v["started_at"], "2026-11-24T10:15:00.000Z");
        assert_eq!(v["ended_at"], "2026-11-24T10:15:12.345Z");
        assert_eq!(v["boot_sources"][0]["role"], "disk");
        assert_eq!(v["artifacts"][0]["produced_by"]["kind"], "command");
        // The step still running at finish got its duration closed.
        assert_eq!(v["phases"][1]["duration_ms"], 12_345 - 9000);
        assert_eq!(m.duration_ms(), Some(12_345));
    }

    #[test]
    fn running_metadata_is_not_finished_and_writes_nulls() {
        let m = Metadata::new("t", Utc::now());
        assert!(!m.finished());
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["outcome"], "running");
        assert!(v["ended_at"].is_null());
        assert!(v["failure"].is_null());
        assert!(full().finished());
    }

    #[test]
    fn newer_minor_fields_are_accepted_and_optional_fields_may_be_missing() {
        let text = r#"{"schema_version": 1, "test": "t", "outcome": "passed",
            "started_at": "2026-11-24T10:15:00Z", "some_future_field": [1, 2],
            "phases": [{"name": "kernel", "start_ms": 5, "future": true}]}"#;
        let m = Metadata::from_json(text, Path::new("m.json")).unwrap();
        assert_eq!(m.outcome, Outcome::Passed);
        assert_eq!(m.phases[0].duration_ms, None);
        assert!(m.artifacts.is_empty());
    }

    #[test]
    fn load_errors_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metadata.json");
        let mut v: serde_json::Value = serde_json::from_str(&full().to_json()).unwrap();
        v["failure"]["kind"] = "exploded".into();
        std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let e = Metadata::load(&p).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("loading metadata "), "{s}");
        assert!(s.contains(&p.display().to_string()), "{s}");
        assert!(s.contains("field `failure.kind`"), "{s}");
        assert!(s.contains("unknown variant `exploded`"), "{s}");
        match &e.kind {
            ErrorKind::Json(j) => assert!(j.line > 1),
            k => panic!("{k:?}"),
        }

        v["failure"]["kind"] = "login".into();
        v["phases"][1]["start_ms"] = "soon".into();
        std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let s = Metadata::load(&p).unwrap_err().to_string();
        assert!(s.contains("field `phases[1].start_ms`"), "{s}");

        std::fs::write(&p, "{\"schema_version\": 1, \"test\": ").unwrap();
        let s = Metadata::load(&p).unwrap_err().to_string();
        assert!(s.contains("line 1 column"), "{s}");

        std::fs::write(&p, "{\"schema_version\": 1, \"outcome\": \"passed\"}").unwrap();
        let s = Metadata::load(&p).unwrap_err().to_string();
        assert!(s.contains("missing field `test`"), "{s}");

        v["schema_version"] = 2.into();
        std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        let e = Metadata::load(&p).unwrap_err();
        assert!(
            matches!(
                e.kind,
                ErrorKind::UnsupportedSchema {
                    found: 2,
                    supported: 1
                }
            ),
            "{e}"
        );

        let e = Metadata::load(&dir.path().join("none.json")).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Io(_)), "{e}");
    }

    #[test]
    fn phases_nest_and_close() {
        let mut m = Metadata::new("t", Utc::now());
        m.phase_start(Phase::KERNEL, Duration::from_millis(100));
        assert!(m.phase_end(Phase::KERNEL, Duration::from_millis(1100)));
        assert!(!m.phase_end(Phase::KERNEL, Duration::from_millis(1200)));
        assert!(!m.phase_end("nope", Duration::ZERO));
        assert_eq!(m.phases[0].duration_ms, Some(1000));
        assert_eq!(Phase::step_name(2, "run: ls"), "step 3: run: ls");
    }

    #[test]
    fn phases_recorded_late_stay_in_time_order() {
        let mut m = Metadata::new("t", Utc::now());
        m.phase_start(Phase::QEMU_START, Duration::from_millis(0));
        m.phase_end(Phase::QEMU_START, Duration::from_millis(100));
        m.phase_start("step 1: run: true", Duration::from_millis(5000));
        m.phase_start("same start", Duration::from_millis(5000));
        // Boot phases, worked out when the test ends.
        m.phase_start(Phase::KERNEL, Duration::from_millis(900));
        m.phase_end(Phase::KERNEL, Duration::from_millis(3000));
        m.phase_start(Phase::FIRMWARE, Duration::from_millis(100));
        m.phase_end(Phase::FIRMWARE, Duration::from_millis(900));
        let names: Vec<&str> = m.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "qemu start",
                "firmware",
                "kernel",
                "step 1: run: true",
                "same start"
            ]
        );
        assert_eq!(m.phases[2].duration_ms, Some(2100));
    }

    #[test]
    fn os_release_parsing() {
        let m = parse_os_release(
            "# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME='Debian'\nID=debian\nX=\"a \\\"q\\\"\"\nbad line\n",
        );
        assert_eq!(m["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(m["NAME"], "Debian");
        assert_eq!(m["ID"], "debian");
        assert_eq!(m["X"], "a \"q\"");
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn host_detection_and_boot_source_hashing() {
        let h = HostInfo::detect();
        assert!(h.cpus >= 1);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vmlinuz");
        std::fs::write(&p, b"abc").unwrap();
        let b = BootSource::from_file(BootRole::Kernel, &p, &mut HashCache::in_memory()).unwrap();
        assert_eq!(b.size, 3);
        assert_eq!(
            b.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
