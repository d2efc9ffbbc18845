//! Throughput of the kernel crash detector on real console text, against
//! baselines measured in the same run: (a) the ANSI stripper over the same
//! bytes (the pass every console byte goes through before the detector
//! sees its line), (a2) one substring search per line (the least any line
//! filter does).
//!
//! `cargo bench -p bootrig-diagnostics --bench crash` (`BOOTRIG_BENCH_MB=<n>`
//! sets the stream size; default 20). The stream is the serial logs in
//! `shared/fixtures/serial` (found above the crate), ANSI-stripped as the
//! console does, with the seed reports of `fuzz/seeds/crash` (a panic, a
//! BUG, a WARNING) after every log, repeated to the size.
//!
//! Rows: (b) one detector fed every line (the console's path, with
//! `poll`), (c) `scan` of the whole text (offline reports), (d) a new
//! detector per 4 KB slice, line by line and then `scan` (the shape of the
//! `crash` fuzz target: what bounds its executions per second).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bootrig_diagnostics::ansi::strip;
use bootrig_diagnostics::crash::CrashDetector;

/// `shared/fixtures/serial` in the first ancestor of the crate holding it.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/fixtures/serial"))
        .find(|p| p.is_dir())
        .expect("no shared/fixtures/serial above the crate")
}

/// The console text: every fixture log, stripped, each followed by the
/// seed reports, repeated to at least `mb` MB.
fn stream(mb: usize) -> String {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("read fixtures")
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/crash");
    let mut reports: Vec<PathBuf> = std::fs::read_dir(&seeds)
        .map(|d| d.map(|e| e.expect("seed entry").path()).collect())
        .unwrap_or_default();
    reports.sort();
    let mut one = String::new();
    for log in &logs {
        let raw = std::fs::read(log).expect("read log");
        one.push_str(&String::from_utf8_lossy(&strip(&raw)).replace('\r', ""));
        for r in &reports {
            one.push_str(&std::fs::read_to_string(r).expect("read seed report"));
        }
    }
    assert!(!one.is_empty(), "no fixture text");
    let mut text = String::with_capacity(mb * 1_000_000 + one.len());
    while text.len() < mb * 1_000_000 {
        text.push_str(&one);
    }
    text
}

/// Best of three runs of `f`, which returns a count to keep it honest.
fn best(f: impl Fn() -> usize) -> (Duration, usize) {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let n = black_box(f());
            (t.elapsed(), n)
        })
        .min_by_key(|r| r.0)
        .expect("three runs")
}

fn main() {
    let mb: usize = std::env::var("BOOTRIG_BENCH_MB")
        .ok()
        .map(|v| v.parse().expect("BOOTRIG_BENCH_MB is a number of MB"))
        .unwrap_or(20);
    let text = stream(mb);
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    println!(
        "crash detector: {:.1} MB, {} lines (fixtures + seed reports, repeated)",
        text.len() as f64 / 1e6,
        n
    );

    let (base, stripped) = best(|| strip(text.as_bytes()).len());
    let (contains, hits) = best(|| lines.iter().filter(|l| l.contains("BUG:")).count());
    let (feed, fed) = best(|| {
        let mut d = CrashDetector::default();
        let now = Instant::now();
        let mut reports = 0;
        for l in &lines {
            reports += d.feed_line(l, now).is_some() as usize;
            reports += d.poll(now).is_some() as usize;
        }
        reports + d.flush().is_some() as usize
    });
    let (scan, scanned) = best(|| CrashDetector::default().scan(&text).len());
    let (slices, sliced) = best(|| {
        let mut reports = 0;
        for chunk in text.as_bytes().chunks(4096) {
            let chunk = String::from_utf8_lossy(chunk);
            let mut d = CrashDetector::default();
            let now = Instant::now();
            for l in chunk.lines() {
                reports += d.feed_line(l, now).is_some() as usize;
            }
            reports += d.flush().is_some() as usize;
            reports += CrashDetector::default().scan(&chunk).len();
        }
        reports
    });
    assert_eq!(fed, scanned, "feed_line and scan find the same reports");
    assert!(fed > 0 && sliced > 0 && hits > 0);

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("| case | time | lines/s | vs (a) | reports (a: bytes out, a2: lines) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, d, r) in [
        ("(a) baseline: `ansi::strip` of the text", base, stripped),
        ("(a2) `line.contains(\"BUG:\")`", contains, hits),
        ("(b) `feed_line` + `poll`, one detector", feed, fed),
        ("(c) `scan` of the whole text", scan, scanned),
        (
            "(d) new detector per 4 KB slice, lines then `scan`",
            slices,
            sliced,
        ),
    ] {
        println!(
            "| {name} | {:.4} s | {:.2} M | {:.3}x | {r} |",
            d.as_secs_f64(),
            rate(d) / 1e6,
            base.as_secs_f64() / d.as_secs_f64(),
        );
    }
}
