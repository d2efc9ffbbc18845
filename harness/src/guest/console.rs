//! The serial console of a running guest: a background reader plus an
//! `expect`-style matcher.
//!
//! QEMU exposes the guest's serial port as a Unix socket (`-chardev socket`).
//! [`Console::start`] takes the connected socket and spawns one reader thread
//! that, for every chunk it reads:
//!
//! 1. appends the raw bytes to the raw log (`serial.log`) and hands them to the
//!    [`ConsoleTap`], if any;
//! 2. strips terminal control sequences with [`AnsiStripper`] and answers the
//!    terminal queries it reports (`ESC [ 6 n` gets `ESC [ 24 ; 80 R`) at once;
//! 3. passes every complete stripped line to the [`ConsoleObserver`] (crash
//!    detection); a fatal report becomes the console's [fault](Console::fault);
//! 4. appends the stripped text to the shared buffer and wakes the waiting
//!    [`expect`](Console::expect) calls through a condition variable.
//!
//! The socket has a short read timeout ([`TICK`]) so that the observer's
//! [`on_tick`](ConsoleObserver::on_tick) runs while the guest is silent.
//!
//! # Matching
//!
//! `expect` matches regular expressions against the stripped text after the
//! *cursor*; a match moves the cursor to its end. Searching is incremental:
//! after a search found nothing up to the end of the buffer, the next search
//! (when more text arrived) resumes [`LOOKBACK`] bytes before that end, not at
//! the cursor. A match longer than `LOOKBACK` whose text arrived across several
//! reads can therefore be missed; console patterns (prompts, messages, markers)
//! are far shorter. As with every streaming expect, a pattern whose end is open
//! (`\d+`, `foo$`) may match before the rest of the text has arrived.
//!
//! # Memory
//!
//! The stripped text is kept in one buffer covering the unconsumed text after
//! the cursor (at most [`ConsoleOptions::max_pending`] bytes: when more is
//! pending, the oldest is dropped and counted in [`ConsoleStats::dropped_bytes`])
//! and the last [`ConsoleOptions::tail_bytes`] bytes (for
//! [`Console::tail_lines`] in error messages), whichever starts earlier. The
//! consumed prefix is cut off once it is at least half of the buffer, so the
//! buffer never holds more than about `2 * max(max_pending, tail_bytes)` plus
//! one read, however long the guest talks. A single tail buffer serves both
//! purposes, so every byte is copied once.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bootrig_diagnostics::crash::CrashReport;
use regex::bytes::Regex;

use crate::ansi::AnsiStripper;

/// How far back (in stripped bytes) an incremental search restarts before the
/// end of the text already searched, so that a match that straddles two reads
/// is found.
pub const LOOKBACK: usize = 64 * 1024;

/// Read timeout of the reader thread, and so the period of
/// [`ConsoleObserver::on_tick`] while the guest is silent.
pub const TICK: Duration = Duration::from_millis(50);

/// Size of one read from the socket.
const READ_CHUNK: usize = 64 * 1024;

/// A partial line longer than this is handed to the observer as a line.
const MAX_LINE: usize = 64 * 1024;

/// Non-fatal reports kept by [`Console::reports`]; later ones are counted only.
const MAX_REPORTS: usize = 1024;

/// Lines shown in the failure messages of [`ExpectError`].
const ERROR_TAIL_LINES: usize = 10;

/// Watches the console text for trouble, e.g. kernel crash detection.
///
/// Runs on the reader thread, before the text it is given becomes visible to
/// [`Console::expect`]: a line that yields a fatal report can never be matched.
pub trait ConsoleObserver: Send {
    /// Called with each complete stripped line (without the `\n`).
    fn on_line(&mut self, line: &[u8], now: Instant) -> Option<CrashReport>;

    /// Called about every [`TICK`] even when nothing arrives (for
    /// stall/watchdog detection).
    fn on_tick(&mut self, now: Instant) -> Option<CrashReport> {
        let _ = now;
        None
    }

    /// Called once when the console closes (QEMU exited), after the last
    /// line: a report still waiting for its end marker is finished here, so
    /// a crash that ends in an immediate reboot is never lost.
    fn on_close(&mut self) -> Option<CrashReport> {
        None
    }
}

