//! Tests of the console through a socket pair.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bootrig_diagnostics::crash::CrashReport;
use regex::bytes::Regex;

use super::*;

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
            let read =
                crate::deadline::poll_until(Instant::now() + SEC, Duration::from_millis(1), || {
                    Ok::<_, ()>((c.bytes_received() >= sent).then_some(()))
                });
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
    let seen = crate::deadline::poll_until(Instant::now() + SEC, Duration::from_millis(1), || {
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
        ..ConsoleOptions::default()
    });
    let line =
        b"\x1b[0;32m  OK  \x1b[0m] Started something.service - A long description of a unit.\r\n";
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

#[test]
fn an_expired_deadline_times_out_at_once_but_still_matches_what_is_there() {
    let (c, mut g) = pair();
    g.write_all(b"ready> ").unwrap();
    c.expect(&re("ready"), SEC).unwrap();
    let expired = crate::deadline::Deadline::at(Instant::now() - Duration::from_secs(1));
    // Text already received still matches.
    c.expect(&re("> "), expired).unwrap();
    let t0 = Instant::now();
    let err = c.expect(&re("never"), expired).unwrap_err();
    assert!(t0.elapsed() < Duration::from_millis(100));
    assert!(matches!(err, ExpectError::Timeout { .. }), "{err}");
    let t0 = Instant::now();
    assert_eq!(c.wait_query_answered(c.queries_answered(), expired), 0);
    assert!(t0.elapsed() < Duration::from_millis(100));
}

#[test]
fn a_deadline_that_never_passes_waits_for_the_text() {
    let (c, mut g) = pair();
    std::thread::scope(|s| {
        let h = s.spawn(|| c.expect(&re("late"), crate::deadline::Deadline::never()));
        g.write_all(b"late").unwrap();
        assert_eq!(h.join().unwrap().unwrap().matched_str(), "late");
    });
}

/// A guest that stops reading its console (a stopped shell, a hung tty)
/// makes `send` fail with a clear error once the socket is full for the
/// write timeout, instead of blocking the test forever.
#[test]
fn a_guest_that_stops_reading_fails_the_send() {
    let (c, _guest) = pair_with(ConsoleOptions {
        write_timeout: Duration::from_millis(300),
        ..ConsoleOptions::default()
    });
    let started = Instant::now();
    let chunk = vec![b'x'; 64 << 10];
    let mut err = None;
    // The socket takes some hundreds of KiB before it is full.
    for _ in 0..1024 {
        if let Err(e) = c.send(&chunk) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("sending 64 MiB to a guest that reads nothing succeeded");
    assert!(
        err.to_string().contains("stopped reading its console"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}
