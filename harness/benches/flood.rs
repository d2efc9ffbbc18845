//! bootrig's memory while a guest floods it with output (issue 12): the
//! serial console flooded at full speed by a background writer, one
//! command printing a lot on the command channel, and a gigabyte from the
//! guest into a console stream on a virtio-serial port (read by its own
//! [`Console`], like the serial one).
//!
//! `cargo bench -p bootrig --bench flood [-- SECONDS [MB]]` (defaults: 60
//! seconds of console flood, a 100 MB command output; `0` seconds skips the
//! VM). Needs QEMU; builds the busybox image on first use.
//!
//! First, without QEMU, 1 GB (`BOOTRIG_FLOOD_GB`) of console lines is
//! written as fast as the host can into a [`Console`] over a socket pair
//! (the way QEMU's serial socket feeds it; raw log to `/dev/null`): under
//! TCG the emulated UART carries well under 1 MB/s, so a gigabyte through
//! the guest's serial port would take hours; the last phase sends the
//! guest's gigabyte through a virtio-serial port instead (`BOOTRIG_FLOOD_GB`
//! too).
//!
//! Memory is this process's resident set: the peak (`VmHWM`) is reset
//! through `/proc/self/clear_refs` before each phase, so each figure is
//! that phase's own peak. The baseline is the resident set with the
//! guest booted and its shell attached, measured in the same run; the
//! ratios are against it (the flood) and against the output's size (the
//! command).

use std::time::{Duration, Instant};

use bootrig::console::{Console, ConsoleOptions};
use bootrig::{Accel, Image, ImageStore, Machine, MachineOptions, Session, Timeouts};

