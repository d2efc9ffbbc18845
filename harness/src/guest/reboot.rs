//! Rebooting the guest and reconnecting the session.
//!
//! Machines run with `-no-reboot`, so a guest that reboots by itself (a
//! kernel panic with `panic=-1`) ends QEMU, which crash detection relies
//! on. [`Session::reboot`] switches QEMU's reboot action to a reset over
//! QMP (`set-action reboot=reset`) for the reboot it asks for, and back
//! to ending QEMU once the new boot's shell answers (or the reboot
//! failed). Not as soon as the reset happened: Linux tries one reset
//! method after another, so a second reset request can follow the first
//! before the old boot's CPU stops. A kernel crash in between is still
//! seen on the console.
//!
//! 1. the guest's boot id is read (`/proc/sys/kernel/random/boot_id`);
//! 2. the root shell runs `systemctl reboot` (systemd) or `reboot -f`;
//! 3. the session waits for QMP's `RESET` event, then drops the console
//!    text and channel bytes of the old boot;
//! 4. it gets a shell the way it got its first one (login, or attach to
//!    the shell prompt), becomes root again the same way if it was, which
//!    reopens the command channel and mounts the shares again;
//! 5. the boot id must have changed.

use std::time::{Duration, Instant};

use bootrig_diagnostics::metadata::PhaseEdge;

use crate::errors::{Error, Result};
use crate::guest::session::{Session, ShellOrigin};

/// The phase of [`Session::reboot`] (from the reboot command to the reset).
pub const PHASE_REBOOT: &str = "reboot";

/// How long the guest may take from the reboot command to its reset (a
/// systemd shutdown under TCG on a busy host).
const RESET_TIMEOUT: Duration = Duration::from_secs(180);

/// Where the kernel tells one boot from another.
const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

impl Session {
    /// Reboots the guest and reconnects: see the module documentation.
    /// Needs a root shell. Returns once the new boot's shell answers, as
    /// root again if it was.
    pub fn reboot(&self) -> Result<&Self> {
        let (origin, escalation) = {
            let st = self.state();
            if !st.ready || !st.root {
                return Err(Error::Guest {
                    doing: "rebooting the guest".into(),
                    message: "rebooting needs a root shell: log in as root or become root first"
                        .into(),
                    tail: String::new(),
                });
            }
            (st.origin.clone(), st.escalation.clone())
        };
        let Some(origin) = origin else {
            return Err(Error::Guest {
                doing: "rebooting the guest".into(),
                message: "the session got its shell neither by login nor by attach_shell, so it cannot get it again".into(),
                tail: String::new(),
            });
        };
        let before = self.succeed(BOOT_ID)?;
        self.machine
            .qmp_checked("letting the guest's reboot reset the machine", |q| {
                q.drop_events("RESET");
                q.set_reboot_resets(true)
            })?;
        let rebooted = self.reboot_and_reconnect(origin, escalation);
        // Back to ending QEMU on a reboot, whatever happened. Not sooner:
        // a guest that asked for a reset may ask again (Linux tries one
        // reset method after another) before its CPU stops.
        let restored = self
            .machine
            .qmp_checked("restoring -no-reboot (a guest reboot ends QEMU)", |q| {
                q.set_reboot_resets(false)
            });
        rebooted?;
        restored?;
        let after = self.succeed(BOOT_ID)?;
        if after.trim() == before.trim() {
            return Err(Error::Guest {
                doing: "rebooting the guest".into(),
                message: format!(
                    "the boot id is still {}: the guest did not boot again",
                    after.trim()
                ),
                tail: self.tail(),
            });
        }
        self.transcript.entry(&format!(
            "reboot: new boot {} (was {})",
            after.trim(),
            before.trim()
        ));
        Ok(self)
    }

    /// Steps 2 to 4, while a guest reboot resets the machine.
    fn reboot_and_reconnect(
        &self,
        origin: ShellOrigin,
        escalation: Option<(String, Option<String>)>,
    ) -> Result<()> {
        let hooks = self.hooks();
        if let Some(h) = &hooks {
            h.phase(PHASE_REBOOT, PhaseEdge::Start);
        }
        self.reset_guest()?;
        if let Some(h) = &hooks {
            h.phase(PHASE_REBOOT, PhaseEdge::End);
        }
        match origin {
            ShellOrigin::Login(user, password) => self.login(&user, &password)?,
            ShellOrigin::Attach(prompt) => self.attach_shell(&prompt)?,
        };
        if let Some((method, password)) = escalation {
            self.escalate(&method, password)?;
        }
        Ok(())
    }

    /// Steps 2 and 3: the reboot command and the reset; then the session
    /// forgets the old boot's shell.
    fn reset_guest(&self) -> Result<()> {
        let started = Instant::now();
        self.console_send(
            "sync; if [ -d /run/systemd/system ]; then systemctl reboot; else reboot -f; fi\n",
        )?;
        let reset = self
            .machine
            .wait_event("RESET", self.deadline_within(RESET_TIMEOUT))?;
        if reset.is_none() {
            return Err(Error::BootTimeout {
                expected: "reset after the reboot command (QMP RESET event)".into(),
                waited: started.elapsed(),
                tail: self.tail(),
            });
        }
        // What follows is the new boot's: the old shell, its prompt and
        // its channel bytes are gone.
        self.machine.console().clear();
        if let Some(ch) = self.machine.channel() {
            ch.clear();
        }
        let mut st = self.state();
        st.ready = false;
        st.root = false;
        st.port = None;
        st.asks_cursor = false;
        st.shares_mounted = false;
        st.booted = Some(Instant::now());
        drop(st);
        self.transcript
            .entry("reboot: the guest reset; reconnecting");
        Ok(())
    }
}
