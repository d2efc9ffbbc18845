//! Matching: [`Console::expect`] and its errors.

use std::io;
use std::time::{Duration, Instant};

use bootrig_diagnostics::crash::CrashReport;
use regex::bytes::Regex;

use crate::deadline::Deadline;

use super::Console;

/// How far back (in stripped bytes) an incremental search restarts before the
/// end of the text already searched, so that a match that straddles two reads
/// is found.
pub const LOOKBACK: usize = 64 * 1024;

/// Lines shown in the failure messages of [`ExpectError`].
const ERROR_TAIL_LINES: usize = 10;

/// A successful match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Text between the cursor and the start of the match.
    pub before: Vec<u8>,
    /// The matched text.
    pub matched: Vec<u8>,
    /// Capture groups; index 0 is the whole match, `None` for groups that did
    /// not participate.
    pub captures: Vec<Option<Vec<u8>>>,
    /// Absolute offset, in the stripped stream, of the start of the match.
    pub start: u64,
    /// Absolute offset, in the stripped stream, of the end of the match (the
    /// new cursor).
    pub end: u64,
}

impl Match {
    /// [`before`](Self::before) as text (invalid UTF-8 replaced).
    pub fn before_str(&self) -> String {
        String::from_utf8_lossy(&self.before).into_owned()
    }

    /// [`matched`](Self::matched) as text (invalid UTF-8 replaced).
    pub fn matched_str(&self) -> String {
        String::from_utf8_lossy(&self.matched).into_owned()
    }

    /// Capture group `i` as text, `None` if absent or not participating.
    pub fn capture_str(&self, i: usize) -> Option<String> {
        self.captures
            .get(i)?
            .as_ref()
            .map(|c| String::from_utf8_lossy(c).into_owned())
    }
}

/// Why an [`expect`](Console::expect) (or [`send`](Console::send)) failed.
#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// The pattern did not appear in time.
    #[error(
        "timed out after {waited:.2?} waiting for {pattern} on the serial console; {}",
        show_tail(tail)
    )]
    Timeout {
        /// The pattern(s) waited for.
        pattern: String,
        /// How long the call waited.
        waited: Duration,
        /// The last lines of console text.
        tail: String,
    },
    /// The console reached end of file (QEMU exited or closed the socket)
    /// without the pattern appearing.
    #[error(
        "serial console closed (QEMU exited?) while waiting for {pattern}; {}",
        show_tail(tail)
    )]
    Closed {
        /// The pattern(s) waited for.
        pattern: String,
        /// The last lines of console text.
        tail: String,
    },
    /// The console observer reported a fatal fault (e.g. a kernel panic).
    #[error("guest fault detected on the serial console: {}\n{}", .0.title, .0.excerpt)]
    Fault(CrashReport),
    /// Reading or writing the socket failed.
    #[error("serial console I/O error: {0}")]
    Io(#[from] io::Error),
}

fn show_tail(tail: &str) -> String {
    if tail.is_empty() {
        "the console printed nothing".to_string()
    } else {
        let mut s = String::from("last console lines:\n");
        for line in tail.lines() {
            s.push_str("  | ");
            s.push_str(line);
            s.push('\n');
        }
        s.pop();
        s
    }
}

impl Match {
    /// The match `caps` found in `hay`, the console text from absolute
    /// position `cursor`.
    fn of(caps: &regex::bytes::Captures<'_>, hay: &[u8], cursor: u64) -> Match {
        let whole = caps.get(0).expect("group 0 always participates");
        Match {
            before: hay[..whole.start()].to_vec(),
            matched: whole.as_bytes().to_vec(),
            captures: caps
                .iter()
                .map(|g| g.map(|g| g.as_bytes().to_vec()))
                .collect(),
            start: cursor + whole.start() as u64,
            end: cursor + whole.end() as u64,
        }
    }
}

impl Console {
    /// Waits until `re` matches the console text after the cursor and moves
    /// the cursor to the end of the match.
    ///
    /// Fails at once with [`ExpectError::Fault`] once the observer reported a
    /// fatal fault (even if the text would match), with
    /// [`ExpectError::Closed`] when the console reached end of file and the
    /// remaining text does not match, and with [`ExpectError::Timeout`] once
    /// `deadline` has passed (at once if it already has and the text does
    /// not match). A [`Duration`] means that long from now.
    pub fn expect(&self, re: &Regex, deadline: impl Into<Deadline>) -> Result<Match, ExpectError> {
        self.expect_inner(&[re], deadline.into()).map(|(_, m)| m)
    }

