//! bootrig's own end-to-end tests: they boot the built-in images in real
//! QEMU (under TCG where KVM does not work) and check what a user relies
//! on. Run with `cargo test -p bootrig-tests --test vm`; filter like any
//! libtest binary (`cargo test --test vm -- busybox`).
//!
//! Where QEMU or an image tool is missing the tests skip with the reason;
//! under `CI=true` they fail instead, so CI cannot go green by skipping.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bootrig::deadline::poll_until;
use bootrig::{check, check_failed, Error, Image, Marks, Requirement, Suite, Timeouts};
use bootrig::{collect_guest, collect_host};
use bootrig_diagnostics::hash::digest_file;
use bootrig_diagnostics::metadata::{FailureKind, Metadata, Outcome};
use bootrig_tests::{bootrig_bin, load_metadata, qemu_pids_named, vm_marks};

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/e2e")
}

fn main() -> ExitCode {
    Suite::from_args()
        .scenarios(scenarios_dir())
        .test_with(
            "session::busybox::exit_codes_and_output",
            vm_marks(),
            |ctx| {
                let vm = ctx.vm(Image::builtin("busybox"))?;
                let out =
                    vm.run("echo hello; echo err >&2; exit_code() { return 7; }; exit_code")?;
                check!(out.exit == 7, "exit code {} (expected 7)", out.exit);
                check!(out.output == "hello\nerr\n", "output {:?}", out.output);
                check!(vm.succeed("true")?.is_empty(), "`true` printed something");
                vm.fail("false")?;
                let many = vm.succeed("seq 1 2000")?;
                check!(
                    many.lines().count() == 2000,
                    "seq printed {} lines",
                    many.lines().count()
                );
                check!(
                    many.ends_with("2000\n"),
                    "seq output ends {:?}",
                    &many[many.len() - 10..]
                );
                // Output without a trailing newline is kept exactly.
                check!(vm.succeed("printf abc")? == "abc", "printf output");
                // On the command channel (the default) output is exact:
                // escape sequences are kept.
                let coloured = vm.run("printf '\\033[1;31mred\\033[0m\\n'")?;
                check!(
                    coloured.quiet,
                    "busybox output did not use the command channel"
                );
                check!(
                    coloured.bytes() == b"\x1b[1;31mred\x1b[0m\n",
                    "coloured output {:?}",
                    coloured.output
                );
                check_shell_edge_cases(&vm)?;
                check_big_output(&vm)?;
                // No systemd in this guest: wait_for_unit says so at once.
                let started = Instant::now();
                match vm.wait_for_unit_within("multi-user.target", Duration::from_secs(60)) {
                    Err(Error::UnitFailed { status, .. })
                        if status.contains("cannot query systemd") => {}
                    other => {
                        return check_failed!("expected a clear no-systemd error, got {other:?}")
                    }
                }
                check!(
                    started.elapsed() < Duration::from_secs(5),
                    "took {:?}",
                    started.elapsed()
                );
                // A clean power-off: QEMU exits by itself.
                vm.shutdown(Duration::from_secs(30))?;
                check!(
                    vm.machine().exit_status().is_some(),
                    "QEMU still running after shutdown"
                );
                Ok(())
            },
        )
        .test_with(
            "channel::busybox::exact_output_on_a_noisy_console",
            vm_marks(),
            noisy_console,
        )
        .test_with(
            "channel::busybox::binary_copies_both_ways",
            vm_marks(),
            binary_copies,
        )
        .test_with(
            "channel::busybox::console_fallback",
            vm_marks(),
            console_fallback,
        )
        .test_with(
            "session::busybox::command_timeout_is_clear",
            vm_marks(),
            |ctx| {
                let vm = ctx.vm(Image::builtin("busybox"))?;
                let started = Instant::now();
                match vm.run_timeout("sleep 1000", Duration::from_secs(3)) {
                    Err(Error::CommandTimeout { command, .. }) if command == "sleep 1000" => {}
                    other => return check_failed!("expected a command timeout, got {other:?}"),
                }
                check!(
                    started.elapsed() < Duration::from_secs(6),
                    "timeout took {:?}",
                    started.elapsed()
                );
                // The session is still usable: Ctrl-C interrupted the command.
                check!(
                    vm.succeed("echo back")? == "back\n",
                    "session unusable after a timeout"
                );
                Ok(())
            },
        )
        .test_with(
            "session::busybox::no_prompt_is_a_boot_timeout",
            vm_marks(),
            |ctx| {
                let img = ctx.image(&Image::builtin("busybox"))?;
                let timeouts = Timeouts {
                    boot: Duration::from_secs(20),
                    step: Duration::from_secs(10),
                };
                let vm = ctx.boot_with(img.machine_config("noprompt", None), timeouts)?;
                let started = Instant::now();
                match vm.attach_shell("this prompt never appears") {
                    Err(e @ Error::BootTimeout { .. }) => {
                        check!(
                            e.failure_kind().as_str() == "boot-timeout",
                            "kind {}",
                            e.failure_kind()
                        );
                        check!(
                            e.to_string().contains("console tail"),
                            "message lacks the console: {e}"
                        );
                    }
                    other => return check_failed!("expected a boot timeout, got {other:?}"),
                }
                check!(
                    started.elapsed() < Duration::from_secs(25),
                    "took {:?}",
                    started.elapsed()
                );
                Ok(())
            },
        )
        .test_with(
            "session::debian::login_sudo_units",
            vm_marks().requires(Requirement::Tool("mmdebstrap".into())),
            |ctx| {
                let vm = ctx.vm(Image::builtin("debian"))?;
                vm.login("tester", "tester")?;
                check!(
                    vm.succeed("id -un")? == "tester\n",
                    "not logged in as tester"
                );
                vm.become_root()?;
                check!(vm.succeed("id -u")? == "0\n", "not root after sudo -i");
                check_shell_edge_cases(&vm)?;
                vm.wait_for_unit("multi-user.target")?;
                let out = vm.run("systemctl is-active no-such-unit.service")?;
                check!(out.exit != 0, "is-active of a missing unit exited 0");
                match vm.wait_for_unit_within("no-such-unit.service", Duration::from_secs(10)) {
                    Err(Error::UnitFailed { state, .. }) if state == "not-found" => {}
                    other => {
                        return check_failed!("expected a not-found unit error, got {other:?}")
                    }
                }
                // A Rust test records the same phases as a scenario, in
                // time order: the session reports them itself.
                let md = Metadata::load(&ctx.artifacts_dir().join("metadata.json"))
                    .map_err(|e| Error::io("reading metadata.json", std::io::Error::other(e)))?;
                let names: Vec<&str> = md.phases.iter().map(|p| p.name.as_str()).collect();
                for want in ["qemu start", "login", "become root", "shell ready"] {
                    check!(names.contains(&want), "phase {want:?} missing: {names:?}");
                }
                let starts: Vec<u64> = md.phases.iter().map(|p| p.start_ms).collect();
                check!(
                    starts.is_sorted(),
                    "phases not in time order: {names:?} {starts:?}"
                );
                Ok(())
            },
        )
        .test_with(
            "session::debian::wrong_password_fails_fast",
            vm_marks().requires(Requirement::Tool("mmdebstrap".into())),
            |ctx| {
                let vm = ctx.vm(Image::builtin("debian"))?;
                let started = Instant::now();
                match vm.login("tester", "not-the-password") {
                    Err(e @ Error::Login { .. }) => {
                        check!(
                            e.to_string().contains("Login incorrect"),
                            "unclear message: {e}"
                        );
                    }
                    other => return check_failed!("expected a login error, got {other:?}"),
                }
                check!(
                    started.elapsed() < Duration::from_secs(120),
                    "login failure took {:?}",
                    started.elapsed()
                );
                // No retry loop: the getty asks again, and a correct login and
                // `su -` with the root password work on the same console.
                vm.login("tester", "tester")?;
                vm.su("root")?;
                check!(vm.succeed("id -un")? == "root\n", "su - did not give root");
                vm.shutdown(Duration::from_secs(60))?;
                check!(
                    vm.machine().exit_status().is_some(),
                    "QEMU still running after shutdown"
                );
                Ok(())
            },
        )
        .parametrize(
            "boot::iso",
            ["bios", "uefi"],
            vm_marks().requires(Requirement::Tool("grub-mkrescue".into())),
            |ctx, fw| {
                let img = ctx.image(&Image::builtin("iso"))?;
                let firmware = if *fw == "uefi" {
                    bootrig::Firmware::Uefi
                } else {
                    bootrig::Firmware::Bios
                };
                let cfg = img.machine_config(&format!("iso-{fw}"), Some(firmware));
                let vm = ctx.boot(cfg)?;
                vm.wait_for_console("GRUB|grub", Duration::from_secs(120))?;
                vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
                let efi = vm.run("test -d /sys/firmware/efi")?.exit == 0;
                check!(
                    efi == (*fw == "uefi"),
                    "firmware {fw}: /sys/firmware/efi present = {efi}"
                );
                Ok(())
            },
        )
        .test_with(
            "boot::disk::hybrid_iso_as_a_disk_is_never_modified",
            vm_marks().requires(Requirement::Tool("grub-mkrescue".into())),
            disk_boot,
        )
        .test_with(
            "cli::parallel_run_with_junit_and_run_json",
            vm_marks(),
            cli_parallel,
        )
        .test_with(
            "machine::qemu_start_failure_is_clear",
            vm_marks(),
            qemu_start_failure,
        )
        .test_with(
            "machine::file_drive_reads_and_writes_through",
            vm_marks(),
            file_drive,
        )
        .test_with("cli::doctor_reports_the_host", vm_marks(), doctor)
        .test_with(
            "machine::display_gives_a_screendump",
            vm_marks(),
            screendump,
        )
        .parametrize(
            "harness::killed_bootrig_leaves_no_qemu",
            ["SIGKILL", "SIGTERM", "SIGINT"],
            vm_marks(),
            |ctx, sig: &&str| killed_bootrig_leaves_no_qemu(ctx, sig),
        )
        .test_with(
            "postmortem::busybox::sysrq_crash_is_a_kernel_crash",
            vm_marks(),
            sysrq_crash,
        )
        .test_with(
            "runner::deadline_kills_the_vm_and_keeps_artifacts",
            vm_marks(),
            deadline,
        )
        .test_with(
            "postmortem::busybox::collectors_survive_a_guest_that_stops_answering",
            vm_marks(),
            collectors_on_a_dead_guest,
        )
        .test_with(
            "postmortem::busybox::custom_collector_example",
            vm_marks(),
            custom_collector_example,
        )
        .test_with(
            "postmortem::debian::failed_service_leaves_diagnostics",
            vm_marks().requires(Requirement::Tool("mmdebstrap".into())),
            failed_service,
        )
        .test_with(
            "runner::xfail_expected_failure_passes",
            Marks::new().xfail("demonstrates xfail: the check below fails"),
            |_ctx| check_failed!("this failure is expected"),
        )
        // Fails on its first attempt and passes on the next when
        // BOOTRIG_FLAKY_PROBE names a file to create (tests/nextest.rs
        // retries it); passes at once otherwise. Boots nothing.
        .test("runner::flaky_on_first_attempt", |_ctx| {
            let Some(probe) = std::env::var_os("BOOTRIG_FLAKY_PROBE") else {
                return Ok(());
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
            {
                Ok(_) => check_failed!("first attempt fails on purpose"),
                Err(_) => Ok(()),
            }
        })
        // --- hardening (issue 12) ---
        .test_with(
            "hardening::debian::password_is_in_no_artifact",
            vm_marks().requires(Requirement::Tool("mmdebstrap".into())),
            password_is_in_no_artifact,
        )
        .test_with(
            "hardening::busybox::end_of_test_crash_verdicts",
            vm_marks(),
            end_of_test_crash_verdicts,
        )
        .test_with(
            "faults::busybox::qemu_killed_from_outside_is_infra",
            vm_marks(),
            qemu_killed_from_outside,
        )
        .run()
}

/// Fault injection: another process SIGKILLs the QEMU of a running test.
/// The test fails as the infrastructure's (`qemu-killed`, a JUnit
/// `<error>`, counted as infra in the summary) with its postmortem.
fn qemu_killed_from_outside(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    ctx.image(&Image::builtin("busybox"))?;
    let dir = ctx.artifacts_dir().join("qemu-killed");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", e))?;
    let unique = format!("victim{}", std::process::id());
    let scenario = dir.join("victim.json");
    std::fs::write(
        &scenario,
        format!(
            r#"{{"name": "{unique}", "machine": {{"image": "busybox"}},
               "tests": [{{"name": "t", "steps": [{{"succeed": "echo started; sleep 600"}}]}}],
               "timeouts": {{"boot": 600, "step": 900}} }}"#
        ),
    )
    .map_err(|e| Error::io("writing the scenario", e))?;
    let artifacts = dir.join("artifacts");
    let child = std::process::Command::new(bootrig_bin())
        .args(["run", "--junit"])
        .arg(dir.join("junit.xml"))
        .arg("--artifacts")
        .arg(&artifacts)
        .arg(&scenario)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("starting bootrig run", e))?;
    // Mid-test: the session is up (its set-up commands are in the
    // transcript; the step's own line is written when it ends).
    let transcript = || {
        find_test_folder(&artifacts, &format!("{unique}.t"))
            .ok()
            .and_then(|d| std::fs::read_to_string(d.join("transcript.log")).ok())
            .is_some_and(|t| t.contains("$ id -u"))
    };
    let running = poll_until(
        Instant::now() + Duration::from_secs(300),
        Duration::from_millis(100),
        || Ok::<_, ()>(transcript().then_some(())),
    );
    let pids = qemu_pids_named(&unique);
    if running != Ok(Some(())) || pids.len() != 1 {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait_with_output();
        return check_failed!("the session never started (QEMU pids {pids:?})");
    }
    // SAFETY: the QEMU our child started, found by its unique name.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("waiting for bootrig", e))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    check!(
        out.status.code() == Some(1),
        "bootrig exited {:?}: {stdout}",
        out.status
    );
    check!(
        stdout
            .lines()
            .last()
            .unwrap_or_default()
            .contains("1 failed (1 infra)"),
        "summary line: {stdout}"
    );
    let folder = find_test_folder(&artifacts, &format!("{unique}.t"))?;
    let md = load_metadata(&folder)?;
    let failure = md.failure.clone().unwrap_or_else(|| {
        bootrig_diagnostics::metadata::Failure::new(FailureKind::Command, "no failure recorded")
    });
    check!(
        failure.kind == FailureKind::QemuKilled
            && failure.class == bootrig_diagnostics::metadata::FailureClass::Infra
            && failure.message.contains("SIGKILL"),
        "failure {failure:?}"
    );
    // The postmortem is complete: the console log and the transcript are
    // catalogued, with their hashes.
    for name in ["serial.log", "transcript.log"] {
        let a = md.artifacts.iter().find(|a| a.path.ends_with(name));
        check!(
            a.is_some_and(|a| a.sha256.len() == 64),
            "{name} not catalogued: {:?}",
            md.artifacts.iter().map(|a| &a.path).collect::<Vec<_>>()
        );
    }
    let junit =
        std::fs::read_to_string(dir.join("junit.xml")).map_err(|e| Error::io("junit", e))?;
    check!(
        junit.contains("<error") && junit.contains(r#"type="qemu-killed""#),
        "junit: {junit}"
    );
    Ok(())
}

