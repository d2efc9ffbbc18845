//! The marker protocol between a session and the guest shell.
//!
//! After login the session sets a private prompt, `__BRP<token>__ `, and
//! wraps command number `n` so that the shell prints `__BRB<token>_<n>__`
//! before its output and `__BRE<token>_<n>_<status>_<nonce>__` after it.
//! The token is random per session, and the markers are printed with
//! `printf` from split quoted pieces, so the terminal's echo of the typed
//! text never looks like a marker and output is delimited exactly even on
//! a chatty console.
//!
//! What the protocol guarantees (each a test in `tests/protocol.rs`):
//!
//! * **Unparsable commands fail at once.** The command is assigned to a
//!   shell variable in single quotes (which always parses) and run with
//!   `command eval`, so the shell's syntax error (an unbalanced quote, a
//!   stray `}`, an unfinished `if`) is the command's own: exit status 2
//!   and the shell's message, not a shell waiting for more input.
//! * **Forged end markers do not count.** The end marker and the end frame
//!   carry a nonce per command derived from a key that never enters the
//!   guest, and the token is in no exported variable (`PS1` takes it from
//!   a plain shell variable), so a program cannot print a marker that
//!   ends its command.
//! * **Unterminated escape strings do not hide markers.** Every marker
//!   starts with `CAN` (0x18), which ends any `ESC ]`, `ESC P` or `ESC _`
//!   string a command left open.
//! * **A left shell is reported.** The shell's `EXIT` trap prints
//!   `__BRX<token>_<n>_<status>__` when command `n` ends the shell; the
//!   session then has no shell (see `Session::run_until`).
//! * **The shell's own output survives the command.** The command runs
//!   with its stdout and stderr redirected as a group (to descriptor 8, a
//!   copy of the console, or to the command channel), so `exec >/dev/null`
//!   inside it does not outlive it.
//! * **After a timeout the session resynchronises** (`__BRS<token>_<k>__`)
//!   before it types anything else (see `Session::resync`).
//!
//! `Markers` builds the typed text and the patterns that find the
//! markers, and renders console tails with the markers made readable.

use std::collections::VecDeque;
use std::fs::File;

use regex::bytes::Regex;
use sha2::{Digest, Sha256};

use crate::errors::{Error, Result};

/// Longest command typed as it is. Line editors cap the input line
/// (busybox ash: 1024 bytes), so longer commands are sent in pieces.
const MAX_INLINE_COMMAND: usize = 480;

/// The descriptor on which the shell holds the command channel open
/// (POSIX shells only promise 0-9 in redirections).
pub(crate) const CHANNEL_FD: u8 = 9;

/// Size of one piece of a long command (see [`Markers::wrap`]).
const COMMAND_PIECE: usize = 200;

/// The descriptor on which the shell keeps a copy of its console output
/// (for the markers and the `EXIT` trap, whatever a command does to its
/// own stdout).
pub(crate) const CONSOLE_FD: u8 = 8;

/// One session's markers (its private token, and the key of its
/// per-command nonces, which never leaves the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Markers {
    token: String,
    key: String,
}

impl Markers {
    /// Markers with a fresh random token and key.
    pub(crate) fn new() -> Markers {
        Markers {
            token: random_token(),
            key: random_token(),
        }
    }

