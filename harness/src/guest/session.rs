//! A guest session: log in over the serial console, become root, run
//! commands with exact output and exit codes, wait for units and
//! conditions, press keys, shut down.
//!
//! After login (or, for shells without login, after the configured prompt
//! appears) the session sets a private prompt marker and wraps every
//! command between a begin and an end marker that carry a per-command
//! number and the exit status. The markers are printed with `printf` from
//! split pieces, so the terminal's echo of the typed command never looks
//! like a marker, and output is delimited exactly even on a chatty
//! console.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::deadline::{self as wait, Deadline};
use crate::errors::{Error, Result};
use crate::guest::console::{ConsoleTap, ExpectError, Match};
use crate::vm::machine::Machine;

/// Deadlines for the phases of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From QEMU start to the login prompt (or shell prompt).
    pub boot: Duration,
    /// For each step: a command, a login exchange, an expect.
    pub step: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            boot: Duration::from_secs(300),
            step: Duration::from_secs(120),
        }
    }
}

/// Keys for curses UIs and line editors, sent as the escape sequences a
/// VT100/xterm sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Key {
    Up,
    Down,
    Left,
    Right,
    Enter,
    Tab,
    Esc,
    Backspace,
    Delete,
    Home,
    End,
    PageUp,
    PageDown,
    Space,
    CtrlC,
    CtrlD,
    F(u8),
}

impl Key {
    /// The bytes the key sends.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Key::Up => b"\x1b[A",
            Key::Down => b"\x1b[B",
            Key::Right => b"\x1b[C",
            Key::Left => b"\x1b[D",
            Key::Enter => b"\r",
            Key::Tab => b"\t",
            Key::Esc => b"\x1b",
            Key::Backspace => b"\x7f",
            Key::Delete => b"\x1b[3~",
            Key::Home => b"\x1b[H",
            Key::End => b"\x1b[F",
            Key::PageUp => b"\x1b[5~",
            Key::PageDown => b"\x1b[6~",
            Key::Space => b" ",
            Key::CtrlC => b"\x03",
            Key::CtrlD => b"\x04",
            Key::F(n) => match n {
                1 => b"\x1bOP",
                2 => b"\x1bOQ",
                3 => b"\x1bOR",
                4 => b"\x1bOS",
                5 => b"\x1b[15~",
                6 => b"\x1b[17~",
                7 => b"\x1b[18~",
                8 => b"\x1b[19~",
                9 => b"\x1b[20~",
                10 => b"\x1b[21~",
                11 => b"\x1b[23~",
                _ => b"\x1b[24~",
            },
        }
    }

    /// Parses a key name: `Up`, `down`, `Enter`, `F1`..`F12`, `Ctrl-C`, ...
    pub fn parse(name: &str) -> Option<Key> {
        let n = name
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', '+'], "");
        Some(match n.as_str() {
            "up" => Key::Up,
            "down" => Key::Down,
            "left" => Key::Left,
            "right" => Key::Right,
            "enter" | "return" => Key::Enter,
            "tab" => Key::Tab,
            "esc" | "escape" => Key::Esc,
            "backspace" => Key::Backspace,
            "delete" | "del" => Key::Delete,
            "home" => Key::Home,
            "end" => Key::End,
            "pageup" | "pgup" => Key::PageUp,
            "pagedown" | "pgdn" => Key::PageDown,
            "space" => Key::Space,
            "ctrlc" => Key::CtrlC,
            "ctrld" => Key::CtrlD,
            f if f.starts_with('f') => {
                let k: u8 = f[1..].parse().ok()?;
                if (1..=12).contains(&k) {
                    Key::F(k)
                } else {
                    return None;
                }
            }
            _ => return None,
        })
    }
}

