//! Boot overhead: time to a shell prompt through bootrig, divided by the
//! time raw QEMU takes to print the same prompt, same image, same run.
//!
//! `cargo bench -p bootrig --bench boot [-- RUNS]` (default 7 runs each,
//! interleaved so host drift hits both sides alike). Needs QEMU and builds
//! the busybox image on first use.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bootrig::{Accel, Image, ImageStore};
use bootrig::{Machine, MachineOptions};
use bootrig::{Session, Timeouts};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Raw QEMU: same argv but the serial console on stdio; time until the
/// prompt's bytes appear.
fn raw_qemu(argv: &[String], needle: &[u8]) -> f64 {
    let started = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu");
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let elapsed = loop {
        let n = out.read(&mut buf).expect("read qemu stdout");
        assert!(n > 0, "QEMU exited before the prompt");
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(needle.len()).any(|w| w == needle) {
            break started.elapsed().as_secs_f64();
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let store = ImageStore::default();
    let img = store
        .ensure(&Image::builtin("busybox"), &mut |l| eprintln!("{l}"))
        .expect("busybox image");
    let prompt = img
        .manifest
        .shell_prompt
        .clone()
        .expect("busybox has a shell prompt");
    let config = img.machine_config("bench", None).with_accel(Accel::Tcg);
    let dir = tempfile::tempdir().unwrap();

    // The raw argv is bootrig's own, with the serial socket replaced by
    // stdio and no QMP: the same guest, devices and accelerator.
    let probe = Machine::start(&config, MachineOptions::new(dir.path().join("probe"))).unwrap();
    let mut raw_argv = Vec::new();
    let mut skip = 0;
    for (i, a) in probe.argv().iter().enumerate() {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        match a.as_str() {
            "-chardev" if probe.argv()[i + 1].starts_with("socket,id=qmp") => skip = 1,
            // The command channel's socket is bootrig's: raw QEMU gets
            // neither the port nor its bus.
            "-device"
                if probe.argv()[i + 1].starts_with("virtio-serial-pci")
                    || probe.argv()[i + 1].starts_with("virtserialport") =>
            {
                skip = 1
            }
            "-mon" => skip = 1,
            "-chardev" => skip = 1,
            "-serial" => {
                raw_argv.extend(["-serial".to_string(), "stdio".to_string()]);
                skip = 1;
            }
            _ => raw_argv.push(a.clone()),
        }
    }
    drop(probe);
    let needle = b"\x1b[0m:/# ";

    let (mut raw, mut prompt_t, mut ready_t) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        raw.push(raw_qemu(&raw_argv, needle));
        let started = Instant::now();
        let m = Machine::start(
            &config,
            MachineOptions::new(dir.path().join(format!("run{i}"))),
        )
        .unwrap();
        let re = regex::bytes::Regex::new(&prompt).unwrap();
        m.console()
            .expect(&re, Duration::from_secs(120))
            .expect("prompt");
        prompt_t.push(started.elapsed().as_secs_f64());
        let session = Session::new(m, Timeouts::default());
        // The prompt was consumed above; set up the shell the way
        // attach_shell does after its match.
        session.send("\n").unwrap();
        session.attach_shell(&prompt).unwrap();
        ready_t.push(started.elapsed().as_secs_f64());
    }
    let (r, p, s) = (
        median(&mut raw),
        median(&mut prompt_t),
        median(&mut ready_t),
    );
    println!("boot overhead, busybox image, TCG, {runs} runs each (median):");
    println!("  raw QEMU to prompt bytes          {r:7.3} s   1.000 (baseline)");
    println!(
        "  bootrig to prompt match           {p:7.3} s   {:.3}",
        p / r
    );
    println!(
        "  bootrig to responsive shell       {s:7.3} s   {:.3}",
        s / r
    );
}