    /// Command `n`'s nonce: only the host can compute it, so only the
    /// typed wrapper (never the command's output) can print it.
    fn nonce(&self, n: u64) -> String {
        let digest = Sha256::digest(format!("{}:{n}", self.key));
        digest[..5].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The line that sets up the shell: the private prompt (the token comes
    /// from a shell variable when the prompt is expanded, so the echo of
    /// this line never matches it, and programs never see the token even
    /// where `PS1` stays exported, as in busybox ash), quiet terminal
    /// settings, the copy of the console on [`CONSOLE_FD`] and the `EXIT`
    /// trap that says which command left the shell. The trap's `stty`
    /// (a `tcsetattr(TCSADRAIN)`) waits until the console has sent the
    /// trap's line: a console shell that exits hangs up its terminal, and
    /// a hangup discards output the (slow, emulated) UART has not sent.
    pub(crate) fn setup_line(&self) -> String {
        let t = &self.token;
        let fd = CONSOLE_FD;
        format!(
            " stty -echo cols 200 2>/dev/null; unset PS1 PS2; __br_t={t}; PS1='__BRP${{__br_t}}__ ' PS2=''; \
             export PROMPT_COMMAND='' TERM=dumb SYSTEMD_COLORS=0 SYSTEMD_PAGER='' PAGER=cat \
             SYSTEMD_LOG_COLOR=0; unset HISTFILE; exec {fd}>&1; __br_n=0; \
             trap 'printf \"\\030\\n__BR\"\"X{t}_%s_%s__\\n\" \"$__br_n\" \"$?\" >&{fd}; \
             stty -echo <&{fd} 2>/dev/null' EXIT\n"
        )
    }

    /// The private prompt.
    pub(crate) fn prompt(&self) -> Result<Regex> {
        compile(&format!("__BRP{}__ ", self.token))
    }

    /// The line printed before the output of command `n`.
    pub(crate) fn begin(&self, n: u64) -> Result<Regex> {
        compile(&format!("__BRB{}_{n}__\n", self.token))
    }

    /// The line printed after the output of command `n`; group 1 is its
    /// exit status, group 2 where its output went when it ran with the
    /// command channel (`q`: the channel, `c`: the console, because the
    /// channel could not be opened), empty without it.
    pub(crate) fn end(&self, n: u64) -> Result<Regex> {
        compile(&format!(
            "\n__BRE{}_{n}_(\\d+)([qcx]?)_{}__\n",
            self.token,
            self.nonce(n)
        ))
    }

    /// The line the shell's `EXIT` trap prints when command `n` ended the
    /// shell; group 1 is the shell's exit status.
    pub(crate) fn exited(&self, n: u64) -> Result<Regex> {
        compile(&format!("\n__BRX{}_{n}_(\\d+)__\n", self.token))
    }

    /// The text typed to resynchronise with the shell (attempt `k`): a
    /// leading space, so that a first byte lost to the interrupt costs
    /// nothing, and a marker printed from split quoted pieces.
    ///
    /// The answer carries the shell's `__br_t` (set by
    /// [`Markers::setup_line`]): a shell that was never set up (one that
    /// replaced the session's, such as a respawned console shell) answers
    /// without it.
    pub(crate) fn sync_line(&self, k: u64) -> String {
        format!(
            "  printf '\\030\\n__BR''S{}_%s_%s__\\n' {k} \"${{__br_t:-}}\"\n",
            self.token
        )
    }

    /// The line printed by any [`Markers::sync_line`]; group 1 is the
    /// answering shell's token (empty: a shell the session never set up).
    pub(crate) fn synced(&self) -> Result<Regex> {
        compile(&format!("\n__BRS{}_\\d+_([0-9A-Za-z]*)__\n", self.token))
    }

    /// Whether a [`Markers::synced`] match came from a shell this session
    /// set up.
    pub(crate) fn synced_by_own_shell(&self, m: &crate::console::Match) -> bool {
        m.captures
            .get(1)
            .and_then(|c| c.as_deref())
            .is_some_and(|t| t == self.token.as_bytes())
    }

    /// The text typed for command number `n`: begin marker, the command
    /// with stdin from `/dev/null`, end marker with the exit status.
    ///
    /// A command longer than [`MAX_INLINE_COMMAND`] is assigned to a shell
    /// variable in single-quoted pieces, one short input line each, and run
    /// with `eval`, so no input line exceeds the line editor's limit.
    pub(crate) fn wrap(&self, n: u64, cmd: &str) -> String {
        let token = &self.token;
        let fd = CONSOLE_FD;
        let nonce = self.nonce(n);
        let begin = format!("printf '\\030\\n__BR''B{token}_%s__\\n' {n}; __br_n={n}; ");
        let end = format!("printf '\\030\\n__BR''E{token}_%s_%s_%s__\\n' {n} \"$?\" {nonce}\n");
        let (preamble, group) = Self::group(cmd);
        format!("{preamble}{begin}{group} </dev/null >&{fd} 2>&{fd}; {end}")
    }

    /// [`Markers::wrap`] for a shell set up with [`Markers::quiet_setup`]
    /// (it holds the command channel open on [`CHANNEL_FD`]): the console
    /// still gets the begin and end markers (they keep the session in step
    /// with the shell), but the command's stdout and stderr go to the
    /// channel, between the frames of [`Markers::frame_begin`] and
    /// [`Markers::frame_end`]. The end marker says where the output went:
    /// `q` the channel; `c` the console, because the channel could not be
    /// written (the command runs there instead); `x` the channel, but its
    /// end frame could not be written (the command closed the descriptor).
    ///
    /// The frames and markers are written by the shell functions of the
    /// set-up, so each command types little more than itself (typed text
    /// crosses the emulated UART, the slow part of a round trip).
    pub(crate) fn wrap_quiet(&self, n: u64, cmd: &str) -> String {
        let (preamble, group) = Self::group(cmd);
        let nonce = self.nonce(n);
        format!(
            "{preamble}__brb {n}; {group} </dev/null >&$__br_o 2>&$__br_o; __bre {n} $? {nonce}\n"
        )
    }

    /// The shell functions [`Markers::wrap_quiet`] relies on: `__brq`
    /// writes a frame to the channel; `__brb N` prints command N's begin
    /// marker and its begin frame, choosing the channel (`__br_o=9`) or,
    /// when it cannot be written, the console (`__br_o=8`, see
    /// [`CONSOLE_FD`]); `__bre N S K` writes the end frame and prints the
    /// end marker with the status, where the output went and the nonce.
    pub(crate) fn quiet_setup(&self) -> String {
        let t = &self.token;
        let fd = CHANNEL_FD;
        let cfd = CONSOLE_FD;
        // `ignoreeof`: on this path busybox ash's line editor has been seen
        // to read an end of file when a background job of an earlier
        // command exits while the shell waits for input (SIGCHLD), and the
        // shell then exits; with `ignoreeof` it goes on reading.
        format!(
            "set -o ignoreeof 2>/dev/null; __brq() {{ printf '\\000BR''Q{t}%s\\000' \"$1\" >&{fd}; }}; \
             __brb() {{ __br_n=$1; printf '\\030\\n__BR''B{t}_%s__\\n' \"$1\"; \
             if {{ __brq \"B$1\"; }} 2>/dev/null; then __br_o={fd}; else __br_o={cfd}; fi; }}; \
             __bre() {{ __br_m=c; if [ \"$__br_o\" = {fd} ]; then __br_m=x; \
             {{ __brq \"E$1_$3_$2\"; }} 2>/dev/null && __br_m=q; fi; \
             printf '\\030\\n__BR''E{t}_%s_%s%s_%s__\\n' \"$1\" \"$2\" \"$__br_m\" \"$3\"; }}"
        )
    }

    /// The command that makes the shell hold the channel device `port`
    /// open on [`CHANNEL_FD`] for the rest of its life (one open per
    /// shell: a virtio-serial port opens only once at a time, and
    /// background jobs then share it instead of blocking it). Prints `ok`
    /// when the descriptor refers to the port, whether it was opened now
    /// or inherited from a parent shell.
    pub(crate) fn open_channel(port: &str) -> String {
        let fd = CHANNEL_FD;
        let p = shell_quote(port);
        format!(
            "if [ /proc/$$/fd/{fd} -ef {p} ] || {{ exec {fd}<>{p}; }} 2>/dev/null; then echo ok; else echo busy; fi"
        )
    }

    /// The frame written to the command channel before command `n`'s
    /// output.
    pub(crate) fn frame_begin(&self, n: u64) -> Vec<u8> {
        format!("\0BRQ{}B{n}\0", self.token).into_bytes()
    }

    /// The start of the frame written after command `n`'s output (with
    /// its nonce); its exit status and a `\0` follow.
    pub(crate) fn frame_end(&self, n: u64) -> Vec<u8> {
        format!("\0BRQ{}E{n}_{}_", self.token, self.nonce(n)).into_bytes()
    }

    /// The text that writes an empty frame for command number 0 to the
    /// channel (with the functions of [`Markers::quiet_setup`]): sent once
    /// to check that the channel works from this shell.
    pub(crate) fn hello(&self) -> String {
        format!("__brq B0 && __brq E0_{}_0", self.nonce(0))
    }

    /// The text that runs `cmd` as one brace group: the command is
    /// assigned to a shell variable in single quotes (a short command on
    /// the line itself, a long one in short pieces, one input line each,
    /// so no line exceeds the line editor's limit) and run with `command
    /// eval`, so that a syntax error in it is the command's failure
    /// (status 2) instead of an input the shell waits to see completed.
    fn group(cmd: &str) -> (String, String) {
        let group = "{ command eval \"$__br_cmd\"\n}".to_string();
        if cmd.len() <= MAX_INLINE_COMMAND {
            return (format!("__br_cmd={}; ", shell_quote(cmd)), group);
        }
        let mut text = String::from("__br_cmd=''\n");
        let mut chunk = String::new();
        for c in cmd.chars() {
            chunk.push(c);
            if chunk.len() >= COMMAND_PIECE || c == '\n' {
                text.push_str(&format!("__br_cmd=\"$__br_cmd\"{}\n", shell_quote(&chunk)));
                chunk.clear();
            }
        }
        if !chunk.is_empty() {
            text.push_str(&format!("__br_cmd=\"$__br_cmd\"{}\n", shell_quote(&chunk)));
        }
        (text, group)
    }

    /// Console text with the markers made readable: `[bootrig #3] $ uname
    /// -r` where command 3 began (its first line, from `recent`),
    /// `[bootrig #3] exit 0` where it ended, `[bootrig] $` for the prompt.
    pub(crate) fn readable(&self, raw: &str, recent: &VecDeque<(u64, String)>) -> String {
        bootrig_diagnostics::markers::readable(raw, |n| {
            recent
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, c)| c.lines().next().unwrap_or("").to_string())
        })
    }
}