/// What the session knows about the shell it drives.
#[derive(Debug, Default)]
struct ShellState {
    /// The private prompt marker, once the shell is set up.
    ready: bool,
    /// Commands run so far (numbers the markers).
    seq: u64,
    /// Logged-in user, and whether the shell is root.
    user: Option<String>,
    /// The login password, answered to sudo's prompt.
    password: Option<String>,
    root: bool,
    /// The shell asks for the cursor position after each prompt.
    asks_cursor: bool,
    /// The last commands by number, to annotate console tails.
    recent: std::collections::VecDeque<(u64, String)>,
}

/// How many recent commands are remembered for console annotations.
const RECENT_COMMANDS: usize = 64;

/// How long to wait for a shell's cursor-position query after its prompt.
const QUERY_SETTLE: Duration = Duration::from_millis(300);

/// The output and exit code of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit status (`$?`).
    pub exit: i32,
    /// Everything the command printed (stdout and stderr, as on a terminal,
    /// ANSI-stripped, `\r\n` as `\n`).
    pub output: String,
    /// How long it took.
    pub duration: Duration,
    /// Bytes of output the console dropped because they exceeded its
    /// pending-text cap (4 MiB): `output` then holds only the end. Redirect
    /// big outputs to a file in the guest instead.
    pub truncated_bytes: u64,
}

/// Appends human-readable transcript entries to `transcript.log`; the
/// login and escalation exchanges (every byte both ways) also go to
/// `login-transcript.log`, so a login failure has its own artifact.
#[derive(Debug, Clone)]
struct Transcript {
    files: Arc<Mutex<(Option<File>, Option<File>)>>,
    login_path: PathBuf,
    started: Instant,
}

impl Transcript {
    fn open(dir: &std::path::Path, started: Instant) -> Transcript {
        Transcript {
            files: Arc::new(Mutex::new((
                File::create(dir.join("transcript.log")).ok(),
                None,
            ))),
            login_path: dir.join("login-transcript.log"),
            started,
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Option<File>, Option<File>)> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, text: &str, login: bool) {
        let t = self.started.elapsed().as_secs_f64();
        let mut files = self.lock();
        if login && files.1.is_none() {
            files.1 = File::create(&self.login_path).ok();
        }
        let (main, login_file) = &mut *files;
        let targets = [
            main.as_mut(),
            if login { login_file.as_mut() } else { None },
        ];
        for f in targets.into_iter().flatten() {
            for (i, line) in text.lines().enumerate() {
                let _ = if i == 0 {
                    writeln!(f, "[{t:9.3}] {line}")
                } else {
                    writeln!(f, "            {line}")
                };
            }
            let _ = f.flush();
        }
    }

    fn entry(&self, text: &str) {
        self.write(text, false);
    }

    fn raw(&self, dir: &str, bytes: &[u8]) {
        self.write(&format!("{dir} {}", escape_bytes(bytes)), true);
    }

    fn section(&self, title: &str) {
        self.write(&format!("--- {title} ---"), true);
    }
}

/// Renders bytes as a quoted string with escapes visible.
fn escape_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\x1b' => s.push_str("\\e"),
                '\r' => s.push_str("\\r"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}

/// Records raw console traffic into the transcript during login and
/// escalation. Received bytes are gathered into lines (a serial console
/// delivers a few bytes per read) and flushed at each newline, before
/// anything is sent, and when the tap is removed.
struct TranscriptTap {
    transcript: Transcript,
    pending: Vec<u8>,
}

impl TranscriptTap {
    fn new(transcript: Transcript) -> Self {
        TranscriptTap {
            transcript,
            pending: Vec::new(),
        }
    }

    fn flush(&mut self, upto: usize) {
        if upto > 0 {
            let rest = self.pending.split_off(upto);
            self.transcript.raw("<<<", &self.pending);
            self.pending = rest;
        }
    }
}

impl ConsoleTap for TranscriptTap {
    fn received(&mut self, raw: &[u8]) {
        self.pending.extend_from_slice(raw);
        if let Some(i) = self.pending.iter().rposition(|b| *b == b'\n') {
            self.flush(i + 1);
        }
    }
    fn sent(&mut self, raw: &[u8]) {
        self.flush(self.pending.len());
        self.transcript.raw(">>>", raw);
    }
}

