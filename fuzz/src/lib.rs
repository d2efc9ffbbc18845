//! The properties bootrig's fuzz targets check, one function per target.
//! Each takes the raw input AFL generated and panics (which AFL records as
//! a crash) when a property does not hold. `targets/*.rs` wrap them in
//! `afl::fuzz!`; `scripts/fuzz.sh` builds and runs them.

use std::path::Path;
use std::time::{Duration, Instant};

use bootrig_diagnostics::ansi::{strip, AnsiStripper};
use bootrig_diagnostics::crash::{has_kernel_timestamp, kernel_timestamp, CrashDetector};

/// ANSI stripping is split-invariant: the console reads the serial port in
/// arbitrary pieces, so feeding the input in pieces (cut where the first
/// two bytes say) gives the same text and the same terminal queries as
/// stripping it whole.
pub fn ansi_split(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let (cuts, input) = data.split_at(2);
    let whole = strip(input);
    let mut fed = Vec::new();
    let whole_queries = AnsiStripper::new().feed(input, &mut fed).len();
    assert_eq!(whole, fed, "strip() and one feed() differ");

    let mut stripper = AnsiStripper::new();
    let mut pieces = Vec::new();
    let mut queries = 0;
    let mut rest = input;
    let mut step = 0;
    while !rest.is_empty() {
        // Piece lengths cycle through the two cut bytes (1..=256).
        let len = (usize::from(cuts[step % 2]) + 1).min(rest.len());
        let (piece, tail) = rest.split_at(len);
        queries += stripper.feed(piece, &mut pieces).len();
        rest = tail;
        step += 1;
    }
    assert_eq!(whole, pieces, "stripping in pieces differs from stripping whole");
    assert_eq!(whole_queries, queries, "terminal queries differ when split");
}

/// The scenario loader never panics: any input is a scenario or an error
/// that names the file.
pub fn scenario(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/nonexistent/fuzz/scenario.json");
    if let Err(e) = bootrig::Scenario::parse(&text, path) {
        let message = e.to_string();
        assert!(
            message.contains("scenario.json"),
            "error does not name the file: {message}"
        );
    }
}

/// The crash detector never panics, whatever the console says, line by
/// line or as a whole log, and what it reports is not empty.
pub fn crash(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let start = Instant::now();
    let mut detector = CrashDetector::default();
    let mut reports = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let now = start + Duration::from_millis(10 * i as u64);
        reports.extend(detector.feed_line(line, now));
        reports.extend(detector.poll(now));
    }
    reports.extend(detector.flush());
    reports.extend(CrashDetector::default().scan(&text));
    for r in reports {
        assert!(!r.title.is_empty(), "a report without a title: {r:?}");
    }
}

/// The kernel timestamp parser never panics and agrees with the check for
/// a timestamp: a time is only read from a line that has one.
pub fn timestamp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some(t) = kernel_timestamp(line) {
            assert!(has_kernel_timestamp(line), "{line:?} has a time {t:?} but no timestamp");
        }
    }
}
