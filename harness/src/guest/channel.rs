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

use std::time::Duration;

use crate::guest::protocol::Markers;
use crate::guest::session::Session;
use crate::vm::channel::PORT_NAME;

/// How long the check frame may take to arrive.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the port lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

impl Session {
    /// Switches command output to the command channel if this shell can
    /// use it (see the module documentation).
    pub(super) fn probe_channel(&self) {
        let Some(channel) = self.machine.channel() else {
            self.console_output_because("the machine was started without the command channel");
            return;
        };
        if self.state().port.is_some() {
            return;
        }
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
        let port = match lines.next().and_then(|l| l.split_once(' ')) {
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
        match self.run_timeout(&Markers::open_channel(&port), LOOKUP_TIMEOUT) {
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
        let sent = self.run_timeout(&self.markers.hello(), HELLO_TIMEOUT);
        let arrived = channel.take_frame(
            &self.markers.frame_begin(0),
            &self.markers.frame_end(0),
            self.deadline_within(HELLO_TIMEOUT),
        );
        match (sent, arrived) {
            (Ok(o), Ok(_)) if o.exit == 0 => {
                self.state().port = Some(port.clone());
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