/// A field of `/proc/self/status`, in bytes (the file says kB).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resets the peak resident set (`VmHWM`) to the current one.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM");
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let flood_secs = args.next().unwrap_or(60);
    let out_mb = args.next().unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();

    // 0. A gigabyte through the console, host side.
    let gb: u64 = std::env::var("BOOTRIG_FLOOD_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let before = status_bytes("VmRSS:");
    reset_peak();
    let (host, guest) = std::os::unix::net::UnixStream::pair().unwrap();
    let log = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let c = Console::start(host, log, ConsoleOptions::default()).unwrap();
    let total = gb << 30;
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut guest = guest;
        let line = b"[  123.456789] flooding the console at full speed \x1b[1;31mred\x1b[0m 0123456789abcdef\r\n";
        let block: Vec<u8> = line.iter().copied().cycle().take(64 << 10).collect();
        let mut sent = 0u64;
        while sent < total {
            guest.write_all(&block).unwrap();
            sent += block.len() as u64;
        }
        sent
    });
    let started = Instant::now();
    let sent = writer.join().unwrap();
    while c.bytes_received() < sent {
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let host_secs = started.elapsed().as_secs_f64();
    let host_peak = status_bytes("VmHWM:");
    let host_stats = c.stats();
    drop(c);
    println!("bootrig's resident memory under output floods, one run:");
    println!(
        "  {:.2} GB into a Console (host side, no QEMU) in {host_secs:.1} s: peak {:.1} MiB, {:.3}x the {:.1} MiB before; text buffer capacity {:.1} MiB",
        sent as f64 / 1e9,
        mb(host_peak),
        host_peak as f64 / before as f64,
        mb(before),
        mb(host_stats.buffer_capacity as u64)
    );
    if flood_secs == 0 {
        return;
    }

    let store = ImageStore::default();
    let img = store
        .ensure(&Image::builtin("busybox"), &mut |l| eprintln!("{l}"))
        .expect("busybox image");
    let prompt = img.manifest.shell_prompt.clone().expect("a shell prompt");
    // A second console stream, on a virtio-serial port, read by its own
    // `Console`: the emulated UART is far too slow for a gigabyte under
    // TCG (0.1 MB/s), and so is a virtio console behind the guest's tty
    // layer (`hvc0`, 0.07 MB/s measured); a raw port carries megabytes a
    // second.
    let hvc_socket = dir.path().join("hvc.sock");
    let hvc_listener = std::os::unix::net::UnixListener::bind(&hvc_socket).unwrap();
    let config = img
        .machine_config("flood", None)
        .with_accel(Accel::Tcg)
        .with_extra_args([
            "-chardev".to_string(),
            format!("socket,id=hvc,path={},server=off", hvc_socket.display()),
            "-device".to_string(),
            "virtserialport,bus=bootrig-vser.0,chardev=hvc,name=bootrig-flood".to_string(),
        ]);
    let m = Machine::start(&config, MachineOptions::new(dir.path())).expect("start");
    let (hvc_stream, _) = hvc_listener.accept().unwrap();
    let hvc_log_path = dir.path().join("hvc.log");
    let hvc_log = std::fs::File::create(&hvc_log_path).unwrap();
    let hvc = Console::start(hvc_stream, hvc_log, ConsoleOptions::default()).unwrap();
    let vm = Session::new(
        m,
        Timeouts {
            step: Duration::from_secs(3600),
            ..Timeouts::default()
        },
    );
    vm.attach_shell(&prompt).expect("shell");
    vm.succeed("true").unwrap();
    let baseline = status_bytes("VmRSS:");

    // 1. The console flooded: a background writer as fast as the UART
    //    goes, nobody consuming the text (the test waits for nothing).
    reset_peak();
    let console = vm.machine().console();
    let before = console.bytes_received();
    vm.succeed(
        "(yes 'flooding the console at full speed, line after line, 0123456789abcdefghij' \
         > /dev/console) </dev/null >/dev/null 2>&1 & echo $! > /tmp/flood.pid",
    )
    .unwrap();
    let started = Instant::now();
    let mut peak_seen = 0;
    while started.elapsed() < Duration::from_secs(flood_secs) {
        std::thread::park_timeout(Duration::from_secs(1));
        peak_seen = peak_seen.max(status_bytes("VmHWM:"));
    }
    vm.succeed("kill $(cat /tmp/flood.pid)").unwrap();
    let flooded = console.bytes_received() - before;
    let secs = started.elapsed().as_secs_f64();
    let flood_peak = status_bytes("VmHWM:").max(peak_seen);
    let stats = console.stats();

    // 2. One command printing `out_mb` MB on the command channel.
    vm.succeed("true").unwrap();
    let before_cmd = status_bytes("VmRSS:");
    reset_peak();
    let started = Instant::now();
    let out = vm
        .run(&format!(
            "head -c {} /dev/zero | tr '\\0' x | fold -w 100",
            out_mb * 1_000_000
        ))
        .unwrap();
    let cmd_secs = started.elapsed().as_secs_f64();
    let cmd_peak = status_bytes("VmHWM:");
    let out_bytes = out.bytes().len() as u64;
    drop(out);
    let after_cmd = status_bytes("VmRSS:");

    // 3. A gigabyte from the guest into a console stream (the virtio
    //    port), nobody consuming the text, the raw log written to disk as
    //    `serial.log` is.
    let gb_bytes = gb * 1_000_000_000;
    vm.succeed("true").unwrap();
    let before_gb = status_bytes("VmRSS:");
    reset_peak();
    let started = Instant::now();
    vm.run_timeout(
        &format!(
            "for p in /sys/class/virtio-ports/*; do \
               [ \"$(cat $p/name)\" = bootrig-flood ] && port=/dev/${{p##*/}}; done; \
             yes '[  123.456789] flooding the console at full speed \x1b[1;31mred\x1b[0m 0123456789' \
             | head -c {gb_bytes} > $port"
        ),
        Duration::from_secs(6 * 3600),
    )
    .unwrap();
    while hvc.bytes_received() < gb_bytes && started.elapsed() < Duration::from_secs(6 * 3600) {
        std::thread::park_timeout(Duration::from_millis(100));
    }
    let gb_secs = started.elapsed().as_secs_f64();
    let gb_peak = status_bytes("VmHWM:");
    let gb_received = hvc.bytes_received();
    let gb_stats = hvc.stats();
    let gb_logged = std::fs::metadata(&hvc_log_path)
        .map(|m| m.len())
        .unwrap_or(0);
    drop(hvc);
    let _ = std::fs::remove_file(&hvc_log_path);

    println!("  busybox image, TCG:");
    println!(
        "  baseline (guest booted, shell attached)  {:8.1} MiB",
        mb(baseline)
    );
    println!(
        "  console flood: {:.1} MB in {secs:.0} s ({:.2} MB/s)",
        flooded as f64 / 1e6,
        flooded as f64 / 1e6 / secs
    );
    println!(
        "    peak during the flood                  {:8.1} MiB  {:.3}x the baseline",
        mb(flood_peak),
        flood_peak as f64 / baseline as f64
    );
    println!(
        "    console text buffered {:.1} MiB (capacity {:.1} MiB), {:.1} MB dropped unread",
        mb(stats.buffered_bytes as u64),
        mb(stats.buffer_capacity as u64),
        stats.dropped_bytes as f64 / 1e6
    );
    println!(
        "  command printing {:.1} MB in {cmd_secs:.1} s ({:.1} MB/s)",
        out_bytes as f64 / 1e6,
        out_bytes as f64 / 1e6 / cmd_secs
    );
    println!(
        "    peak during the command                {:8.1} MiB  {:.2}x the output above the resident set before it ({:.1} MiB)",
        mb(cmd_peak),
        (cmd_peak.saturating_sub(before_cmd)) as f64 / out_bytes.max(1) as f64,
        mb(before_cmd)
    );
    println!(
        "    resident after the output was dropped  {:8.1} MiB",
        mb(after_cmd)
    );
    println!(
        "  guest into a console stream (virtio-serial port): {:.2} GB in {gb_secs:.0} s ({:.1} MB/s), {:.2} GB in the raw log",
        gb_received as f64 / 1e9,
        gb_received as f64 / 1e6 / gb_secs,
        gb_logged as f64 / 1e9
    );
    println!(
        "    peak during the flood                  {:8.1} MiB  {:.3}x the {:.1} MiB before; text buffer capacity {:.1} MiB, {:.2} GB dropped unread",
        mb(gb_peak),
        gb_peak as f64 / before_gb as f64,
        mb(before_gb),
        mb(gb_stats.buffer_capacity as u64),
        gb_stats.dropped_bytes as f64 / 1e9
    );
}
