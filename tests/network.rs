//! Several VMs in one test on private host-local networks: they boot real
//! QEMU (busybox images, TCG where KVM does not work). Run with
//! `cargo test -p bootrig-tests --test network`; the scenario form of the
//! same checks is `scenarios/network/web.json`, run here too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bootrig::{check, Image, Suite};
use bootrig_diagnostics::metadata::Outcome;
use bootrig_tests::{bootrig_bin, load_metadata, vm_marks};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/network")
}

/// An HTTP request for `/`, piped into `nc`.
const GET: &str = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'";

/// A server's page, fetched by name from a client on its network, and not
/// from a machine on another network even with an address on the same
/// subnet (the networks are separate switches).
fn by_name_and_nothing_else(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let lan = ctx.network("lan")?;
    let other = ctx.network("other")?;
    let busybox = Image::builtin("busybox");
    let server = ctx.vm_on("server", &busybox, &[&lan])?;
    let client = ctx.vm_on("client", &busybox, &[&lan])?;
    let outsider = ctx.vm_on("outsider", &busybox, &[&other])?;
    server.succeed(
        "mkdir -p /www && echo 'hello from server' > /www/index.html && httpd -p 80 -h /www",
    )?;
    // The client was brought up after the server: the server knows its
    // name too.
    let hosts = server.succeed("cat /etc/hosts")?;
    check!(
        hosts.contains("10.1.0.2 client"),
        "server's /etc/hosts: {hosts}"
    );
    // busybox's static wget crashes without /etc/services: nc speaks HTTP.
    let page = client.succeed(&format!("{GET} | nc -w 10 server 80"))?;
    check!(
        page.starts_with("HTTP/1.1 200 OK") && page.ends_with("\nhello from server\n"),
        "the client fetched {page:?}"
    );
    let pong = server.succeed("ping -c 1 -W 5 client")?;
    check!(pong.contains("1 packets received"), "ping: {pong}");
    // The outsider does not know the name, has no route to the subnet,
    // and, given an address in it, still reaches nothing.
    outsider.fail("ping -c 1 -W 1 server")?;
    outsider.fail(&format!("{GET} | nc -w 2 10.1.0.1 80"))?;
    let nic = "$(grep -l 02:b7 /sys/class/net/*/address | cut -d/ -f5)";
    outsider.succeed(&format!("ip addr add 10.1.0.99/24 dev {nic}"))?;
    let started = Instant::now();
    outsider.fail(&format!("{GET} | nc -w 2 10.1.0.1 80"))?;
    check!(
        started.elapsed() < Duration::from_secs(20),
        "the failing fetch took {:?}",
        started.elapsed()
    );
    check!(lan.connected() == 2, "{} VMs on lan", lan.connected());
    check!(other.connected() == 1, "{} VMs on other", other.connected());
    Ok(())
}

/// Two Debian guests (systemd-networkd runs DHCP on every `eth*`): the
/// private NIC is left to bootrig, keeps its address, and the guests reach
/// each other by name.
fn debian_by_name(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let lan = ctx.network("lan")?;
    let debian = Image::builtin("debian");
    let a = ctx.vm_on("alpha", &debian, &[&lan])?;
    let b = ctx.vm_on("beta", &debian, &[&lan])?;
    a.wait_for_unit("multi-user.target")?;
    b.wait_for_unit("multi-user.target")?;
    // No ping or nc in this image: a TCP connection to a closed port is
    // refused by the peer's kernel, which proves it answered.
    let knock = |to: &str| {
        format!("timeout 10 bash -c 'exec 3<>/dev/tcp/{to}/9' 2>&1 | grep -q 'Connection refused'")
    };
    b.succeed(&knock("alpha"))?;
    a.succeed(&knock("beta"))?;
    let addr = a.succeed("ip -4 -o addr show | grep -c ' 10.1.0.1/24 '")?;
    check!(addr.trim() == "1", "alpha's private address: {addr}");
    Ok(())
}

/// Runs the scenario `file` with the CLI into `artifacts`.
fn run_cli(file: &Path, artifacts: &Path, filter: &str) -> std::process::Output {
    std::process::Command::new(bootrig_bin())
        .args(["run", "--artifacts"])
        .arg(artifacts)
        .arg(file)
        .args(["--filter", filter])
        .env("BOOTRIG_MAX_VMS", "1")
        .output()
        .expect("run bootrig")
}

