//! A guest session over a running machine: run commands with exact output
//! and exit codes, send text and keys, wait for console text, shut down.
//!
//! Logging in and attaching to a shell are in `guest/login.rs`, polled
//! waits (a command that starts succeeding, a systemd unit) in
//! `guest/waits.rs`, and the marker protocol that delimits each command's
//! output in [`protocol`](super::protocol).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::console::{ExpectError, Match};
use crate::deadline::Deadline;
use crate::errors::{Error, Result};
use crate::guest::protocol::Markers;
use crate::guest::transcript::Transcript;
use crate::vm::machine::Machine;

pub use crate::guest::keys::Key;
pub use crate::guest::protocol::{compile, shell_quote};

/// Deadlines for the phases of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From QEMU start to the login prompt (or shell prompt).
    pub boot: Duration,
    /// For each step: a command, a login exchange, an expect.
    pub step: Duration,
}

/// Default [`Timeouts::boot`]: an installed distribution under TCG on a
/// busy host takes minutes to reach its login prompt.
const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// Default [`Timeouts::step`].
const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            boot: DEFAULT_BOOT_TIMEOUT,
            step: DEFAULT_STEP_TIMEOUT,
        }
    }
}

/// What the session knows about the shell it drives.
#[derive(Debug, Default)]
pub(super) struct ShellState {
    /// The private prompt marker, once the shell is set up.
    pub(super) ready: bool,
    /// Commands run so far (numbers the markers).
    pub(super) seq: u64,
    /// Logged-in user, and whether the shell is root.
    pub(super) user: Option<String>,
    /// The login password, answered to sudo's prompt.
    pub(super) password: Option<String>,
    pub(super) root: bool,
    /// The shell asks for the cursor position after each prompt.
    pub(super) asks_cursor: bool,
    /// The last commands by number, to annotate console tails.
    pub(super) recent: VecDeque<(u64, String)>,
    /// The command channel's device in the guest, once it works from this
    /// shell (see `guest/channel.rs`); commands use the console otherwise.
    pub(super) port: Option<String>,
    /// Whether the transcript already says that output comes from the
    /// console.
    pub(super) console_noted: bool,
    /// Why the session lost its shell (it exited, or stopped answering),
    /// until a new login or attach.
    pub(super) lost: Option<String>,
    /// How this shell was obtained, to get it again after a reboot.
    pub(super) origin: Option<ShellOrigin>,
    /// How the shell became root (method, password), to do it again after
    /// a reboot.
    pub(super) escalation: Option<(String, Option<String>)>,
    /// Whether the machine's shares are mounted in this boot.
    pub(super) shares_mounted: bool,
    /// When the current boot began, if not at QEMU's start (a reboot).
    pub(super) booted: Option<Instant>,
}

/// How a session got its first shell.
#[derive(Debug, Clone)]
pub(super) enum ShellOrigin {
    /// [`Session::login`] with this user and password.
    Login(String, String),
    /// [`Session::attach_shell`] with this prompt.
    Attach(String),
}

/// How many recent commands are remembered for console annotations.
const RECENT_COMMANDS: usize = 64;

/// Console lines in the tail of a session error (login, command timeout).
const ERROR_TAIL_LINES: usize = 30;

/// Console lines in the tail of a console error's message.
const CONSOLE_ERROR_TAIL_LINES: usize = 10;

/// How long the private prompt may take to follow a command's end marker.
/// The wait consumes the prompt (and lets the shell's cursor query be
/// answered) before the next command is typed; a prompt that comes later
/// is skipped by the next command's own marker wait, so missing it is not
/// an error.
const PROMPT_AFTER_COMMAND: Duration = Duration::from_secs(5);

/// The exit status in a matched end marker (group 1), or -1.
pub(super) fn marker_status(m: &Match) -> i32 {
    m.captures
        .get(1)
        .and_then(|c| c.as_deref())
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

/// The output and exit code of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit status (`$?`).
    pub exit: i32,
    /// Everything the command printed (stdout and stderr), as text
    /// (invalid UTF-8 replaced). On the command channel (the default)
    /// these are the exact bytes of [`CommandOutput::bytes`] when they are
    /// UTF-8; on a guest without it, the console text between the markers
    /// (ANSI-stripped, `\r\n` as `\n`).
    pub output: String,
    /// The bytes, kept apart only when they are not valid UTF-8 (`output`
    /// then differs): a big output is held once, not twice.
    raw: Option<Vec<u8>>,
    /// Whether the output came over the command channel (false: from the
    /// console).
    pub quiet: bool,
    /// How long it took.
    pub duration: Duration,
    /// Bytes of output dropped: on the console, beyond its pending-text
    /// cap (4 MiB; `output` then holds only the end); on the command
    /// channel, beyond 512 MiB (`output` holds the start). Redirect big
    /// outputs to a file in the guest instead.
    pub truncated_bytes: u64,
}

