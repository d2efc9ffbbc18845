//! Command round trip and output throughput: the console path (markers on
//! the emulated UART) against the command channel (virtio-serial), same
//! image, same run.
//!
//! `cargo bench -p bootrig --bench channel [-- MB]` (default 50 MB of
//! output; the console path needs minutes for that under TCG). Needs QEMU
//! and builds the busybox image on first use.

use std::time::Instant;

use bootrig::{Accel, Image, ImageStore, Machine, MachineOptions, Session, Timeouts};

struct Numbers {
    round_trip_ms: f64,
    mb_per_s: f64,
    bytes: usize,
}

fn measure(channel: bool, mb: usize, dir: &std::path::Path) -> Numbers {
    let store = ImageStore::default();
    let img = store
        .ensure(&Image::builtin("busybox"), &mut |l| eprintln!("{l}"))
        .expect("busybox image");
    let prompt = img.manifest.shell_prompt.clone().expect("a shell prompt");
    let config = img
        .machine_config(if channel { "quiet" } else { "console" }, None)
        .with_accel(Accel::Tcg)
        .with_command_channel(channel);
    let m = Machine::start(&config, MachineOptions::new(dir)).expect("start");
    let timeouts = Timeouts {
        step: std::time::Duration::from_secs(3600),
        ..Timeouts::default()
    };
    let vm = Session::new(m, timeouts);
    vm.attach_shell(&prompt).expect("shell");
    assert_eq!(vm.run("true").unwrap().quiet, channel);
    for _ in 0..10 {
        vm.run("true").unwrap();
    }
    let started = Instant::now();
    for _ in 0..200 {
        assert_eq!(vm.run("true").unwrap().exit, 0);
    }
    let round_trip_ms = started.elapsed().as_secs_f64() * 1000.0 / 200.0;
    let started = Instant::now();
    let out = vm
        .run(&format!(
            "head -c {} /dev/zero | tr '\\0' x",
            mb * 1_000_000
        ))
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let bytes = out.bytes().len() + out.truncated_bytes as usize;
    Numbers {
        round_trip_ms,
        mb_per_s: bytes as f64 / 1e6 / secs,
        bytes,
    }
}

fn main() {
    let mb: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let console = measure(false, mb, &dir.path().join("console"));
    let quiet = measure(true, mb, &dir.path().join("quiet"));
    println!("command path, busybox image, TCG, one run each:");
    println!(
        "  round trip (`true` x 200)   console {:8.1} ms   channel {:8.1} ms   {:.3}x the console's time",
        console.round_trip_ms,
        quiet.round_trip_ms,
        quiet.round_trip_ms / console.round_trip_ms
    );
    println!(
        "  {mb} MB of output            console {:8.2} MB/s channel {:8.2} MB/s {:.1}x the console's throughput",
        console.mb_per_s,
        quiet.mb_per_s,
        quiet.mb_per_s / console.mb_per_s
    );
    println!(
        "  bytes accounted for         console {} channel {}",
        console.bytes, quiet.bytes
    );
}