/// Sees the raw bytes in both directions, e.g. to write a transcript.
pub trait ConsoleTap: Send {
    /// Bytes received from the guest, exactly as read (before stripping).
    fn received(&mut self, raw: &[u8]);
    /// Bytes sent to the guest: [`Console::send`] and automatic answers to
    /// terminal queries.
    fn sent(&mut self, raw: &[u8]);
}

/// Options for [`Console::start`].
pub struct ConsoleOptions {
    /// Maximum unconsumed stripped text kept for `expect`; older text is dropped.
    /// Default 4 MiB.
    pub max_pending: usize,
    /// Stripped text kept for failure messages ([`Console::tail_lines`]).
    /// Default 256 KiB.
    pub tail_bytes: usize,
    /// Crash/stall detection run on every line and tick.
    pub observer: Option<Box<dyn ConsoleObserver>>,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            max_pending: 4 << 20,
            tail_bytes: 256 << 10,
            observer: None,
        }
    }
}

impl fmt::Debug for ConsoleOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleOptions")
            .field("max_pending", &self.max_pending)
            .field("tail_bytes", &self.tail_bytes)
            .field("observer", &self.observer.as_ref().map(|_| ".."))
            .finish()
    }
}

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

/// Counters and buffer sizes, for diagnostics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsoleStats {
    /// Raw bytes read from the socket.
    pub bytes_received: u64,
    /// Stripped text bytes produced so far (the stream's current end offset).
    pub text_bytes: u64,
    /// Unconsumed stripped bytes after the cursor.
    pub pending_bytes: usize,
    /// Stripped bytes currently held in memory (pending and tail).
    pub buffered_bytes: usize,
    /// Allocated capacity of the text buffer.
    pub buffer_capacity: usize,
    /// Unconsumed bytes dropped because more than `max_pending` were pending.
    pub dropped_bytes: u64,
    /// Non-fatal reports that did not fit in the report list.
    pub dropped_reports: u64,
}

/// Shared between the reader thread and the `Console` handle.
struct State {
    /// Stripped text covering absolute offsets `base .. base + text.len()`.
    text: Vec<u8>,
    base: u64,
    cursor: u64,
    max_pending: usize,
    tail_bytes: usize,
    bytes_received: u64,
    /// Terminal queries answered so far (cursor position and others).
    queries_answered: u64,
    dropped_bytes: u64,
    closed: bool,
    close_error: Option<String>,
    raw_log_error: Option<String>,
    fault: Option<CrashReport>,
    reports: Vec<CrashReport>,
    dropped_reports: u64,
}

impl State {
    fn end(&self) -> u64 {
        self.base + self.text.len() as u64
    }

    fn append(&mut self, data: &[u8]) {
        self.text.extend_from_slice(data);
        let end = self.end();
        if end - self.cursor > self.max_pending as u64 {
            let new_cursor = end - self.max_pending as u64;
            self.dropped_bytes += new_cursor - self.cursor;
            self.cursor = new_cursor;
        }
        let keep_from = self.cursor.min(end.saturating_sub(self.tail_bytes as u64));
        let droppable = (keep_from - self.base) as usize;
        // Cut the prefix only when it is at least half the buffer: each byte is
        // moved at most about once.
        if droppable >= 4096 && droppable >= self.text.len() / 2 {
            self.text.drain(..droppable);
            self.base = keep_from;
        }
    }

    fn tail_lines(&self, n: usize) -> String {
        let end = self.end();
        let from = self.base.max(end.saturating_sub(self.tail_bytes as u64));
        let mut region = &self.text[(from - self.base) as usize..];
        if region.last() == Some(&b'\n') {
            region = &region[..region.len() - 1];
        }
        if n == 0 {
            return String::new();
        }
        let mut seen = 0;
        let mut start = 0;
        for (i, &b) in region.iter().enumerate().rev() {
            if b == b'\n' {
                seen += 1;
                if seen == n {
                    start = i + 1;
                    break;
                }
            }
        }
        String::from_utf8_lossy(&region[start..]).into_owned()
    }