impl CommandOutput {
    /// A finished command's record, from its exit status and the bytes
    /// it printed (kept as they are; `output` shares them when they are
    /// UTF-8).
    pub(crate) fn new(
        exit: i32,
        bytes: Vec<u8>,
        quiet: bool,
        duration: Duration,
        truncated_bytes: u64,
    ) -> Self {
        let (output, raw) = match String::from_utf8(bytes) {
            Ok(text) => (text, None),
            Err(e) => {
                let bytes = e.into_bytes();
                (String::from_utf8_lossy(&bytes).into_owned(), Some(bytes))
            }
        };
        CommandOutput {
            exit,
            output,
            raw,
            quiet,
            duration,
            truncated_bytes,
        }
    }

    /// The output as bytes, exactly as the command wrote them when it ran
    /// on the command channel (`\r`, escape sequences and binary data
    /// kept, no newline added).
    pub fn bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.output.as_bytes())
    }

    /// The output as bytes, without a copy.
    pub fn into_bytes(self) -> Vec<u8> {
        self.raw.unwrap_or_else(|| self.output.into_bytes())
    }
}

/// What a session tells the test around it: the phases it goes through
/// (`login`, `become root`, `shell`) and the moment its shell answers.
/// The test context records them in `metadata.json` and sends them as
/// run events, for Rust tests and scenarios alike.
pub trait SessionHooks: Send + Sync {
    /// A phase begins or ends.
    fn phase(&self, name: &str, edge: bootrig_diagnostics::metadata::PhaseEdge);
    /// The shell answers commands (after login, escalation or attach).
    fn shell_ready(&self);
}

