//! Diagnostics collectors: what the guest and the host knew at the moment
//! a test failed.
//!
//! Guest collectors run through the test's own shell, each with its own
//! deadline. A tool the guest lacks (a busybox guest has no journalctl) or
//! a guest that stops answering is recorded as such; it never hides the
//! original failure and never hangs the run: after the first collector the
//! guest does not answer, the remaining guest collectors are skipped.

use std::time::{Duration, Instant};

use bootrig_diagnostics::catalog::Producer;

use crate::errors::Error;
use crate::guest::session::{shell_quote, Session};

/// Per-collector deadline.
pub const COLLECTOR_TIMEOUT: Duration = Duration::from_secs(20);

/// One collector's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Artifact name, also the file name under `diagnostics/` (`.txt`).
    pub name: String,
    /// What produced it: the command run in the guest, or the host-side
    /// source.
    pub produced_by: Producer,
    /// What it printed.
    pub output: String,
    /// Its exit code, when it ran.
    pub exit: Option<i32>,
    /// How long it took.
    pub duration: Duration,
    /// Why the output is missing or partial, if it is.
    pub note: Option<String>,
}

/// The standard guest collectors, then one status and journal per unit,
/// then the scenario's own commands.
pub fn guest_commands(units: &[String], commands: &[String]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("journal".into(), "journalctl -b --no-pager -o short-monotonic | tail -n 5000".into()),
        ("systemctl-failed".into(), "systemctl --failed --no-pager".into()),
        ("systemctl-list-jobs".into(), "systemctl list-jobs --no-pager".into()),
        ("lsblk".into(), "lsblk -f".into()),
        (
            "network".into(),
            "if command -v networkctl >/dev/null 2>&1; then networkctl status --no-pager; else ip addr; fi"
                .into(),
        ),
        ("dmesg-tail".into(), "dmesg | tail -n 200".into()),
    ];
    for unit in units {
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
        v.push((
            format!("unit-{safe}-status"),
            format!("systemctl status --no-pager -l {q}"),
        ));
        v.push((
            format!("unit-{safe}-journal"),
            format!("journalctl -u {q} -b --no-pager | tail -n 2000"),
        ));
    }
    for (i, cmd) in commands.iter().enumerate() {
        v.push((format!("command-{}", i + 1), cmd.clone()));
    }
    v
}

/// Runs the guest collectors through `vm`'s shell (if it has one), each
/// with `timeout`.
pub fn collect_guest(
    vm: &Session,
    units: &[String],
    commands: &[String],
    timeout: Duration,
) -> Vec<Collected> {
    let mut out = Vec::new();
    let mut unresponsive: Option<String> = if vm.machine().console().is_closed() {
        Some("the guest is gone (QEMU exited)".into())
    } else if vm.has_shell() {
        None
    } else {
        Some("no shell in the guest (the test failed before login or attach)".into())
    };
    for (name, cmd) in guest_commands(units, commands) {
        let started = Instant::now();
        if let Some(why) = &unresponsive {
            out.push(Collected {
                name,
                produced_by: Producer::command(cmd),
                output: String::new(),
                exit: None,
                duration: Duration::ZERO,
                note: Some(format!("skipped: {why}")),
            });
            continue;
        }
        let result = vm.run_timeout(&cmd, timeout);
        let duration = started.elapsed();
        let c = match result {
            Ok(o) => {
                let note = (o.exit == 127 || o.output.contains("not found"))
                    .then(|| "a tool this needs is not installed in the guest".to_string());
                Collected {
                    name,
                    produced_by: Producer::command(cmd),
                    output: o.output,
                    exit: Some(o.exit),
                    duration,
                    note,
                }
            }
            Err(e) => {
                let why = match &e {
                    Error::CommandTimeout { .. } => {
                        format!(
                            "the guest did not answer within {}s",
                            COLLECTOR_TIMEOUT.as_secs()
                        )
                    }
                    Error::KernelCrash(r) => format!("the kernel crashed: {}", r.title),
                    other => format!(
                        "could not run: {}",
                        other.to_string().lines().next().unwrap_or("")
                    ),
                };
                unresponsive = Some(why.clone());
                Collected {
                    name,
                    produced_by: Producer::command(cmd),
                    output: String::new(),
                    exit: None,
                    duration,
                    note: Some(why),
                }
            }
        };
        out.push(c);
    }
    out
}

/// Host-side collectors: the console tail, QMP `query-status`, and a
/// screendump when the guest has a display.
pub fn collect_host(vm: &Session, screendump_to: Option<&std::path::Path>) -> Vec<Collected> {
    let mut out = Vec::new();
    let m = vm.machine();
    out.push(Collected {
        name: "console-tail".into(),
        produced_by: Producer::host("last 200 lines of the ANSI-stripped serial console"),
        output: m.console().tail_lines(200),
        exit: None,
        duration: Duration::ZERO,
        note: None,
    });
    let started = Instant::now();
    let status = m.qmp(|q| {
        let _ = q.set_timeout(Duration::from_secs(5));
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
    out.push(Collected {
        name: "qemu-status".into(),
        produced_by: Producer::host("QMP query-status"),
        output: format!("{output}{exit_note}"),
        exit: None,
        duration: started.elapsed(),
        note,
    });
    if let Some(path) = screendump_to {
        let res = m.qmp(|q| q.screendump(path));
        if !matches!(res, Some(Ok(()))) {
            let _ = std::fs::remove_file(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_quoted_and_named_safely() {
        let v = guest_commands(&["a b@x.service".into()], &["uname -a".into()]);
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"unit-a_b@x.service-status"), "{names:?}");
        assert!(v
            .iter()
            .any(|(_, c)| c == "systemctl status --no-pager -l 'a b@x.service'"));
        assert_eq!(
            v.last().unwrap(),
            &("command-1".to_string(), "uname -a".to_string())
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
    }
}