/// A failing two-machine test leaves each machine's files in
/// `machines/<name>/`, catalogued.
fn failure_has_a_folder_per_machine(_: &bootrig::TestContext) -> bootrig::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/network/fails.json");
    let out = run_cli(&fixture, dir.path(), "fails");
    check!(
        out.status.code() == Some(1),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let test = std::fs::read_dir(dir.path())
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("network-fails.fails"))
        .find(|p| p.is_dir());
    let Some(test) = test else {
        return bootrig::check_failed!(
            "no network-fails.fails folder under {}",
            dir.path().display()
        );
    };
    let md = load_metadata(&test)?;
    check!(md.outcome == Outcome::Failed, "outcome {:?}", md.outcome);
    for m in ["server", "client"] {
        let serial = format!("machines/{m}/serial.log");
        check!(
            md.artifacts.get(&serial).is_some(),
            "{serial} not catalogued: {:?}",
            md.artifacts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
        );
        check!(test.join(&serial).is_file(), "{serial} missing");
        let network = format!("machines/{m}/diagnostics/network.txt");
        check!(test.join(&network).is_file(), "{network} missing");
    }
    Ok(())
}

/// The test's deadline covers every machine: a step that hangs on the
/// second machine (`server`, after `client` in name order) ends at the
/// test's deadline (75 s), not at its own timeout (900 s), as a timeout,
/// with both machines' files kept and no QEMU left.
fn deadline_covers_every_machine(_: &bootrig::TestContext) -> bootrig::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/network/deadline.json");
    let started = Instant::now();
    let out = run_cli(&fixture, dir.path(), "hangs");
    let took = started.elapsed();
    let text = bootrig_tests::output_text(&out);
    check!(
        out.status.code() == Some(1),
        "exit {:?}: {text}",
        out.status.code()
    );
    check!(
        took < Duration::from_secs(600),
        "the hung step was not ended by the test's deadline: the run took {took:?}"
    );
    let test = std::fs::read_dir(dir.path())
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("network-deadline.hangs"))
        .find(|p| p.is_dir());
    let Some(test) = test else {
        return bootrig::check_failed!("no test folder under {}:\n{text}", dir.path().display());
    };
    let md = load_metadata(&test)?;
    let failure = md.failure.as_ref().map(|f| (f.kind, f.message.clone()));
    check!(
        md.outcome == Outcome::Failed
            && failure
                .as_ref()
                .is_some_and(|(k, m)| *k == bootrig::FailureKind::Timeout && m.contains("75s")),
        "outcome {:?}, failure {failure:?}",
        md.outcome
    );
    for m in ["server", "client"] {
        let serial = test.join(format!("machines/{m}/serial.log"));
        check!(serial.is_file(), "{} missing", serial.display());
    }
    let left = bootrig_tests::qemu_pids_named(&dir.path().display().to_string());
    check!(left.is_empty(), "QEMU left after the deadline: {left:?}");
    Ok(())
}

/// A step on a machine the scenario does not have is a load error naming
/// the file, the test, the step and the name; nothing boots.
fn a_bad_on_is_a_load_error(_: &bootrig::TestContext) -> bootrig::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/network/bad-on.json");
    let started = Instant::now();
    let out = run_cli(&fixture, dir.path(), "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    check!(
        out.status.code() == Some(2),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    check!(
        stderr.contains("bad-on.json:8:")
            && stderr.contains("test \"typo\", step 2 (`succeed: true`)")
            && stderr.contains(
                "\"on\": \"clinet\" is not a machine of this scenario (machines: client, server)"
            ),
        "stderr: {stderr}"
    );
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    check!(made.is_empty(), "a run folder was made: {made:?}");
    check!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

fn main() -> ExitCode {
    Suite::from_args()
        .scenarios(scenarios_dir())
        .test_with(
            "network::busybox::by_name_and_nothing_else",
            vm_marks().vms(3),
            by_name_and_nothing_else,
        )
        .test_with(
            "network::busybox::failure_has_a_folder_per_machine",
            vm_marks(),
            failure_has_a_folder_per_machine,
        )
        .test_with(
            "network::debian::by_name_under_networkd",
            vm_marks().vms(2),
            debian_by_name,
        )
        .test_with(
            "network::busybox::deadline_covers_every_machine",
            vm_marks(),
            deadline_covers_every_machine,
        )
        .test(
            "network::load::a_bad_on_is_a_load_error",
            a_bad_on_is_a_load_error,
        )
        .run()
}