impl Drop for TranscriptTap {
    fn drop(&mut self) {
        self.flush(self.pending.len());
    }
}

/// Uninstalls the transcript tap when a login/escalation phase ends.
struct TapGuard<'a>(&'a Machine);

impl Drop for TapGuard<'_> {
    fn drop(&mut self) {
        self.0.console().set_tap(None);
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
    machine: Machine,
    timeouts: Timeouts,
    deadline: Mutex<Deadline>,
    hooks: Mutex<Option<Arc<dyn SessionHooks>>>,
    token: String,
    state: Mutex<ShellState>,
    transcript: Transcript,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("machine", &self.machine)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TranscriptTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TranscriptTap")
    }
}

/// The default login prompt.
pub const LOGIN_PROMPT: &str = r"(?m)\blogin: ?$";

impl Session {
    /// Wraps a started machine. Writes `transcript.log` next to its logs.
    pub fn new(machine: Machine, timeouts: Timeouts) -> Session {
        let token = random_token();
        let transcript = Transcript::open(machine.out_dir(), machine.started());
        Session {
            machine,
            timeouts,
            deadline: Mutex::new(Deadline::never()),
            hooks: Mutex::new(None),
            token,
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

    /// Who hears about this session's phases (the test context sets it).
    pub fn set_hooks(&self, hooks: Option<Arc<dyn SessionHooks>>) {
        *self.hooks.lock().unwrap_or_else(|p| p.into_inner()) = hooks;
    }

    fn state(&self) -> MutexGuard<'_, ShellState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tail(&self) -> String {
        self.console_tail(30)
    }

    /// A console error with what was being done, its console tail shown
    /// with readable markers (see [`Session::console_tail`]).
    fn console_err(&self, doing: impl Into<String>, e: ExpectError) -> Error {
        let e = match e {
            ExpectError::Timeout {
                pattern, waited, ..
            } => ExpectError::Timeout {
                pattern,
                waited,
                tail: self.console_tail(10),
            },
            ExpectError::Closed { pattern, .. } => ExpectError::Closed {
                pattern,
                tail: self.console_tail(10),
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
        let t = &self.token;
        let recent = self.state().recent.clone();
        let command = |num: &str| -> String {
            let num: u64 = num.parse().unwrap_or(0);
            recent
                .iter()
                .find(|(k, _)| *k == num)
                .map(|(_, c)| c.lines().next().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        raw.lines()
            .map(|line| {
                let l = line.replace(&format!("__BRP{t}__ "), "[bootrig] $ ");
                let l = l.replace(&format!("__BRP{t}__"), "[bootrig] $");
                if let Some(rest) = l.strip_prefix(&format!("__BRB{t}_")) {
                    if let Some(num) = rest.strip_suffix("__") {
                        return format!("[bootrig #{num}] $ {}", command(num));
                    }
                }
                if let Some(rest) = l.strip_prefix(&format!("__BRE{t}_")) {
                    if let Some((num, code)) =
                        rest.strip_suffix("__").and_then(|r| r.split_once('_'))
                    {
                        return format!("[bootrig #{num}] exit {code}");
                    }
                }
                l
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn tap(&self, title: &str) -> TapGuard<'_> {
        self.transcript.section(title);
        self.machine
            .console()
            .set_tap(Some(Box::new(TranscriptTap::new(self.transcript.clone()))));
        TapGuard(&self.machine)
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
        self.expect_any(res, self.timeouts.step, doing)
            .map_err(|e| match e {
                Error::Console {
                    source: ExpectError::Timeout { .. },
                    ..
                } => on_timeout(),
                other => other,
            })
    }

    fn expect_any(&self, res: &[&Regex], timeout: Duration, doing: &str) -> Result<(usize, Match)> {
        self.machine
            .console()
            .expect_any(res, timeout)
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

    /// Waits for `pattern` on the (ANSI-stripped) console.
    pub fn wait_for_console(&self, pattern: &str, timeout: Duration) -> Result<Match> {
        let re = compile(pattern)?;
        self.machine
            .console()
            .expect(&re, timeout)
            .map_err(|e| self.console_err(format!("waiting for /{pattern}/ on the console"), e))
    }

    /// Logs in on the serial getty. Handles `login:`, `Password:`, MOTD
    /// noise and coloured prompts; a `Login incorrect` fails at once (no
    /// retry loop). The whole exchange is kept in `transcript.log`.
    pub fn login(&self, user: &str, password: &str) -> Result<&Self> {
        let _tap = self.tap(&format!("login as {user}"));
        let login_re = compile(LOGIN_PROMPT)?;
        let boot_left = self
            .timeouts
            .boot
            .saturating_sub(self.machine.started().elapsed())
            .max(self.timeouts.step);
        match self.machine.console().expect(&login_re, boot_left) {
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
            self.send(&format!("{password}\n"))?;
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
        Ok(self)
    }

    /// For shells without login (an initramfs `sh`): waits for `prompt`
    /// within the boot timeout, then sets up the shell.
    pub fn attach_shell(&self, prompt: &str) -> Result<&Self> {
        let _tap = self.tap("attach to shell");
        let re = compile(prompt)?;
        let boot_left = self
            .timeouts
            .boot
            .saturating_sub(self.machine.started().elapsed())
            .max(Duration::from_secs(1));
        let queries = self.machine.console().queries_answered();
        match self.machine.console().expect(&re, boot_left) {
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
        self.state().root = root;
        Ok(self)
    }

    /// Becomes root with `sudo -i`, answering sudo's password prompt with
    /// the password used to log in. Use [`Session::su`] for `su -`.
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

    fn escalate(&self, method: &str, password: Option<String>) -> Result<&Self> {
        if self.state().root {
            return Ok(self);
        }
        let _tap = self.tap(&format!("become root with {method}"));
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
                let Some(pw) = password else {
                    let _ = self.send_key(Key::CtrlC);
                    return Err(fail(
                        "a password was asked but none is known (use become_root_with)".into(),
                    ));
                };
                self.send(&format!("{pw}\n"))?;
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
        self.state().root = true;
        Ok(self)
    }

    /// Sets the private prompt marker and quiet terminal settings.
    fn setup_shell(&self) -> Result<()> {
        let t = &self.token;
        // The marker is assembled from two quoted halves so that the echo
        // of this line never matches it.
        let line = format!(
            " stty -echo cols 200 2>/dev/null; export PS1='__BR''P{t}__ ' PS2='' PROMPT_COMMAND='' \
             TERM=dumb SYSTEMD_COLORS=0 SYSTEMD_PAGER='' PAGER=cat SYSTEMD_LOG_COLOR=0; unset HISTFILE\n"
        );
        let queries = self.machine.console().queries_answered();
        self.send(&line)?;
        let re = compile(&format!("__BRP{t}__ "))?;
        self.expect_any(&[&re], self.timeouts.step, "setting up the shell prompt")
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
        let asks = self.settle_prompt(queries);
        let mut st = self.state();
        st.ready = true;
        st.asks_cursor = asks;
        Ok(())
    }

    /// After a prompt: if the shell asks for the cursor position (busybox
    /// ash does, unless input is already pending), wait until the console
    /// has answered, so the answer reaches the shell before the next
    /// command instead of landing inside it. Returns whether a query came
    /// after `seen`.
    fn settle_prompt(&self, seen: u64) -> bool {
        self.machine
            .console()
            .wait_query_answered(seen, QUERY_SETTLE)
            > seen
    }

    /// Runs `cmd` in the guest shell; returns its exit code and output.
    /// Uses the step timeout.
    pub fn run(&self, cmd: &str) -> Result<CommandOutput> {
        self.run_timeout(cmd, self.timeouts.step)
    }

    /// Runs `cmd` with its own timeout. On timeout the command is
    /// interrupted with Ctrl-C so the session stays usable.
    pub fn run_timeout(&self, cmd: &str, timeout: Duration) -> Result<CommandOutput> {
        let n = {
            let mut st = self.state();
            if !st.ready {
                return Err(Error::Config {
                    what: "session".into(),
                    message: format!("cannot run `{cmd}`: no shell yet (log in or attach first)"),
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
        let t = &self.token;
        let started = Instant::now();
        let line = wrap_command(t, n, cmd);
        let queries = self.machine.console().queries_answered();
        let dropped_before = self.machine.console().stats().dropped_bytes;
        self.console_send(&line)?;
        let begin = compile(&format!("__BRB{t}_{n}__\n"))?;
        let end = compile(&format!("\n__BRE{t}_{n}_(\\d+)__\n"))?;
        let console = self.machine.console();
        let waited = |e: ExpectError| -> Error {
            match e {
                ExpectError::Timeout { .. } => {
                    let _ = console.send(b"\x03");
                    Error::CommandTimeout {
                        command: cmd.to_string(),
                        waited: started.elapsed(),
                        tail: self.tail(),
                    }
                }
                other => self.console_err(format!("running `{cmd}`"), other),
            }
        };
        console.expect(&begin, timeout).map_err(waited)?;
        let left = timeout.saturating_sub(started.elapsed());
        let m = console.expect(&end, left).map_err(waited)?;
        let exit: i32 = m
            .captures
            .get(1)
            .and_then(|c| c.as_ref())
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let output = String::from_utf8_lossy(&m.before).into_owned();
        // Consume the prompt that follows, and let its cursor query be
        // answered before anything else is typed.
        let prompt = compile(&format!("__BRP{t}__ "))?;
        if console.expect(&prompt, Duration::from_secs(5)).is_ok() && self.state().asks_cursor {
            self.settle_prompt(queries);
        }
        let truncated_bytes = console.stats().dropped_bytes - dropped_before;
        let out = CommandOutput {
            exit,
            output,
            duration: started.elapsed(),
            truncated_bytes,
        };
        if truncated_bytes > 0 {
            self.transcript.entry(&format!(
                "(output of `{cmd}` truncated: the first {truncated_bytes} bytes exceeded the console buffer)"
            ));
        }
        self.transcript.entry(&format!(
            "$ {cmd}\n{}exit {} ({:.2}s)",
            indent_output(&out.output),
            out.exit,
            out.duration.as_secs_f64()
        ));
        Ok(out)
    }

    fn console_send(&self, text: &str) -> Result<()> {
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

    /// Runs `cmd` until it exits 0, up to `timeout`.
    pub fn wait_until_succeeds(&self, cmd: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        let found = wait::poll_until(
            deadline,
            wait::POLL_INTERVAL,
            || -> Result<Option<String>> {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1));
                let out = self.run_timeout(cmd, left.min(self.timeouts.step))?;
                if out.exit == 0 {
                    return Ok(Some(out.output));
                }
                last = format!("exit {}\n{}", out.exit, out.output);
                Ok(None)
            },
        )?;
        found.ok_or_else(|| Error::WaitTimeout {
            what: format!("`{cmd}` to succeed"),
            waited: timeout,
            last,
        })
    }

    /// Waits until `unit` is active, up to the session's step timeout.
    /// Fails at once if it enters `failed` or does not exist, with its
    /// `systemctl status`.
    pub fn wait_for_unit(&self, unit: &str) -> Result<()> {
        self.wait_for_unit_within(unit, self.timeouts.step)
    }

    /// [`Session::wait_for_unit`] with its own timeout.
    pub fn wait_for_unit_within(&self, unit: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
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
            waited: timeout,
            last,
        })
    }

    fn unit_status(&self, quoted: &str) -> String {
        self.run(&format!("systemctl status --no-pager -l {quoted}"))
            .map(|o| o.output)
            .unwrap_or_else(|e| format!("(systemctl status unavailable: {e})"))
    }

    /// Powers the guest off and waits for QEMU to exit; forces it down
    /// after `timeout`.
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

/// Longest command typed as it is. Line editors cap the input line
/// (busybox ash: 1024 bytes), so longer commands are sent in pieces.
const MAX_INLINE_COMMAND: usize = 480;

/// The text typed for command number `n`: begin marker, the command with
/// stdin from `/dev/null`, end marker with the exit status. The markers are
/// printed from split quoted pieces so the echo of this text never matches.
///
/// A command longer than [`MAX_INLINE_COMMAND`] is assigned to a shell
/// variable in single-quoted pieces, one short input line each, and run
/// with `eval`, so no input line exceeds the line editor's limit.
fn wrap_command(token: &str, n: u64, cmd: &str) -> String {
    let begin = format!("printf '\\n__BR''B{token}_%s__\\n' {n}; ");
    let end = format!("printf '\\n__BR''E{token}_%s_%s__\\n' {n} \"$?\"\n");
    if cmd.len() <= MAX_INLINE_COMMAND {
        return format!("{begin}{{ {cmd}\n}} </dev/null; {end}");
    }
    let mut text = String::from("__br_cmd=''\n");
    let mut chunk = String::new();
    for c in cmd.chars() {
        chunk.push(c);
        if chunk.len() >= 200 || c == '\n' {
            text.push_str(&format!("__br_cmd=\"$__br_cmd\"{}\n", shell_quote(&chunk)));
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        text.push_str(&format!("__br_cmd=\"$__br_cmd\"{}\n", shell_quote(&chunk)));
    }
    text.push_str(&format!(
        "{begin}{{ eval \"$__br_cmd\"\n}} </dev/null; {end}"
    ));
    text
}

fn indent_output(output: &str) -> String {
    if output.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    for line in output.lines() {
        s.push_str("  | ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// Single-quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Compiles a console regex with a message naming the pattern.
pub fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| Error::Config {
        what: format!("regex /{pattern}/"),
        message: e.to_string(),
    })
}

/// A short random token for prompt markers (from the OS RNG).
fn random_token() -> String {
    let mut buf = [0u8; 6];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf))
        .is_ok();
    if !ok {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf.copy_from_slice(&(nanos as u64 ^ std::process::id() as u64).to_le_bytes()[..6]);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_encode() {
        assert_eq!(Key::parse("Down"), Some(Key::Down));
        assert_eq!(Key::parse("ctrl-c"), Some(Key::CtrlC));
        assert_eq!(Key::parse("F10").unwrap().bytes(), b"\x1b[21~");
        assert_eq!(Key::parse("F13"), None);
        assert_eq!(Key::parse("Hyper"), None);
    }

    #[test]
    fn escaped_transcript_bytes() {
        assert_eq!(escape_bytes(b"a\x1b[0m\r\n\xff"), "\"a\\e[0m\\r\\n\\xff\"");
    }

    #[test]
    fn long_commands_are_sent_in_short_lines() {
        let short = wrap_command("tok", 3, "echo hi");
        assert_eq!(short.lines().count(), 2, "{short}");
        assert!(short.contains("{ echo hi\n} </dev/null;"));
        let cmd = format!("echo {} | wc -c; echo 'it''s'", "x".repeat(3000));
        let long = wrap_command("tok", 4, &cmd);
        assert!(long.lines().all(|l| l.len() < 300), "a line is too long");
        assert!(long.contains("eval \"$__br_cmd\""));
        // Rebuild the command the way the shell would, from the pieces.
        let rebuilt: String = long
            .lines()
            .filter_map(|l| l.strip_prefix("__br_cmd=\"$__br_cmd\"'"))
            .map(|l| l.strip_suffix('\'').unwrap().replace("'\\''", "'"))
            .collect();
        assert_eq!(rebuilt, cmd);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 12);
    }
}
