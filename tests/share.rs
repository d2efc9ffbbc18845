//! Host shares, port forwards and reboots, end to end in real QEMU (under
//! TCG where KVM does not work): `cargo test -p bootrig-tests --test share`
//! (filter like any libtest binary: `-- reboot::busybox`). The scenario
//! files in `tests/fixtures/share/` run as trials here too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bootrig::{check, check_failed, Image, MachineConfig, Session, Share, Suite, TestContext};
use bootrig_diagnostics::hash::digest_bytes;
use bootrig_tests::vm_marks;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/share")
}

fn main() -> ExitCode {
    Suite::from_args()
        .scenarios(fixtures())
        .test_with(
            "share::busybox::read_only_refused_and_writable_round_trip",
            vm_marks(),
            shares,
        )
        .test_with(
            "share::busybox::a_guest_without_9p_says_so",
            vm_marks(),
            no_9p,
        )
        .test_with(
            "forward::busybox::host_reaches_guest_port",
            vm_marks(),
            forward,
        )
        .test_with(
            "reboot::busybox::session_reconnects",
            vm_marks(),
            reboot_busybox,
        )
        .test_with(
            "reboot::debian::session_reconnects_as_root",
            vm_marks(),
            reboot_debian,
        )
        .run()
}

/// Boots the busybox image with `adjust` applied to its config.
fn busybox(
    ctx: &TestContext,
    name: &str,
    adjust: impl FnOnce(MachineConfig) -> MachineConfig,
) -> bootrig::Result<std::sync::Arc<Session>> {
    let img = ctx.image(Image::builtin("busybox"))?;
    let vm = ctx.boot(adjust(img.machine_config(name, None)))?;
    vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
    Ok(vm)
}

/// Every file under `dir` with its bytes, sorted.
fn snapshot(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        out.push((p.clone(), std::fs::read(&p)?));
    }
    out.sort();
    Ok(out)
}

fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

const TEN_MB: usize = 10 << 20;

fn shares(ctx: &TestContext) -> bootrig::Result<()> {
    let ro = tempfile::tempdir()?;
    std::fs::write(ro.path().join("hello.txt"), b"hello from the host\n")?;
    let rw = tempfile::tempdir()?;
    let input = random_bytes(TEN_MB)?;
    let input_sha = digest_bytes(&input).sha256;
    std::fs::write(rw.path().join("in.bin"), &input)?;
    let before = snapshot(ro.path())?;
    let vm = busybox(ctx, "shares", |c| {
        c.with_share(Share::read_only(ro.path(), "/mnt/ro"))
            .with_share(Share::writable(rw.path(), "/mnt/rw"))
    })?;

    // Read-only: readable, and a write is refused...
    let text = vm.succeed("cat /mnt/ro/hello.txt")?;
    check!(text == "hello from the host\n", "read {text:?}");
    let out = vm.fail("echo x > /mnt/ro/new.txt")?;
    check!(out.contains("Read-only file system"), "write said {out:?}");
    // ... by QEMU, not only by the guest's `ro` mount: the share mounted
    // again read-write in the guest refuses writes too (a 9p channel
    // takes one mount at a time).
    vm.succeed(
        "umount /mnt/ro && mkdir -p /mnt/again && mount -t 9p -o trans=virtio,version=9p2000.L,rw bootrig0 /mnt/again && grep ' /mnt/again 9p rw' /proc/mounts",
    )?;
    let out = vm.fail("echo x > /mnt/again/new.txt")?;
    check!(
        out.contains("Read-only file system"),
        "write through a rw guest mount said {out:?}"
    );
    vm.fail("rm /mnt/again/hello.txt")?;
    vm.fail("mkdir /mnt/again/d")?;
    check!(
        snapshot(ro.path())? == before,
        "the read-only host folder changed"
    );

    // Writable: 10 MB of random bytes each way, sha256 on both sides.
    let guest_sha = vm.succeed("sha256sum /mnt/rw/in.bin")?;
    check!(
        guest_sha.split_whitespace().next() == Some(input_sha.as_str()),
        "host→guest: host {input_sha}, guest {guest_sha}"
    );
    let out = vm.succeed(&format!(
        "head -c {TEN_MB} /dev/urandom > /tmp/out.bin && cp /tmp/out.bin /mnt/rw/out.bin && sync && sha256sum /tmp/out.bin"
    ))?;
    let guest_sha = out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let arrived = std::fs::read(rw.path().join("out.bin"))?;
    check!(arrived.len() == TEN_MB, "{} bytes arrived", arrived.len());
    let host_sha = digest_bytes(&arrived).sha256;
    check!(
        host_sha == guest_sha,
        "guest→host: guest {guest_sha}, host {host_sha}"
    );
    // The file belongs to the host user running QEMU (no root needed).
    let transcript = std::fs::read_to_string(ctx.artifacts_dir().join("transcript.log"))?;
    check!(
        transcript.contains("mounted at /mnt/ro (read-only)")
            && transcript.contains("mounted at /mnt/rw (read-write)"),
        "the transcript does not note the mounts:\n{transcript}"
    );
    Ok(())
}

