//! Finding the command channel from the guest's shell.
//!
//! After every shell set-up (login, becoming root, attaching) the session
//! looks for the virtio-serial port named
//! [`PORT_NAME`](crate::vm::channel::PORT_NAME) that the machine carries,
//! checks that this shell may write to it, and sends one empty frame
//! through it. When that frame arrives, every later command's output
//! travels on the channel; otherwise commands keep using the console, and
//! the transcript says so once. A guest without the port (a kernel without
//! `virtio_console`, a machine started without the channel) or a user who
//! may not write to it (a non-root login before `sudo -i`) is not an
//! error.

use std::time::{Duration, Instant};

use crate::console::ExpectError;
use crate::deadline::Deadline;
use crate::errors::{Error, Result};
use crate::guest::protocol::{Markers, CHANNEL_FD};
use crate::guest::session::{marker_status, CommandOutput, Session};
use crate::vm::channel::{ChannelError, PORT_NAME};

/// How long the check frame may take to arrive.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the port lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long, after a command's end frame, the shell's cursor query (sent
/// after its prompt) may take to be answered.
const PROMPT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// While a command runs on the channel, how often the console is looked
/// at for the rare end marker that says its output went elsewhere (the
/// channel's own frames wake the wait at once).
const CONSOLE_CHECK: Duration = Duration::from_millis(250);

impl Session {
    /// Switches command output to the command channel if this shell can
    /// use it (see the module documentation).
    pub(super) fn probe_channel(&self) {
        if self.machine.channel().is_none() {
            self.console_output_because("the machine was started without the command channel");
            return;
        }
        // A new shell (after a login, `sudo -i`, `su`) has neither the
        // descriptor nor the functions of the one before: set it up again.
        self.state().port = None;
        let lookup = format!(
            "for p in /sys/class/virtio-ports/*; do \
             if [ \"$(cat \"$p/name\" 2>/dev/null)\" = {PORT_NAME} ]; then \
             d=/dev/${{p##*/}}; if [ -w \"$d\" ]; then echo \"ok $d\"; else echo \"ro $d\"; fi; fi; done"
        );
        let found = match self.run_timeout(&lookup, LOOKUP_TIMEOUT) {
            Ok(o) => o.output,
            Err(e) => {
                self.console_output_because(&format!("looking for the port failed: {e}"));
                return;
            }
        };
        let mut lines = found.lines().map(str::trim);
        let port: String = match lines.next().and_then(|l| l.split_once(' ')) {
            Some(("ok", dev)) => dev.to_string(),
            Some((_, dev)) => {
                self.console_output_because(&format!("this shell may not write to {dev}"));
                return;
            }
            None => {
                self.console_output_because(&format!(
                    "the guest has no {PORT_NAME} port (no virtio_console driver?)"
                ));
                return;
            }
        };
        self.use_channel(&port);
    }

    /// Switches command output to the channel device `port` (found by
    /// [`Session::probe_channel`], or known from before a restore): this
    /// shell holds it open and gets this session's shell functions.
    pub(super) fn use_channel(&self, port: &str) {
        let Some(channel) = self.machine.channel() else {
            self.console_output_because("the machine was started without the command channel");
            return;
        };
        self.state().port = None;
        match self.run_timeout(&Markers::open_channel(port), LOOKUP_TIMEOUT) {
            Ok(o) if o.output.trim() == "ok" => {}
            Ok(o) => {
                self.console_output_because(&format!(
                    "{port} could not be opened ({})",
                    o.output.trim()
                ));
                return;
            }
            Err(e) => {
                self.console_output_because(&format!("opening {port} failed: {e}"));
                return;
            }
        }
        if let Err(e) = self.run_timeout(&self.markers.quiet_setup(), LOOKUP_TIMEOUT) {
            self.console_output_because(&format!(
                "defining the channel's shell functions failed: {e}"
            ));
            return;
        }
        let sent = self.run_timeout(&self.markers.hello(), HELLO_TIMEOUT);
        let arrived = channel.take_frame(
            &self.markers.frame_begin(0),
            &self.markers.frame_end(0),
            self.deadline_within(HELLO_TIMEOUT),
        );
        match (sent, arrived) {
            (Ok(o), Ok(_)) if o.exit == 0 => {
                self.state().port = Some(port.to_string());
                self.transcript.entry(&format!(
                    "command output: on the command channel ({port}, virtio-serial port {PORT_NAME})"
                ));
            }
            (sent, arrived) => {
                let why = match (sent, arrived) {
                    (Err(e), _) => format!("writing to {port} failed: {e}"),
                    (Ok(o), _) if o.exit != 0 => {
                        format!(
                            "writing to {port} failed (exit {}): {}",
                            o.exit,
                            o.output.trim()
                        )
                    }
                    (_, Err(e)) => format!("a frame written to {port} did not arrive: {e}"),
                    _ => "unknown".to_string(),
                };
                self.console_output_because(&why);
            }
        }
    }

    /// Notes once in the transcript that output is read from the console.
    fn console_output_because(&self, why: &str) {
        let first = {
            let mut st = self.state();
            !std::mem::replace(&mut st.console_noted, true)
        };
        if first {
            self.transcript.entry(&format!(
                "command output: read from the console between markers ({why})"
            ));
        }
    }
}

