//! The session's human-readable record: `transcript.log` (every command
//! with its output and exit status, notes) and `login-transcript.log` (the
//! raw bytes of the login and escalation exchanges, both ways).
//!
//! Passwords typed during login and escalation are secrets: every text
//! written here, and every console tail a session puts into an error
//! message, has them replaced by `<password>` ([`Transcript::redact`]).

use bootrig_diagnostics::layout;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::console::{Console, ConsoleTap};

/// Appends human-readable transcript entries to `transcript.log`; the
/// login and escalation exchanges (every byte both ways) also go to
/// `login-transcript.log`, so a login failure has its own artifact.
#[derive(Debug, Clone)]
pub(crate) struct Transcript {
    files: Arc<Mutex<(Option<File>, Option<File>)>>,
    /// Texts replaced by `<password>` wherever they would be written.
    secrets: Arc<Mutex<Vec<String>>>,
    login_path: PathBuf,
    started: Instant,
}

impl Transcript {
    /// Creates `transcript.log` in `dir`; times are shown from `started`.
    pub(crate) fn open(dir: &Path, started: Instant) -> Transcript {
        Transcript {
            files: Arc::new(Mutex::new((
                File::create(dir.join(layout::TRANSCRIPT.path)).ok(),
                None,
            ))),
            secrets: Arc::default(),
            login_path: dir.join(layout::LOGIN_TRANSCRIPT.path),
            started,
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Option<File>, Option<File>)> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a secret: from now on it is written as `<password>`. Empty
    /// secrets are ignored (they would match everywhere).
    pub(crate) fn add_secret(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        if !secrets.iter().any(|s| s == secret) {
            secrets.push(secret.to_string());
            // Longest first, so a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced by `<password>`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        redact_with(&secrets, text).into_owned()
    }

    /// `bytes` with every secret replaced by `<password>`.
    fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = bytes.to_vec();
        for s in secrets.iter().map(|s| s.as_bytes()) {
            let mut i = 0;
            while i + s.len() <= out.len() {
                if &out[i..i + s.len()] == s {
                    out.splice(i..i + s.len(), REDACTED.bytes());
                    i += REDACTED.len();
                } else {
                    i += 1;
                }
            }
        }
        out
    }

    fn write(&self, text: &str, login: bool) {
        self.write_lines(text.lines().map(|l| ("", l)), login);
    }

    /// Writes one entry, line by line (`prefix` then the line, secrets
    /// redacted line by line), through a buffer: a command's output of any
    /// size is streamed to the file, never copied whole.
    fn write_lines<'a, I>(&self, lines: I, login: bool)
    where
        I: Iterator<Item = (&'static str, &'a str)> + Clone,
    {
        let secrets = self
            .secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
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
            let mut w = std::io::BufWriter::with_capacity(64 << 10, f);
            for (i, (prefix, line)) in lines.clone().enumerate() {
                let line = redact_with(&secrets, line);
                let _ = if i == 0 {
                    writeln!(w, "[{t:9.3}] {prefix}{line}")
                } else {
                    writeln!(w, "            {prefix}{line}")
                };
            }
            let _ = w.flush();
        }
    }

    /// A free-form entry in `transcript.log`.
    pub(crate) fn entry(&self, text: &str) {
        self.write(text, false);
    }

    /// A command with its output, exit status and duration.
    pub(crate) fn command(&self, cmd: &str, output: &str, exit: i32, seconds: f64) {
        let head = format!("$ {cmd}");
        let tail = format!("exit {exit} ({seconds:.2}s)");
        let lines = head
            .lines()
            .map(|l| ("", l))
            .chain(output.lines().map(|l| ("  | ", l)))
            .chain(std::iter::once(("", tail.as_str())));
        self.write_lines(lines, false);
    }

    fn raw(&self, dir: &str, bytes: &[u8]) {
        let bytes = self.redact_bytes(bytes);
        self.write(&format!("{dir} {}", escape_bytes(&bytes)), true);
    }

    fn section(&self, title: &str) {
        self.write(&format!("--- {title} ---"), true);
    }

    /// Starts a login or escalation section titled `title`: until the
    /// returned guard is dropped, every byte through `console` is recorded.
    pub(crate) fn tap<'a>(&self, console: &'a Console, title: &str) -> TapGuard<'a> {
        self.section(title);
        console.set_tap(Some(Box::new(TranscriptTap::new(self.clone()))));
        TapGuard(console)
    }
}

/// Uninstalls the transcript tap when a login/escalation phase ends.
pub(crate) struct TapGuard<'a>(&'a Console);

impl Drop for TapGuard<'_> {
    fn drop(&mut self) {
        self.0.set_tap(None);
    }
}

/// What a secret is replaced by.
pub(crate) const REDACTED: &str = "<password>";

/// Renders bytes as a quoted string with escapes visible.
pub(crate) fn escape_bytes(bytes: &[u8]) -> String {
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

/// `text` with every one of `secrets` replaced by `<password>`; borrowed
/// when there is none in it.
fn redact_with<'a>(secrets: &[String], text: &'a str) -> std::borrow::Cow<'a, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in secrets {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), REDACTED));
        }
    }
    out
}

/// Records raw console traffic into the transcript during login and
/// escalation. Received bytes are gathered into lines (a serial console
/// delivers a few bytes per read) and flushed at each newline, before
/// anything is sent, and when the tap is removed.
pub(crate) struct TranscriptTap {
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

impl fmt::Debug for TranscriptTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TranscriptTap")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_transcript_bytes() {
        assert_eq!(escape_bytes(b"a\x1b[0m\r\n\xff"), "\"a\\e[0m\\r\\n\\xff\"");
    }

    #[test]
    fn passwords_are_redacted_in_both_transcripts() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcript::open(dir.path(), Instant::now());
        t.add_secret("hunter2");
        t.add_secret("");
        t.section("login as tester");
        let mut tap = TranscriptTap::new(t.clone());
        tap.received(b"Password: ");
        tap.sent(b"hunter2\n");
        // A guest that echoes it back, split over two reads.
        tap.received(b"-bash: hunt");
        tap.received(b"er2: command not found\r\n");
        drop(tap);
        t.command("echo hunter2", "hunter2\n", 0, 0.1);
        assert_eq!(t.redact("pw hunter2!"), "pw <password>!");
        for name in [layout::TRANSCRIPT.path, layout::LOGIN_TRANSCRIPT.path] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(!text.contains("hunter2"), "{name}: {text}");
            assert!(text.contains("<password>"), "{name}: {text}");
        }
    }

    #[test]
    fn command_entries_indent_output() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transcript::open(dir.path(), Instant::now());
        t.command("printf 'a\\nb\\n'", "a\nb\n", 0, 0.25);
        t.command("true", "", 0, 0.0);
        let text = std::fs::read_to_string(dir.path().join(layout::TRANSCRIPT.path)).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| &l[12..]).collect();
        assert_eq!(
            lines,
            [
                "$ printf 'a\\nb\\n'",
                "  | a",
                "  | b",
                "exit 0 (0.25s)",
                "$ true",
                "exit 0 (0.00s)"
            ],
            "{text}"
        );
    }
}
