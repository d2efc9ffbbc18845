//! The reader thread: reads the serial socket, logs and taps the raw
//! bytes, strips terminal sequences and answers terminal queries, feeds
//! the observer line by line, and appends the text for `expect`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bootrig_diagnostics::crash::CrashReport;

use crate::ansi::AnsiStripper;

use super::buffer::Shared;
use super::ConsoleObserver;

/// Read timeout of the reader thread, and so the period of
/// [`ConsoleObserver::on_tick`] while the guest is silent.
pub const TICK: Duration = Duration::from_millis(50);

/// Size of one read from the socket.
const READ_CHUNK: usize = 64 * 1024;

/// A partial line longer than this is handed to the observer as a line.
const MAX_LINE: usize = 64 * 1024;

fn handle_report(shared: &Shared, report: Option<CrashReport>) {
    if let Some(report) = report {
        let fatal = shared.state().record(report);
        if fatal {
            shared.cond.notify_all();
        }
    }
}

pub(super) fn reader_loop(
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
                let mut st = shared.state();
                st.raw_log_error = Some(e.to_string());
                st.raw_log_errno = e.raw_os_error();
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
