//! End to end: `bootrig run --hold` + `bootrig attach` (through a pty),
//! and `bootrig kill` with the VM registry. They start the `bootrig`
//! binary on busybox scenarios in real QEMU (TCG where KVM does not work).
//!
//! Each test has its own registry (`BOOTRIG_VM_REGISTRY`) and artifacts
//! folder, so `bootrig kill` here only ever sees this test's VMs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bootrig::deadline::poll_until;
use bootrig::{check, check_failed, OwnedChild, Suite};
use bootrig_tests::{bootrig_bin, output_text, qemu_pids_named, vm_marks};

fn main() -> ExitCode {
    Suite::from_args()
        .test_with("hold::attach_through_a_pty", vm_marks(), |_| {
            hold_and_attach()
        })
        .test_with("hold::two_machines", vm_marks(), |_| hold_two_machines())
        .test_with("hold::refused_under_ci", vm_marks(), |_| refused_under_ci())
        .test_with(
            "hold::cargo_test_suite_with_bootrig_hold",
            vm_marks(),
            |_| suite_holds(),
        )
        .test_with("hold::probe::fails_in_a_vm", vm_marks(), |ctx| {
            // Run (as a child process) by the test above only.
            if std::env::var_os(PROBE).is_none() {
                return Err(bootrig::Error::Skip(format!(
                    "only run by hold::cargo_test_suite_with_bootrig_hold ({PROBE}=1)"
                )));
            }
            let vm = ctx.vm(bootrig::Image::builtin("busybox"))?;
            vm.succeed("echo probe > /tmp/probe")?;
            check_failed!("deliberate failure, to be held")
        })
        .test_with("kill::hung_run_and_foreign_qemu", vm_marks(), |_| {
            kill_hung_run()
        })
        .test_with("kill::dead_run_leaves_a_stale_record", vm_marks(), |_| {
            stale_record()
        })
        .test_with("kill::orphan_of_a_dead_run", vm_marks(), |_| orphan())
        .run()
}

/// Set for the child process that runs `hold::probe::fails_in_a_vm`.
const PROBE: &str = "BOOTRIG_HOLD_TEST_PROBE";

