//! The built-in diagnostics collectors: what the guest and the host knew
//! at the moment a test failed. They are ordinary [`Collector`]s,
//! registered on every test context by [`builtin`]; a scenario's
//! `diagnostics` add [`unit()`] and [`command()`] collectors.
//!
//! Guest collectors run through the test's own shell, each with its own
//! deadline. A tool the guest lacks (a busybox guest has no journalctl) is
//! noted and skipped; a guest that stops answering makes the remaining
//! guest collectors skip (see [`Collector`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootrig_diagnostics::catalog::Producer;
use bootrig_diagnostics::layout;

use crate::deadline::Deadline;
use crate::guest::session::{shell_quote, Session};
use crate::postmortem::collector::{run_collectors, Collected, Collector, Side, VmHandle};

/// Per-collector deadline.
pub const COLLECTOR_TIMEOUT: Duration = Duration::from_secs(20);

/// A command run in the guest; its output is the artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCommand {
    name: String,
    command: String,
    tool: Option<String>,
}

impl GuestCommand {
    /// Runs `command` (a shell command line) as collector `name`.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> GuestCommand {
        GuestCommand {
            name: name.into(),
            command: command.into(),
            tool: None,
        }
    }

    /// Skipped when the guest has no `tool`.
    pub fn needs(mut self, tool: impl Into<String>) -> GuestCommand {
        self.tool = Some(tool.into());
        self
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }
}

impl Collector for GuestCommand {
    fn name(&self) -> &str {
        &self.name
    }

    fn side(&self) -> Side {
        Side::Guest
    }

    fn producer(&self) -> Producer {
        Producer::command(self.command.clone())
    }

    fn needs_tool(&self) -> Option<&str> {
        self.tool.as_deref()
    }

    fn collect(&self, vm: &VmHandle, deadline: Deadline) -> Vec<Collected> {
        let started = Instant::now();
        let item = match vm.run(&self.command, deadline) {
            Ok(o) => Collected::text(&self.name, self.producer(), o.output)
                .with_run(Some(o.exit), started.elapsed()),
            Err(_) => Collected::text(&self.name, self.producer(), "")
                .with_run(None, started.elapsed())
                .with_note(vm.unresponsive().unwrap_or_else(|| "could not run".into())),
        };
        vec![item]
    }
}

/// The standard guest collectors: the journal, failed units and pending
/// jobs, block devices, network, the kernel log's tail.
pub fn standard_guest() -> Vec<GuestCommand> {
    vec![
        GuestCommand::new(
            "journal",
            "journalctl -b --no-pager -o short-monotonic | tail -n 5000",
        )
        .needs("journalctl"),
        GuestCommand::new("systemctl-failed", "systemctl --failed --no-pager").needs("systemctl"),
        GuestCommand::new("systemctl-list-jobs", "systemctl list-jobs --no-pager")
            .needs("systemctl"),
        GuestCommand::new("lsblk", "lsblk -f").needs("lsblk"),
        GuestCommand::new(
            "network",
            "if command -v networkctl >/dev/null 2>&1; then networkctl status --no-pager; else ip addr; fi",
        ),
        GuestCommand::new("dmesg-tail", "dmesg | tail -n 200").needs("dmesg"),
    ]
}

/// The status and the journal of systemd unit `unit`.
pub fn unit(unit: &str) -> [GuestCommand; 2] {
    let q = shell_quote(unit);
    let safe: String = unit
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    [
        GuestCommand::new(
            format!("unit-{safe}-status"),
            format!("systemctl status --no-pager -l {q}"),
        )
        .needs("systemctl"),
        GuestCommand::new(
            format!("unit-{safe}-journal"),
            format!("journalctl -u {q} -b --no-pager | tail -n 2000"),
        )
        .needs("journalctl"),
    ]
}

/// A scenario's own diagnostics command, the `index`-th (0-based).
pub fn command(index: usize, cmd: &str) -> GuestCommand {
    GuestCommand::new(format!("command-{}", index + 1), cmd)
}

/// The standard guest collectors, then one status and journal per unit,
/// then the scenario's own commands.
pub fn guest_collectors(units: &[String], commands: &[String]) -> Vec<GuestCommand> {
    let mut v = standard_guest();
    for u in units {
        v.extend(unit(u));
    }
    for (i, cmd) in commands.iter().enumerate() {
        v.push(command(i, cmd));
    }
    v
}

/// The last lines of the VM's console, as the host saw them.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleTail;

impl ConsoleTail {
    /// How many lines.
    pub const LINES: usize = 200;
}

impl Collector for ConsoleTail {
    fn name(&self) -> &str {
        "console-tail"
    }

    fn side(&self) -> Side {
        Side::Host
    }

    fn producer(&self) -> Producer {
        Producer::host("last 200 lines of the ANSI-stripped serial console")
    }

    fn collect(&self, vm: &VmHandle, _deadline: Deadline) -> Vec<Collected> {
        let tail = vm.machine().console().tail_lines(ConsoleTail::LINES);
        vec![Collected::text(self.name(), self.producer(), tail)]
    }
}

/// QMP `query-status` and, once QEMU exited, its exit status.
#[derive(Debug, Clone, Copy, Default)]
pub struct QemuStatus;

impl Collector for QemuStatus {
    fn name(&self) -> &str {
        "qemu-status"
    }

    fn side(&self) -> Side {
        Side::Host
    }

    fn producer(&self) -> Producer {
        Producer::host("QMP query-status")
    }

