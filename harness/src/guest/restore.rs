//! A session over a machine restored from a saved state (warm start).
//!
//! The guest's shell is where it was when the state was saved: at its
//! prompt, logged in, perhaps root, holding the command channel open. But
//! the session is new: a new QEMU process with new console and channel
//! sockets, and a new private token, while the old token is baked into the
//! shell's prompt and functions. [`Session::resume`] sets the shell up
//! again with the new token (the same set-up a login ends with), then sets
//! the guest's clock from the host's and mixes host random bytes into its
//! entropy pool, so restored guests share neither time nor random state
//! (the `vmgenid` device makes the kernel reseed as well).

use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};
use crate::guest::protocol::shell_quote;
use crate::guest::session::Session;

/// Host random bytes written into a restored guest's `/dev/urandom`.
const ENTROPY_BYTES: usize = 64;

/// What a session knows about its shell that a saved state must carry,
/// so that a session over the restored machine can drive the same shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedShell {
    /// The logged-in user, if the shell came from a login.
    pub user: Option<String>,
    /// The login password (answered to sudo's prompt).
    pub password: Option<String>,
    /// Whether the shell is root.
    pub root: bool,
    /// Whether the shell asks for the cursor position after its prompt.
    pub asks_cursor: bool,
    /// The command channel's device, when the shell held it open.
    #[serde(default)]
    pub port: Option<String>,
}

impl Session {
    /// The shell's state, to be saved with the machine's. Fails when the
    /// session has no shell yet.
    pub fn shell_state(&self) -> Result<SavedShell> {
        let st = self.state();
        if !st.ready {
            return Err(Error::Config {
                what: "session".into(),
                message: "no shell to save (log in or attach first)".into(),
            });
        }
        Ok(SavedShell {
            user: st.user.clone(),
            password: st.password.clone(),
            root: st.root,
            asks_cursor: st.asks_cursor,
            port: st.port.clone(),
        })
    }

    /// Takes over the shell of a restored machine (see the module
    /// documentation): the shell is set up with this session's token and
    /// checked to answer, the clock set and the entropy pool reseeded.
    /// Reported to the session's hooks as a ready shell.
    pub fn resume(&self, shell: &SavedShell) -> Result<&Self> {
        if let Some(pw) = &shell.password {
            self.transcript.add_secret(pw);
        }
        self.transcript
            .entry("restored from a saved state: setting the shell up with a new token");
        {
            let mut st = self.state();
            st.user = shell.user.clone();
            st.password = shell.password.clone();
            st.root = shell.root;
            st.asks_cursor = shell.asks_cursor;
            st.ready = false;
        }
        self.set_prompt(Some(shell.asks_cursor))?;
        match &shell.port {
            Some(port) => self.use_channel(port),
            None => self.probe_channel(),
        }
        self.reseed_clock_and_entropy();
        if let Some(h) = self.hooks() {
            h.shell_ready();
        }
        Ok(self)
    }

    /// Sets the guest's clock to the host's (it stood still while the
    /// state was on disk) and mixes host random bytes into the guest's
    /// entropy pool, in one command. The clock needs root, or the login
    /// password for `sudo`; any user may write to `/dev/urandom`. The
    /// transcript says what could not be done.
    fn reseed_clock_and_entropy(&self) {
        let mut bytes = [0u8; ENTROPY_BYTES];
        let entropy =
            match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
                // Octal escapes: understood by every printf, and no `%` or quote.
                Ok(()) => {
                    let escaped: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
                    format!("printf '{escaped}' >/dev/urandom || echo entropy")
                }
                Err(e) => {
                    self.transcript
                        .entry(&format!("entropy not reseeded: host /dev/urandom: {e}"));
                    String::new()
                }
            };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (secs, nanos) = (now.as_secs(), now.subsec_nanos());
        // GNU date takes fractions of a second, busybox date does not.
        let set = format!("date -s @{secs}.{nanos:09} || date -s @{secs}");
        let (root, password) = {
            let st = self.state();
            (st.root, st.password.clone())
        };
        let clock = match (root, password) {
            (true, _) => format!("{{ {set}; }} >/dev/null 2>&1 || echo clock"),
            (false, Some(pw)) => format!(
                "printf '%s\\n' {} | sudo -S -p '' sh -c {} >/dev/null 2>&1 || echo clock",
                shell_quote(&pw),
                shell_quote(&format!("{set} >/dev/null"))
            ),
            (false, None) => "echo clock".to_string(),
        };
        let cmd = if entropy.is_empty() {
            clock
        } else {
            format!("{clock}; {entropy}")
        };
        match self.run(&cmd) {
            Ok(o) => {
                for what in o.output.split_whitespace() {
                    self.transcript.entry(&format!(
                        "after the restore: {what} could not be set (not root?)"
                    ));
                }
            }
            Err(e) => self.transcript.entry(&format!(
                "after the restore: clock and entropy not set: {e}"
            )),
        }
    }
}