/// A test's private folder: scenario, artifacts, registry.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("bootrig-hold-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn registry(&self) -> PathBuf {
        self.path().join("registry")
    }

    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.path().join("artifacts").join(run_id)
    }

    /// A one-test busybox scenario `name` whose step is `step` (JSON).
    fn scenario(&self, name: &str, step: &str) -> PathBuf {
        let path = self.path().join(format!("{name}.json"));
        let text = format!(
            r#"{{
  "name": "{name}",
  "machine": {{ "image": "busybox", "memory": "256M", "cpus": 1 }},
  "timeouts": {{ "boot": 300, "step": 900, "test": 1200 }},
  "tests": [ {{ "name": "t", "steps": [ {step} ] }} ]
}}"#
        );
        fs::write(&path, text).expect("writing the scenario");
        path
    }

    /// A `bootrig` command with this sandbox's environment.
    fn bootrig(&self, run_id: &str) -> Command {
        let mut cmd = Command::new(bootrig_bin());
        cmd.current_dir(self.path())
            .env("BOOTRIG_VM_REGISTRY", self.registry())
            .env("BOOTRIG_ARTIFACTS", self.path().join("artifacts"))
            .env("BOOTRIG_RUN_ID", run_id)
            .env_remove("CI")
            .env_remove("BOOTRIG_HOLD")
            .stdin(Stdio::null());
        cmd
    }

    /// `bootrig attach ARTIFACTS [--vm NAME]` in a pty, past its connect
    /// message (`serial console of NAME`, then `Ctrl-] leaves`); with the
    /// error of a later step (`what` failed).
    fn attach_in_pty(
        &self,
        artifacts: &Path,
        vm: Option<&str>,
    ) -> bootrig::Result<(
        rexpect::session::PtySession,
        impl Fn(&str, rexpect::error::Error) -> bootrig::Error,
    )> {
        let mut cmd = self.bootrig("attach");
        cmd.arg("attach").arg(artifacts);
        if let Some(name) = vm {
            cmd.args(["--vm", name]);
        }
        // The pty is its stdin (rexpect only sets it when the command does not).
        cmd.stdin(Stdio::inherit());
        let label = match vm {
            Some(name) => format!("bootrig attach --vm {name} in a pty"),
            None => "bootrig attach in a pty".to_string(),
        };
        let mut pty = rexpect::session::spawn_command(cmd, Some(120_000))
            .map_err(|e| bootrig::Error::Check(format!("spawning {label}: {e}")))?;
        let step = move |what: &str, e: rexpect::error::Error| {
            bootrig::Error::Check(format!("{label}: {what}: {e}"))
        };
        if let Some(name) = vm {
            pty.exp_string(&format!("serial console of {name}"))
                .map_err(|e| step("no connect message", e))?;
        }
        pty.exp_string("Ctrl-] leaves")
            .map_err(|e| step("no connect message", e))?;
        Ok((pty, step))
    }

    /// Starts `bootrig run ARGS` in the background, its output in files.
    fn spawn_run(&self, run_id: &str, args: &[&str]) -> OwnedChild {
        let mut cmd = self.bootrig(run_id);
        cmd.arg("run").args(args);
        let out = fs::File::create(self.path().join(format!("{run_id}.out"))).unwrap();
        let err = fs::File::create(self.path().join(format!("{run_id}.err"))).unwrap();
        cmd.stdout(out).stderr(err);
        let mut child = OwnedChild::spawn(format!("bootrig run {run_id}"), &mut cmd)
            .expect("starting bootrig run");
        child.set_term_grace(Duration::from_secs(30));
        child
    }

    /// Waits (up to `secs`) until run `run_id` holds its failed VMs: its
    /// `hold_file` exists and its output shows `attach_line`; fails with
    /// what the run said if it ended or the time passed first.
    fn wait_held(
        &self,
        run: &mut OwnedChild,
        run_id: &str,
        hold_file: &Path,
        attach_line: &str,
        secs: u64,
    ) -> bootrig::Result<()> {
        let held = poll_until(
            Instant::now() + Duration::from_secs(secs),
            Duration::from_millis(200),
            || {
                if run.try_wait().ok().flatten().is_some() {
                    return Err(());
                }
                Ok(
                    (hold_file.exists() && self.run_output(run_id).contains(attach_line))
                        .then_some(()),
                )
            },
        );
        if matches!(held, Ok(Some(()))) {
            return Ok(());
        }
        check_failed!(
            "the run did not hold its failed VMs (no {} / `{attach_line}`); it said:\n{}",
            hold_file.display(),
            self.run_output(run_id)
        )
    }

    /// What the background run printed so far.
    fn run_output(&self, run_id: &str) -> String {
        let read = |ext: &str| {
            fs::read_to_string(self.path().join(format!("{run_id}.{ext}"))).unwrap_or_default()
        };
        format!("{}{}", read("out"), read("err"))
    }

    /// `bootrig kill ARGS`: exit code and output.
    fn kill(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self
            .bootrig("kill")
            .arg("kill")
            .args(args)
            .output()
            .expect("running bootrig kill");
        (out.status.code(), output_text(&out))
    }

    /// The registry's records (parsed JSON).
    fn records(&self) -> Vec<serde_json::Value> {
        let Ok(entries) = fs::read_dir(self.registry()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
            .collect()
    }

    /// Waits for the first registry record (QEMU started).
    fn wait_record(&self, run: &mut OwnedChild, run_id: &str) -> bootrig::Result<u32> {
        let found = poll_until(
            Instant::now() + Duration::from_secs(300),
            Duration::from_millis(100),
            || {
                if run.try_wait().ok().flatten().is_some() {
                    return Err(());
                }
                Ok(self.records().first().and_then(|r| r["pid"].as_u64()))
            },
        );
        match found {
            Ok(Some(pid)) => Ok(pid as u32),
            _ => check_failed!(
                "no VM was registered; bootrig run said:\n{}",
                self.run_output(run_id)
            ),
        }
    }
}