/// Starts `bootrig run` on a scenario whose VM stays up, SIGKILLs bootrig
/// as soon as its QEMU is running, and checks the QEMU is gone.
fn killed_bootrig_leaves_no_qemu(
    ctx: &bootrig::TestContext,
    signal_name: &str,
) -> bootrig::Result<()> {
    let signal = match signal_name {
        "SIGKILL" => libc::SIGKILL,
        "SIGTERM" => libc::SIGTERM,
        _ => libc::SIGINT,
    };
    // Make sure the image is built first, so the child only boots.
    ctx.image(&Image::builtin("busybox"))?;
    let dir = ctx.artifacts_dir().join("sigkill");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", e))?;
    let scenario = dir.join("long.json");
    let unique = format!("killed{}{}", signal_name.to_lowercase(), std::process::id());
    std::fs::write(
        &scenario,
        format!(
            r#"{{"name": "{unique}", "machine": {{"image": "busybox", "accel": "tcg"}},
               "tests": [{{"name": "wait", "steps": [{{"expect": "never-printed-marker"}}]}}],
               "timeouts": {{"boot": 600, "step": 600}} }}"#
        ),
    )
    .map_err(|e| Error::io("writing the scenario", e))?;
    let mut child = std::process::Command::new(bootrig_bin())
        .args(["run", "--artifacts"])
        .arg(dir.join("artifacts"))
        .arg(&scenario)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::io("starting bootrig run", e))?;
    let started = poll_until(
        Instant::now() + Duration::from_secs(60),
        Duration::from_millis(100),
        || Ok::<_, ()>((!qemu_pids_named(&unique).is_empty()).then_some(())),
    );
    if started != Ok(Some(())) {
        let _ = child.kill();
        let _ = child.wait();
        return check_failed!("bootrig run never started QEMU within 60 s");
    }
    // Mid-test: QEMU runs and metadata.json already records it.
    let recorded = poll_until(
        Instant::now() + Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let found = find_test_folder(&dir.join("artifacts"), &format!("{unique}.wait"))
                .ok()
                .and_then(|d| Metadata::load(&d.join("metadata.json")).ok())
                .is_some_and(|m| m.qemu.is_some());
            Ok::<_, ()>(found.then_some(()))
        },
    );
    if recorded != Ok(Some(())) {
        let _ = child.kill();
        let _ = child.wait();
        return check_failed!("metadata.json never recorded the running QEMU");
    }
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let killed_at = Instant::now();
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for bootrig", e))?;
    let _ = poll_until(
        Instant::now() + Duration::from_secs(5),
        Duration::from_millis(50),
        || Ok::<_, ()>(qemu_pids_named(&unique).is_empty().then_some(())),
    );
    let left = qemu_pids_named(&unique);
    check!(
        left.is_empty(),
        "QEMU {left:?} survived {signal_name} to bootrig"
    );
    let md = load_metadata(&find_test_folder(
        &dir.join("artifacts"),
        &format!("{unique}.wait"),
    )?)?;
    check!(md.qemu.is_some(), "QEMU facts missing from metadata.json");
    if signal == libc::SIGKILL {
        // No chance to clean up: metadata.json still parses and says the
        // test did not finish.
        check!(!md.finished(), "metadata says finished: {:?}", md.outcome);
        check!(md.outcome == Outcome::Running, "outcome {:?}", md.outcome);
    } else {
        // Ctrl-C / SIGTERM: bootrig stops the VM, finishes the postmortem
        // and exits 128 + signal, promptly.
        use std::os::unix::process::ExitStatusExt;
        check!(
            status.code() == Some(128 + signal),
            "bootrig exited with {status:?} ({:?})",
            status.signal()
        );
        check!(
            killed_at.elapsed() < Duration::from_secs(15),
            "bootrig took {:?} to stop",
            killed_at.elapsed()
        );
        check!(
            md.finished() && md.outcome == Outcome::Failed,
            "outcome {:?}",
            md.outcome
        );
        let msg = md
            .failure
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_default();
        check!(
            msg.contains(&format!("interrupted by {signal_name}")),
            "failure message {msg:?}"
        );
        check!(
            md.artifacts.get("serial.log").is_some(),
            "serial.log not catalogued"
        );
    }
    Ok(())
}