    fn record(&mut self, report: CrashReport) -> bool {
        if report.fatal {
            if self.fault.is_none() {
                self.fault = Some(report);
            }
            true
        } else {
            if self.reports.len() < MAX_REPORTS {
                self.reports.push(report);
            } else {
                self.dropped_reports += 1;
            }
            false
        }
    }
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    tap: Mutex<Option<Box<dyn ConsoleTap>>>,
    writer: Mutex<UnixStream>,
    stop: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tap(&self) -> MutexGuard<'_, Option<Box<dyn ConsoleTap>>> {
        self.tap.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, data: &[u8]) -> io::Result<()> {
        if let Some(tap) = self.tap().as_mut() {
            tap.sent(data);
        }
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_all(data)?;
        w.flush()
    }
}

/// The serial console of one guest; see the [module docs](self).
///
/// All methods take `&self`; a `Console` can be shared between threads.
/// Dropping it shuts the socket down and joins the reader thread.
pub struct Console {
    shared: Arc<Shared>,
    control: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("stats", &self.stats())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Console {
    /// Starts the reader thread on `stream` (a connected serial socket),
    /// logging every raw byte to `raw_log`.
    pub fn start(
        stream: UnixStream,
        raw_log: File,
        options: ConsoleOptions,
    ) -> io::Result<Console> {
        stream.set_read_timeout(Some(TICK))?;
        let writer = stream.try_clone()?;
        let control = stream.try_clone()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                text: Vec::new(),
                base: 0,
                cursor: 0,
                max_pending: options.max_pending.max(1),
                tail_bytes: options.tail_bytes,
                bytes_received: 0,
                queries_answered: 0,
                dropped_bytes: 0,
                closed: false,
                close_error: None,
                raw_log_error: None,
                fault: None,
                reports: Vec::new(),
                dropped_reports: 0,
            }),
            cond: Condvar::new(),
            tap: Mutex::new(None),
            writer: Mutex::new(writer),
            stop: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let observer = options.observer;
        let thread = std::thread::Builder::new()
            .name("bootrig-console".into())
            .spawn(move || reader_loop(&thread_shared, stream, raw_log, observer))?;
        Ok(Console {
            shared,
            control,
            thread: Some(thread),
        })
    }

    /// Waits until `re` matches the console text after the cursor and moves
    /// the cursor to the end of the match.
    ///
    /// Fails at once with [`ExpectError::Fault`] once the observer reported a
    /// fatal fault (even if the text would match), with
    /// [`ExpectError::Closed`] when the console reached end of file and the
    /// remaining text does not match, and with [`ExpectError::Timeout`] after
    /// `timeout`.
    pub fn expect(&self, re: &Regex, timeout: Duration) -> Result<Match, ExpectError> {
        self.expect_inner(&[re], timeout).map(|(_, m)| m)
    }

    /// Like [`expect`](Self::expect) for several patterns: the match that
    /// starts earliest in the stream wins, ties go to the lowest index.
    /// Returns the index of the winning pattern and its match.
    pub fn expect_any(
        &self,
        res: &[&Regex],
        timeout: Duration,
    ) -> Result<(usize, Match), ExpectError> {
        self.expect_inner(res, timeout)
    }

    fn expect_inner(
        &self,
        res: &[&Regex],
        timeout: Duration,
    ) -> Result<(usize, Match), ExpectError> {
        let started = Instant::now();
        let deadline = started.checked_add(timeout);
        let mut st = self.shared.state();
        // Absolute end of the text searched by this call without a match.
        let mut searched_to: Option<u64> = None;
        loop {
            if let Some(fault) = &st.fault {
                return Err(ExpectError::Fault(fault.clone()));
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
                    let whole = caps.get(0).expect("group 0 always participates");
                    let m = Match {
                        before: hay[..whole.start()].to_vec(),
                        matched: whole.as_bytes().to_vec(),
                        captures: caps
                            .iter()
                            .map(|g| g.map(|g| g.as_bytes().to_vec()))
                            .collect(),
                        start: st.cursor + whole.start() as u64,
                        end: st.cursor + whole.end() as u64,
                    };
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
            let now = Instant::now();
            let remaining = match deadline {
                Some(d) if now >= d => {
                    return Err(ExpectError::Timeout {
                        pattern: describe(res),
                        waited: now - started,
                        tail: st.tail_lines(ERROR_TAIL_LINES),
                    })
                }
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            st = self
                .shared
                .cond
                .wait_timeout(st, remaining)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Writes `data` to the guest (through the tap). Blocks until written.
    pub fn send(&self, data: &[u8]) -> Result<(), ExpectError> {
        self.shared.write(data).map_err(ExpectError::Io)
    }

    /// Moves the cursor to the end of the text received so far: later
    /// `expect` calls only see new text.
    pub fn clear(&self) {
        let mut st = self.shared.state();
        st.cursor = st.end();
    }

    /// True once the console reached end of file or a read error.
    pub fn is_closed(&self) -> bool {
        self.shared.state().closed
    }

    /// The read error that closed the console, if it was not a clean EOF.
    pub fn close_error(&self) -> Option<String> {
        self.shared.state().close_error.clone()
    }

    /// The first error writing the raw log; logging stops after it.
    pub fn raw_log_error(&self) -> Option<String> {
        self.shared.state().raw_log_error.clone()
    }

    /// The first fatal report from the observer.
    pub fn fault(&self) -> Option<CrashReport> {
        self.shared.state().fault.clone()
    }

    /// Non-fatal reports from the observer, oldest first (at most 1024).
    pub fn reports(&self) -> Vec<CrashReport> {
        self.shared.state().reports.clone()
    }

    /// How many terminal queries (`ESC[6n` and friends) have been answered.
    pub fn queries_answered(&self) -> u64 {
        self.shared.state().queries_answered
    }

    /// Waits until more than `seen` queries have been answered, up to
    /// `timeout`; returns the count. A shell that asks for the cursor
    /// position after its prompt (busybox ash) must get the answer before
    /// the next command is typed, or the answer lands in the command line.
    pub fn wait_query_answered(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state();
        while st.queries_answered <= seen && !st.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.queries_answered
    }

    /// Raw bytes received from the guest so far.
    pub fn bytes_received(&self) -> u64 {
        self.shared.state().bytes_received
    }

    /// The last `n` lines of stripped console text (the unfinished last line
    /// included), from the tail kept for failure messages.
    pub fn tail_lines(&self, n: usize) -> String {
        self.shared.state().tail_lines(n)
    }

    /// Counters and buffer sizes.
    pub fn stats(&self) -> ConsoleStats {
        let st = self.shared.state();
        ConsoleStats {
            bytes_received: st.bytes_received,
            text_bytes: st.end(),
            pending_bytes: (st.end() - st.cursor) as usize,
            buffered_bytes: st.text.len(),
            buffer_capacity: st.text.capacity(),
            dropped_bytes: st.dropped_bytes,
            dropped_reports: st.dropped_reports,
        }
    }

    /// Installs `tap` (or removes it with `None`), returning the previous one.
    pub fn set_tap(&self, tap: Option<Box<dyn ConsoleTap>>) -> Option<Box<dyn ConsoleTap>> {
        std::mem::replace(&mut *self.shared.tap(), tap)
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.control.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

fn handle_report(shared: &Shared, report: Option<CrashReport>) {
    if let Some(report) = report {
        let fatal = shared.state().record(report);
        if fatal {
            shared.cond.notify_all();
        }
    }
}

fn reader_loop(
    shared: &Shared,
    mut stream: UnixStream,
    mut raw_log: File,
    mut observer: Option<Box<dyn ConsoleObserver>>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut stripper = AnsiStripper::new();
    let mut text = Vec::with_capacity(READ_CHUNK);
    let mut partial_line: Vec<u8> = Vec::new();
    let mut log_ok = true;
    let mut last_tick = Instant::now();
    let close_error = loop {
        if shared.stop.load(Ordering::Acquire) {
            break None;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                if let Some(obs) = observer.as_mut() {
                    let now = Instant::now();
                    last_tick = now;
                    handle_report(shared, obs.on_tick(now));
                }
                continue;
            }
            Err(e) => break Some(e.to_string()),
        };
        let raw = &buf[..n];
        if log_ok {
            if let Err(e) = raw_log.write_all(raw).and_then(|()| raw_log.flush()) {
                log_ok = false;
                shared.state().raw_log_error = Some(e.to_string());
            }
        }
        if let Some(tap) = shared.tap().as_mut() {
            tap.received(raw);
        }
        text.clear();
        let queries = stripper.feed(raw, &mut text);
        let mut answered = 0;
        for q in queries.iter() {
            // A failed answer shows up as a read error or EOF soon enough.
            let _ = shared.write(q.standard_reply());
            answered += 1;
        }
        if let Some(obs) = observer.as_mut() {
            let now = Instant::now();
            feed_lines(shared, obs.as_mut(), &mut partial_line, &text, now);
            if now.duration_since(last_tick) >= TICK {
                last_tick = now;
                handle_report(shared, obs.on_tick(now));
            }
        }
        {
            let mut st = shared.state();
            st.bytes_received += n as u64;
            st.queries_answered += answered;
            st.append(&text);
        }
        shared.cond.notify_all();
    };
    if let Some(obs) = observer.as_mut() {
        if !partial_line.is_empty() {
            handle_report(shared, obs.on_line(&partial_line, Instant::now()));
        }
        handle_report(shared, obs.on_close());
    }
    let mut st = shared.state();
    st.closed = true;
    st.close_error = close_error;
    drop(st);
    shared.cond.notify_all();
}

/// Hands the complete lines of `text` (with `partial` carried over from the
/// previous chunk) to the observer.
fn feed_lines(
    shared: &Shared,
    obs: &mut dyn ConsoleObserver,
    partial: &mut Vec<u8>,
    text: &[u8],
    now: Instant,
) {
    let mut rest = text;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..pos];
        rest = &rest[pos + 1..];
        if partial.is_empty() {
            handle_report(shared, obs.on_line(line, now));
        } else {
            partial.extend_from_slice(line);
            handle_report(shared, obs.on_line(partial, now));
            partial.clear();
        }
    }
    partial.extend_from_slice(rest);
    if partial.len() > MAX_LINE {
        handle_report(shared, obs.on_line(partial, now));
        partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    fn re(s: &str) -> Regex {
        Regex::new(s).unwrap()
    }

    fn null_log() -> File {
        tempfile::tempfile().unwrap()
    }

    fn pair_with(options: ConsoleOptions) -> (Console, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Console::start(a, null_log(), options).unwrap(), b)
    }

    fn pair() -> (Console, UnixStream) {
        pair_with(ConsoleOptions::default())
    }

    const SEC: Duration = Duration::from_secs(5);

    #[test]
    fn expect_matches_stripped_text_and_moves_cursor() {
        let (c, mut g) = pair();
        g.write_all(b"\x1b[0;32mDebian\x1b[0m GNU/Linux\r\r\ntestvm login: ")
            .unwrap();
        let m = c.expect(&re(r"(\w+) login: "), SEC).unwrap();
        assert_eq!(m.before_str(), "Debian GNU/Linux\n");
        assert_eq!(m.matched_str(), "testvm login: ");
        assert_eq!(m.capture_str(1).as_deref(), Some("testvm"));
        assert_eq!(m.captures.len(), 2);
        assert_eq!(m.end, "Debian GNU/Linux\ntestvm login: ".len() as u64);
        // The cursor moved: the same text does not match again.
        let err = c
            .expect(&re("login: "), Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, ExpectError::Timeout { .. }), "{err}");
        g.write_all(b"\x1b[?2004hroot@testvm:~# ").unwrap();
        let m = c.expect(&re(r"[#$] $"), SEC).unwrap();
        assert_eq!(m.before_str(), "root@testvm:~");
        // ^ anchors at the cursor.
        g.write_all(b"abc").unwrap();
        c.expect(&re("abc"), SEC).unwrap();
        g.write_all(b"xyz").unwrap();
        c.expect(&re("^xyz"), SEC).unwrap();
    }

    #[test]
    fn timeout_error_names_pattern_and_shows_tail() {
        let (c, mut g) = pair();
        for i in 0..30 {
            write!(g, "line {i}\r\n").unwrap();
        }
        g.write_all(b"last partial").unwrap();
        // Let the text arrive first.
        c.expect(&re("last partial"), SEC).unwrap();
        let t0 = Instant::now();
        let err = c
            .expect(&re("never-appears"), Duration::from_millis(200))
            .unwrap_err();
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2));
        let msg = err.to_string();
        assert!(msg.contains("/never-appears/"), "{msg}");
        assert!(msg.contains("timed out after 2"), "{msg}");
        assert!(msg.contains("  | line 29\n  | last partial"), "{msg}");
        assert!(!msg.contains("line 20\n"), "{msg}");
        match err {
            ExpectError::Timeout { tail, .. } => assert_eq!(tail.lines().count(), 10),
            other => panic!("{other}"),
        }
        assert_eq!(c.tail_lines(2), "line 29\nlast partial");
        assert_eq!(c.tail_lines(0), "");
    }

    #[test]
    fn expect_any_prefers_earliest_then_lowest_index() {
        let (c, mut g) = pair();
        g.write_all(b"aaa Password: bbb login: ").unwrap();
        let login = re("login: ");
        let password = re("Password: ");
        let (i, m) = c.expect_any(&[&login, &password], SEC).unwrap();
        assert_eq!((i, m.matched_str().as_str()), (1, "Password: "));
        let (i, _) = c.expect_any(&[&login, &password], SEC).unwrap();
        assert_eq!(i, 0);
        // Tie: both start at the same offset.
        g.write_all(b"root# ").unwrap();
        let a = re("root");
        let b = re("root# ");
        let (i, m) = c.expect_any(&[&b, &a], SEC).unwrap();
        assert_eq!((i, m.matched_str().as_str()), (0, "root# "));
        let msg = c
            .expect_any(&[&a, &b], Duration::from_millis(10))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("any of /root/, /root# /"), "{msg}");
    }

    #[test]
    fn match_split_across_reads_and_clear() {
        let (c, mut g) = pair();
        let pat = re("MARKER-[0-9]+-END");
        let waiter = std::thread::scope(|s| {
            let h = s.spawn(|| c.expect(&pat, SEC));
            let mut sent = 0u64;
            for piece in [
                &b"noise MAR"[..],
                b"KER-12",
                b"\x1b[31",
                b"m3",
                b"-EN",
                b"D tail",
            ] {
                g.write_all(piece).unwrap();
                sent += piece.len() as u64;
                // Each piece is read on its own before the next is sent.
                let read = crate::deadline::poll_until(
                    Instant::now() + SEC,
                    Duration::from_millis(1),
                    || Ok::<_, ()>((c.bytes_received() >= sent).then_some(())),
                );
                assert_eq!(read, Ok(Some(())), "piece not read");
            }
            h.join().unwrap()
        });
        let m = waiter.unwrap();
        assert_eq!(m.matched_str(), "MARKER-123-END");
        c.expect(&re("tail"), SEC).unwrap();
        g.write_all(b"old stuff").unwrap();
        // Wait until it has arrived, then clear.
        while c.stats().text_bytes < m.end + " tail".len() as u64 + 9 {
            std::thread::yield_now();
        }
        c.clear();
        assert!(c.expect(&re("old"), Duration::from_millis(50)).is_err());
        g.write_all(b"new stuff").unwrap();
        c.expect(&re("new"), SEC).unwrap();
    }

    #[test]
    fn dsr_query_is_answered() {
        let (c, mut g) = pair();
        g.write_all(b"resize: \x1b7\x1b[r\x1b[999;999H\x1b[6n")
            .unwrap();
        g.set_read_timeout(Some(SEC)).unwrap();
        let mut answer = [0u8; 8];
        g.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"\x1b[24;80R");
        // Split query.
        g.write_all(b"\x1b[").unwrap();
        g.write_all(b"6").unwrap();
        g.write_all(b"n").unwrap();
        g.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"\x1b[24;80R");
        assert_eq!(c.expect(&re(".+"), SEC).unwrap().matched_str(), "resize: ");
    }

    #[test]
    fn closed_on_eof_after_remaining_text_is_matched() {
        let (c, mut g) = pair();
        g.write_all(b"reboot: Power down\r\n").unwrap();
        drop(g);
        c.expect(&re("Power down"), SEC).unwrap();
        let t0 = Instant::now();
        let err = c.expect(&re("login:"), SEC).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(1));
        match &err {
            ExpectError::Closed { pattern, tail } => {
                assert_eq!(pattern, "/login:/");
                assert_eq!(tail, "reboot: Power down");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("closed"), "{err}");
        assert!(c.is_closed());
        assert_eq!(c.close_error(), None);
        assert_eq!(c.bytes_received(), 20);
    }

    #[test]
    fn closed_wakes_a_waiting_expect() {
        let (c, g) = pair();
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let t0 = Instant::now();
                (
                    c.expect(&re("never"), Duration::from_secs(30)),
                    t0.elapsed(),
                )
            });
            // Give the waiter time to block (the test holds either way).
            std::thread::sleep(Duration::from_millis(50));
            drop(g);
            let (r, waited) = h.join().unwrap();
            assert!(matches!(r, Err(ExpectError::Closed { .. })));
            assert!(waited < Duration::from_secs(2));
        });
    }

    struct PanicDetector {
        lines: Arc<AtomicUsize>,
        ticks: Arc<AtomicUsize>,
    }

    impl ConsoleObserver for PanicDetector {
        fn on_line(&mut self, line: &[u8], _now: Instant) -> Option<CrashReport> {
            self.lines.fetch_add(1, Ordering::SeqCst);
            let text = String::from_utf8_lossy(line);
            if text.contains("Kernel panic") {
                Some(CrashReport {
                    title: text.trim().to_string(),
                    excerpt: text.to_string(),
                    fatal: true,
                })
            } else if text.contains("WARNING") {
                Some(CrashReport {
                    title: text.trim().to_string(),
                    excerpt: String::new(),
                    fatal: false,
                })
            } else {
                None
            }
        }
        fn on_tick(&mut self, _now: Instant) -> Option<CrashReport> {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            None
        }
    }

    #[test]
    fn fatal_fault_aborts_waiting_expect_promptly() {
        let lines = Arc::new(AtomicUsize::new(0));
        let ticks = Arc::new(AtomicUsize::new(0));
        let (c, mut g) = pair_with(ConsoleOptions {
            observer: Some(Box::new(PanicDetector {
                lines: lines.clone(),
                ticks: ticks.clone(),
            })),
            ..Default::default()
        });
        g.write_all(b"WARNING: CPU: 0 PID: 1 at foo\r\nmore\r\n")
            .unwrap();
        c.expect(&re("more"), SEC).unwrap();
        assert_eq!(c.reports().len(), 1);
        assert!(c.fault().is_none());
        // Silent guest: ticks keep coming.
        let ticked = crate::deadline::poll_until(
            Instant::now() + Duration::from_secs(2),
            Duration::from_millis(10),
            || Ok::<_, ()>((ticks.load(Ordering::SeqCst) >= 2).then_some(())),
        );
        assert_eq!(ticked, Ok(Some(())), "no ticks while the guest is silent");
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let r = c.expect(&re("login:"), Duration::from_secs(30));
                (r, Instant::now())
            });
            // Give the waiter time to block, to measure the cold path.
            std::thread::sleep(Duration::from_millis(50));
            let sent = Instant::now();
            g.write_all(b"[    1.0] Kernel panic - not syncing: VFS\r\nlogin: ")
                .unwrap();
            let (r, returned) = h.join().unwrap();
            match r {
                Err(ExpectError::Fault(report)) => {
                    assert!(report.title.contains("Kernel panic"))
                }
                other => panic!("{other:?}"),
            }
            assert!(returned.duration_since(sent) < Duration::from_millis(500));
        });
        // The fault sticks, even for text that would match.
        let err = c.expect(&re("login:"), SEC).unwrap_err();
        assert!(
            err.to_string().contains("Kernel panic - not syncing"),
            "{err}"
        );
        assert!(c.fault().unwrap().fatal);
        // First fault wins.
        g.write_all(b"Kernel panic - second\r\n").unwrap();
        // Wait until the observer has seen that line, then check.
        let seen =
            crate::deadline::poll_until(Instant::now() + SEC, Duration::from_millis(1), || {
                Ok::<_, ()>((lines.load(Ordering::SeqCst) >= 4).then_some(()))
            });
        assert_eq!(seen, Ok(Some(())), "the second panic line was not observed");
        assert!(c.fault().unwrap().title.contains("VFS"));
        assert!(lines.load(Ordering::SeqCst) >= 3);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let (c, mut g) = pair_with(ConsoleOptions {
            max_pending: 1 << 20,
            tail_bytes: 64 << 10,
            observer: None,
        });
        let line = b"\x1b[0;32m  OK  \x1b[0m] Started something.service - A long description of a unit.\r\n";
        let mut chunk = Vec::new();
        while chunk.len() < 1 << 20 {
            chunk.extend_from_slice(line);
        }
        let total: usize = 50 << 20;
        let mut max_seen = 0usize;
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut sent = 0;
                while sent < total {
                    g.write_all(&chunk).unwrap();
                    sent += chunk.len();
                }
                g.write_all(b"THE-END").unwrap();
            });
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let st = c.stats();
                max_seen = max_seen.max(st.buffer_capacity);
                assert!(st.pending_bytes <= 1 << 20);
                if c.expect(&re("THE-END"), Duration::from_millis(5)).is_ok() {
                    break;
                }
                assert!(Instant::now() < deadline, "flood did not finish");
            }
        });
        let st = c.stats();
        assert!(st.bytes_received > total as u64);
        assert!(st.dropped_bytes > 0, "{st:?}");
        // 2 * max_pending plus one read, plus Vec growth slack.
        assert!(max_seen <= 4 << 20, "{st:?}");
        assert!(st.buffer_capacity <= 4 << 20, "{st:?}");
        assert!(c.tail_lines(3).ends_with("unit.\nTHE-END"));
    }

    struct Recorder(mpsc::Sender<(bool, Vec<u8>)>);
    impl ConsoleTap for Recorder {
        fn received(&mut self, raw: &[u8]) {
            let _ = self.0.send((false, raw.to_vec()));
        }
        fn sent(&mut self, raw: &[u8]) {
            let _ = self.0.send((true, raw.to_vec()));
        }
    }

    #[test]
    fn tap_sees_both_directions_and_raw_log_gets_raw_bytes() {
        let (a, mut g) = UnixStream::pair().unwrap();
        let log_path = tempfile::NamedTempFile::new().unwrap();
        let c = Console::start(a, log_path.reopen().unwrap(), ConsoleOptions::default()).unwrap();
        let (tx, rx) = mpsc::channel();
        assert!(c.set_tap(Some(Box::new(Recorder(tx)))).is_none());
        c.send(b"root\n").unwrap();
        let mut buf = [0u8; 5];
        g.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"root\n");
        g.write_all(b"\x1b[1mroot\x1b[0m\r\n\x1b[6n# ").unwrap();
        c.expect(&re("# "), SEC).unwrap();
        let mut sent = Vec::new();
        let mut received = Vec::new();
        while let Ok((is_sent, data)) = rx.recv_timeout(Duration::from_millis(200)) {
            if is_sent { &mut sent } else { &mut received }.extend(data);
        }
        assert_eq!(sent, b"root\n\x1b[24;80R");
        assert_eq!(received, b"\x1b[1mroot\x1b[0m\r\n\x1b[6n# ");
        assert!(c.set_tap(None).is_some());
        drop(c);
        assert_eq!(
            std::fs::read(log_path.path()).unwrap(),
            b"\x1b[1mroot\x1b[0m\r\n\x1b[6n# "
        );
    }

    #[test]
    fn drop_joins_promptly() {
        let (c, _g) = pair();
        let t0 = Instant::now();
        drop(c);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn real_transcript_through_the_console() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/serial/debian12-systemd-boot-login.log");
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                println!("skipping: fixture {} not readable: {e}", path.display());
                return;
            }
        };
        let (c, mut g) = pair();
        std::thread::scope(|s| {
            s.spawn(|| {
                for chunk in raw.chunks(61) {
                    g.write_all(chunk).unwrap();
                }
            });
            c.expect(&re(r"login: "), SEC).unwrap();
            let m = c.expect(&re(r"tester@testvm:~\$ "), SEC).unwrap();
            assert!(m.before_str().contains("NO WARRANTY"));
            let m = c.expect(&re(r"(?m)^RC=(\d+)$"), SEC).unwrap();
            assert_eq!(m.capture_str(1).as_deref(), Some("1"));
            let m = c.expect(&re(r"(?m)^END(\d+)$"), SEC).unwrap();
            assert_eq!(m.capture_str(1).as_deref(), Some("4"));
            assert!(m.before_str().contains("No jobs running.\n"));
            c.expect(&re("reboot: Power down"), SEC).unwrap();
        });
        assert_eq!(c.bytes_received(), raw.len() as u64);
    }
}
