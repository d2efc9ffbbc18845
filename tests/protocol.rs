//! The command protocol under ordinary but awkward commands (issue 12):
//! commands the shell cannot parse, a timeout followed by more commands,
//! a shell that is left or loses its output, unterminated escape strings,
//! forged end markers. Each runs on the command channel and on the
//! console fallback (`::channel`, `::console`) of the `busybox` image;
//! leaving the root shell is also checked on `debian`.
//!
//! Run with `BOOTRIG_MAX_VMS=1 cargo test -p bootrig-tests --test protocol`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootrig::{check, check_failed, Error, Image, Requirement, Session, Suite, TestContext};
use bootrig_tests::vm_marks;

/// Generous for a command that must not wait for its timeout: a round
/// trip on a loaded host under TCG takes a second or two.
const AT_ONCE: Duration = Duration::from_secs(30);

/// The timeout given to commands that must return long before it.
const LONG: Duration = Duration::from_secs(240);

fn main() -> ExitCode {
    Suite::from_args()
        .parametrize(
            "protocol::busybox::unparsable_commands_fail_at_once",
            ["channel", "console"],
            vm_marks(),
            |ctx, path: &&str| unparsable(&*busybox(ctx, path)?),
        )
        .parametrize(
            "protocol::busybox::a_timeout_resynchronises",
            ["channel", "console"],
            vm_marks(),
            |ctx, path: &&str| resync(&*busybox(ctx, path)?),
        )
        .parametrize(
            "protocol::busybox::a_left_shell_is_reported",
            ["channel", "console"],
            vm_marks(),
            |ctx, path: &&str| left_shell(&*busybox(ctx, path)?),
        )
        .parametrize(
            "protocol::busybox::lost_output_is_survived",
            ["channel", "console"],
            vm_marks(),
            |ctx, path: &&str| lost_output(&*busybox(ctx, path)?),
        )
        .parametrize(
            "protocol::busybox::unterminated_escape_strings",
            ["channel", "console"],
            vm_marks(),
            |ctx, path: &&str| escape_strings(&*busybox(ctx, path)?),
        )
        .parametrize(
            "protocol::busybox::forged_end_markers_do_not_count",
            ["channel", "console"],
            vm_marks(),
            |ctx, path: &&str| forged(ctx, &*busybox(ctx, path)?),
        )
        .test_with(
            "protocol::debian::leaving_the_root_shell_is_reported",
            vm_marks().requires(Requirement::Tool("mmdebstrap".into())),
            debian_exit,
        )
        .run()
}

/// A busybox session whose commands run on the command channel
/// (`channel`) or on the console between markers (`console`).
fn busybox(ctx: &TestContext, path: &str) -> bootrig::Result<Arc<Session>> {
    let img = ctx.image(Image::builtin("busybox"))?;
    let cfg = img
        .machine_config("protocol", None)
        .with_command_channel(path == "channel");
    let vm = ctx.boot(cfg)?;
    vm.attach_shell(img.manifest.shell_prompt.as_deref().unwrap_or("# $"))?;
    let probe = vm.run("true")?;
    check!(
        probe.quiet == (path == "channel"),
        "wanted the {path} path, got quiet={}",
        probe.quiet
    );
    Ok(vm)
}

/// Runs `cmd` with a long timeout and fails unless it came back well
/// before it.
fn quick(vm: &Session, cmd: &str) -> bootrig::Result<bootrig::CommandOutput> {
    let started = Instant::now();
    let out = vm.run_timeout(cmd, LONG);
    check!(
        started.elapsed() < AT_ONCE,
        "`{cmd}` took {:?} ({out:?})",
        started.elapsed()
    );
    out
}

/// The session still runs commands exactly, first byte included.
fn still_usable(vm: &Session, after: &str) -> bootrig::Result<()> {
    let out = quick(vm, "printf 'abc\\n'")?;
    check!(
        out.exit == 0 && out.output == "abc\n",
        "after {after}: {out:?}"
    );
    Ok(())
}

fn unparsable(vm: &Session) -> bootrig::Result<()> {
    // The shell's own syntax error, at once.
    for cmd in [
        "echo 'unbalanced",
        "echo \"unbalanced",
        "}",
        "echo a; )",
        "if true; then echo x",
    ] {
        let out = quick(vm, cmd)?;
        check!(
            out.exit != 0 && out.output.contains("syntax error"),
            "`{cmd}`: {out:?}"
        );
        still_usable(vm, cmd)?;
    }
    // Nothing to run: exit 0, nothing printed.
    for cmd in ["", "   ", "# only a comment", "\n\n"] {
        let out = quick(vm, cmd)?;
        check!(out.exit == 0 && out.output.is_empty(), "`{cmd}`: {out:?}");
        still_usable(vm, cmd)?;
    }
    // Incomplete but runnable: whatever the shell makes of it, at once.
    for cmd in ["cat <<EOF\nno terminator", "echo trailing \\"] {
        quick(vm, cmd)?;
        still_usable(vm, cmd)?;
    }
    Ok(())
}