/// The guest's shell stops itself; the session finds that it does not
/// answer after the timeout, so the guest collectors are all skipped at
/// once with that note, and the host-side collectors still report.
fn collectors_on_a_dead_guest(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let vm = ctx.vm(Image::builtin("busybox"))?;
    // Run through the session so the shell has certainly stopped (the
    // command never ends) before the collectors start.
    match vm.run_timeout("kill -STOP $$", Duration::from_secs(2)) {
        Err(Error::CommandTimeout { .. }) => {}
        other => return check_failed!("the shell did not stop: {other:?}"),
    }
    let started = Instant::now();
    let out = collect_guest(
        &vm,
        &["x.service".into()],
        &["uname -a".into()],
        Duration::from_secs(2),
    );
    let took = started.elapsed();
    check!(
        took < Duration::from_secs(6),
        "collectors took {took:?} on a dead guest"
    );
    check!(
        out.len() == 9,
        "expected every collector to be reported, got {}",
        out.len()
    );
    // The session already knows (it waited for the shell after the
    // timeout): every collector is skipped at once, saying why.
    for c in &out {
        let note = c.note.clone().unwrap_or_default();
        check!(
            note.starts_with("skipped: the shell did not answer"),
            "{}: {note:?}",
            c.name
        );
    }
    let host = collect_host(&vm, None);
    check!(
        host.iter()
            .any(|c| c.name == "qemu-status" && c.output.contains("running")),
        "{host:?}"
    );
    check!(
        host.iter()
            .any(|c| c.name == "console-tail" && c.output.contains("__BRP")),
        "{host:?}"
    );
    Ok(())
}