impl Session {
    /// Runs command `n` with its output on the command channel.
    ///
    /// Only the channel is waited on: under a kernel message storm the
    /// console's markers can arrive late or with kernel text inside them,
    /// while the channel's frames arrive whole. The console is looked at
    /// (without waiting) for the end marker's verdict when the shell could
    /// not use the channel: `c`, the command ran on the console; `x`, it
    /// closed the channel's descriptor.
    pub(super) fn run_quiet(
        &self,
        n: u64,
        cmd: &str,
        deadline: Deadline,
        started: Instant,
    ) -> Result<CommandOutput> {
        let Some(ch) = self.machine.channel() else {
            return Err(Error::Config {
                what: "session".into(),
                message: "the command channel is gone".into(),
            });
        };
        let console = self.machine.console();
        let queries = console.queries_answered();
        self.console_send(&self.markers.wrap_quiet(n, cmd))?;
        let end = self.markers.end(n)?;
        let exited = self.markers.exited(n)?;
        let (begin_frame, end_frame) = (self.markers.frame_begin(n), self.markers.frame_end(n));
        let frame = loop {
            let slice = deadline.min(Deadline::after(CONSOLE_CHECK));
            match ch.take_frame(&begin_frame, &end_frame, slice) {
                Ok(f) => break f,
                Err(ChannelError::Closed) => {
                    // QEMU is gone: the console says why (a kernel crash
                    // whose report is still being read, or an exit).
                    let why = console
                        .expect(&end, Deadline::after(CONSOLE_CHECK))
                        .err()
                        .unwrap_or(ExpectError::Closed {
                            pattern: "the command's end frame".into(),
                            tail: String::new(),
                        });
                    return Err(self.console_err(
                        format!("reading the output of `{cmd}` from the command channel"),
                        why,
                    ));
                }
                Err(ChannelError::Timeout) if deadline.expired() => {
                    return Err(self.command_timed_out(cmd, started))
                }
                Err(ChannelError::Timeout) => {
                    // A kernel crash ends the command as it does on the
                    // console path.
                    if let Some(report) = console.fault() {
                        return Err(Error::KernelCrash(report));
                    }
                    // The command ended the shell (its EXIT trap).
                    if console.peek(&exited).is_some() {
                        let m = console.expect(&exited, Deadline::after(Duration::ZERO));
                        if let Ok(m) = m {
                            return Err(self.shell_left(cmd, &m));
                        }
                    }
                    // Looked at, not consumed: console text stays for the
                    // test's own console waits.
                    let Some(m) = console.peek(&end) else {
                        continue;
                    };
                    let mode = m
                        .captures
                        .get(2)
                        .and_then(|c| c.clone())
                        .unwrap_or_default();
                    match mode.as_slice() {
                        b"c" => {
                            // The command's output is this console text:
                            // take it off the console.
                            let m = console
                                .expect(&end, Deadline::after(Duration::ZERO))
                                .unwrap_or(m);
                            return self.ran_on_console(n, cmd, &m, started);
                        }
                        b"x" => {
                            return Err(Error::Command {
                                command: cmd.to_string(),
                                expected: format!(
                                    "must leave the shell's command channel (descriptor {CHANNEL_FD}) open"
                                ),
                                exit: marker_status(&m),
                                output: String::new(),
                            })
                        }
                        // `q`: its frame is on the way.
                        _ => {}
                    }
                }
            }
        };
        // Take the command's console text (its markers, what it printed
        // there) off the console when its end marker is already there, as
        // the console path does: later console waits (a login after a
        // logout, an escalation) must not match stale text. A shell that
        // asks for the cursor position after its prompt (busybox ash) is
        // answered before the next command is typed: the end frame comes
        // before the prompt, and a command typed while the query is on its
        // way would be read as the answer. Waiting for the query's answer,
        // not for the prompt, is immune to kernel lines landing inside the
        // prompt.
        let _ = console.expect(&end, Deadline::after(Duration::ZERO));
        if self.state().asks_cursor {
            self.settle_prompt_within(queries, PROMPT_QUERY_TIMEOUT);
        }
        let exit = std::str::from_utf8(&frame.trailer)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let out = CommandOutput::new(exit, frame.output, true, started.elapsed(), frame.dropped);
        Ok(self.record(cmd, out))
    }

    /// Command `n` ran on the console because its shell could not write
    /// to the channel: its output is the console text after its begin
    /// marker in `m` (the match of its end marker).
    fn ran_on_console(
        &self,
        n: u64,
        cmd: &str,
        m: &crate::console::Match,
        started: Instant,
    ) -> Result<CommandOutput> {
        self.transcript.entry(&format!(
            "(command #{n} ran on the console: the shell could not write to the command channel)"
        ));
        let begin = self.markers.begin(n)?;
        let text = match begin.find(&m.before) {
            Some(b) => m.before[b.end()..].to_vec(),
            None => m.before.clone(),
        };
        let out = CommandOutput::new(marker_status(m), text, false, started.elapsed(), 0);
        Ok(self.record(cmd, out))
    }
}
