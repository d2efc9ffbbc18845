//! Two busybox VMs on a private network: ping round trip and a 100 MB TCP
//! transfer (HTTP GET of a 100 MB file from busybox `httpd`, read by `nc`)
//! between the guests, through bootrig's switch, against two baselines
//! measured in the same run:
//!
//! - (a) the same transfer inside one guest over loopback: what TCG lets a
//!   guest's TCP stack do at all;
//! - (b) the same two VMs joined by a direct QEMU link without a switch
//!   (`-netdev dgram` on a pair of Unix datagram sockets): the cost of the
//!   switch is (c) against (b).
//!
//! `cargo bench -p bootrig --bench network [-- MB]` (default 100 MB). Needs
//! QEMU and builds the busybox image on first use.

use std::path::Path;
use std::time::{Duration, Instant};

use bootrig::{Accel, Image, ImageStore, Machine, MachineConfig, MachineOptions, Network};
use bootrig::{Session, Timeouts};

/// Boots `config` and returns its attached shell.
fn boot(config: MachineConfig, prompt: &str, dir: &Path) -> Session {
    let m = Machine::start(&config, MachineOptions::new(dir.join(&config.name))).expect("start");
    let timeouts = Timeouts {
        step: Duration::from_secs(3600),
        ..Timeouts::default()
    };
    let vm = Session::new(m, timeouts);
    vm.attach_shell(prompt).expect("shell");
    vm
}

/// Gives the NIC with `mac` the address `addr`/24 and brings it up.
fn address(vm: &Session, mac: &str, addr: &str) {
    let nic = format!("$(grep -l {mac} /sys/class/net/*/address | cut -d/ -f5)");
    vm.wait_until_succeeds(&format!("test -n \"{nic}\""), Duration::from_secs(60))
        .expect("the NIC shows up");
    vm.succeed(&format!(
        "ip addr add {addr}/24 dev {nic} && ip link set {nic} up"
    ))
    .expect("address");
}

/// The average ping round trip from `vm` to `addr`, in ms.
fn ping_ms(vm: &Session, addr: &str) -> f64 {
    // The first exchange also resolves the MAC address: not measured.
    vm.succeed(&format!("ping -c 1 -W 10 {addr}"))
        .expect("ping");
    let out = vm
        .succeed(&format!("ping -c 10 -W 10 {addr}"))
        .expect("ping");
    let stats = out
        .lines()
        .find_map(|l| l.strip_prefix("round-trip min/avg/max = "))
        .expect("ping statistics");
    stats.split('/').nth(1).unwrap().parse().unwrap()
}

/// Serves `mb` MB from `server`'s httpd on port 80.
fn serve(server: &Session, mb: usize) {
    server
        .succeed(&format!(
            "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count={mb} 2>/dev/null && httpd -p 80 -h /www"
        ))
        .expect("httpd");
}

/// Fetches the file from `addr` on `client`: MB/s, checking the size.
fn fetch_mb_per_s(client: &Session, addr: &str, mb: usize) -> f64 {
    let get = format!("printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | nc {addr} 80 | wc -c");
    let started = Instant::now();
    let out = client.succeed(&get).expect("fetch");
    let secs = started.elapsed().as_secs_f64();
    let bytes: usize = out.trim().parse().expect("a byte count");
    assert!(
        bytes > mb * 1_048_576,
        "fetched {bytes} bytes, expected {mb} MiB and headers"
    );
    bytes as f64 / 1e6 / secs
}

struct Numbers {
    ping_ms: f64,
    mb_per_s: f64,
}

fn main() {
    let mb: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::default();
    let img = store
        .ensure(&Image::builtin("busybox"), &mut |l| eprintln!("{l}"))
        .expect("busybox image");
    let prompt = img.manifest.shell_prompt.clone().expect("a shell prompt");
    let config = |name: &str| {
        img.machine_config(name, None)
            .with_accel(Accel::Tcg)
            .with_memory_mib(512)
    };

    // (c) bootrig's switch.
    let net = Network::new("lan", 1).unwrap();
    let server = boot(
        config("server").with_network(&net).unwrap(),
        &prompt,
        dir.path(),
    );
    let client = boot(
        config("client").with_network(&net).unwrap(),
        &prompt,
        dir.path(),
    );
    address(&server, "02:b7:01:00:00:01", "10.1.0.1");
    address(&client, "02:b7:01:00:00:02", "10.1.0.2");
    serve(&server, mb);
    // (a) loopback inside the server.
    let loopback = Numbers {
        ping_ms: ping_ms(&server, "127.0.0.1"),
        mb_per_s: fetch_mb_per_s(&server, "127.0.0.1", mb),
    };
    let switched = Numbers {
        ping_ms: ping_ms(&client, "10.1.0.1"),
        mb_per_s: fetch_mb_per_s(&client, "10.1.0.1", mb),
    };
    drop((server, client));

    // (b) a direct QEMU link: two Unix datagram sockets, no switch.
    let a = dir.path().join("a.sock");
    let b = dir.path().join("b.sock");
    let link = |name: &str, local: &Path, remote: &Path, mac: &str| {
        config(name).with_extra_args([
            "-netdev".to_string(),
            format!(
                "dgram,id=d0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                local.display(),
                remote.display()
            ),
            "-device".to_string(),
            format!("virtio-net-pci,netdev=d0,mac={mac}"),
        ])
    };
    let server = boot(
        link("dserver", &a, &b, "02:00:00:00:00:01"),
        &prompt,
        dir.path(),
    );
    let client = boot(
        link("dclient", &b, &a, "02:00:00:00:00:02"),
        &prompt,
        dir.path(),
    );
    address(&server, "02:00:00:00:00:01", "10.9.0.1");
    address(&client, "02:00:00:00:00:02", "10.9.0.2");
    serve(&server, mb);
    let direct = Numbers {
        ping_ms: ping_ms(&client, "10.9.0.1"),
        mb_per_s: fetch_mb_per_s(&client, "10.9.0.1", mb),
    };

    println!("two busybox VMs, TCG, 512 MiB each, one run each:");
    println!("                                   ping avg     {mb} MB TCP      vs (b)");
    for (what, n) in [
        ("(a) loopback in one guest", &loopback),
        ("(b) direct QEMU dgram link", &direct),
        ("(c) bootrig switch", &switched),
    ] {
        println!(
            "  {what:<30} {:8.3} ms  {:8.2} MB/s   ping {:.2}x, throughput {:.2}x",
            n.ping_ms,
            n.mb_per_s,
            n.ping_ms / direct.ping_ms,
            n.mb_per_s / direct.mb_per_s
        );
    }
}