/// More output than the console keeps pending (4 MiB): the end is exact and
/// the loss is reported, never silent.
fn check_big_output(vm: &bootrig::Session) -> bootrig::Result<()> {
    let big = vm.run("seq 1 650000")?;
    check!(
        big.exit == 0 && big.output.ends_with("649999\n650000\n"),
        "big output ends {:?}",
        &big.output[big.output.len().saturating_sub(20)..]
    );
    if big.quiet {
        // The command channel has no 4 MiB cap: every byte arrives.
        check!(
            big.truncated_bytes == 0 && big.bytes().len() == 4_438_895,
            "{} bytes, {} truncated",
            big.bytes().len(),
            big.truncated_bytes
        );
        check!(big.output.starts_with("1\n2\n3\n"), "start of the output");
    } else {
        check!(
            big.truncated_bytes > 0,
            "4.4 MB of output fit in a 4 MiB buffer?"
        );
        check!(
            big.output.len() as u64 + big.truncated_bytes >= 4_438_895,
            "bytes unaccounted for"
        );
    }
    let small = vm.run("echo small")?;
    check!(
        small.truncated_bytes == 0 && small.output == "small\n",
        "after a big output: {small:?}"
    );
    Ok(())
}

/// Commands the session must pass through exactly: comments, multi-line
/// scripts and here-documents, a line longer than the tty's 4095-byte
/// canonical buffer, quotes, output without a trailing newline, and a
/// command that reads stdin (it gets /dev/null, so it cannot eat the
/// next command).
fn check_shell_edge_cases(vm: &bootrig::Session) -> bootrig::Result<()> {
    check!(
        vm.succeed("echo hi # a trailing comment")? == "hi\n",
        "comment"
    );
    let here = vm.succeed("cat <<'EOF'\nline 1\n  line $2 `x`\nEOF")?;
    check!(here == "line 1\n  line $2 `x`\n", "here-document: {here:?}");
    let multi = vm.succeed("for i in 1 2 3; do\n  echo \"n=$i\"\ndone")?;
    check!(multi == "n=1\nn=2\nn=3\n", "multi-line: {multi:?}");
    let long = vm.succeed(&format!("echo {} | wc -c", "x".repeat(6000)))?;
    check!(
        long.trim() == "6001",
        "a 6000-byte command line came through as {long:?}"
    );
    check!(
        vm.succeed(r#"printf '%s|' "a b" 'c"d' "e'f""#)? == r#"a b|c"d|e'f|"#,
        "quoting"
    );
    check!(
        vm.succeed("cat")?.is_empty(),
        "cat read something from stdin"
    );
    check!(
        vm.succeed("echo after")? == "after\n",
        "the session desynchronised"
    );
    Ok(())
}

/// Boots the hybrid ISO as a *disk* (SeaBIOS → MBR → GRUB), through the
/// throwaway overlay: the guest overwrites the start of its disk, and the
/// image file is byte-for-byte unchanged afterwards.
fn disk_boot(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let img = ctx.image(&Image::builtin("iso"))?;
    let iso = img.dir.join(
        img.manifest
            .iso
            .clone()
            .unwrap_or_else(|| "boot.iso".into()),
    );
    let stamp = |p: &Path| -> bootrig::Result<(u64, std::time::SystemTime, String)> {
        let m = std::fs::metadata(p).map_err(|e| Error::io("stat", e))?;
        let d = digest_file(p).map_err(|e| Error::Check(e.to_string()))?;
        Ok((
            m.len(),
            m.modified().map_err(|e| Error::io("mtime", e))?,
            d.sha256,
        ))
    };
    let before = stamp(&iso)?;
    let cfg = bootrig::MachineConfig::new("diskboot").with_disk(&iso);
    let vm = ctx.boot(cfg)?;
    vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
    vm.succeed("test -b /dev/vda && dd if=/dev/zero of=/dev/vda bs=64k count=16 && sync")?;
    check!(
        vm.succeed("cat /sys/block/vda/serial")?.trim() == "root",
        "the root disk is not vda"
    );
    vm.machine().kill();
    check!(
        stamp(&iso)? == before,
        "the disk image changed although it was booted through an overlay"
    );
    Ok(())
}

/// A test that exceeds its deadline: fails with a clear message, its VM is
/// gone, its artifacts are there.
fn deadline(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    ctx.image(&Image::builtin("busybox"))?;
    let mut settings = ctx.settings().clone();
    settings.run_dir = ctx.artifacts_dir().join("inner");
    let name = "deadline::hangs".to_string();
    let test = bootrig::Test::new(
        name,
        // Long enough for busybox to reach its shell on a loaded host (the
        // console tail must then show the readable markers).
        Marks::new().timeout(Duration::from_secs(40)),
        |inner| {
            let vm = inner.vm(Image::builtin("busybox"))?;
            vm.wait_for_console("this never appears", Duration::from_secs(600))?;
            Ok(())
        },
    );
    let engine = bootrig::Engine::new(settings, bootrig::VmBudget::new(1));
    let started = Instant::now();
    let record = engine.run_test(&test);
    let took = started.elapsed();
    check!(
        record.outcome() == Outcome::Failed,
        "outcome {}",
        record.outcome()
    );
    check!(
        record.console_tail.contains("[bootrig]"),
        "the record's console tail (JUnit system-out) is empty or raw: {:?}",
        record.console_tail
    );
    let msg = record.message.clone().unwrap_or_default();
    check!(msg.contains("deadline of 40s"), "unclear message: {msg}");
    check!(
        took < Duration::from_secs(100),
        "the deadline took {took:?} to act"
    );
    // The VM's serial socket path is unique to it: no process may still
    // carry it on its command line.
    let cmdline = std::fs::read_to_string(record.artifacts.join("qemu-cmdline.txt"))
        .map_err(|e| Error::io("reading qemu-cmdline.txt", e))?;
    let socket = cmdline
        .split([' ', ','])
        .find_map(|w| {
            w.strip_prefix("path=")
                .filter(|p| p.ends_with("serial.sock"))
        })
        .ok_or_else(|| Error::Check(format!("no serial socket in {cmdline}")))?
        .to_string();
    check!(
        qemu_pids_named(&socket).is_empty(),
        "the VM survived its test's deadline"
    );
    let md = load_metadata(&record.artifacts)?;
    check!(
        md.failure
            .as_ref()
            .is_some_and(|f| f.kind == FailureKind::Timeout),
        "failure {:?}",
        md.failure
    );
    check!(
        record.artifacts.join("serial.log").is_file(),
        "no serial.log"
    );
    check!(
        md.artifacts.get("serial.log").is_some(),
        "serial.log not catalogued"
    );
    Ok(())
}

/// The test folder `folder` of the newest run under `artifacts`.
fn find_test_folder(artifacts: &Path, folder: &str) -> bootrig::Result<PathBuf> {
    let dir = artifacts.join("latest").join(folder);
    check!(dir.is_dir(), "no test folder {}", dir.display());
    Ok(dir)
}

/// Runs `bootrig run` on `scenario`; returns its exit code and output.
fn bootrig_run(scenario: &Path, artifacts: &Path) -> bootrig::Result<(Option<i32>, String)> {
    let out = std::process::Command::new(bootrig_bin())
        .args(["run", "--artifacts"])
        .arg(artifacts)
        .arg(scenario)
        .output()
        .map_err(|e| Error::io("running bootrig run", e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code(), text))
}

/// `bootrig run -j 2 --junit` on the smoke scenarios: both VMs run, the
/// JUnit report and run.json list every test.
fn cli_parallel(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    ctx.image(&Image::builtin("busybox"))?;
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke");
    let art = ctx.artifacts_dir().join("cli");
    let junit = art.join("junit.xml");
    let out = std::process::Command::new(bootrig_bin())
        .args(["run", "-j", "2", "--artifacts"])
        .arg(&art)
        .arg("--junit")
        .arg(&junit)
        .arg(&smoke)
        .output()
        .map_err(|e| Error::io("running bootrig run", e))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    check!(
        out.status.code() == Some(0),
        "bootrig run -j 2 failed:\n{text}"
    );
    let passes = text.lines().filter(|l| l.starts_with("PASS ")).count();
    check!(passes == 2, "expected 2 PASS lines:\n{text}");
    let xml = std::fs::read_to_string(&junit).map_err(|e| Error::io("reading junit.xml", e))?;
    check!(
        xml.contains(r#"tests="2""#) && xml.contains(r#"failures="0""#),
        "{xml}"
    );
    // `latest` points at the run folder.
    let run_dir = art.join("latest");
    check!(
        run_dir.join("run.json").is_file(),
        "no latest/run.json in {}",
        art.display()
    );
    let run = bootrig_diagnostics::run::RunSummary::load(&run_dir.join("run.json"))
        .map_err(|e| Error::Check(e.to_string()))?;
    check!(
        run.tests.len() == 2 && run.count(Outcome::Passed) == 2,
        "run.json: {run:?}"
    );
    Ok(())
}

/// QEMU rejecting its command line is reported at once as `qemu-start` (the infrastructure's),
/// with QEMU's own words and its stderr kept as an artifact.
fn qemu_start_failure(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    // A kernel file gets past validation; QEMU rejects the bogus option.
    let kernel = ctx.artifacts_dir().join("not-a-kernel");
    std::fs::write(&kernel, b"junk").map_err(|e| Error::io("writing", e))?;
    let cfg = bootrig::MachineConfig::new("badqemu")
        .with_kernel(&kernel, None, "")
        .with_accel(bootrig::Accel::Tcg)
        .with_extra_args(["-definitely-not-a-qemu-option"]);
    let started = Instant::now();
    match ctx.boot(cfg) {
        Err(e @ Error::Qemu { .. }) => {
            let msg = e.to_string();
            check!(
                e.failure_kind().as_str() == "qemu-start",
                "kind {}",
                e.failure_kind()
            );
            check!(msg.contains("exited during start-up"), "{msg}");
            check!(
                msg.contains("definitely-not-a-qemu-option"),
                "QEMU's stderr missing: {msg}"
            );
        }
        other => return check_failed!("expected a QEMU start failure, got {other:?}"),
    }
    check!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    check!(
        ctx.artifacts_dir().join("qemu-stderr.log").is_file(),
        "no qemu-stderr.log"
    );
    Ok(())
}

/// `bootrig doctor` on this host: QEMU, accelerator verdict, firmware,
/// image tools and images are all reported.
fn doctor(_ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let out = std::process::Command::new(bootrig_bin())
        .arg("doctor")
        .output()
        .map_err(|e| Error::io("running bootrig doctor", e))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    check!(out.status.success(), "doctor failed:\n{text}");
    for needle in [
        "qemu        ok",
        "accel",
        "uefi        ok",
        "mmdebstrap  ok",
        "image busybox",
    ] {
        check!(
            text.contains(needle),
            "doctor output lacks {needle:?}:\n{text}"
        );
    }
    Ok(())
}

/// With a display, the host-side collectors take a PNG screendump.
fn screendump(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let img = ctx.image(&Image::builtin("busybox"))?;
    let cfg = img.machine_config("display", None).with_display(true);
    let vm = ctx.boot(cfg)?;
    vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
    let png = ctx.artifacts_dir().join("screen.png");
    collect_host(&vm, Some(&png));
    let bytes = std::fs::read(&png).map_err(|e| Error::io("reading the screendump", e))?;
    check!(
        bytes.starts_with(b"\x89PNG\r\n"),
        "not a PNG ({} bytes)",
        bytes.len()
    );
    Ok(())
}

/// An existing file given as a drive is attached as it is: the guest reads
/// what the host wrote and its writes reach the file (documented semantics
/// of `{"path": ...}` drives, unlike the root disk's overlay).
fn file_drive(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let img = ctx.image(&Image::builtin("busybox"))?;
    let path = ctx.artifacts_dir().join("data.raw");
    let mut data = b"bootrig-host-data".to_vec();
    data.resize(4 << 20, 0);
    std::fs::write(&path, &data).map_err(|e| Error::io("writing the drive", e))?;
    let cfg = img
        .machine_config("filedrive", None)
        .with_drive(bootrig::Drive::File(path.clone()));
    let vm = ctx.boot(cfg)?;
    vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
    check!(
        vm.succeed("head -c 17 /dev/vda")? == "bootrig-host-data",
        "the guest did not read the host's bytes"
    );
    vm.succeed(
        "printf guest-wrote | dd of=/dev/vda bs=1 seek=1024 conv=notrunc 2>/dev/null && sync",
    )?;
    vm.shutdown(Duration::from_secs(30))?;
    let after = std::fs::read(&path).map_err(|e| Error::io("reading the drive", e))?;
    check!(
        &after[1024..1035] == b"guest-wrote",
        "the guest's write did not reach the file"
    );
    Ok(())
}

/// Every catalogued artifact exists with the recorded size and sha256.
fn check_catalog(dir: &Path, md: &Metadata) -> bootrig::Result<()> {
    for a in md.artifacts.iter() {
        let d = digest_file(&dir.join(&a.path)).map_err(|e| Error::Check(e.to_string()))?;
        check!(
            d.sha256 == a.sha256 && d.size == a.bytes,
            "artifact {} does not match its catalog entry",
            a.path
        );
    }
    Ok(())
}

/// `echo c > /proc/sysrq-trigger` fails the test as a kernel crash within
/// 2 s, with a syzkaller-style title and the report's excerpt, both live
/// and in metadata.json.
fn sysrq_crash(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let vm = ctx.vm(Image::builtin("busybox"))?;
    let started = Instant::now();
    match vm.run("echo c > /proc/sysrq-trigger") {
        Err(Error::KernelCrash(report)) => {
            let took = started.elapsed();
            check!(
                took < Duration::from_secs(2),
                "crash reported after {took:?}"
            );
            check!(
                report.title.contains("sysrq triggered crash"),
                "title {:?}",
                report.title
            );
            check!(
                report.excerpt.contains("Kernel panic - not syncing"),
                "excerpt {:?}",
                report.excerpt
            );
            check!(
                report.excerpt.contains("Call Trace"),
                "excerpt has no call trace"
            );
        }
        other => return check_failed!("expected a kernel crash, got {other:?}"),
    }
    // The same through `bootrig run`: metadata.json says kernel-crash.
    let dir = ctx.artifacts_dir().join("cli");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", e))?;
    let scenario = dir.join("crash.json");
    std::fs::write(
        &scenario,
        r#"{"name": "crash", "machine": {"image": "busybox"},
            "tests": [{"name": "sysrq", "steps": [{"succeed": "true"}, {"succeed": "echo c > /proc/sysrq-trigger"}]}]}"#,
    )
    .map_err(|e| Error::io("writing the scenario", e))?;
    let (code, text) = bootrig_run(&scenario, &dir.join("artifacts"))?;
    check!(code == Some(1), "bootrig run exited {code:?}:\n{text}");
    check!(
        text.contains("kernel crash: kernel panic: sysrq triggered crash"),
        "no crash title in:\n{text}"
    );
    let folder = find_test_folder(&dir.join("artifacts"), "crash.sysrq")?;
    let md = load_metadata(&folder)?;
    let failure = md
        .failure
        .as_ref()
        .ok_or_else(|| Error::Check("no failure recorded".into()))?;
    check!(
        failure.kind == FailureKind::KernelCrash,
        "kind {:?}",
        failure.kind
    );
    let crash = failure
        .crash
        .as_ref()
        .ok_or_else(|| Error::Check("no crash in metadata".into()))?;
    check!(
        crash.title.contains("sysrq triggered crash"),
        "title {:?}",
        crash.title
    );
    check!(
        failure.step.as_ref().is_some_and(|s| s.index == 1),
        "failing step {:?}",
        failure.step
    );
    let step = md.phases.iter().find(|p| p.name.starts_with("step 2:"));
    check!(
        step.and_then(|p| p.duration_ms).is_some_and(|d| d < 2000),
        "the crashing step took {:?}",
        step.map(|p| p.duration_ms)
    );
    check_catalog(&folder, &md)?;
    Ok(())
}

/// The path of example `name` of the `bootrig` package, built now (cargo
/// rebuilds it only if its sources changed).
fn example_bin(name: &str) -> bootrig::Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding the test binary", e))?;
    // <target>/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| Error::Check("test binary not in <target>/<profile>/deps".into()))?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "bootrig", "--example", name]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| Error::io("running cargo build --example", e))?;
    check!(status.success(), "cargo build --example {name} failed");
    Ok(profile_dir.join("examples").join(name))
}

