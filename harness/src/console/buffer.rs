//! The console text shared between the reader thread and the
//! [`Console`](super::Console) handle: stripped text with a cursor, a tail
//! kept for failure messages, and the observer's reports.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex, MutexGuard};

use bootrig_diagnostics::crash::CrashReport;

use super::ConsoleTap;

/// Non-fatal reports kept by [`Console::reports`]; later ones are counted only.
const MAX_REPORTS: usize = 1024;

/// Shared between the reader thread and the `Console` handle.
pub(super) struct State {
    /// Stripped text covering absolute offsets `base .. base + text.len()`.
    pub(super) text: Vec<u8>,
    pub(super) base: u64,
    pub(super) cursor: u64,
    pub(super) max_pending: usize,
    pub(super) tail_bytes: usize,
    pub(super) bytes_received: u64,
    /// Terminal queries answered so far (cursor position and others).
    pub(super) queries_answered: u64,
    pub(super) dropped_bytes: u64,
    pub(super) closed: bool,
    pub(super) close_error: Option<String>,
    pub(super) raw_log_error: Option<String>,
    /// The OS error code of `raw_log_error`, when it had one.
    pub(super) raw_log_errno: Option<i32>,
    pub(super) fault: Option<CrashReport>,
    /// An `expect` has failed on `fault` (its waiter was told).
    pub(super) fault_delivered: bool,
    pub(super) reports: Vec<CrashReport>,
    pub(super) dropped_reports: u64,
}

impl State {
    pub(super) fn end(&self) -> u64 {
        self.base + self.text.len() as u64
    }

    pub(super) fn append(&mut self, data: &[u8]) {
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

    pub(super) fn tail_lines(&self, n: usize) -> String {
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

    pub(super) fn record(&mut self, report: CrashReport) -> bool {
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

pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) cond: Condvar,
    pub(super) tap: Mutex<Option<Box<dyn ConsoleTap>>>,
    pub(super) writer: Mutex<UnixStream>,
    pub(super) stop: AtomicBool,
}

impl Shared {
    /// Fresh state for a console writing to `writer`.
    pub(super) fn new(writer: UnixStream, max_pending: usize, tail_bytes: usize) -> Shared {
        Shared {
            state: Mutex::new(State {
                text: Vec::new(),
                base: 0,
                cursor: 0,
                max_pending,
                tail_bytes,
                bytes_received: 0,
                queries_answered: 0,
                dropped_bytes: 0,
                closed: false,
                close_error: None,
                raw_log_error: None,
                raw_log_errno: None,
                fault: None,
                fault_delivered: false,
                reports: Vec::new(),
                dropped_reports: 0,
            }),
            cond: Condvar::new(),
            tap: Mutex::new(None),
            writer: Mutex::new(writer),
            stop: AtomicBool::new(false),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn tap(&self) -> MutexGuard<'_, Option<Box<dyn ConsoleTap>>> {
        self.tap.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn write(&self, data: &[u8]) -> io::Result<()> {
        if let Some(tap) = self.tap().as_mut() {
            tap.sent(data);
        }
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.write_all(data).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                "the guest stopped reading its console (its input was not taken in time)",
            ),
            _ => e,
        })?;
        w.flush()
    }
}
