//! Keeping the session in step with its shell: resynchronising after an
//! interrupted command, and noticing a shell that was left.
//!
//! After a command times out it is interrupted with Ctrl-C, and the shell
//! may take a while to come back (a command that ignores the interrupt,
//! a tty that flushes the text typed with it). Nothing else is typed until
//! the shell has answered a sync line (`__BRS<token>_<k>__`); if it never
//! does, the session has no shell and later commands fail at once instead
//! of each waiting for its own timeout (the postmortem's collectors
//! included).
//!
//! A command that ends the shell (`exit`, `exec true`-like endings) is
//! seen through the shell's `EXIT` trap (`__BRX<token>_<n>_<status>__`):
//! the command fails with that, and the session has no shell until the
//! test logs in or attaches again, so no later command runs in whatever
//! shell took its place (the user's shell below `sudo -i`, a respawned
//! root shell).

use std::time::Duration;

use crate::console::{ExpectError, Match};
use crate::deadline::Deadline;
use crate::errors::Error;
use crate::guest::session::{marker_status, Session};

/// How long the shell may take to answer the sync lines after an
/// interrupt, in all.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one sync line may take to be answered before another is
/// typed (the first may have been flushed with the interrupt).
const RESYNC_ATTEMPT: Duration = Duration::from_secs(5);

/// How long the private prompt may take to follow the sync marker.
const PROMPT_AFTER_SYNC: Duration = Duration::from_secs(5);

impl Session {
    /// After an interrupt: types sync lines until the shell answers one,
    /// then consumes its prompt. Returns false (and leaves the session
    /// without a shell) when the shell does not answer in time.
    pub(super) fn resync(&self, cmd: &str) -> bool {
        let console = self.machine.console();
        let (Ok(synced), Ok(prompt)) = (self.markers.synced(), self.markers.prompt()) else {
            return false;
        };
        let until = self.deadline_within(RESYNC_TIMEOUT);
        let mut k = 0;
        while !until.expired() {
            k += 1;
            let queries = console.queries_answered();
            if console.send(self.markers.sync_line(k).as_bytes()).is_err() {
                break;
            }
            match console.expect(&synced, until.min(Deadline::after(RESYNC_ATTEMPT))) {
                Ok(m) if !self.markers.synced_by_own_shell(&m) => {
                    self.lose_shell(format!(
                        "the shell exited during `{cmd}`: after the timeout another shell, \
                         one the session never set up, answered"
                    ));
                    return false;
                }
                Ok(_) => {
                    let after = self.deadline_within(PROMPT_AFTER_SYNC);
                    if console.expect(&prompt, after).is_ok() && self.state().asks_cursor {
                        self.settle_prompt(queries);
                    }
                    if k > 1 {
                        self.transcript.entry(&format!(
                            "(the shell answered sync line {k} after the interrupt)"
                        ));
                    }
                    return true;
                }
                Err(ExpectError::Timeout { .. }) => continue,
                Err(_) => break,
            }
        }
        let why = if k == 0 {
            format!("no time was left to wait for the shell after `{cmd}` timed out")
        } else {
            format!(
                "the shell did not answer within {}s after `{cmd}` timed out and was interrupted",
                RESYNC_TIMEOUT.as_secs()
            )
        };
        self.lose_shell(why);
        false
    }

    /// Command `cmd` ended the shell (its `EXIT` trap printed `m`): the
    /// session has no shell now. Returns the command's failure.
    pub(super) fn shell_left(&self, cmd: &str, m: &Match) -> Error {
        let status = marker_status(m);
        self.lose_shell(format!(
            "the shell exited (status {status}) during `{}`",
            cmd.lines().next().unwrap_or("")
        ));
        if let Some(ch) = self.machine.channel() {
            ch.clear();
        }
        Error::Command {
            command: cmd.to_string(),
            expected: "ended the session's shell: the shell exited, and the session has no shell \
                       now (log in or attach again)"
                .into(),
            exit: status,
            output: String::from_utf8_lossy(&m.before).into_owned(),
        }
    }

    /// Why the session lost its shell (it exited, or stopped answering
    /// after a timeout), until a new login or attach; `None` while it has
    /// one or never had one.
    pub fn lost_shell(&self) -> Option<String> {
        self.state().lost.clone()
    }

    /// Forgets the shell (why: for the transcript and later commands'
    /// errors).
    fn lose_shell(&self, why: String) {
        self.transcript
            .entry(&format!("(session: {why}; no shell now)"));
        let mut st = self.state();
        st.ready = false;
        st.root = false;
        st.port = None;
        st.lost = Some(why);
    }
}