/// `harness/examples/custom_collector.rs` registers a host collector and
/// adds an artifact, then fails on purpose: both files are in the failed
/// test's folder and in its catalog with their sha256; the message shows
/// the collector, and the guest tools busybox lacks on one line only;
/// the phases are in time order.
fn custom_collector_example(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let bin = example_bin("custom_collector")?;
    let artifacts = ctx.artifacts_dir().join("example");
    let out = std::process::Command::new(&bin)
        .env("BOOTRIG_ARTIFACTS", &artifacts)
        .output()
        .map_err(|e| Error::io("running the custom_collector example", e))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    check!(
        out.status.code() == Some(101),
        "the example should fail (exit 101), exited {:?}:\n{text}",
        out.status.code()
    );
    check!(
        text.contains("---- host-view: last") && text.contains("console bytes received"),
        "the custom collector is not in the message:\n{text}"
    );
    check!(
        text.contains("---- not available in the guest: journal (journalctl)"),
        "missing tools not listed on one line:\n{text}"
    );
    check!(
        !text.contains("journalctl: not found") && !text.contains("---- journal:"),
        "a missing tool's output is in the message:\n{text}"
    );
    let test = "example::busybox::custom_collector_and_artifact";
    let folder = find_test_folder(&artifacts, &bootrig_diagnostics::layout::test_folder(test))?;
    let md = load_metadata(&folder)?;
    check!(md.outcome == Outcome::Failed, "outcome {:?}", md.outcome);
    for (name, rel) in [
        ("host-view", "diagnostics/host-view.txt"),
        ("custom/guest-uname.txt", "custom/guest-uname.txt"),
    ] {
        let path = folder.join(rel);
        check!(path.is_file(), "{} missing", path.display());
        let entry = md
            .artifacts
            .get(name)
            .ok_or_else(|| Error::Check(format!("{name} not in the catalog")))?;
        check!(entry.path == rel, "{name} catalogued at {}", entry.path);
        let digest = digest_file(&path).map_err(|e| Error::Check(e.to_string()))?;
        check!(
            entry.sha256 == digest.sha256,
            "{name}: catalog sha256 {} but the file's is {}",
            entry.sha256,
            digest.sha256
        );
    }
    let uname = std::fs::read_to_string(folder.join("custom/guest-uname.txt")).unwrap_or_default();
    check!(uname.contains("Linux"), "guest-uname.txt: {uname:?}");
    let journal = md.artifacts.get("journal");
    check!(
        journal
            .and_then(|a| a.note.as_deref())
            .is_some_and(|n| n.contains("journalctl")),
        "the skipped journal has no note: {journal:?}"
    );
    check!(
        md.phases.windows(2).all(|w| w[0].start_ms <= w[1].start_ms),
        "phases not in time order: {:?}",
        md.phases
    );
    check_catalog(&folder, &md)?;
    Ok(())
}

