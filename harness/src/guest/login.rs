//! Getting a shell: logging in on the serial getty, becoming root, or
//! attaching to a shell that needs no login; then setting the shell up
//! for the marker protocol.

use std::time::Duration;

use regex::bytes::Regex;

use crate::console::{ExpectError, Match};
use crate::deadline::Deadline;
use crate::errors::{Error, Result};
use crate::guest::keys::Key;
use crate::guest::protocol::compile;
use crate::guest::session::{Session, ShellOrigin};
use bootrig_diagnostics::metadata::PhaseEdge;

/// The default login prompt.
pub const LOGIN_PROMPT: &str = r"(?m)\blogin: ?$";

/// The phase of [`Session::login`].
pub const PHASE_LOGIN: &str = "login";
/// The phase of [`Session::become_root`], [`Session::su`] and
/// [`Session::become_root_with`].
pub const PHASE_BECOME_ROOT: &str = "become root";
/// The phase of [`Session::attach_shell`].
pub const PHASE_SHELL: &str = "shell";

/// How long to wait for a shell's cursor-position query after its prompt.
/// Busybox ash asks right after printing it; a shell that does not ask
/// costs this much once per prompt during setup.
const QUERY_SETTLE: Duration = Duration::from_millis(300);

/// How long a shell known to ask for the cursor position after its
/// prompt may take to ask.
const PROMPT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The least time given to a shell prompt that needs no login, even when
/// the boot timeout (counted from QEMU's start) has already run out.
const MIN_SHELL_PROMPT_WAIT: Duration = Duration::from_secs(1);

impl Session {
    /// The deadline for the first prompt: what is left of the boot timeout
    /// (counted from QEMU's start) but at least `floor`, and never past the
    /// test's deadline.
    fn boot_deadline(&self, floor: Duration) -> Deadline {
        let booted = self.state().booted.unwrap_or(self.machine.started());
        let left = self
            .timeouts
            .boot
            .saturating_sub(booted.elapsed())
            .max(floor);
        self.deadline_within(left)
    }

    /// Runs `get_shell` as phase `name` (`login`, `become root`, `shell`):
    /// the hooks hear its start, and on success its end and that the shell
    /// is ready. A failed phase has no end: the failure happened in it.
    fn shell_phase(&self, name: &str, get_shell: impl FnOnce() -> Result<()>) -> Result<&Self> {
        let hooks = self.hooks();
        if let Some(h) = &hooks {
            h.phase(name, PhaseEdge::Start);
        }
        get_shell()?;
        self.mount_shares()?;
        if let Some(h) = &hooks {
            h.phase(name, PhaseEdge::End);
            h.shell_ready();
        }
        Ok(self)
    }

    /// Like `expect_any` with the step timeout, but a timeout becomes the
    /// error `on_timeout` makes (a login or escalation failure that says
    /// what was missing), not a generic console timeout.
    fn expect_step(
        &self,
        res: &[&Regex],
        doing: &str,
        on_timeout: impl FnOnce() -> Error,
    ) -> Result<(usize, Match)> {
        self.expect_any(res, self.deadline_within(self.timeouts.step), doing)
            .map_err(|e| match e {
                Error::Console {
                    source: ExpectError::Timeout { .. },
                    ..
                } => on_timeout(),
                other => other,
            })
    }

    /// Types a password and Enter. A failure to send names no text: the
    /// password stays out of error messages.
    fn send_secret(&self, password: &str) -> Result<()> {
        self.machine
            .console()
            .send(format!("{password}\n").as_bytes())
            .map_err(|e| self.console_err("sending <password>", e))
    }

    /// Logs in on the serial getty. Handles `login:`, `Password:`, MOTD
    /// noise and coloured prompts; a `Login incorrect` fails at once (no
    /// retry loop). The whole exchange is kept in `transcript.log`.
    ///
    /// Reported to the session's hooks as phase `login`.
    pub fn login(&self, user: &str, password: &str) -> Result<&Self> {
        self.shell_phase(PHASE_LOGIN, || self.log_in(user, password))
    }