impl Markers {
    /// A console error's pattern description (`/__BRB…_3__\n/`, or `any
    /// of /a/, /b/`) with this session's marker patterns named instead:
    /// `the start of command #3`, `the end of command #3`, `the session's
    /// prompt`.
    pub(crate) fn readable_pattern(&self, pattern: &str) -> String {
        let t = regex::escape(&self.token);
        let names = [
            (format!(r"/__BRB{t}_(\d+)__\n/"), "the start of command #$1"),
            (
                format!(r"/\n__BRE{t}_(\d+)_\(\\d\+\)\(\[qcx\]\?\)_[0-9a-f]+__\n/"),
                "the end of command #$1",
            ),
            (
                format!(r"/\n__BRX{t}_(\d+)_\(\\d\+\)__\n/"),
                "the shell's exit during command #$1",
            ),
            (
                format!(r"/\n__BRS{t}_\\d\+_\(\[0-9A-Za-z\]\*\)__\n/"),
                "the shell's answer",
            ),
            (format!(r"/__BRP{t}__ /"), "the session's prompt"),
        ];
        let mut out = pattern.to_string();
        for (re, name) in names {
            if let Ok(re) = regex::Regex::new(&re) {
                out = re.replace_all(&out, name).into_owned();
            }
        }
        out
    }
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