/// A guest session over a running [`Machine`]. Methods take `&self`, so a
/// test and the harness's diagnostics can share it.
pub struct Session {
    pub(super) machine: Machine,
    pub(super) timeouts: Timeouts,
    deadline: Mutex<Deadline>,
    hooks: Mutex<Option<Arc<dyn SessionHooks>>>,
    pub(super) markers: Markers,
    state: Mutex<ShellState>,
    pub(super) transcript: Transcript,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("machine", &self.machine)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Wraps a started machine. Writes `transcript.log` next to its logs.
    pub fn new(machine: Machine, timeouts: Timeouts) -> Session {
        let transcript = Transcript::open(machine.out_dir(), machine.started());
        Session {
            machine,
            timeouts,
            deadline: Mutex::new(Deadline::never()),
            hooks: Mutex::new(None),
            markers: Markers::new(),
            state: Mutex::new(ShellState::default()),
            transcript,
        }
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The deadlines in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The deadline of the test this session belongs to: no wait of the
    /// session outlives it.
    pub fn deadline(&self) -> Deadline {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bounds every later wait of the session by `deadline`.
    pub fn set_deadline(&self, deadline: Deadline) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    /// `timeout` from now, but never past the test's deadline: the deadline
    /// every wait of the session uses.
    pub fn deadline_within(&self, timeout: Duration) -> Deadline {
        self.deadline().within(timeout)
    }

    /// Who hears about this session's phases (the test context sets it).
    pub fn set_hooks(&self, hooks: Option<Arc<dyn SessionHooks>>) {
        *self.hooks.lock().unwrap_or_else(|p| p.into_inner()) = hooks;
    }

    /// Whether commands run on the command channel: the machine has one
    /// and this shell holds it open.
    pub(super) fn on_channel(&self) -> bool {
        self.machine.channel().is_some() && self.state().port.is_some()
    }

    /// The hooks set with [`Session::set_hooks`].
    pub(super) fn hooks(&self) -> Option<Arc<dyn SessionHooks>> {
        self.hooks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn state(&self) -> MutexGuard<'_, ShellState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The console tail for a session error.
    pub(super) fn tail(&self) -> String {
        self.console_tail(ERROR_TAIL_LINES)
    }

    /// A console error with what was being done, its console tail shown
    /// with readable markers (see [`Session::console_tail`]) and the
    /// session's marker patterns named (`the end of command #3`).
    pub(super) fn console_err(&self, doing: impl Into<String>, e: ExpectError) -> Error {
        let e = match e {
            ExpectError::Timeout {
                pattern, waited, ..
            } => ExpectError::Timeout {
                pattern: self.markers.readable_pattern(&pattern),
                waited,
                tail: self.console_tail(CONSOLE_ERROR_TAIL_LINES),
            },
            ExpectError::Closed { pattern, .. } => ExpectError::Closed {
                pattern: self.markers.readable_pattern(&pattern),
                tail: self.console_tail(CONSOLE_ERROR_TAIL_LINES),
            },
            other => other,
        };
        Error::console(doing, e)
    }

    /// The last `n` console lines with this session's private markers made
    /// readable: `[bootrig #3] $ uname -r` where command 3 began,
    /// `[bootrig #3] exit 0` where it ended, `[bootrig] $` for the prompt.
    /// (`serial.log` keeps the bytes exactly as they were.)
    pub fn console_tail(&self, n: usize) -> String {
        let raw = self.machine.console().tail_lines(n);
        let recent = self.state().recent.clone();
        self.transcript
            .redact(&self.markers.readable(&raw, &recent))
    }

    /// The console's `expect_any` until `deadline` (or the test's, if
    /// earlier), its errors with readable tails.
    pub(super) fn expect_any(
        &self,
        res: &[&Regex],
        deadline: Deadline,
        doing: &str,
    ) -> Result<(usize, Match)> {
        self.machine
            .console()
            .expect_any(res, deadline.min(self.deadline()))
            .map_err(|e| self.console_err(doing, e))
    }

    /// Sends raw text to the console (nothing is appended).
    pub fn send(&self, text: &str) -> Result<()> {
        self.machine
            .console()
            .send(text.as_bytes())
            .map_err(|e| self.console_err(format!("sending {text:?}"), e))
    }

    /// Sends a key press.
    pub fn send_key(&self, key: Key) -> Result<()> {
        self.machine
            .console()
            .send(key.bytes())
            .map_err(|e| self.console_err(format!("sending key {key:?}"), e))
    }

    /// Waits for `pattern` on the (ANSI-stripped) console, up to `timeout`
    /// (and never past the test's deadline).
    pub fn wait_for_console(&self, pattern: &str, timeout: Duration) -> Result<Match> {
        let re = compile(pattern)?;
        self.machine
            .console()
            .expect(&re, self.deadline_within(timeout))
            .map_err(|e| self.console_err(format!("waiting for /{pattern}/ on the console"), e))
    }

    /// Runs `cmd` in the guest shell; returns its exit code and output.
    /// Uses the step timeout.
    pub fn run(&self, cmd: &str) -> Result<CommandOutput> {
        self.run_timeout(cmd, self.timeouts.step)
    }

    /// Runs `cmd` with its own timeout. On timeout the command is
    /// interrupted with Ctrl-C so the session stays usable.
    pub fn run_timeout(&self, cmd: &str, timeout: Duration) -> Result<CommandOutput> {
        self.run_until(cmd, Deadline::after(timeout))
    }

    /// Runs `cmd` until `deadline` (or the test's deadline, if earlier).
    /// On timeout the command is interrupted with Ctrl-C so the session
    /// stays usable; a deadline that has already passed fails at once,
    /// without typing the command.
    pub fn run_until(&self, cmd: &str, deadline: Deadline) -> Result<CommandOutput> {
        let deadline = deadline.min(self.deadline());
        let n = {
            let mut st = self.state();
            if !st.ready {
                let message = match &st.lost {
                    Some(why) => format!("cannot run `{cmd}`: {why} (log in or attach again)"),
                    None => format!("cannot run `{cmd}`: no shell yet (log in or attach first)"),
                };
                return Err(Error::Config {
                    what: "session".into(),
                    message,
                });
            }
            if deadline.expired() {
                drop(st);
                return Err(Error::CommandTimeout {
                    command: cmd.to_string(),
                    waited: Duration::ZERO,
                    tail: self.tail(),
                });
            }
            st.seq += 1;
            let n = st.seq;
            if st.recent.len() == RECENT_COMMANDS {
                st.recent.pop_front();
            }
            st.recent.push_back((n, cmd.to_string()));
            n
        };
        let started = Instant::now();
        if self.on_channel() {
            return self.run_quiet(n, cmd, deadline, started);
        }
        let line = self.markers.wrap(n, cmd);
        let queries = self.machine.console().queries_answered();
        let dropped_before = self.machine.console().stats().dropped_bytes;
        self.console_send(&line)?;
        let begin = self.markers.begin(n)?;
        let end = self.markers.end(n)?;
        let console = self.machine.console();
        let waited = |e: ExpectError| -> Error {
            match e {
                ExpectError::Timeout { .. } => self.command_timed_out(cmd, started),
                other => self.console_err(format!("running `{cmd}`"), other),
            }
        };
        let exited = self.markers.exited(n)?;
        console.expect(&begin, deadline).map_err(waited)?;
        let (which, m) = console
            .expect_any(&[&end, &exited], deadline)
            .map_err(waited)?;
        if which == 1 {
            return Err(self.shell_left(cmd, &m));
        }
        let exit = marker_status(&m);
        // Consume the prompt that follows, and let its cursor query be
        // answered before anything else is typed.
        let prompt = self.markers.prompt()?;
        let prompt_deadline = self.deadline_within(PROMPT_AFTER_COMMAND);
        if console.expect(&prompt, prompt_deadline).is_ok() && self.state().asks_cursor {
            self.settle_prompt(queries);
        }
        let out = CommandOutput::new(
            exit,
            m.before,
            false,
            started.elapsed(),
            console.stats().dropped_bytes - dropped_before,
        );
        Ok(self.record(cmd, out))
    }

    /// Writes a finished command into the transcript.
    pub(super) fn record(&self, cmd: &str, out: CommandOutput) -> CommandOutput {
        if out.truncated_bytes > 0 {
            let (where_, part) = if out.quiet {
                ("command channel", "the last")
            } else {
                ("console buffer", "the first")
            };
            self.transcript.entry(&format!(
                "(output of `{cmd}` truncated: {part} {} bytes exceeded the {where_})",
                out.truncated_bytes
            ));
        }
        self.transcript
            .command(cmd, &out.output, out.exit, out.duration.as_secs_f64());
        out
    }

    /// A command ran out of time: interrupts it with Ctrl-C, waits until
    /// the shell answers again (see `guest/sync.rs`; without an answer the
    /// session has no shell), forgets its partial output on the command
    /// channel, and says what happened.
    pub(super) fn command_timed_out(&self, cmd: &str, started: Instant) -> Error {
        let waited = started.elapsed();
        let _ = self.machine.console().send(Key::CtrlC.bytes());
        self.resync(cmd);
        if let Some(ch) = self.machine.channel() {
            ch.clear();
        }
        Error::CommandTimeout {
            command: cmd.to_string(),
            waited,
            tail: self.tail(),
        }
    }

    pub(super) fn console_send(&self, text: &str) -> Result<()> {
        self.machine
            .console()
            .send(text.as_bytes())
            .map_err(|e| self.console_err("sending a command", e))
    }

    /// Runs `cmd` and fails unless it exits 0. Returns its output.
    pub fn succeed(&self, cmd: &str) -> Result<String> {
        let out = self.run(cmd)?;
        if out.exit != 0 {
            return Err(Error::Command {
                command: cmd.into(),
                expected: "was expected to succeed".into(),
                exit: out.exit,
                output: out.output,
            });
        }
        Ok(out.output)
    }

    /// Runs `cmd` and fails if it exits 0. Returns its output.
    pub fn fail(&self, cmd: &str) -> Result<String> {
        let out = self.run(cmd)?;
        if out.exit == 0 {
            return Err(Error::Command {
                command: cmd.into(),
                expected: "was expected to fail".into(),
                exit: out.exit,
                output: out.output,
            });
        }
        Ok(out.output)
    }

    /// Powers the guest off and waits for QEMU to exit; forces it down
    /// after `timeout`. Not bounded by the test's deadline: shutting down
    /// is cleanup, and a guest that does not obey is stopped anyway.
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        let root = self.state().root;
        if root && self.state().ready {
            let _ = self.console_send(
                "sync; if [ -d /run/systemd/system ]; then systemctl poweroff; else poweroff -f; fi\n",
            );
            if self.machine.wait_exit(timeout).is_some() {
                return Ok(());
            }
        }
        if !self.machine.powerdown(timeout) {
            self.transcript
                .entry("shutdown: the guest did not power off in time; QEMU was stopped");
        }
        Ok(())
    }

    /// Whether the session has a shell that answers commands.
    pub fn has_shell(&self) -> bool {
        self.state().ready
    }

    /// Writes a free-form note into the transcript.
    pub fn note(&self, text: &str) {
        self.transcript.entry(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_output_is_held_once() {
        let out = CommandOutput::new(0, b"caf\xc3\xa9\n".to_vec(), true, Duration::ZERO, 0);
        assert_eq!(out.output, "café\n");
        assert!(out.raw.is_none(), "valid UTF-8 kept twice");
        assert_eq!(out.bytes(), "café\n".as_bytes());
        // The text's own buffer: no copy was made.
        assert_eq!(out.bytes().as_ptr(), out.output.as_ptr());
        assert_eq!(out.into_bytes(), "café\n".as_bytes());
    }

    #[test]
    fn binary_output_keeps_its_bytes() {
        let raw = vec![b'a', 0xff, 0x00, b'\r'];
        let out = CommandOutput::new(3, raw.clone(), true, Duration::ZERO, 0);
        assert_eq!(out.exit, 3);
        assert_eq!(out.output, "a\u{fffd}\0\r");
        assert_eq!(out.bytes(), raw.as_slice());
        assert_eq!(out.into_bytes(), raw);
    }
}