    fn log_in(&self, user: &str, password: &str) -> Result<()> {
        self.transcript.add_secret(password);
        let _tap = self
            .transcript
            .tap(self.machine.console(), &format!("login as {user}"));
        let login_re = compile(LOGIN_PROMPT)?;
        let boot = self.boot_deadline(self.timeouts.step);
        match self.machine.console().expect(&login_re, boot) {
            Ok(_) => {}
            Err(ExpectError::Timeout { waited, .. }) => {
                return Err(Error::BootTimeout {
                    expected: "login prompt".into(),
                    waited,
                    tail: self.tail(),
                })
            }
            Err(e) => return Err(self.console_err("waiting for the login prompt", e)),
        }
        self.send(&format!("{user}\n"))?;
        let password_re = compile(r"(?i)password: ?$")?;
        let incorrect_re = compile(r"Login incorrect|Authentication failure|Permission denied")?;
        let prompt_re = compile(r"[$#%>] ?$")?;
        let fail = |message: &str| Error::Login {
            user: user.into(),
            message: message.into(),
            tail: self.tail(),
        };
        let (which, _) = self.expect_step(
            &[&password_re, &prompt_re, &incorrect_re],
            "logging in",
            || fail("neither a password prompt nor a shell prompt after the user name"),
        )?;
        if which == 2 {
            return Err(fail("the login was rejected before a password was asked"));
        }
        let queries = self.machine.console().queries_answered();
        if which == 0 {
            self.send_secret(password)?;
            let (which, _) = self.expect_step(
                &[&incorrect_re, &login_re, &prompt_re],
                "logging in",
                || fail("no shell prompt after the password"),
            )?;
            if which != 2 {
                return Err(fail("Login incorrect: wrong user name or password"));
            }
        }
        self.settle_prompt(queries);
        self.setup_shell()?;
        let mut st = self.state();
        st.user = Some(user.to_string());
        st.password = Some(password.to_string());
        st.root = user == "root";
        st.origin = Some(ShellOrigin::Login(user.to_string(), password.to_string()));
        Ok(())
    }

    /// For shells without login (an initramfs `sh`): waits for `prompt`
    /// within the boot timeout, then sets up the shell.
    ///
    /// Reported to the session's hooks as phase `shell`.
    pub fn attach_shell(&self, prompt: &str) -> Result<&Self> {
        self.shell_phase(PHASE_SHELL, || self.attach(prompt))
    }

    fn attach(&self, prompt: &str) -> Result<()> {
        let _tap = self
            .transcript
            .tap(self.machine.console(), "attach to shell");
        let re = compile(prompt)?;
        let boot = self.boot_deadline(MIN_SHELL_PROMPT_WAIT);
        let queries = self.machine.console().queries_answered();
        match self.machine.console().expect(&re, boot) {
            Ok(_) => {}
            Err(ExpectError::Timeout { waited, .. }) => {
                return Err(Error::BootTimeout {
                    expected: format!("shell prompt /{prompt}/"),
                    waited,
                    tail: self.tail(),
                })
            }
            Err(e) => {
                return Err(self.console_err(format!("waiting for shell prompt /{prompt}/"), e))
            }
        }
        self.settle_prompt(queries);
        self.setup_shell()?;
        let root = self
            .run("id -u")
            .map(|o| o.output.trim() == "0")
            .unwrap_or(false);
        let mut st = self.state();
        st.root = root;
        st.origin = Some(ShellOrigin::Attach(prompt.to_string()));
        Ok(())
    }

    /// Becomes root with `sudo -i`, answering sudo's password prompt with
    /// the password used to log in. Use [`Session::su`] for `su -`.
    ///
    /// Reported to the session's hooks as phase `become root` (as are
    /// [`Session::su`] and [`Session::become_root_with`]); nothing is
    /// reported when the shell is root already.
    pub fn become_root(&self) -> Result<&Self> {
        let password = self.state().password.clone();
        self.escalate("sudo -i", password)
    }

    /// Becomes root with `su -` and the root password.
    pub fn su(&self, root_password: &str) -> Result<&Self> {
        self.escalate("su -", Some(root_password.to_string()))
    }

    /// Becomes root with `sudo -i`, answering its prompt with `password`.
    pub fn become_root_with(&self, password: &str) -> Result<&Self> {
        self.escalate("sudo -i", Some(password.to_string()))
    }

    pub(super) fn escalate(&self, method: &str, password: Option<String>) -> Result<&Self> {
        if self.state().root {
            return Ok(self);
        }
        self.shell_phase(PHASE_BECOME_ROOT, || self.escalate_now(method, password))
    }

