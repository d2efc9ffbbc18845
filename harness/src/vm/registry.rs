//! The host-wide registry of the QEMU processes bootrig started, so that
//! `bootrig kill` can find VMs a run left behind and never touches a QEMU
//! bootrig did not start.
//!
//! Each VM is one small JSON file (`<pid>-<start>.json`) in the registry
//! folder: `$BOOTRIG_VM_REGISTRY`, else `$XDG_RUNTIME_DIR/bootrig/vms`,
//! else `~/.cache/bootrig/vms`. It is written atomically (a temporary file
//! renamed into place) right after QEMU is spawned, and removed when the
//! [`Registration`] is dropped, which [`crate::Machine`] does after it has
//! reaped QEMU.
//!
//! A record identifies its process by pid *and* start time (field 22 of
//! `/proc/<pid>/stat`, in clock ticks since boot) *and* command line, so a
//! pid the kernel gave to another process since is recognised and left
//! alone. Its owner (the bootrig process that started it) is recorded the
//! same way, so "the owner is gone" is exact too.
//!
//! Why a VM can outlive its run at all: QEMU is spawned with a
//! parent-death signal (see [`crate::vm::process`]), so a bootrig that
//! dies takes its VMs with it, and what stays behind is a stale record.
//! A VM outlives its usefulness when its bootrig hangs (stopped with
//! SIGSTOP or Ctrl-Z, stuck in a debugger, a wedged CI job): the owner is
//! alive, and `bootrig kill --run RUN_DIR` (or `--all`) ends its VMs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One VM bootrig started, as recorded in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    /// QEMU's pid.
    pub pid: u32,
    /// QEMU's process group (its own pid: bootrig starts it as a leader).
    pub pgid: u32,
    /// QEMU's start time, clock ticks since boot (`/proc/<pid>/stat` 22).
    pub start_time: u64,
    /// QEMU's command line, as exec'd.
    pub cmdline: Vec<String>,
    /// The bootrig process that started it.
    pub owner_pid: u32,
    /// The owner's start time, clock ticks since boot.
    pub owner_start_time: u64,
    /// The run folder of the test that started it, if known.
    #[serde(default)]
    pub run_dir: Option<PathBuf>,
    /// The test that started it, if known.
    #[serde(default)]
    pub test: Option<String>,
    /// The VM's own artifacts folder.
    #[serde(default)]
    pub out_dir: Option<PathBuf>,
    /// When it was started (RFC 3339, UTC).
    pub started_at: String,
}

/// What the process a record names looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The recorded process runs (same start time and command line).
    Running,
    /// No such process, or a zombie: it is gone.
    Gone,
    /// The pid belongs to another process now (start time or command
    /// line differ): the record is stale and the process not ours.
    Reused,
}

/// The registry folder; see the module documentation.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BOOTRIG_VM_REGISTRY").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_dir() {
            return dir.join("bootrig").join("vms");
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("bootrig").join("vms")
}

/// A process's `/proc/<pid>/stat` fields after the command name: state
/// (field 3) first. None when there is no such process.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces
    // and parentheses itself: the fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A process's start time (clock ticks since boot), None when it does not