/// The busybox image's kernel with its initramfs minus the 9p modules.
fn no_9p(ctx: &TestContext) -> bootrig::Result<()> {
    let img = ctx.image(Image::builtin("busybox"))?;
    let base = img.machine_config("no9p", None);
    let Some(kernel) = base.kernel.clone() else {
        return check_failed!("the busybox image boots no kernel");
    };
    let initrd = kernel.initrd.clone().unwrap_or_default();
    let work = tempfile::tempdir()?;
    let script = format!(
        "set -e; mkdir root; cd root; gzip -dc {} | cpio -id --quiet; \
         rm lib/modules/9p*.ko; sed -i '/^9p/d' lib/modules/load-order; \
         find . | cpio -o -H newc -R 0:0 --quiet | gzip > ../initrd.img",
        bootrig::shell_quote(&initrd.display().to_string())
    );
    let made = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(work.path())
        .status()?;
    check!(made.success(), "repacking the initramfs failed: {made}");
    let shared = tempfile::tempdir()?;
    let cfg = MachineConfig::new("no9p")
        .with_kernel(
            &kernel.kernel,
            Some(work.path().join("initrd.img")),
            kernel.append,
        )
        .with_share(Share::read_only(shared.path(), "/mnt/host"));
    let vm = ctx.boot(cfg)?;
    match vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $")) {
        Err(e @ bootrig::Error::Guest { .. }) => {
            let text = e.to_string();
            check!(
                text.contains("mounting share")
                    && text.contains("/mnt/host")
                    && text.contains("the guest kernel has no 9p file system"),
                "unclear error: {text}"
            );
            Ok(())
        }
        other => check_failed!("expected a clear no-9p error, got {other:?}"),
    }
}

fn forward(ctx: &TestContext) -> bootrig::Result<()> {
    let vm = busybox(ctx, "forward", |c| c.with_forward(8080))?;
    let Some(port) = vm.machine().forwarded_port(8080) else {
        return check_failed!("no host port for guest port 8080");
    };
    check!(port != 0, "port 0 reported");
    // The busybox image leaves eth0 down: give it the address QEMU's
    // user-mode network forwards to.
    vm.succeed("ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0")?;
    vm.succeed(
        "mkdir -p /tmp/www && echo 'served by the guest' > /tmp/www/index.html && httpd -p 8080 -h /tmp/www",
    )?;
    vm.wait_for_open_port(8080, Duration::from_secs(60))?;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    check!(
        reply.starts_with("HTTP/1.") && reply.ends_with("served by the guest\n"),
        "reply {reply:?}"
    );
    // QEMU listens on 127.0.0.1 only.
    let tcp = std::fs::read_to_string("/proc/net/tcp")?;
    let listening: Vec<&str> = tcp
        .lines()
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[3] == "0A" && cols[1].ends_with(&format!(":{port:04X}"))
        })
        .collect();
    check!(
        listening.len() == 1
            && listening[0].split_whitespace().nth(1) == Some(&format!("0100007F:{port:04X}")),
        "listening sockets on port {port}: {listening:?}"
    );
    check!(
        !std::fs::read_to_string("/proc/net/tcp6")?.contains(&format!(
            ":{port:04X} 00000000000000000000000000000000:0000 0A"
        )),
        "port {port} listens on IPv6 too"
    );
    // metadata.json says where the port is.
    let md: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ctx.artifacts_dir().join("metadata.json"))?)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    let forwards = &md["extra"]["forwards"];
    check!(
        forwards[0]["guest"] == 8080
            && forwards[0]["host"] == port
            && forwards[0]["address"] == "127.0.0.1",
        "metadata.json forwards: {forwards}"
    );
    Ok(())
}

/// The boot id of the running guest.
fn boot_id(vm: &Session) -> bootrig::Result<String> {
    Ok(vm
        .succeed("cat /proc/sys/kernel/random/boot_id")?
        .trim()
        .to_string())
}

fn reboot_busybox(ctx: &TestContext) -> bootrig::Result<()> {
    let vm = busybox(ctx, "reboot", |c| c)?;
    let first = boot_id(&vm)?;
    vm.succeed("echo before > /tmp/mark")?;
    vm.reboot()?;
    let second = boot_id(&vm)?;
    check!(first != second, "boot id unchanged: {first}");
    // A command after the reboot, on a fresh root filesystem, with its
    // output on the command channel again.
    let out = vm.run("test -e /tmp/mark; echo $?; id -u")?;
    check!(out.output == "1\n0\n", "after the reboot: {:?}", out.output);
    check!(out.quiet, "the command channel was not reopened");
    // Twice works too.
    vm.reboot()?;
    check!(boot_id(&vm)? != second, "the second reboot did not boot");
    // Outside the verb a guest reboot ends QEMU again (-no-reboot).
    vm.send("reboot -f\n")?;
    check!(
        vm.machine().wait_exit(Duration::from_secs(120)).is_some(),
        "a guest reboot outside the verb did not end QEMU"
    );
    Ok(())
}

fn reboot_debian(ctx: &TestContext) -> bootrig::Result<()> {
    let img = ctx.image(Image::builtin("debian"))?;
    let ro = tempfile::tempdir()?;
    std::fs::write(ro.path().join("note"), b"shared\n")?;
    let cfg = img
        .machine_config("reboot", None)
        .with_share(Share::read_only(ro.path(), "/mnt/host"));
    let vm = ctx.boot(cfg)?;
    vm.login("tester", "tester")?;
    // Not root yet: nothing mounted.
    vm.fail("mountpoint -q /mnt/host")?;
    vm.become_root()?;
    check!(
        vm.succeed("cat /mnt/host/note")? == "shared\n",
        "share not mounted"
    );
    let first = boot_id(&vm)?;
    vm.reboot()?;
    check!(boot_id(&vm)? != first, "boot id unchanged");
    check!(
        vm.succeed("id -un")? == "root\n",
        "not root again after the reboot"
    );
    check!(
        vm.succeed("cat /mnt/host/note")? == "shared\n",
        "share not mounted again after the reboot"
    );
    vm.wait_for_unit("multi-user.target")?;
    Ok(())
}