/// Whether `pid` runs (a zombie does not: it exited).
fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].split_whitespace().next() != Some("Z"))
        })
        .unwrap_or(false)
}

/// Waits for `pid` to stop running.
fn wait_gone(pid: u32, within: Duration) -> bool {
    matches!(
        poll_until(Instant::now() + within, Duration::from_millis(50), || {
            Ok::<_, ()>((!running(pid)).then_some(()))
        }),
        Ok(Some(()))
    )
}

fn hold_and_attach() -> bootrig::Result<()> {
    let sb = Sandbox::new();
    let name = format!("holdpty{}", std::process::id());
    let scenario = sb.scenario(
        &name,
        r#"{ "run": "echo held > /tmp/mark; false", "exit": 0 }"#,
    );
    let mut run = sb.spawn_run("held", &["--hold", scenario.to_str().unwrap()]);
    let artifacts = sb.run_dir("held").join(format!("{name}.t"));
    let hold_file = artifacts.join("hold.json");
    let attach_line = format!("bootrig attach {}", artifacts.display());
    sb.wait_held(&mut run, "held", &hold_file, &attach_line, 600)?;
    let out = sb.run_output("held");
    check!(
        out.contains("FAIL"),
        "the failure was not reported before holding:\n{out}"
    );
    check!(
        qemu_pids_named(&name).len() == 1,
        "the held VM is not running: {:?}",
        qemu_pids_named(&name)
    );

    // The console, through a pty.
    let (mut pty, pty_step) = sb.attach_in_pty(&artifacts, None)?;
    // Typed at the guest's shell; the result is computed in the guest, so
    // the echo of what was typed cannot match.
    pty.send_line("cat /tmp/mark; echo pty-$((6*7))")
        .map_err(|e| pty_step("typing", e))?;
    pty.exp_string("held")
        .map_err(|e| pty_step("no output of cat", e))?;
    pty.exp_string("pty-42")
        .map_err(|e| pty_step("no output of echo", e))?;
    pty.send_control(']').map_err(|e| pty_step("Ctrl-]", e))?;
    pty.exp_string("left the console")
        .map_err(|e| pty_step("Ctrl-] did not leave", e))?;
    pty.exp_eof()
        .map_err(|e| pty_step("no exit after Ctrl-]", e))?;
    let status = pty.process_mut().wait().map_err(|e| {
        pty_step(
            "waiting",
            rexpect::error::Error::from(std::io::Error::other(e)),
        )
    })?;
    check!(
        matches!(status, rexpect::process::wait::WaitStatus::Exited(_, 0)),
        "bootrig attach ended {status:?}"
    );

    // One-off commands: output and exit status.
    let hi = sb
        .bootrig("attach")
        .arg("attach")
        .arg(&artifacts)
        .args(["--", "echo", "hi"])
        .output()
        .expect("running bootrig attach -- echo hi");
    check!(
        hi.status.code() == Some(0) && hi.stdout == b"hi\n",
        "bootrig attach -- echo hi: {:?}\n{}",
        hi.status,
        output_text(&hi)
    );
    let three = sb
        .bootrig("attach")
        .arg("attach")
        .arg(&artifacts)
        .args(["--", "f() { return 3; }; f"])
        .output()
        .expect("running bootrig attach -- f");
    check!(
        three.status.code() == Some(3),
        "a command exiting 3 made bootrig attach exit {:?}\n{}",
        three.status,
        output_text(&three)
    );

    // Ctrl-C ends the held VM cleanly.
    run.signal_group(libc::SIGINT)
        .map_err(|e| bootrig::Error::Check(format!("SIGINT to bootrig run: {e}")))?;
    let status = run
        .wait_deadline(Duration::from_secs(120))
        .map_err(|e| bootrig::Error::Check(format!("waiting for bootrig run: {e}")))?;
    check!(
        status.is_some(),
        "bootrig run did not exit after SIGINT:\n{}",
        sb.run_output("held")
    );
    check!(
        qemu_pids_named(&name).is_empty(),
        "QEMU left after the hold ended: {:?}",
        qemu_pids_named(&name)
    );
    check!(
        sb.records().is_empty(),
        "registry records left: {:?}",
        sb.records()
    );
    check!(!hold_file.exists(), "{} left behind", hold_file.display());
    // The logs that grew while held are catalogued as they ended.
    let verify = sb
        .bootrig("verify")
        .args(["report", "--verify"])
        .arg(sb.run_dir("held"))
        .output()
        .expect("running bootrig report --verify");
    check!(
        verify.status.code() == Some(0),
        "the catalog does not match the held test's files (report --verify {:?}):\n{}",
        verify.status,
        output_text(&verify)
    );
    let gone = sb
        .bootrig("attach")
        .arg("attach")
        .arg(&artifacts)
        .output()
        .expect("running bootrig attach");
    check!(
        gone.status.code() == Some(2),
        "attach after the hold ended: {:?}\n{}",
        gone.status,
        output_text(&gone)
    );
    Ok(())
}