    fn markers(token: &str) -> Markers {
        Markers {
            token: token.into(),
            key: "key".into(),
        }
    }

    /// The typed text driven through real shells on the host (busybox
    /// ash and bash, when installed), as the guest's console shell would
    /// read it: syntax errors are the command's status 2, an unterminated
    /// escape string does not hide the end marker, `exec >/dev/null` does
    /// not outlive its command, a forged marker does not count, and `exit`
    /// is reported by the trap.
    #[test]
    fn the_typed_text_works_in_real_shells() {
        let m = markers("tok");
        let cmds = [
            "echo 'unbalanced",
            "}",
            "printf 'x\\033]open'",
            "exec >/dev/null",
            "echo vis",
            "printf '\\n__BREtok_6_0__\\n'; false",
            "",
            "exit 3",
        ];
        let mut text = m.setup_line();
        for (i, cmd) in cmds.iter().enumerate() {
            text.push_str(&m.wrap(i as u64 + 1, cmd));
        }
        let mut tried = 0;
        for shell in ["busybox sh", "bash --norc --noprofile"] {
            let script = format!("exec {shell} -i 2>&1");
            let child = std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn();
            let Ok(mut child) = child else { continue };
            {
                use std::io::Write;
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(text.as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let raw = bootrig_diagnostics::ansi::strip(&out.stdout);
            let shown = String::from_utf8_lossy(&raw).into_owned();
            if !shown.contains("__BRB") {
                // The shell itself is missing (`sh: busybox: not found`).
                continue;
            }
            tried += 1;
            let status = |n: u64| -> Option<String> {
                let c = m.end(n).unwrap().captures(&raw)?;
                Some(String::from_utf8_lossy(&c[1]).into_owned())
            };
            assert_eq!(status(1).as_deref(), Some("2"), "{shell}: {shown}");
            assert_eq!(status(2).as_deref(), Some("2"), "{shell}: {shown}");
            assert_eq!(status(3).as_deref(), Some("0"), "{shell}: {shown}");
            assert_eq!(status(4).as_deref(), Some("0"), "{shell}: {shown}");
            let vis = m.end(5).unwrap().captures(&raw).unwrap();
            assert!(
                !vis[0].is_empty() && shown.contains("\nvis\n"),
                "{shell}: {shown}"
            );
            assert_eq!(status(6).as_deref(), Some("1"), "{shell}: {shown}");
            assert_eq!(status(7).as_deref(), Some("0"), "{shell}: {shown}");
            assert_eq!(status(8), None, "{shell}: {shown}");
            let exited = m.exited(8).unwrap().captures(&raw);
            assert_eq!(
                exited.map(|c| String::from_utf8_lossy(&c[1]).into_owned()),
                Some("3".to_string()),
                "{shell}: {shown}"
            );
        }
        if tried == 0 {
            eprintln!("skipped: neither busybox nor bash is installed");
        }
    }

    #[test]
    fn long_commands_are_sent_in_short_lines() {
        let m = markers("tok");
        let short = m.wrap(3, "echo hi");
        assert_eq!(short.lines().count(), 2, "{short}");
        assert!(short.starts_with("__br_cmd='echo hi'; "), "{short}");
        assert!(short.contains("{ command eval \"$__br_cmd\"\n} </dev/null"));
        let cmd = format!("echo {} | wc -c; echo 'it''s'", "x".repeat(3000));
        let long = m.wrap(4, &cmd);
        assert!(long.lines().all(|l| l.len() < 300), "a line is too long");
        assert!(long.contains("command eval \"$__br_cmd\""));
        // Rebuild the command the way the shell would, from the pieces.
        let rebuilt: String = long
            .lines()
            .filter_map(|l| l.strip_prefix("__br_cmd=\"$__br_cmd\"'"))
            .map(|l| l.strip_suffix('\'').unwrap().replace("'\\''", "'"))
            .collect();
        assert_eq!(rebuilt, cmd);
    }

    #[test]
    fn echoed_text_never_matches_a_marker() {
        let m = markers("tok");
        let typed = format!("{}{}", m.setup_line(), m.wrap(7, "true"));
        assert!(!m.prompt().unwrap().is_match(typed.as_bytes()));
        assert!(!m.begin(7).unwrap().is_match(typed.as_bytes()));
        assert!(!m.end(7).unwrap().is_match(typed.as_bytes()));
        let printed = format!(
            "\n__BRBtok_7__\nout\n__BREtok_7_0_{}__\n__BRPtok__ ",
            m.nonce(7)
        );
        let printed = printed.as_bytes();
        assert!(m.begin(7).unwrap().is_match(printed));
        assert!(m.prompt().unwrap().is_match(printed));
        let caps = m.end(7).unwrap().captures(printed).unwrap();
        assert_eq!(&caps[1], b"0");
        // Without its nonce an end marker (or frame) is not command 7's
        // end, whatever else it gets right.
        assert!(!m.end(7).unwrap().is_match(b"\n__BREtok_7_0__\n"));
        assert!(!m.end(7).unwrap().is_match(b"\n__BREtok_7_0_0000000000__\n"));
        assert_ne!(m.nonce(7), m.nonce(8));
        assert_ne!(m.nonce(7), Markers::new().nonce(7));
        let frame = m.frame_end(7);
        assert!(!b"\0BRQtokE7_0\0".starts_with(&frame));
        // The shell's exit and the sync answer.
        let caps = m
            .exited(7)
            .unwrap()
            .captures(b"x\n__BRXtok_7_3__\n")
            .unwrap();
        assert_eq!(&caps[1], b"3");
        assert!(!m.exited(7).unwrap().is_match(typed.as_bytes()));
        assert!(m.synced().unwrap().is_match(b"\n__BRStok_2_tok__\n"));
        assert!(m.synced().unwrap().is_match(b"\n__BRStok_2___\n"));
        assert!(!m.synced().unwrap().is_match(m.sync_line(2).as_bytes()));
    }

    #[test]
    fn tails_show_markers_readably() {
        let m = markers("tok");
        let recent = VecDeque::from([(7, "uname -r\nsecond line".to_string())]);
        let raw = "__BRPtok__ \n__BRBtok_7__\n6.1.0\n__BREtok_7_0q_0a1b2c3d4e__\n__BRPtok__ \n\
                   __BRXtok_8_3__\n\x18\n__BRStok_1_tok__";
        assert_eq!(
            m.readable(raw, &recent),
            "[bootrig] $ \n[bootrig #7] $ uname -r\n6.1.0\n[bootrig #7] exit 0\n[bootrig] $ \n\
             [bootrig #8] the shell exited (3)\n[bootrig] shell answered"
        );
    }

    #[test]
    fn error_patterns_name_the_markers() {
        let m = markers("tok");
        // As the console describes them: `/pattern/`.
        let shown = |re: Regex| format!("/{}/", re.as_str());
        assert_eq!(
            m.readable_pattern(&shown(m.begin(3).unwrap())),
            "the start of command #3"
        );
        assert_eq!(
            m.readable_pattern(&shown(m.end(12).unwrap())),
            "the end of command #12"
        );
        assert_eq!(
            m.readable_pattern(&shown(m.exited(12).unwrap())),
            "the shell's exit during command #12"
        );
        assert_eq!(
            m.readable_pattern(&shown(m.synced().unwrap())),
            "the shell's answer"
        );
        let any = format!("any of {}, /# $/", shown(m.prompt().unwrap()));
        assert_eq!(
            m.readable_pattern(&any),
            "any of the session's prompt, /# $/"
        );
        assert_eq!(m.readable_pattern("/login: /"), "/login: /");
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