/// A unit that fails in the debian image: the failed test's folder holds
/// the unit's status and journal, lsblk, list-jobs, the serial log, and a
/// metadata.json whose catalog lists each with a correct sha256.
fn failed_service(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let dir = ctx.artifacts_dir().join("cli");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", e))?;
    let scenario = dir.join("broken.json");
    std::fs::write(
        &scenario,
        r#"{"name": "broken", "machine": {"image": "debian"},
            "login": {"user": "tester", "password": "tester", "root": true},
            "diagnostics": {"units": ["bootrig-broken.service"], "commands": ["cat /etc/hostname"]},
            "tests": [{"name": "service", "steps": [
              {"succeed": "printf '[Service]\nType=oneshot\nExecStart=/bin/sh -c \"echo bootrig-unit-about-to-fail; exit 3\"\n' > /etc/systemd/system/bootrig-broken.service && systemctl daemon-reload"},
              {"fail": "systemctl start bootrig-broken.service"},
              {"wait_for_unit": "bootrig-broken.service", "timeout": 30}]}]}"#,
    )
    .map_err(|e| Error::io("writing the scenario", e))?;
    let (code, text) = bootrig_run(&scenario, &dir.join("artifacts"))?;
    check!(code == Some(1), "bootrig run exited {code:?}:\n{text}");
    let folder = find_test_folder(&dir.join("artifacts"), "broken.service")?;
    let md = load_metadata(&folder)?;
    check!(
        md.finished() && md.outcome == Outcome::Failed,
        "outcome {:?}",
        md.outcome
    );
    let failure = md
        .failure
        .as_ref()
        .ok_or_else(|| Error::Check("no failure".into()))?;
    check!(
        failure.kind == FailureKind::UnitFailed,
        "kind {:?}",
        failure.kind
    );
    let read = |rel: &str| std::fs::read_to_string(folder.join(rel)).unwrap_or_default();
    check!(
        read("diagnostics/unit-bootrig-broken.service-status.txt")
            .contains("bootrig-broken.service"),
        "unit status missing"
    );
    check!(
        read("diagnostics/unit-bootrig-broken.service-journal.txt")
            .contains("bootrig-unit-about-to-fail"),
        "unit journal missing"
    );
    check!(
        read("diagnostics/lsblk.txt").contains("vda"),
        "lsblk missing"
    );
    check!(
        md.artifacts.get("systemctl-list-jobs").is_some(),
        "list-jobs not catalogued"
    );
    check!(
        read("diagnostics/command-1.txt").contains("bootrig-guest"),
        "scenario command missing"
    );
    for name in [
        "serial.log",
        "serial.txt",
        "transcript",
        "qemu-cmdline",
        "qemu-stderr",
        "journal",
        "lsblk",
    ] {
        check!(
            md.artifacts.get(name).is_some(),
            "{name} not in the catalog"
        );
    }
    check!(
        md.guest
            .as_ref()
            .is_some_and(|g| g.os_release.get("ID").map(String::as_str) == Some("debian")),
        "guest os-release missing"
    );
    check!(
        md.boot_sources.iter().any(|b| b.sha256.len() == 64),
        "boot sources not hashed"
    );
    for phase in [
        "qemu start",
        "firmware",
        "kernel",
        "userspace",
        "login prompt",
        "shell ready",
    ] {
        check!(
            md.phases.iter().any(|p| p.name == phase),
            "phase {phase:?} missing: {:?}",
            md.phases
        );
    }
    check_catalog(&folder, &md)?;
    Ok(())
}