/// `bootrig attach DIR ARGS`, waited for.
fn attach(sb: &Sandbox, dir: &Path, args: &[&str]) -> std::process::Output {
    sb.bootrig("attach")
        .arg("attach")
        .arg(dir)
        .args(args)
        .output()
        .expect("running bootrig attach")
}

/// `--hold` on a scenario with two machines on a private network: both
/// VMs are held (and keep their network), `bootrig attach --vm NAME`
/// reaches each by its machine name, and Ctrl-C ends both. Run with
/// `-j 1`: the test needs two VMs, more than the budget, and says so.
fn hold_two_machines() -> bootrig::Result<()> {
    let sb = Sandbox::new();
    let name = format!("holdtwo{}", std::process::id());
    let scenario = sb.path().join(format!("{name}.json"));
    let text = format!(
        r#"{{
  "name": "{name}",
  "machines": {{
    "server": {{ "image": "busybox", "memory": "256M", "cpus": 1, "networks": ["lan"], "user_network": false }},
    "client": {{ "image": "busybox", "memory": "256M", "cpus": 1, "networks": ["lan"], "user_network": false }}
  }},
  "timeouts": {{ "boot": 300, "step": 300, "test": 1200 }},
  "tests": [ {{ "name": "t", "steps": [
    {{ "on": "server", "succeed": "echo server > /tmp/mark" }},
    {{ "on": "client", "succeed": "echo client > /tmp/mark" }},
    {{ "on": "client", "run": "false", "exit": 0 }}
  ] }} ]
}}"#
    );
    fs::write(&scenario, text).expect("writing the scenario");
    let mut run = sb.spawn_run("two", &["--hold", "-j", "1", scenario.to_str().unwrap()]);
    let artifacts = sb.run_dir("two").join(format!("{name}.t"));
    let hold_file = artifacts.join("hold.json");
    let attach_line = format!("bootrig attach {} --vm NAME", artifacts.display());
    sb.wait_held(&mut run, "two", &hold_file, &attach_line, 900)?;
    let out = sb.run_output("two");
    check!(
        out.contains("FAIL") && out.contains("holding 2 VMs (client, server)"),
        "the failure and both held VMs were not reported:\n{out}"
    );
    check!(
        out.contains("runs 2 VMs at once, more than the VM budget of 1"),
        "the test over the VM budget (-j 1) did not say so:\n{out}"
    );
    let hold: serde_json::Value =
        serde_json::from_slice(&fs::read(&hold_file).expect("reading hold.json"))
            .expect("hold.json is JSON");
    let names: Vec<&str> = hold["vms"]
        .as_array()
        .map(|v| v.iter().filter_map(|vm| vm["name"].as_str()).collect())
        .unwrap_or_default();
    check!(names == ["client", "server"], "hold.json: {hold}");
    let pids: Vec<u32> = sb
        .records()
        .iter()
        .filter_map(|r| r["pid"].as_u64().map(|p| p as u32))
        .collect();
    check!(
        pids.len() == 2 && pids.iter().all(|&p| running(p)),
        "two held QEMUs expected running, registry has {:?}",
        sb.records()
    );

    // Without --vm, attach does not guess.
    let which = attach(&sb, &artifacts, &["--", "true"]);
    let text = output_text(&which);
    check!(
        which.status.code() == Some(2) && text.contains("client, server") && text.contains("--vm"),
        "attach without --vm to two held VMs: {:?}\n{text}",
        which.status
    );
    let unknown = attach(&sb, &artifacts, &["--vm", "nosuch", "--", "true"]);
    let text = output_text(&unknown);
    check!(
        unknown.status.code() == Some(2)
            && text.contains("nosuch")
            && text.contains("client, server"),
        "attach --vm nosuch: {:?}\n{text}",
        unknown.status
    );
    // Each VM by its machine name: its own file.
    for vm in ["server", "client"] {
        let out = attach(&sb, &artifacts, &["--vm", vm, "--", "cat", "/tmp/mark"]);
        check!(
            out.status.code() == Some(0) && out.stdout == format!("{vm}\n").as_bytes(),
            "bootrig attach --vm {vm} -- cat /tmp/mark: {:?}\n{}",
            out.status,
            output_text(&out)
        );
    }
    // The private network is still up while held.
    let ping = attach(
        &sb,
        &artifacts,
        &[
            "--vm", "client", "--", "ping", "-c", "1", "-W", "10", "server",
        ],
    );
    check!(
        ping.status.code() == Some(0),
        "the held client does not reach the held server: {:?}\n{}",
        ping.status,
        output_text(&ping)
    );
    // The console of the second VM, through a pty.
    let (mut pty, pty_step) = sb.attach_in_pty(&artifacts, Some("server"))?;
    pty.send_line("echo pty-$(cat /tmp/mark)-$((6*7))")
        .map_err(|e| pty_step("typing", e))?;
    pty.exp_string("pty-server-42")
        .map_err(|e| pty_step("no output", e))?;
    pty.send_control(']').map_err(|e| pty_step("Ctrl-]", e))?;
    pty.exp_eof()
        .map_err(|e| pty_step("no exit after Ctrl-]", e))?;

    // Ctrl-C ends both.
    run.signal_group(libc::SIGINT)
        .map_err(|e| bootrig::Error::Check(format!("SIGINT to bootrig run: {e}")))?;
    let status = run
        .wait_deadline(Duration::from_secs(120))
        .map_err(|e| bootrig::Error::Check(format!("waiting for bootrig run: {e}")))?;
    check!(
        status.is_some(),
        "bootrig run did not exit after SIGINT:\n{}",
        sb.run_output("two")
    );
    check!(
        pids.iter().all(|&p| !running(p)) && qemu_pids_named(&name).is_empty(),
        "QEMU left after the hold ended: {:?}",
        qemu_pids_named(&name)
    );
    check!(
        sb.records().is_empty(),
        "registry records left: {:?}",
        sb.records()
    );
    check!(!hold_file.exists(), "{} left behind", hold_file.display());
    // Each machine's files are in its own folder of the test.
    for vm in ["server", "client"] {
        let serial = artifacts.join("machines").join(vm).join("serial.log");
        check!(serial.exists(), "{} missing", serial.display());
    }
    Ok(())
}