/// exist.
pub fn start_time(pid: u32) -> Option<u64> {
    // Field 22 is the 20th after the command name.
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` is a zombie (exited, not yet reaped) or does not exist.
fn exited(pid: u32) -> bool {
    stat_fields(pid).is_none_or(|f| f.first().is_some_and(|s| s == "Z" || s == "X"))
}

/// A process's process group, None when it does not exist.
fn process_group(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// A process's command line (empty for zombies and kernel threads).
fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Whether the process `pid` started at `start` is still alive (not a
/// zombie).
fn alive_as(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start) && !exited(pid)
}

impl VmRecord {
    /// A record for the QEMU `pid` just spawned with `cmdline`, owned by
    /// this process.
    pub fn for_child(pid: u32, cmdline: Vec<String>) -> io::Result<VmRecord> {
        let me = std::process::id();
        let not_found = |what: &str| io::Error::new(io::ErrorKind::NotFound, what.to_string());
        Ok(VmRecord {
            pid,
            pgid: pid,
            start_time: start_time(pid)
                .ok_or_else(|| not_found("the new QEMU's /proc/<pid>/stat"))?,
            cmdline,
            owner_pid: me,
            owner_start_time: start_time(me).ok_or_else(|| not_found("/proc/self/stat"))?,
            run_dir: None,
            test: None,
            out_dir: None,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// The record's file name: unique for the lifetime of the host.
    pub fn file_name(&self) -> String {
        format!("{}-{}.json", self.pid, self.start_time)
    }

    /// Whether the recorded QEMU still runs, is gone, or its pid was
    /// reused. The command line is compared once QEMU has exec'd (a
    /// process still between fork and exec shows bootrig's).
    pub fn liveness(&self) -> Liveness {
        match start_time(self.pid) {
            None => return Liveness::Gone,
            Some(t) if t != self.start_time => return Liveness::Reused,
            Some(_) => {}
        }
        if exited(self.pid) {
            return Liveness::Gone;
        }
        if cmdline(self.pid).as_ref() != Some(&self.cmdline) {
            return Liveness::Reused;
        }
        if process_group(self.pid) != Some(self.pgid) {
            return Liveness::Reused;
        }
        Liveness::Running
    }

    /// Whether the bootrig process that started the VM is alive.
    pub fn owner_alive(&self) -> bool {
        alive_as(self.owner_pid, self.owner_start_time)
    }
}

/// The registry in one folder.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// A record in the registry, removed when dropped.
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Registry {
    /// The registry in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    /// The registry in [`default_dir`].
    pub fn open_default() -> Registry {
        Registry::at(default_dir())
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records `record` atomically; the returned guard removes it. Stale
    /// records (their QEMU gone, or their pid reused) are removed on the
    /// way, so a host whose bootrigs were killed does not pile them up.
    pub fn register(&self, record: &VmRecord) -> io::Result<Registration> {
        fs::create_dir_all(&self.dir)?;
        self.remove_stale();
        let path = self.dir.join(record.file_name());
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        serde_json::to_writer_pretty(&mut tmp, record)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(Registration { path })
    }

    /// Removes the records whose process is gone or whose pid was reused;
    /// returns how many. Best effort: another bootrig may remove them too.
    pub fn remove_stale(&self) -> usize {
        let Ok(records) = self.list() else { return 0 };
        records
            .into_iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.liveness() != Liveness::Running))
            .filter(|(path, _)| fs::remove_file(path).is_ok())
            .count()
    }

    /// Every record, with its file; unreadable files are returned as
    /// errors naming them (and left in place).
    pub fn list(&self) -> io::Result<Vec<(PathBuf, Result<VmRecord, String>)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<VmRecord>(&b).map_err(|e| e.to_string()));
            out.push((path, parsed));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// How long [`terminate`] waits after SIGTERM before SIGKILL, and after
/// SIGKILL before giving up.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Ends the recorded QEMU: SIGTERM to its process group, SIGKILL after
/// `grace`, each only while the record still names the running process
/// (pid, start time, command line, group). Returns once it is gone (a
/// zombie counts: only its parent can reap it) or errs naming what is
/// still alive.
pub fn terminate(record: &VmRecord, grace: Duration) -> io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        match record.liveness() {
            Liveness::Running => {}
            Liveness::Gone | Liveness::Reused => return Ok(()),
        }
        // SAFETY: killpg has no memory-safety preconditions; the group is
        // the recorded QEMU's, verified just above.
        if unsafe { libc::killpg(record.pgid as libc::pid_t, signal) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
        let gone = crate::deadline::poll_until(
            std::time::Instant::now() + grace,
            Duration::from_millis(20),
            || Ok::<_, ()>((record.liveness() != Liveness::Running).then_some(())),
        );
        if matches!(gone, Ok(Some(()))) {
            return Ok(());
        }
    }
    Err(io::Error::other(format!(
        "QEMU pid {} is still running after SIGKILL",
        record.pid
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::process::OwnedChild;
    use std::process::Command;

    /// A `sleep` in its own group, recorded as if bootrig had started it
    /// for an owner that exited.
    fn orphan_like(registry: &Registry) -> (OwnedChild, VmRecord, Registration) {
        let mut child = OwnedChild::spawn("sleeper", Command::new("sleep").arg("600")).unwrap();
        let argv = vec!["sleep".to_string(), "600".to_string()];
        // Wait for the exec: until then /proc shows the test binary.
        crate::deadline::poll_until(
            std::time::Instant::now() + Duration::from_secs(10),
            Duration::from_millis(5),
            || Ok::<_, ()>((cmdline(child.pid()).as_ref() == Some(&argv)).then_some(())),
        )
        .unwrap()
        .expect("sleep exec'd");
        let mut record = VmRecord::for_child(child.pid(), argv).unwrap();
        // An owner that is gone: a child that already exited, reaped.
        let mut gone = Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        record.owner_pid = gone_pid;
        record.owner_start_time = 1;
        let reg = registry.register(&record).unwrap();
        child.set_term_grace(Duration::from_millis(100));
        (child, record, reg)
    }

    #[test]
    fn records_round_trip_and_are_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path().join("vms"));
        let (_child, record, reg) = orphan_like(&registry);
        let listed = registry.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1.as_ref().unwrap(), &record);
        assert_eq!(record.liveness(), Liveness::Running);
        assert!(!record.owner_alive());
        drop(reg);
        assert!(registry.list().unwrap().is_empty());
    }

    #[test]
    fn registering_removes_stale_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path());
        let (mut child, live, _reg) = orphan_like(&registry);
        let mut stale = live.clone();
        stale.start_time += 1;
        let stale_reg = registry.register(&stale).unwrap();
        std::mem::forget(stale_reg);
        assert_eq!(registry.list().unwrap().len(), 2);
        // Another registration sweeps the stale one, keeps the live one.
        let mut other = live.clone();
        other.pid = u32::MAX - 1;
        let _other = registry.register(&other).unwrap();
        let names: Vec<String> = registry
            .list()
            .unwrap()
            .into_iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&live.file_name()), "{names:?}");
        assert!(!names.contains(&stale.file_name()), "{names:?}");
        assert_eq!(child.try_wait().unwrap(), None);
    }

    #[test]
    fn terminate_kills_the_recorded_process() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path());
        let (mut child, record, _reg) = orphan_like(&registry);
        terminate(&record, Duration::from_secs(5)).unwrap();
        let status = child.wait_deadline(Duration::from_secs(5)).unwrap();
        assert!(status.is_some(), "the recorded process still runs");
        assert_eq!(record.liveness(), Liveness::Gone);
    }

    #[test]
    fn a_reused_pid_is_never_signalled() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::at(dir.path());
        let (mut child, mut record, _reg) = orphan_like(&registry);
        // The same pid, another start time: not the recorded process.
        record.start_time += 1;
        assert_eq!(record.liveness(), Liveness::Reused);
        terminate(&record, Duration::from_millis(100)).unwrap();
        assert_eq!(
            child.try_wait().unwrap(),
            None,
            "a foreign process was killed"
        );
        // The same pid and start time, another command line.
        record.start_time -= 1;
        record.cmdline = vec!["qemu-system-x86_64".into()];
        assert_eq!(record.liveness(), Liveness::Reused);
        terminate(&record, Duration::from_millis(100)).unwrap();
        assert_eq!(
            child.try_wait().unwrap(),
            None,
            "a foreign process was killed"
        );
    }

    #[test]
    fn this_process_is_an_alive_owner() {
        let me = std::process::id();
        assert!(alive_as(me, start_time(me).unwrap()));
        assert!(!alive_as(me, start_time(me).unwrap() + 1));
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        // Our own stat parses; the command name is skipped whatever it is.
        let fields = stat_fields(std::process::id()).unwrap();
        assert!(matches!(fields[0].as_str(), "R" | "S" | "D"), "{fields:?}");
    }
}