fn resync(vm: &Session) -> bootrig::Result<()> {
    for round in 0..3 {
        let started = Instant::now();
        match vm.run_timeout("sleep 1000", Duration::from_secs(3)) {
            Err(Error::CommandTimeout { .. }) => {}
            other => return check_failed!("round {round}: expected a timeout, got {other:?}"),
        }
        check!(
            started.elapsed() < AT_ONCE,
            "the timeout and resync took {:?}",
            started.elapsed()
        );
        // Sent right after the timeout: not one byte lost.
        still_usable(vm, "a timeout")?;
    }
    // A command that ignores Ctrl-C for a while: the session waits for
    // the shell to answer again before the next command.
    match vm.run_timeout("trap '' INT; sleep 8; trap - INT", Duration::from_secs(2)) {
        Err(Error::CommandTimeout { .. }) => {}
        other => return check_failed!("expected a timeout, got {other:?}"),
    }
    still_usable(vm, "a timeout of a command that ignores Ctrl-C")
}

fn left_shell(vm: &Session) -> bootrig::Result<()> {
    let started = Instant::now();
    match vm.run_timeout("exit 3", LONG) {
        Err(e) => {
            let msg = e.to_string();
            check!(msg.contains("shell exited"), "unclear: {msg}");
        }
        Ok(out) => return check_failed!("`exit 3` returned {out:?}"),
    }
    check!(
        started.elapsed() < AT_ONCE,
        "leaving the shell was noticed after {:?}",
        started.elapsed()
    );
    // Later commands fail at once and say why; nothing runs in whatever
    // shell took its place.
    let started = Instant::now();
    match vm.run_timeout("touch /tmp/ran-anyway", LONG) {
        Err(e) => check!(e.to_string().contains("shell exited"), "unclear: {e}"),
        Ok(out) => return check_failed!("a command ran after the shell left: {out:?}"),
    }
    check!(started.elapsed() < Duration::from_secs(2), "not at once");
    check!(!vm.has_shell(), "the session still claims a shell");
    // Attaching again gives a working session.
    vm.attach_shell("busybox.*# $")?;
    let out = quick(vm, "test -e /tmp/ran-anyway; echo $?")?;
    check!(out.output == "1\n", "{out:?}");
    Ok(())
}

fn lost_output(vm: &Session) -> bootrig::Result<()> {
    // The shell's own output sent elsewhere: the session keeps working
    // (the command's redirection does not outlive it) or says why.
    for cmd in [
        "exec >/dev/null",
        "exec 2>/dev/null",
        "exec >/dev/null 2>&1",
    ] {
        match quick(vm, cmd) {
            Ok(out) => check!(out.exit == 0, "`{cmd}`: {out:?}"),
            Err(e) => {
                let msg = e.to_string();
                check!(msg.contains("output"), "unclear: {msg}");
                return Ok(());
            }
        }
        still_usable(vm, cmd)?;
    }
    Ok(())
}

fn escape_strings(vm: &Session) -> bootrig::Result<()> {
    for (name, seq) in [("OSC", "\\033]"), ("DCS", "\\033P"), ("APC", "\\033_")] {
        let cmd = format!("printf 'x{seq}never terminated'");
        let out = quick(vm, &cmd)?;
        check!(out.exit == 0, "{name}: {out:?}");
        if out.quiet {
            check!(
                out.bytes() == format!("x\x1b{}never terminated", &seq[4..]).into_bytes(),
                "{name}: {:?}",
                out.bytes()
            );
        }
        still_usable(vm, name)?;
        let out = quick(vm, &format!("{cmd}; false"))?;
        check!(out.exit == 1, "{name}: {out:?}");
    }
    Ok(())
}

fn forged(ctx: &TestContext, vm: &Session) -> bootrig::Result<()> {
    // The shell's own state has the token (`set`), and so does the console
    // log: markers made with it (all a guest could ever learn) still do
    // not end a command, whatever status they claim.
    let serial = std::fs::read_to_string(ctx.artifacts_dir().join("serial.log"))?;
    let token = serial
        .split("__BRP")
        .filter_map(|s| s.split("__").next())
        .find(|t| t.len() == 12 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or("")
        .to_string();
    check!(token.len() == 12, "no token in serial.log");
    // Programs do not see the token in their environment.
    let env = quick(vm, &format!("env | grep -c {token}; true"))?;
    check!(
        env.output.trim() == "0",
        "token in the environment: {env:?}"
    );
    let forge = format!(
        "t={token}; for n in $(seq 1 60); do \
         printf '\\n__BRE%s_%s_0__\\n\\n__BRE%s_%s_0q__\\n' $t $n $t $n; \
         printf '\\000BRQ%sE%s_0\\000' $t $n; done; false"
    );
    let out = quick(vm, &forge)?;
    check!(out.exit == 1, "forged status: {:?}", out.exit);
    still_usable(vm, "forged markers")?;
    let out = quick(vm, &forge.replace("false", "sh -c 'exit 7'"))?;
    check!(out.exit == 7, "forged status: {:?}", out.exit);
    Ok(())
}

fn debian_exit(ctx: &TestContext) -> bootrig::Result<()> {
    let vm = ctx.vm(Image::builtin("debian"))?;
    vm.login("tester", "tester")?;
    vm.become_root()?;
    check!(vm.succeed("id -un")? == "root\n", "not root");
    match vm.run_timeout("exit", LONG) {
        Err(e) => check!(e.to_string().contains("shell exited"), "unclear: {e}"),
        Ok(out) => return check_failed!("`exit` returned {out:?}"),
    }
    // Nothing runs as tester while the session believes it is root.
    match vm.run_timeout("id -un", LONG) {
        Err(e) => check!(e.to_string().contains("shell exited"), "unclear: {e}"),
        Ok(out) => return check_failed!("ran in the user's shell: {out:?}"),
    }
    Ok(())
}