/// The kernel floods the console (levels 0-4 through /dev/kmsg, as a
/// driver's WARNING storm would) while commands run: their output, on the
/// command channel, is byte-exact, and text that looks like a crash or a
/// frame in a command's output is neither a crash nor a status.
fn noisy_console(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let vm = ctx.vm(Image::builtin("busybox"))?;
    vm.succeed(
        "(i=0; while [ $i -lt 1000000 ]; do for l in 0 1 2 3 4; do \
         echo \"<$l>kernel-noise-$i level $l\" > /dev/kmsg; done; i=$((i+1)); usleep 2000; done) \
         >/dev/null 2>&1 </dev/null & echo $! > /tmp/flood.pid",
    )?;
    // The flood has reached the console before the checks start.
    vm.wait_for_console("kernel-noise-[0-9]+ level 0", Duration::from_secs(60))?;
    let seq = vm.run("seq 1 3000")?;
    let expected: String = (1..=3000).map(|i| format!("{i}\n")).collect();
    check!(seq.quiet, "not on the command channel");
    check!(
        seq.exit == 0 && seq.output == expected,
        "seq output differs ({} bytes, expected {})",
        seq.output.len(),
        expected.len()
    );
    let raw = vm.run("printf 'a\\rb\\033]unterminated\\033P'")?;
    check!(
        raw.bytes() == b"a\rb\x1b]unterminated\x1bP",
        "raw bytes {:?}",
        raw.bytes()
    );
    // Binary output, checked by sha256 on both sides.
    let sum = vm.succeed("head -c 1048576 /dev/urandom > /tmp/r; sha256sum /tmp/r")?;
    let guest_sha = sum.split_whitespace().next().unwrap_or("").to_string();
    let bin = vm.run("cat /tmp/r")?;
    let host_sha = bootrig_diagnostics::hash::digest_bytes(bin.bytes()).sha256;
    check!(
        bin.bytes().len() == 1_048_576 && host_sha == guest_sha,
        "binary output: {} bytes, sha256 {host_sha} (guest {guest_sha})",
        bin.bytes().len()
    );
    // Megabytes while the kernel floods the console.
    let big = vm.run_timeout(
        "head -c 4000000 /dev/zero | tr '\\0' x",
        Duration::from_secs(300),
    )?;
    check!(
        big.bytes().len() == 4_000_000 && big.bytes().iter().all(|b| *b == b'x'),
        "4 MB came back as {} bytes",
        big.bytes().len()
    );
    // A command printing a fake end frame and fake crash text: its own
    // exit status counts, and the test does not fail as a kernel crash.
    let fake = vm.run(
        "printf '\\000BRQ0123456789abE1_0\\000'; \
         printf 'Kernel panic - not syncing: fake\\nBUG: unable to handle page fault (fake)\\n'; \
         sh -c 'exit 3'",
    )?;
    check!(fake.exit == 3, "forged status: exit {}", fake.exit);
    check!(
        fake.output.contains("Kernel panic - not syncing: fake"),
        "{:?}",
        fake.output
    );
    vm.succeed("kill $(cat /tmp/flood.pid)")?;
    // A background job that keeps the channel open (it is its stdout)
    // does not block later commands: the shell holds the port open once
    // and every command writes to that descriptor.
    vm.succeed("sleep 600 & echo $! > /tmp/holder.pid")?;
    let busy = vm.run("echo while busy")?;
    check!(
        busy.quiet && busy.exit == 0 && busy.output == "while busy\n",
        "{busy:?}"
    );
    // A command that closes the shell's channel descriptor is told so
    // (the shell cannot write its end frame), and the next command runs
    // on the console instead of hanging.
    match vm.run("exec 9>&-") {
        Err(Error::Command { expected, .. }) if expected.contains("command channel") => {}
        other => return check_failed!("closing the channel: {other:?}"),
    }
    let after = vm.run("echo after")?;
    check!(!after.quiet && after.output == "after\n", "{after:?}");
    vm.run("kill $(cat /tmp/holder.pid); true")?;
    // It was noisy, and none of the noise reached a command's output.
    let serial = std::fs::read(ctx.artifacts_dir().join("serial.log"))?;
    check!(
        serial.windows(12).any(|w| w == b"kernel-noise"),
        "the console was never flooded"
    );
    for out in [&seq, &raw, &big, &fake] {
        check!(
            !out.output.contains("kernel-noise"),
            "kernel noise in output"
        );
    }
    Ok(())
}

/// A guest without the command channel: output comes from the console
/// between markers (ANSI-stripped, capped at 4 MiB), and the transcript
/// says so once.
fn console_fallback(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let img = ctx.image(Image::builtin("busybox"))?;
    let cfg = img
        .machine_config("nochannel", None)
        .with_command_channel(false);
    let vm = ctx.boot(cfg)?;
    vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
    let coloured = vm.run("printf '\\033[1;31mred\\033[0m\\n'")?;
    check!(!coloured.quiet, "output claims the command channel");
    check!(
        coloured.output == "red\n",
        "coloured output {:?}",
        coloured.output
    );
    let out = vm.run("echo hello; echo err >&2; exit_code() { return 7; }; exit_code")?;
    check!(out.exit == 7 && out.output == "hello\nerr\n", "{out:?}");
    check_shell_edge_cases(&vm)?;
    check_big_output(&vm)?;
    let transcript = std::fs::read_to_string(ctx.artifacts_dir().join("transcript.log"))?;
    check!(
        transcript.matches("read from the console").count() == 1,
        "the fallback is not noted exactly once:\n{transcript}"
    );
    Ok(())
}

