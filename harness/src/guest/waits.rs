//! Polled waits on the guest: a command that starts succeeding, a systemd
//! unit that becomes active. Each attempt is a command round trip, so
//! these poll with [`poll_until`](crate::deadline::poll_until).

use std::time::{Duration, Instant};

use crate::deadline::{self as wait, Deadline};
use crate::errors::{Error, Result};
use crate::guest::protocol::shell_quote;
use crate::guest::session::Session;

/// The least time one attempt of a polled wait gets, so that an attempt
/// started just before the wait's deadline can still finish. (The test's
/// deadline still bounds it.)
const MIN_ATTEMPT: Duration = Duration::from_secs(1);

impl Session {
    /// The deadline of one attempt of a wait that ends at `wait`: what is
    /// left of it, at least [`MIN_ATTEMPT`], at most the step timeout.
    fn attempt_deadline(&self, wait: Deadline) -> Deadline {
        Deadline::after(wait.remaining().max(MIN_ATTEMPT).min(self.timeouts.step))
    }

    /// Runs `cmd` until it exits 0, up to `timeout` (and never past the
    /// test's deadline).
    pub fn wait_until_succeeds(&self, cmd: &str, timeout: Duration) -> Result<String> {
        self.poll_command(cmd, timeout, |exit| exit == 0, "succeed")
    }

    /// Runs `cmd` until its exit status passes `done`, up to `timeout`;
    /// returns its last output. A timeout says the command was awaited to
    /// `what`.
    fn poll_command(
        &self,
        cmd: &str,
        timeout: Duration,
        done: impl Fn(i32) -> bool,
        what: &str,
    ) -> Result<String> {
        let started = Instant::now();
        let deadline = self.deadline_within(timeout);
        let mut last = String::new();
        let found = wait::poll_until(
            deadline,
            wait::POLL_INTERVAL,
            || -> Result<Option<String>> {
                let out = self.run_until(cmd, self.attempt_deadline(deadline))?;
                if done(out.exit) {
                    return Ok(Some(out.output));
                }
                last = format!("exit {}\n{}", out.exit, out.output);
                Ok(None)
            },
        )?;
        found.ok_or_else(|| Error::WaitTimeout {
            what: format!("`{cmd}` to {what}"),
            waited: timeout.min(started.elapsed()),
            last,
        })
    }

    /// Waits until `unit` is active, up to the session's step timeout.
    /// Fails at once if it enters `failed` or does not exist, with its
    /// `systemctl status`.
    pub fn wait_for_unit(&self, unit: &str) -> Result<()> {
        self.wait_for_unit_within(unit, self.timeouts.step)
    }

    /// [`Session::wait_for_unit`] with its own timeout (never past the
    /// test's deadline).
    pub fn wait_for_unit_within(&self, unit: &str, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let deadline = self.deadline_within(timeout);
        let quoted = shell_quote(unit);
        let query =
            format!("systemctl show --no-pager -p ActiveState -p LoadState -p SubState {quoted}");
        let mut last = String::new();
        let done = wait::poll_until(deadline, wait::POLL_INTERVAL, || -> Result<Option<()>> {
            let out = self.run(&query)?;
            if out.exit == 127 || (out.exit != 0 && !out.output.contains("State=")) {
                return Err(Error::UnitFailed {
                    unit: unit.into(),
                    state: "unknown".into(),
                    status: format!(
                        "cannot query systemd in this guest (is it a systemd system?): exit {}\n{}",
                        out.exit, out.output
                    ),
                });
            }
            let prop = |k: &str| {
                out.output
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(&format!("{k}=")).map(str::to_string))
                    .unwrap_or_default()
            };
            let (active, load) = (prop("ActiveState"), prop("LoadState"));
            last = out.output.clone();
            if load == "not-found" {
                return Err(Error::UnitFailed {
                    unit: unit.into(),
                    state: "not-found".into(),
                    status: self.unit_status(&quoted),
                });
            }
            match active.as_str() {
                "active" => Ok(Some(())),
                "failed" => Err(Error::UnitFailed {
                    unit: unit.into(),
                    state: active,
                    status: self.unit_status(&quoted),
                }),
                _ => Ok(None),
            }
        })?;
        done.ok_or_else(|| Error::WaitTimeout {
            what: format!("unit {unit} to become active"),
            waited: timeout.min(started.elapsed()),
            last,
        })
    }

    /// `systemctl status` of a (quoted) unit, for failure messages.
    fn unit_status(&self, quoted: &str) -> String {
        self.run(&format!("systemctl status --no-pager -l {quoted}"))
            .map(|o| o.output)
            .unwrap_or_else(|e| format!("(systemctl status unavailable: {e})"))
    }
}

/// The verbs NixOS test users reach for, written over the same polled
/// round trip.
impl Session {
    /// Runs `cmd` until it exits non-zero, up to `timeout` (and never past
    /// the test's deadline). Returns its last output.
    pub fn wait_until_fails(&self, cmd: &str, timeout: Duration) -> Result<String> {
        self.poll_command(cmd, timeout, |exit| exit != 0, "fail")
    }

    /// Waits until `path` exists in the guest.
    pub fn wait_for_file(&self, path: &str, timeout: Duration) -> Result<()> {
        self.wait_until_succeeds(&format!("test -e {}", shell_quote(path)), timeout)
            .map(drop)
            .map_err(|e| rename_wait(e, format!("{path} to exist")))
    }

    /// Waits until something listens on TCP `port` in the guest (IPv4 or
    /// IPv6, any address), read from `/proc/net/tcp*` so no tool is
    /// needed.
    pub fn wait_for_open_port(&self, port: u16, timeout: Duration) -> Result<()> {
        // State 0A is LISTEN; the local port is the hex after the colon.
        let cmd = format!("grep -qs ':{port:04X} [0-9A-F:]* 0A ' /proc/net/tcp /proc/net/tcp6");
        self.wait_until_succeeds(&cmd, timeout)
            .map(drop)
            .map_err(|e| rename_wait(e, format!("TCP port {port} to be open in the guest")))
    }

    /// Waits for `pattern` on the console (kernel messages included), up to
    /// `timeout`. The same as [`Session::wait_for_console`], named as the
    /// NixOS driver names it.
    pub fn wait_for_console_text(
        &self,
        pattern: &str,
        timeout: Duration,
    ) -> Result<crate::console::Match> {
        self.wait_for_console(pattern, timeout)
    }
}

/// A wait timeout that says what was awaited in the user's terms.
fn rename_wait(e: Error, what: String) -> Error {
    match e {
        Error::WaitTimeout { waited, last, .. } => Error::WaitTimeout { what, waited, last },
        other => other,
    }
}