    fn collect(&self, vm: &VmHandle, deadline: Deadline) -> Vec<Collected> {
        let started = Instant::now();
        let m = vm.machine();
        let status = m.qmp(|q| {
            let _ = q.set_timeout(deadline.remaining().min(Duration::from_secs(5)));
            q.query_status()
        });
        let (output, note) = match status {
            Some(Ok(s)) => (format!("status: {s}\n"), None),
            Some(Err(e)) => (String::new(), Some(format!("QMP query-status failed: {e}"))),
            None => (
                String::new(),
                Some("QEMU has exited; QMP is gone".to_string()),
            ),
        };
        let exit_note = m
            .exit_status()
            .map(|s| format!("QEMU exited: {s}\n"))
            .unwrap_or_default();
        let mut item =
            Collected::text(self.name(), self.producer(), format!("{output}{exit_note}"))
                .with_run(None, started.elapsed());
        item.note = note;
        vec![item]
    }
}

/// A QMP screendump of a VM with a display, as `screendump.png` in its
/// folder (or at an explicit path).
#[derive(Debug, Clone, Default)]
pub struct Screendump {
    to: Option<PathBuf>,
}

impl Screendump {
    /// A screendump to `path` instead of the VM's folder, taken whether or
    /// not the VM has a display.
    pub fn to(path: impl Into<PathBuf>) -> Screendump {
        Screendump {
            to: Some(path.into()),
        }
    }
}

impl Collector for Screendump {
    fn name(&self) -> &str {
        layout::SCREENDUMP.name
    }

    fn side(&self) -> Side {
        Side::Host
    }

    fn producer(&self) -> Producer {
        layout::SCREENDUMP.producer()
    }

    fn collect(&self, vm: &VmHandle, _deadline: Deadline) -> Vec<Collected> {
        let path = match &self.to {
            Some(p) => p.clone(),
            None if vm.machine().has_display() => vm.dir().join(layout::SCREENDUMP.path),
            None => return Vec::new(),
        };
        let res = vm.machine().qmp(|q| q.screendump(&path));
        if !matches!(res, Some(Ok(()))) {
            let _ = std::fs::remove_file(&path);
            return Vec::new();
        }
        match self.to {
            Some(_) => Vec::new(),
            None => vec![Collected::file(
                self.name(),
                self.producer(),
                layout::SCREENDUMP.path,
            )],
        }
    }
}

/// The built-in collectors every test context starts with: the standard
/// guest collectors, the console tail, QEMU's status, a screendump.
pub fn builtin() -> Vec<Arc<dyn Collector>> {
    let mut v: Vec<Arc<dyn Collector>> = standard_guest()
        .into_iter()
        .map(|c| Arc::new(c) as Arc<dyn Collector>)
        .collect();
    v.push(Arc::new(ConsoleTail));
    v.push(Arc::new(QemuStatus));
    v.push(Arc::new(Screendump::default()));
    v
}

/// Runs the standard guest collectors and those of `units` and
/// `commands` on `vm`, each with `timeout`.
pub fn collect_guest(
    vm: &Arc<Session>,
    units: &[String],
    commands: &[String],
    timeout: Duration,
) -> Vec<Collected> {
    let collectors: Vec<Arc<dyn Collector>> = guest_collectors(units, commands)
        .into_iter()
        .map(|c| Arc::new(c) as Arc<dyn Collector>)
        .collect();
    run_collectors(&VmHandle::standalone(vm.clone()), &collectors, timeout)
}

/// Runs the host-side collectors on `vm`: the console tail, QMP
/// `query-status`, and a screendump to `screendump_to` if given.
pub fn collect_host(vm: &Arc<Session>, screendump_to: Option<&Path>) -> Vec<Collected> {
    let mut collectors: Vec<Arc<dyn Collector>> = vec![Arc::new(ConsoleTail), Arc::new(QemuStatus)];
    if let Some(p) = screendump_to {
        collectors.push(Arc::new(Screendump::to(p)));
    }
    run_collectors(
        &VmHandle::standalone(vm.clone()),
        &collectors,
        COLLECTOR_TIMEOUT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_quoted_and_named_safely() {
        let v = guest_collectors(&["a b@x.service".into()], &["uname -a".into()]);
        let names: Vec<&str> = v.iter().map(|c| c.name()).collect();
        assert!(names.contains(&"unit-a_b@x.service-status"), "{names:?}");
        assert!(v
            .iter()
            .any(|c| c.command() == "systemctl status --no-pager -l 'a b@x.service'"));
        assert_eq!(
            v.last().unwrap(),
            &GuestCommand::new("command-1", "uname -a")
        );
        for std in [
            "journal",
            "systemctl-failed",
            "systemctl-list-jobs",
            "lsblk",
            "network",
            "dmesg-tail",
        ] {
            assert!(names.contains(&std), "{std} missing");
        }
        // Tools are declared, so a guest without them skips cleanly.
        let journal = v.iter().find(|c| c.name() == "journal").unwrap();
        assert_eq!(journal.needs_tool(), Some("journalctl"));
        assert_eq!(v.last().unwrap().needs_tool(), None);
    }

    #[test]
    fn builtins_run_guest_side_first_then_host_side() {
        let sides: Vec<Side> = builtin().iter().map(|c| c.side()).collect();
        let first_host = sides.iter().position(|s| *s == Side::Host).unwrap();
        assert!(sides[first_host..].iter().all(|s| *s == Side::Host));
        assert_eq!(first_host, 6);
    }
}