// --- hardening (issue 12) ---

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The debian user's password is changed to a fresh secret (never typed
/// in a command: it reaches the guest base64-encoded), then used to log
/// in on the getty and for `sudo -i`; the inner test fails on purpose so
/// the postmortem runs every collector. Nothing in its artifacts folder
/// holds the secret, and the transcripts show `<password>` instead.
fn password_is_in_no_artifact(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    ctx.image(Image::builtin("debian"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let secret = format!("Bx{:x}q", nanos & 0xffff_ffff_ffff);
    let encoded = {
        // base64 by the host's coreutils (no extra dependency).
        let out = std::process::Command::new("sh")
            .args(["-c", "printf %s \"$1\" | base64", "sh", &secret])
            .output()
            .map_err(|e| Error::io("running base64", e))?;
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    check!(!encoded.contains(&secret), "base64 holds the secret");
    let dir = ctx.artifacts_dir().join("inner");
    let mut settings = bootrig::RunSettings::for_root(dir.clone());
    settings.run_dir = dir.join("run");
    settings.events = bootrig::Events::discard();
    let engine = bootrig::Engine::new(settings, bootrig::VmBudget::new(1));
    let pw = secret.clone();
    let test = bootrig::Test::new("secret::login", vm_marks(), move |ctx| {
        let vm = ctx.vm(Image::builtin("debian"))?;
        vm.login("tester", "tester")?;
        vm.su("root")?;
        vm.succeed(&format!(
            "printf 'tester:%s\\n' \"$(echo {encoded} | base64 -d)\" | chpasswd"
        ))?;
        // Leave `su -`, log out: the getty asks again.
        vm.send("exit\n")?;
        vm.send("exit\n")?;
        vm.login("tester", &pw)?;
        vm.become_root()?;
        check!(vm.succeed("id -u")? == "0\n", "sudo -i did not give root");
        check_failed!("failing on purpose, so that every collector runs")
    });
    let record = engine.run_test(&test);
    let message = record.message.clone().unwrap_or_default();
    check!(
        message.contains("failing on purpose"),
        "the inner test failed otherwise: {message}"
    );
    let leaks = files_containing(&dir, secret.as_bytes());
    check!(leaks.is_empty(), "the password is in {leaks:?}");
    check!(
        !message.contains(&secret),
        "the password is in the failure message"
    );
    let login =
        std::fs::read_to_string(record.artifacts.join("login-transcript.log")).unwrap_or_default();
    check!(
        login.contains(">>> \"<password>\\n\""),
        "no redacted password typed in login-transcript.log:\n{login}"
    );
    Ok(())
}

/// Kernel reports at the very end of a test are judged, and a command's
/// own output is not a kernel report (busybox, `/dev/kmsg` as the kernel's
/// voice).
fn end_of_test_crash_verdicts(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    ctx.image(Image::builtin("busybox"))?;
    let dir = ctx.artifacts_dir().join("cli");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", e))?;
    let scenario = dir.join("late.json");
    std::fs::write(
        &scenario,
        r#"{"name": "late", "machine": {"image": "busybox"},
            "tests": [
              {"name": "warning", "steps": [
                {"succeed": "printf '<4>WARNING: CPU: 0 PID: 1 at fs/bootrig.c:1 bootrig_late_warning+0x1/0x2\\n' > /dev/kmsg"}]},
              {"name": "panic", "steps": [
                {"succeed": "printf '<0>Kernel panic - not syncing: bootrig late panic\\n' > /dev/kmsg"}]},
              {"name": "userspace", "steps": [
                {"succeed": "printf '<4>bootrig: the kernel stamps its lines\\n' > /dev/kmsg"},
                {"succeed": "echo 'Kernel panic - not syncing: printed by a test'; echo 'BUG: printed by a test'"}]}]}"#,
    )
    .map_err(|e| Error::io("writing the scenario", e))?;
    let art = dir.join("artifacts");
    let (code, text) = bootrig_run(&scenario, &art)?;
    check!(code == Some(1), "bootrig run exited {code:?}:\n{text}");
    let md = |test: &str| -> bootrig::Result<Metadata> {
        let folder = find_test_folder(&art, &format!("late.{test}"))?;
        load_metadata(&folder)
    };
    let warning = md("warning")?;
    check!(
        warning.outcome == Outcome::Passed,
        "a recorded WARNING failed the test: {:?}",
        warning.failure
    );
    let reports = warning
        .extra
        .get("kernel_reports")
        .map(|v| v.to_string())
        .unwrap_or_default();
    check!(
        reports.contains("bootrig_late_warning"),
        "the WARNING at the end is not in kernel_reports: {reports:?}"
    );
    let panic = md("panic")?;
    check!(
        panic.outcome == Outcome::Failed
            && panic
                .failure
                .as_ref()
                .is_some_and(|f| f.kind == FailureKind::KernelCrash),
        "a panic at the end of the test did not fail it: {:?}",
        panic.failure
    );
    let panic_dir = find_test_folder(&art, "late.panic")?;
    let listed = std::fs::read_to_string(panic_dir.join("kernel-reports.txt")).unwrap_or_default();
    check!(
        listed.contains("bootrig late panic"),
        "kernel-reports.txt misses the panic: {listed:?}"
    );
    let user = md("userspace")?;
    check!(
        user.outcome == Outcome::Passed,
        "a command's output was taken for a kernel report: {:?}\n{text}",
        user.failure
    );
    Ok(())
}

/// Files between host and guest, exact for binary data: 3 MB of random
/// bytes over the command channel, and 20 KB over the console on a guest
/// without it.
fn binary_copies(ctx: &bootrig::TestContext) -> bootrig::Result<()> {
    let dir = ctx.artifacts_dir().join("copies");
    std::fs::create_dir_all(&dir)?;
    let mut random = vec![0u8; 3 << 20];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut random)?;
    let src = dir.join("random.bin");
    std::fs::write(&src, &random)?;
    let vm = ctx.vm(Image::builtin("busybox"))?;
    let sha = vm.copy_to_guest(&src, "/tmp/random.bin")?;
    check!(
        sha == bootrig_diagnostics::hash::digest_bytes(&random).sha256,
        "sha256 {sha}"
    );
    let back = dir.join("back.bin");
    vm.copy_from_guest("/tmp/random.bin", &back)?;
    check!(std::fs::read(&back)? == random, "the copy back differs");
    // A missing guest file is an error that names it.
    match vm.copy_from_guest("/no/such/file", &dir.join("x")) {
        Err(e) => check!(e.to_string().contains("/no/such/file"), "{e}"),
        Ok(_) => return check_failed!("copying a missing file succeeded"),
    }
    // Without the channel: base64 over the console.
    let img = ctx.image(Image::builtin("busybox"))?;
    let cfg = img
        .machine_config("nochannel", None)
        .with_command_channel(false);
    let plain = ctx.boot(cfg)?;
    plain.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
    let small = dir.join("small.bin");
    std::fs::write(&small, &random[..20_000])?;
    plain.copy_to_guest(&small, "/tmp/small.bin")?;
    let small_back = dir.join("small-back.bin");
    plain.copy_from_guest("/tmp/small.bin", &small_back)?;
    check!(
        std::fs::read(&small_back)? == random[..20_000],
        "the console copy differs"
    );
    Ok(())
}