    /// Like [`expect`](Self::expect) for several patterns: the match that
    /// starts earliest in the stream wins, ties go to the lowest index.
    /// Returns the index of the winning pattern and its match.
    pub fn expect_any(
        &self,
        res: &[&Regex],
        deadline: impl Into<Deadline>,
    ) -> Result<(usize, Match), ExpectError> {
        self.expect_inner(res, deadline.into())
    }

    fn expect_inner(
        &self,
        res: &[&Regex],
        deadline: Deadline,
    ) -> Result<(usize, Match), ExpectError> {
        let started = Instant::now();
        let mut st = self.shared.state();
        // Absolute end of the text searched by this call without a match.
        let mut searched_to: Option<u64> = None;
        loop {
            if let Some(fault) = st.fault.clone() {
                st.fault_delivered = true;
                return Err(ExpectError::Fault(fault));
            }
            let end = st.end();
            if searched_to != Some(end) && !res.is_empty() {
                let from = match searched_to {
                    None => st.cursor,
                    Some(s) => st.cursor.max(s.saturating_sub(LOOKBACK as u64)),
                };
                let hay = &st.text[(st.cursor - st.base) as usize..];
                let start = (from - st.cursor) as usize;
                let mut best: Option<(usize, usize)> = None;
                for (i, re) in res.iter().enumerate() {
                    if let Some(m) = re.find_at(hay, start) {
                        if best.is_none_or(|(_, s)| m.start() < s) {
                            best = Some((i, m.start()));
                        }
                    }
                }
                if let Some((i, _)) = best {
                    let caps = res[i]
                        .captures_at(hay, start)
                        .expect("find_at matched, so captures_at matches");
                    let m = Match::of(&caps, hay, st.cursor);
                    st.cursor = m.end;
                    return Ok((i, m));
                }
                searched_to = Some(end);
            }
            if st.closed {
                return Err(ExpectError::Closed {
                    pattern: describe(res),
                    tail: st.tail_lines(ERROR_TAIL_LINES),
                });
            }
            st = match deadline.instant() {
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        return Err(ExpectError::Timeout {
                            pattern: describe(res),
                            waited: now - started,
                            tail: st.tail_lines(ERROR_TAIL_LINES),
                        });
                    }
                    self.shared
                        .cond
                        .wait_timeout(st, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// The first match of `re` in the console text after the cursor, now,
    /// without waiting and without moving the cursor (the text stays for
    /// later waits).
    pub fn peek(&self, re: &Regex) -> Option<Match> {
        let st = self.shared.state();
        let hay = &st.text[(st.cursor - st.base) as usize..];
        let caps = re.captures(hay)?;
        Some(Match::of(&caps, hay, st.cursor))
    }

    /// The cursor: the absolute position in the console stream where the
    /// next wait starts searching.
    pub fn position(&self) -> u64 {
        self.shared.state().cursor
    }

    /// Moves the cursor back to `pos` (no further back than the text the
    /// console still holds), so the next wait searches that text again:
    /// for a watcher whose events may have gone by while a command it sent
    /// waited for its own end on the console.
    pub fn rewind(&self, pos: u64) {
        let mut st = self.shared.state();
        if pos < st.cursor {
            st.cursor = pos.max(st.base);
        }
    }

    /// Waits until more than `seen` queries have been answered, or until
    /// `deadline`; returns the count. A shell that asks for the cursor
    /// position after its prompt (busybox ash) must get the answer before
    /// the next command is typed, or the answer lands in the command line.
    pub fn wait_query_answered(&self, seen: u64, deadline: impl Into<Deadline>) -> u64 {
        let deadline = deadline.into();
        let mut st = self.shared.state();
        while st.queries_answered <= seen && !st.closed && !deadline.expired() {
            st = self
                .shared
                .cond
                .wait_timeout(st, deadline.remaining())
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.queries_answered
    }
}

fn describe(res: &[&Regex]) -> String {
    match res {
        [] => "(no pattern)".to_string(),
        [one] => format!("/{}/", one.as_str()),
        many => {
            let all: Vec<String> = many.iter().map(|r| format!("/{}/", r.as_str())).collect();
            format!("any of {}", all.join(", "))
        }
    }
}