    fn escalate_now(&self, method: &str, password: Option<String>) -> Result<()> {
        if let Some(pw) = &password {
            self.transcript.add_secret(pw);
        }
        let _tap = self.transcript.tap(
            self.machine.console(),
            &format!("become root with {method}"),
        );
        let fail = |message: String| Error::Escalation {
            method: method.into(),
            message,
            tail: self.tail(),
        };
        let queries = self.machine.console().queries_answered();
        self.send(&format!("{method}\n"))?;
        let password_re = compile(r"(?i)password( for [^:]*)?: ?$")?;
        let denied_re = compile(
            r"(?i)not in the sudoers|is not allowed|Sorry, try again|incorrect password|Authentication failure|su: .*fail",
        )?;
        let root_prompt_re = compile(r"# ?$")?;
        let (which, _) =
            self.expect_step(&[&password_re, &denied_re, &root_prompt_re], method, || {
                fail("no password prompt and no root prompt".into())
            })?;
        match which {
            0 => {
                let Some(pw) = password.clone() else {
                    let _ = self.send_key(Key::CtrlC);
                    return Err(fail(
                        "a password was asked but none is known (use become_root_with)".into(),
                    ));
                };
                self.send_secret(&pw)?;
                let (which, m) =
                    self.expect_step(&[&denied_re, &root_prompt_re], method, || {
                        fail("no root prompt after the password".into())
                    })?;
                if which == 0 {
                    let _ = self.send_key(Key::CtrlC);
                    return Err(fail(format!(
                        "refused: {}",
                        String::from_utf8_lossy(&m.matched).trim()
                    )));
                }
            }
            1 => return Err(fail("refused: the user may not become root".into())),
            _ => {}
        }
        self.state().ready = false;
        self.settle_prompt(queries);
        self.setup_shell()?;
        let out = self.run("id -u")?;
        if out.output.trim() != "0" {
            return Err(fail(format!(
                "the shell is not root: id -u says {:?}",
                out.output.trim()
            )));
        }
        let mut st = self.state();
        st.root = true;
        st.escalation = Some((method.to_string(), password));
        Ok(())
    }

    /// Sets the private prompt marker and quiet terminal settings, then
    /// looks for the command channel.
    fn setup_shell(&self) -> Result<()> {
        self.set_prompt(None)?;
        self.probe_channel();
        Ok(())
    }

    /// Sets the private prompt marker and quiet terminal settings.
    /// `asks_cursor`: whether the shell asks for the cursor position after
    /// its prompt, when known (else it is found out, which costs a wait).
    pub(super) fn set_prompt(&self, asks_cursor: Option<bool>) -> Result<()> {
        let queries = self.machine.console().queries_answered();
        self.send(&self.markers.setup_line())?;
        let re = self.markers.prompt()?;
        let step = self.deadline_within(self.timeouts.step);
        self.expect_any(&[&re], step, "setting up the shell prompt")
            .map_err(|e| match e {
                Error::Console {
                    source: ExpectError::Timeout { waited, .. },
                    ..
                } => Error::BootTimeout {
                    expected: "a shell answering commands".into(),
                    waited,
                    tail: self.tail(),
                },
                other => other,
            })?;
        let asks = match asks_cursor {
            Some(true) => {
                self.settle_prompt_within(queries, PROMPT_QUERY_TIMEOUT);
                true
            }
            Some(false) => false,
            None => self.settle_prompt(queries),
        };
        let mut st = self.state();
        st.ready = true;
        st.lost = None;
        st.asks_cursor = asks;
        Ok(())
    }

    /// After a prompt: if the shell asks for the cursor position (busybox
    /// ash does, unless input is already pending), wait until the console
    /// has answered, so the answer reaches the shell before the next
    /// command instead of landing inside it. Returns whether a query came
    /// after `seen`.
    pub(super) fn settle_prompt(&self, seen: u64) -> bool {
        self.settle_prompt_within(seen, QUERY_SETTLE)
    }

    /// [`Session::settle_prompt`] waiting up to `timeout` for the query.
    pub(super) fn settle_prompt_within(&self, seen: u64, timeout: Duration) -> bool {
        self.machine
            .console()
            .wait_query_answered(seen, self.deadline_within(timeout))
            > seen
    }
}
