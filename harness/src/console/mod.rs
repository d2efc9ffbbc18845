//! The serial console of a running guest: a background reader plus an
//! `expect`-style matcher.
//!
//! QEMU exposes the guest's serial port as a Unix socket (`-chardev socket`).
//! [`Console::start`] takes the connected socket and spawns one reader thread
//! that, for every chunk it reads:
//!
//! 1. appends the raw bytes to the raw log (`serial.log`) and hands them to the
//!    [`ConsoleTap`], if any;
//! 2. strips terminal control sequences with [`AnsiStripper`](crate::ansi::AnsiStripper) and answers the
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
//!
//! # Files
//!
//! `mod.rs` holds the public handle and its options, `expect.rs` the
//! matcher and its errors, `buffer.rs` the text buffer shared with the
//! reader thread, and `reader.rs` that thread.

use std::fmt;
use std::fs::File;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bootrig_diagnostics::crash::CrashReport;

use buffer::Shared;

mod buffer;
mod expect;
mod reader;
#[cfg(test)]
mod tests;

pub use expect::{ExpectError, Match, LOOKBACK};
pub use reader::TICK;

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
    /// How long [`Console::send`] waits for the guest to take its input
    /// before failing (a guest that stopped reading its console must not
    /// hang the test). Default 60 s.
    pub write_timeout: std::time::Duration,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            max_pending: 4 << 20,
            tail_bytes: 256 << 10,
            observer: None,
            write_timeout: std::time::Duration::from_secs(60),
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
        stream.set_write_timeout(Some(options.write_timeout.max(TICK)))?;
        let writer = stream.try_clone()?;
        let control = stream.try_clone()?;
        let shared = Arc::new(Shared::new(
            writer,
            options.max_pending.max(1),
            options.tail_bytes,
        ));
        let thread_shared = Arc::clone(&shared);
        let observer = options.observer;
        let thread = std::thread::Builder::new()
            .name("bootrig-console".into())
            .spawn(move || {
                // A panic on this thread (an observer's, say) must not stop
                // reading silently, leaving every wait to time out: the
                // console closes at once, saying why.
                let read = std::panic::AssertUnwindSafe(|| {
                    reader::reader_loop(&thread_shared, stream, raw_log, observer)
                });
                if let Err(panic) = std::panic::catch_unwind(read) {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic".into());
                    let mut st = thread_shared.state();
                    st.closed = true;
                    st.close_error = Some(format!("the console reader panicked: {why}"));
                    drop(st);
                    thread_shared.cond.notify_all();
                }
            })?;
        Ok(Console {
            shared,
            control,
            thread: Some(thread),
        })
    }

    /// Writes `data` to the guest (through the tap). Blocks until written.
    pub fn send(&self, data: &[u8]) -> Result<(), ExpectError> {
        self.shared.write(data).map_err(ExpectError::Io)
    }

    /// Changes how long [`Console::send`] waits for the guest to take its
    /// input before failing ([`ConsoleOptions::write_timeout`]; at least
    /// [`TICK`]).
    pub fn set_write_timeout(&self, timeout: std::time::Duration) -> io::Result<()> {
        let writer = self.shared.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.set_write_timeout(Some(timeout.max(TICK)))
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

    /// [`Console::raw_log_error`] as an `io::Error` (its OS error code
    /// kept, so a full disk can be told apart).
    pub fn raw_log_io_error(&self) -> Option<io::Error> {
        let st = self.shared.state();
        let message = st.raw_log_error.clone()?;
        Some(match st.raw_log_errno {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::other(message),
        })
    }

    /// The first fatal report from the observer.
    pub fn fault(&self) -> Option<CrashReport> {
        self.shared.state().fault.clone()
    }

    /// Whether an `expect` has failed on [`Console::fault`]: whoever waited
    /// on the console was told of the crash.
    pub fn fault_delivered(&self) -> bool {
        self.shared.state().fault_delivered
    }

    /// Non-fatal reports from the observer, oldest first (at most 1024).
    pub fn reports(&self) -> Vec<CrashReport> {
        self.shared.state().reports.clone()
    }

    /// How many terminal queries (`ESC[6n` and friends) have been answered.
    pub fn queries_answered(&self) -> u64 {
        self.shared.state().queries_answered
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
