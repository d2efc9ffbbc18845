//! Throughput and latency of the expect engine against a raw socket read,
//! strip-ansi-escapes, rexpect and Python pexpect.
//!
//! Run with `cargo bench -p bootrig --bench expect`. Set `BOOTRIG_BENCH_MB` to
//! change the stream size (default 100).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bootrig::ansi::AnsiStripper;
use bootrig::console::{Console, ConsoleOptions};
use regex::bytes::Regex;

const MARKER: &str = "BENCH-END-OF-STREAM-7f3a9c";
const CHUNK: usize = 64 * 1024;
const LATENCY_ROUNDS: usize = 300;
const REXPECT_LATENCY_ROUNDS: usize = 200;
const PEXPECT_LATENCY_ROUNDS: usize = 300;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const UNITS: &[&str] = &[
    "systemd-journald",
    "systemd-udevd",
    "networking",
    "ssh",
    "cron",
    "getty@ttyS0",
    "systemd-tmpfiles-setup",
    "e2scrub_all",
];
const KERNEL: &[&str] = &[
    "virtio_blk virtio1: [vda] 4194304 512-byte logical blocks (2.15 GB/2.00 GiB)",
    "EXT4-fs (vda): mounted filesystem with ordered data mode. Quota mode: none.",
    "random: crng init done",
    "audit: type=1400 audit(1700000000.123:2): apparmor=\"STATUS\" operation=\"profile_load\"",
    "input: ImExPS/2 Generic Explorer Mouse as /devices/platform/i8042/serio1/input/input3",
];

/// A deterministic ANSI-heavy console stream of about `target` bytes that
/// ends with `\r\n MARKER \r\n` (and contains the marker nowhere else).
fn generate(target: usize) -> Vec<u8> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut v: Vec<u8> = Vec::with_capacity(target + 256);
    let mut n = 0u64;
    while v.len() < target {
        n += 1;
        let unit = UNITS[rng.below(UNITS.len() as u64) as usize];
        let _ = match rng.below(10) {
            0..=3 => write!(
                v,
                "[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39m{unit}-{n}.service\x1b[0m - {unit} instance {n}.\r\r\n"
            ),
            4 | 5 => write!(
                v,
                "[{:5}.{:06}] {}\r\r\n",
                n / 1000,
                rng.below(1_000_000),
                KERNEL[rng.below(KERNEL.len() as u64) as usize]
            ),
            6 => write!(
                v,
                "\x1b]0;root@testvm: /var/log/{n}\x07\x1b[?2004hroot@testvm:~# ls -l /var/log/{unit}\r\r\n\x1b[?2004l\rtotal {n}\r\n"
            ),
            7 => write!(
                v,
                "\x1b7\x1b[{};{}H\x1b[K\x1b[1;34m{:3}%\x1b[0m progress \x1b[2K\x1b8\r",
                rng.below(24) + 1,
                rng.below(80) + 1,
                rng.below(101)
            ),
            8 => write!(
                v,
                "[\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39m{unit}.service\x1b[0m.\r\r\nSee 'systemctl status {unit}.service' for details.\r\r\n"
            ),
            _ => write!(
                v,
                "\x1b(0lqqqk\x1b(B \x1b]8;;https://example.invalid/{n}\x1b\\Grüße … ✓ {n}\x1b]8;;\x1b\\\r\n"
            ),
        };
    }
    write!(v, "\r\n{MARKER}\r\n").unwrap();
    v
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// Best of `runs` (the least disturbed run).
fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

/// Writes `data` into one end of a socket pair from a thread; the other end
/// is returned. The writer keeps its end open until `data` is written, then
/// drops it only if `close` is set.
fn feeder(data: &'static [u8], close: bool) -> (UnixStream, thread::JoinHandle<UnixStream>) {
    let (a, b) = UnixStream::pair().unwrap();
    let h = thread::spawn(move || {
        let mut a = a;
        for chunk in data.chunks(CHUNK) {
            a.write_all(chunk).unwrap();
        }
        if close {
            let _ = a.shutdown(std::net::Shutdown::Write);
        }
        a
    });
    (b, h)
}

fn bench_baseline(data: &'static [u8]) -> Duration {
    let t0 = Instant::now();
    let (mut r, h) = feeder(data, true);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        std::hint::black_box(&buf[..n]);
    }
    let d = t0.elapsed();
    assert_eq!(total, data.len());
    h.join().unwrap();
    d
}