fn refused_under_ci() -> bootrig::Result<()> {
    let sb = Sandbox::new();
    let scenario = sb.scenario("cihold", r#"{ "succeed": "true" }"#);
    for (args, env) in [
        (vec!["run", "--hold"], ("CI", "true")),
        (vec!["run"], ("BOOTRIG_HOLD", "1")),
    ] {
        let mut cmd = sb.bootrig("ci");
        cmd.args(&args)
            .arg(&scenario)
            .env("CI", "true")
            .env(env.0, env.1);
        let out = cmd.output().expect("running bootrig");
        let text = output_text(&out);
        check!(
            out.status.code() == Some(2) && text.contains("CI=true") && text.contains("refused"),
            "{args:?} under CI=true: {:?}\n{text}",
            out.status
        );
    }
    check!(
        sb.records().is_empty(),
        "a VM was started: {:?}",
        sb.records()
    );
    // A `cargo test` suite refuses BOOTRIG_HOLD under CI=true too.
    let out = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", "hold::probe::fails_in_a_vm"])
        .env("BOOTRIG_VM_REGISTRY", sb.registry())
        .env("BOOTRIG_ARTIFACTS", sb.path().join("artifacts"))
        .env("BOOTRIG_HOLD", "1")
        .env("CI", "true")
        .env(PROBE, "1")
        .stdin(Stdio::null())
        .output()
        .expect("running this test binary");
    let text = output_text(&out);
    check!(
        out.status.code() == Some(2) && text.contains("refused"),
        "a suite with BOOTRIG_HOLD=1 under CI=true: {:?}\n{text}",
        out.status
    );
    check!(
        sb.records().is_empty(),
        "a VM was started: {:?}",
        sb.records()
    );
    Ok(())
}

/// `BOOTRIG_HOLD=1` on a `cargo test` suite (this binary, running only
/// its probe trial, which fails in a busybox VM): the VM is held, a
/// command reaches it, SIGINT ends it.
fn suite_holds() -> bootrig::Result<()> {
    let sb = Sandbox::new();
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(["--exact", "hold::probe::fails_in_a_vm"])
        .current_dir(sb.path())
        .env("BOOTRIG_VM_REGISTRY", sb.registry())
        .env("BOOTRIG_ARTIFACTS", sb.path().join("artifacts"))
        .env("BOOTRIG_RUN_ID", "suite")
        .env("BOOTRIG_HOLD", "1")
        .env(PROBE, "1")
        .env_remove("CI")
        .stdin(Stdio::null())
        .stdout(fs::File::create(sb.path().join("suite.out")).unwrap())
        .stderr(fs::File::create(sb.path().join("suite.err")).unwrap());
    let mut suite = OwnedChild::spawn("probe suite", &mut cmd).expect("starting the probe");
    suite.set_term_grace(Duration::from_secs(30));
    let artifacts = sb.run_dir("suite").join("hold.probe.fails_in_a_vm");
    let hold_file = artifacts.join("hold.json");
    let held = poll_until(
        Instant::now() + Duration::from_secs(600),
        Duration::from_millis(200),
        || {
            if suite.try_wait().ok().flatten().is_some() {
                return Err(());
            }
            Ok(hold_file.exists().then_some(()))
        },
    );
    if !matches!(held, Ok(Some(()))) {
        return check_failed!(
            "the suite did not hold its failed VM; it said:\n{}",
            sb.run_output("suite")
        );
    }
    let qemu = sb.records().first().and_then(|r| r["pid"].as_u64());
    let out = sb
        .bootrig("attach")
        .arg("attach")
        .arg(&artifacts)
        .args(["--", "cat", "/tmp/probe"])
        .output()
        .expect("running bootrig attach");
    check!(
        out.status.code() == Some(0) && out.stdout == b"probe\n",
        "bootrig attach -- cat /tmp/probe: {:?}\n{}",
        out.status,
        output_text(&out)
    );
    suite
        .signal_group(libc::SIGINT)
        .map_err(|e| bootrig::Error::Check(format!("SIGINT to the suite: {e}")))?;
    let status = suite
        .wait_deadline(Duration::from_secs(120))
        .map_err(|e| bootrig::Error::Check(format!("waiting for the suite: {e}")))?;
    check!(
        status.is_some_and(|s| !s.success()),
        "the suite did not end (as failed) after SIGINT: {status:?}\n{}",
        sb.run_output("suite")
    );
    check!(
        qemu.is_some_and(|pid| !running(pid as u32)),
        "the held QEMU {qemu:?} is still running"
    );
    check!(
        sb.records().is_empty(),
        "registry records left: {:?}",
        sb.records()
    );
    Ok(())
}

/// A QEMU this test starts itself: bootrig must leave it alone.
fn foreign_qemu(tag: &str) -> OwnedChild {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-machine", "none", "-display", "none", "-S", "-name", tag])
        .args(["-monitor", "none", "-serial", "none", "-nodefaults"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    OwnedChild::spawn("foreign qemu", &mut cmd).expect("starting a foreign QEMU")
}

fn kill_hung_run() -> bootrig::Result<()> {
    let sb = Sandbox::new();
    let name = format!("hung{}", std::process::id());
    let foreign_tag = format!("foreign{}", std::process::id());
    let mut foreign = foreign_qemu(&foreign_tag);
    let scenario = sb.scenario(&name, r#"{ "succeed": "sleep 3000" }"#);
    let mut run = sb.spawn_run("hung", &[scenario.to_str().unwrap()]);
    let qemu = sb.wait_record(&mut run, "hung")?;
    // The run hangs: bootrig is stopped (as by Ctrl-Z or a debugger), so
    // its VM is not ended by the parent-death signal.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(run.pid() as i32, libc::SIGSTOP) };
    let result = (|| {
        let (code, out) = sb.kill(&[]);
        check!(
            code == Some(0) && out.contains("keep") && running(qemu),
            "plain `bootrig kill` must keep a live run's VM: {code:?}\n{out}"
        );
        let other = sb.path().join("other-run");
        fs::create_dir_all(&other).unwrap();
        let (code, out) = sb.kill(&["--run", other.to_str().unwrap()]);
        check!(
            code == Some(0) && running(qemu),
            "`--run` of another run killed this one: {code:?}\n{out}"
        );
        let run_dir = sb.run_dir("hung");
        let (code, out) = sb.kill(&["--dry-run", "--run", run_dir.to_str().unwrap()]);
        check!(
            code == Some(0) && out.contains("would kill") && running(qemu),
            "--dry-run: {code:?}\n{out}"
        );
        let (code, out) = sb.kill(&["--run", run_dir.to_str().unwrap()]);
        check!(
            code == Some(0) && out.contains(&format!("qemu pid {qemu}")),
            "`bootrig kill --run`: {code:?}\n{out}"
        );
        check!(
            wait_gone(qemu, Duration::from_secs(10)),
            "the hung run's QEMU {qemu} still runs after `bootrig kill --run`:\n{out}"
        );
        check!(
            sb.records().is_empty(),
            "the killed VM's record is left: {:?}",
            sb.records()
        );
        check!(
            foreign.try_wait().ok().flatten().is_none() && qemu_pids_named(&foreign_tag).len() == 1,
            "`bootrig kill` touched a QEMU bootrig did not start"
        );
        let (code, out) = sb.kill(&["--all"]);
        check!(
            code == Some(0) && foreign.try_wait().ok().flatten().is_none(),
            "`bootrig kill --all` touched a QEMU bootrig did not start: {out}"
        );
        Ok(())
    })();
    // SAFETY: as above.
    unsafe { libc::kill(run.pid() as i32, libc::SIGKILL) };
    unsafe { libc::kill(run.pid() as i32, libc::SIGCONT) };
    let _ = run.wait_deadline(Duration::from_secs(30));
    let _ = foreign.terminate();
    result
}

fn stale_record() -> bootrig::Result<()> {
    let sb = Sandbox::new();
    let name = format!("stale{}", std::process::id());
    let scenario = sb.scenario(&name, r#"{ "succeed": "sleep 3000" }"#);
    let mut run = sb.spawn_run("dead", &[scenario.to_str().unwrap()]);
    let qemu = sb.wait_record(&mut run, "dead")?;
    // bootrig dies without cleaning up: QEMU dies with it (parent-death
    // signal), its record stays behind.
    run.signal_group(libc::SIGKILL)
        .map_err(|e| bootrig::Error::Check(format!("SIGKILL to bootrig run: {e}")))?;
    let _ = run.wait_deadline(Duration::from_secs(30));
    check!(
        wait_gone(qemu, Duration::from_secs(30)),
        "QEMU {qemu} outlived its SIGKILLed bootrig"
    );
    check!(
        sb.records().len() == 1,
        "the record is not left: {:?}",
        sb.records()
    );
    let (code, out) = sb.kill(&["--dry-run"]);
    check!(
        code == Some(0) && out.contains("would clean") && sb.records().len() == 1,
        "--dry-run: {code:?}\n{out}"
    );
    let (code, out) = sb.kill(&[]);
    check!(
        code == Some(0) && out.contains("clean") && sb.records().is_empty(),
        "`bootrig kill` did not clean the stale record: {code:?}\n{out}"
    );
    Ok(())
}

/// `/proc/<pid>/stat` field 22 (start time, clock ticks since boot).
fn proc_start_time(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// A VM whose bootrig is gone while the VM still runs: bootrig's own VMs
/// die with it (parent-death signal), so the orphan is made the way one
/// would be left (a QEMU whose registry record names an owner that has
/// exited, and a run folder): `bootrig kill` ends it, and only it.
fn orphan() -> bootrig::Result<()> {
    let sb = Sandbox::new();
    let tag = format!("orphan{}", std::process::id());
    let foreign_tag = format!("foreign{}", std::process::id());
    let mut vm = foreign_qemu(&tag);
    let mut foreign = foreign_qemu(&foreign_tag);
    let pid = vm.pid();
    // The owner: a process that ran and exited.
    let mut owner = Command::new("true").spawn().expect("running true");
    let owner_pid = owner.id();
    owner.wait().expect("waiting for true");
    let cmdline: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let start_time = proc_start_time(pid);
    let run_dir = sb.path().join("artifacts").join("dead-run");
    fs::create_dir_all(&run_dir).unwrap();
    fs::create_dir_all(sb.registry()).unwrap();
    let record = serde_json::json!({
        "pid": pid, "pgid": pid, "start_time": start_time, "cmdline": cmdline,
        "owner_pid": owner_pid, "owner_start_time": 1,
        "run_dir": run_dir, "test": "dead::test", "out_dir": null,
        "started_at": "2026-11-30T00:00:00Z",
    });
    fs::write(
        sb.registry().join(format!("{pid}-{start_time}.json")),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
    let result = (|| {
        let (code, out) = sb.kill(&["--dry-run"]);
        check!(
            code == Some(0) && out.contains("would kill") && running(pid),
            "--dry-run: {code:?}\n{out}"
        );
        let (code, out) = sb.kill(&[]);
        check!(
            code == Some(0) && out.contains(&format!("qemu pid {pid}")),
            "`bootrig kill`: {code:?}\n{out}"
        );
        let gone = poll_until(
            Instant::now() + Duration::from_secs(10),
            Duration::from_millis(50),
            || Ok::<_, ()>(vm.try_wait().ok().flatten().map(|_| ())),
        );
        check!(
            gone == Ok(Some(())),
            "the orphaned QEMU {pid} still runs after `bootrig kill`:\n{out}"
        );
        check!(
            sb.records().is_empty(),
            "the orphan's record is left: {:?}",
            sb.records()
        );
        check!(
            foreign.try_wait().ok().flatten().is_none() && qemu_pids_named(&foreign_tag).len() == 1,
            "`bootrig kill` touched a QEMU bootrig did not start"
        );
        Ok(())
    })();
    let _ = vm.terminate();
    let _ = foreign.terminate();
    result
}