fn bench_stripper(data: &[u8]) -> (Duration, usize) {
    let mut s = AnsiStripper::new();
    let mut out = Vec::with_capacity(CHUNK);
    let mut produced = 0;
    let t0 = Instant::now();
    for chunk in data.chunks(CHUNK) {
        out.clear();
        std::hint::black_box(s.feed(chunk, &mut out));
        produced += out.len();
    }
    (t0.elapsed(), produced)
}

struct Discard;
impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::hint::black_box(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn bench_strip_ansi_escapes(data: &[u8]) -> Duration {
    let t0 = Instant::now();
    let mut w = strip_ansi_escapes::Writer::new(Discard);
    for chunk in data.chunks(CHUNK) {
        w.write_all(chunk).unwrap();
    }
    w.flush().unwrap();
    t0.elapsed()
}

fn bench_console(data: &'static [u8]) -> (Duration, u64) {
    let marker = Regex::new(MARKER).unwrap();
    let log = tempfile::tempfile().unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let console = Console::start(a, log, ConsoleOptions::default()).unwrap();
    let t0 = Instant::now();
    let h = thread::spawn(move || {
        let mut b = b;
        for chunk in data.chunks(CHUNK) {
            b.write_all(chunk).unwrap();
        }
        b
    });
    let m = console.expect(&marker, Duration::from_secs(300)).unwrap();
    let d = t0.elapsed();
    let _keep_open = h.join().unwrap();
    assert_eq!(console.bytes_received(), data.len() as u64);
    std::hint::black_box(m);
    (d, console.stats().dropped_bytes)
}

fn bench_rexpect(data: &'static [u8]) -> Duration {
    let t0 = Instant::now();
    let (r, h) = feeder(data, false);
    let mut session = rexpect::session::StreamSession::new(
        r,
        io::sink(),
        rexpect::reader::Options::new()
            .timeout_ms(Some(600_000))
            .strip_ansi_escape_codes(true),
    );
    session.exp_string(MARKER).unwrap();
    let d = t0.elapsed();
    drop(h);
    d
}

const NOISE: &[u8] =
    b"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mfoo.service\x1b[0m - Foo.\r\r\n\
[   12.345678] EXT4-fs (vda): mounted filesystem with ordered data mode.\r\r\n\
\x1b]0;root@testvm: ~\x07\x1b[?2004hroot@testvm:~# \x1b[?2004l\r";

/// Writer thread for latency runs: for each index received, writes noise,
/// stamps the time, writes the marker line, and sends the stamp back.
fn latency_writer(
    mut w: UnixStream,
) -> (
    mpsc::Sender<usize>,
    mpsc::Receiver<Instant>,
    thread::JoinHandle<()>,
) {
    let (go_tx, go_rx) = mpsc::channel::<usize>();
    let (stamp_tx, stamp_rx) = mpsc::channel::<Instant>();
    let h = thread::spawn(move || {
        for i in go_rx {
            w.write_all(NOISE).unwrap();
            w.write_all(NOISE).unwrap();
            let line = format!("LAT-{i:05}-MARK\r\n");
            // Let the reader and the waiter go back to sleep, so that the
            // marker takes the cold path (both threads blocked). This pause is
            // part of the workload, not synchronisation.
            thread::sleep(Duration::from_millis(1));
            let t = Instant::now();
            w.write_all(line.as_bytes()).unwrap();
            stamp_tx.send(t).unwrap();
        }
    });
    (go_tx, stamp_rx, h)
}

fn latency_console() -> Vec<Duration> {
    let (a, b) = UnixStream::pair().unwrap();
    let console =
        Console::start(a, tempfile::tempfile().unwrap(), ConsoleOptions::default()).unwrap();
    let re = Regex::new(r"LAT-(\d{5})-MARK").unwrap();
    let (go, stamps, h) = latency_writer(b);
    let mut out = Vec::new();
    for i in 0..LATENCY_ROUNDS {
        go.send(i).unwrap();
        let m = console.expect(&re, Duration::from_secs(10)).unwrap();
        let done = Instant::now();
        assert_eq!(m.capture_str(1).unwrap(), format!("{i:05}"));
        let sent = stamps.recv().unwrap();
        out.push(done.saturating_duration_since(sent));
    }
    drop(go);
    h.join().unwrap();
    out
}

fn latency_rexpect() -> Vec<Duration> {
    let (a, b) = UnixStream::pair().unwrap();
    let mut session = rexpect::session::StreamSession::new(
        a,
        io::sink(),
        rexpect::reader::Options::new()
            .timeout_ms(Some(10_000))
            .strip_ansi_escape_codes(true),
    );
    let (go, stamps, h) = latency_writer(b);
    let mut out = Vec::new();
    for i in 0..REXPECT_LATENCY_ROUNDS {
        go.send(i).unwrap();
        session.exp_string(&format!("LAT-{i:05}-MARK")).unwrap();
        let done = Instant::now();
        let sent = stamps.recv().unwrap();
        out.push(done.saturating_duration_since(sent));
    }
    drop(go);
    h.join().unwrap();
    out
}

const PEXPECT_SCRIPT: &str = r#"
import json, re, socket, sys, threading, time
from pexpect import fdpexpect

def feed(sock, data):
    view = memoryview(data)
    for i in range(0, len(data), 65536):
        sock.sendall(view[i:i + 65536])

def throughput(path, mode):
    data = open(path, 'rb').read()
    a, b = socket.socketpair()
    t0 = time.perf_counter()
    th = threading.Thread(target=feed, args=(a, data))
    th.start()
    child = fdpexpect.fdspawn(b.fileno(), maxread=65536, timeout=600)
    marker = sys.argv[3].encode()
    if mode == 'exact':
        child.expect_exact(marker)
    elif mode == 'regex':
        child.expect(re.compile(re.escape(marker)))
    else:
        child.expect(re.compile(re.escape(marker)), searchwindowsize=4096)
    dt = time.perf_counter() - t0
    th.join()
    print(json.dumps({"bytes": len(data), "secs": dt}))

NOISE = (b"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mfoo.service\x1b[0m - Foo.\r\r\n"
         b"[   12.345678] EXT4-fs (vda): mounted filesystem with ordered data mode.\r\r\n"
         b"\x1b]0;root@testvm: ~\x07\x1b[?2004hroot@testvm:~# \x1b[?2004l\r")

def latency(rounds):
    a, b = socket.socketpair()
    child = fdpexpect.fdspawn(b.fileno(), timeout=10)
    out = []
    for i in range(rounds):
        stamp = []
        def w():
            a.sendall(NOISE)
            a.sendall(NOISE)
            line = b"LAT-%05d-MARK\r\n" % i
            time.sleep(0.001)
            stamp.append(time.perf_counter())
            a.sendall(line)
        th = threading.Thread(target=w)
        th.start()
        child.expect(re.compile(rb"LAT-%05d-MARK" % i))
        done = time.perf_counter()
        th.join()
        out.append(done - stamp[0])
    print(json.dumps({"latencies": out}))

if sys.argv[1] == 'latency':
    latency(int(sys.argv[2]))
else:
    throughput(sys.argv[2], sys.argv[1])
"#;

fn python_json(args: &[&str]) -> Option<String> {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PEXPECT_SCRIPT)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "pexpect run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json_number(s: &str, key: &str) -> Option<f64> {
    let i = s.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &s[i..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn pexpect_throughput(file: &Path, mode: &str) -> Option<(usize, Duration)> {
    let s = python_json(&[mode, file.to_str()?, MARKER])?;
    Some((
        json_number(&s, "bytes")? as usize,
        Duration::from_secs_f64(json_number(&s, "secs")?),
    ))
}

fn pexpect_latency() -> Option<Vec<Duration>> {
    let s = python_json(&["latency", &PEXPECT_LATENCY_ROUNDS.to_string()])?;
    let list = s.split('[').nth(1)?.split(']').next()?;
    list.split(',')
        .map(|x| x.trim().parse::<f64>().ok().map(Duration::from_secs_f64))
        .collect()
}

/// The first `len` bytes of `data` (cut at a line end), followed by the marker.
fn prefix_with_marker(data: &[u8], len: usize) -> &'static [u8] {
    let cut = data[..len]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(len, |i| i + 1);
    let mut v = data[..cut].to_vec();
    write!(v, "\r\n{MARKER}\r\n").unwrap();
    Vec::leak(v)
}

struct Row {
    name: String,
    bytes: usize,
    time: Duration,
    note: String,
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let mb: usize = std::env::var("BOOTRIG_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let t = Instant::now();
    let data: &'static [u8] = Vec::leak(generate(mb * 1_000_000));
    let esc = data.iter().filter(|&&b| b == 0x1b).count();
    println!(
        "stream: {:.1} MB, {} ESC bytes ({:.1} per KB), generated in {:.2?}",
        data.len() as f64 / 1e6,
        esc,
        esc as f64 * 1000.0 / data.len() as f64,
        t.elapsed()
    );
    let dir = tempfile::tempdir().unwrap();

    let mut rows = Vec::new();

    let base = best_of(3, || bench_baseline(data));
    rows.push(Row {
        name: "(a) baseline: socketpair read, discard".into(),
        bytes: data.len(),
        time: base,
        note: "best of 3".into(),
    });

    let mut produced = 0;
    let strip = best_of(3, || {
        let (d, p) = bench_stripper(data);
        produced = p;
        d
    });
    rows.push(Row {
        name: "(b) bootrig AnsiStripper (in memory)".into(),
        bytes: data.len(),
        time: strip,
        note: format!("best of 3; {:.1} MB text out", produced as f64 / 1e6),
    });

    let sae_bytes = data.len();
    let sae = bench_strip_ansi_escapes(&data[..sae_bytes]);
    rows.push(Row {
        name: "(c) strip-ansi-escapes 0.2 Writer (in memory)".into(),
        bytes: sae_bytes,
        time: sae,
        note: if sae_bytes < data.len() {
            format!("first {} MB", sae_bytes / 1_000_000)
        } else {
            String::new()
        },
    });

    let mut dropped = 0;
    let con = best_of(3, || {
        let (d, dr) = bench_console(data);
        dropped = dr;
        d
    });
    rows.push(Row {
        name: "(d) bootrig Console: socket -> serial.log -> strip -> expect".into(),
        bytes: data.len(),
        time: con,
        note: format!(
            "best of 3; marker at the end; {:.0} MB unconsumed text dropped by the 4 MiB pending cap",
            dropped as f64 / 1e6
        ),
    });

    let rx_bytes = data.len().min(10_000_000);
    let rx_data = prefix_with_marker(data, rx_bytes);
    let rx = bench_rexpect(rx_data);
    rows.push(Row {
        name: "(e) rexpect 0.6 StreamSession exp_string (strip on)".into(),
        bytes: rx_data.len(),
        time: rx,
        note: format!("first {} MB (too slow for all)", rx_bytes / 1_000_000),
    });

    let full_file = dir.path().join("stream.bin");
    std::fs::write(&full_file, data).unwrap();
    let py_small = prefix_with_marker(data, data.len().min(20_000_000));
    let small_file = dir.path().join("stream-20mb.bin");
    std::fs::write(&small_file, py_small).unwrap();
    for (mode, file, label, note) in [
        (
            "exact",
            &full_file,
            "(f) pexpect 4.8 fdspawn expect_exact",
            "full stream",
        ),
        (
            "window",
            &full_file,
            "(f) pexpect 4.8 fdspawn expect(re), searchwindowsize=4096",
            "full stream",
        ),
        (
            "regex",
            &small_file,
            "(f) pexpect 4.8 fdspawn expect(re), default window",
            "first 20 MB: rescans the whole buffer per read",
        ),
    ] {
        match pexpect_throughput(file, mode) {
            Some((bytes, time)) => rows.push(Row {
                name: label.into(),
                bytes,
                time,
                note: note.into(),
            }),
            None => println!("{label}: skipped (python3 with pexpect not available)"),
        }
    }

    println!();
    println!("| engine | data | time | MB/s | vs (a) | notes |");
    println!("|---|---:|---:|---:|---:|---|");
    let base_mbps = mbps(data.len(), base);
    for r in &rows {
        let m = mbps(r.bytes, r.time);
        println!(
            "| {} | {:.1} MB | {:.3} s | {:.0} | {:.3}x | {} |",
            r.name,
            r.bytes as f64 / 1e6,
            r.time.as_secs_f64(),
            m,
            m / base_mbps,
            r.note
        );
    }

    println!();
    println!("latency: matching bytes written -> expect returns (noise before each marker)");
    println!("| engine | rounds | median | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    let mut lat = vec![("bootrig Console", latency_console())];
    lat.push(("rexpect 0.6", latency_rexpect()));
    match pexpect_latency() {
        Some(v) => lat.push(("pexpect 4.8 (fdspawn)", v)),
        None => println!("pexpect latency: skipped"),
    }
    for (name, v) in &lat {
        println!(
            "| {} | {} | {:.1?} | {:.1?} | {:.1?} |",
            name,
            v.len(),
            median(v.clone()),
            percentile(v, 0.99),
            v.iter().max().unwrap()
        );
    }

    let con_mbps = mbps(data.len(), con);
    let ours = &lat[0].1;
    println!();
    println!(
        "targets: Console >= 200 MB/s: {} ({:.0} MB/s); latency median/p99 <= 1 ms: {} ({:.1?} / {:.1?})",
        if con_mbps >= 200.0 { "met" } else { "MISSED" },
        con_mbps,
        if percentile(ours, 0.99) <= Duration::from_millis(1) { "met" } else { "MISSED" },
        median(ours.clone()),
        percentile(ours, 0.99),
    );
}
