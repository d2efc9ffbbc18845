//! Hardening without VMs (issue 12): bad input refused early and clearly,
//! outputs checked before anything boots, artifacts private, the run's
//! own robustness. Each test is a probe from the issue.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use bootrig_tests::bootrig_bin;

fn bootrig_env(args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(bootrig_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("BOOTRIG_ARTIFACTS", cwd.join("artifacts"))
        .env_remove("BOOTRIG_ARTIFACT_MODE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running bootrig")
}

fn bootrig(args: &[&str], cwd: &Path) -> Output {
    bootrig_env(args, cwd, &[])
}

fn text(o: &Output) -> String {
    bootrig_tests::output_text(o)
}

/// A scenario whose test fails before booting (a step needs a shell and
/// there is none): the whole run path without a VM.
fn no_vm_scenario(dir: &Path, file: &str, name: &str) {
    std::fs::write(dir.join("vmlinuz"), b"not booted").unwrap();
    std::fs::write(
        dir.join(file),
        format!(
            r#"{{"name": "{name}", "machine": {{"kernel": "vmlinuz"}},
                "tests": [{{"name": "t", "steps": [{{"succeed": "true"}}]}}]}}"#
        ),
    )
    .unwrap();
}

#[test]
fn jobs_must_be_sane() {
    let dir = tempfile::tempdir().unwrap();
    no_vm_scenario(dir.path(), "s.json", "s");
    for (jobs, says) in [("0", "at least 1"), ("100000", "too many")] {
        let out = bootrig(&["run", "-j", jobs, "s.json"], dir.path());
        assert_eq!(out.status.code(), Some(2), "-j {jobs}: {}", text(&out));
        assert!(text(&out).contains(says), "-j {jobs}: {}", text(&out));
        assert!(!dir.path().join("artifacts").exists(), "-j {jobs} ran");
    }
}

#[test]
fn unusable_outputs_are_refused_before_booting() {
    let dir = tempfile::tempdir().unwrap();
    no_vm_scenario(dir.path(), "s.json", "s");
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--artifacts", "a-file"], "is not a folder"),
        (
            &["--artifacts", "a-file/below"],
            "cannot create the artifacts folder",
        ),
        (&["--junit", "a-file/junit.xml"], "cannot create the folder"),
        (&["--junit", "."], "is a folder"),
    ];
    for (extra, says) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.push("s.json");
        let out = bootrig(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains(says) && t.contains("nothing was run"),
            "{extra:?}: {t}"
        );
        assert!(!dir.path().join("artifacts").exists(), "{extra:?} ran");
    }
    // A folder the user cannot write in (meaningless as root).
    if unsafe { libc::geteuid() } != 0 {
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let out = bootrig(&["run", "--junit", "ro/j.xml", "s.json"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }
}

#[test]
fn the_artifacts_flag_beats_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    no_vm_scenario(dir.path(), "s.json", "s");
    let out = bootrig(&["run", "--artifacts", "mine", "s.json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(dir.path().join("mine/latest/s.t/metadata.json").is_file());
    assert!(
        !dir.path().join("artifacts").exists(),
        "BOOTRIG_ARTIFACTS won"
    );
}

#[test]
fn a_trial_name_from_two_files_is_refused_before_booting() {
    let dir = tempfile::tempdir().unwrap();
    no_vm_scenario(dir.path(), "a.json", "same");
    no_vm_scenario(dir.path(), "b.json", "same");
    let out = bootrig(&["run", "."], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("b.json:2:28:") && t.contains("\"same::t\" is already defined in"),
        "{t}"
    );
    assert!(!dir.path().join("artifacts").exists());
    // One file reached twice (a link, a folder given twice) is one file.
    std::fs::remove_file(dir.path().join("b.json")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("sub/loop")).unwrap();
    std::os::unix::fs::symlink("../a.json", dir.path().join("sub/again.json")).unwrap();
    let out = bootrig(&["run", "--list", ".", "sub", "a.json"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "same::t\n");
}

#[test]
fn absurd_scenario_values_are_located_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.json"),
        "{\"name\": \"s\", \"machine\": {\"image\": \"busybox\"},\n \"timeouts\": {\"test\": 1e30},\n \"tests\": [{\"name\": \"t\", \"steps\": [{\"succeed\": \"true\"}]}]}",
    )
    .unwrap();
    let out = bootrig(&["run", "s.json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("s.json:2:15: timeouts.test of"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn artifacts_are_private_unless_shared_is_asked() {
    for (mode, file_mode, dir_mode) in [(None, 0o600, 0o700), (Some("shared"), 0o644, 0o755)] {
        let dir = tempfile::tempdir().unwrap();
        no_vm_scenario(dir.path(), "s.json", "s");
        let mut cmd = Command::new(bootrig_bin());
        cmd.args(["run", "s.json"])
            .current_dir(dir.path())
            .env("BOOTRIG_ARTIFACTS", dir.path().join("artifacts"));
        match mode {
            Some(m) => cmd.env("BOOTRIG_ARTIFACT_MODE", m),
            None => cmd.env_remove("BOOTRIG_ARTIFACT_MODE"),
        };
        // The shared mode keeps the caller's umask: make it the usual one.
        unsafe { libc::umask(0o022) };
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let run = std::fs::canonicalize(dir.path().join("artifacts/latest")).unwrap();
        let mut checked = 0;
        let mut stack = vec![run.clone()];
        while let Some(d) = stack.pop() {
            let m = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(m, dir_mode, "{mode:?}: folder {}", d.display());
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p);
                } else if meta.is_file() {
                    let m = meta.permissions().mode() & 0o777;
                    assert_eq!(m, file_mode, "{mode:?}: {}", p.display());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 2, "only {checked} files in {}", run.display());
    }
}

#[test]
fn the_kvm_requirement_follows_the_accelerator_probe() {
    // `bootrig doctor` shows the probe's verdict for this host.
    let out = Command::new(bootrig_bin()).arg("doctor").output().unwrap();
    let doctor = String::from_utf8_lossy(&out.stdout);
    let Some(accel) = doctor.lines().find(|l| l.starts_with("accel ")) else {
        return; // no QEMU here: nothing to compare
    };
    let kvm_works = accel.split_whitespace().nth(1) == Some("kvm");
    let missing = bootrig::Requirement::Kvm.missing();
    assert_eq!(
        missing.is_none(),
        kvm_works,
        "doctor says {accel:?}, the requirement says {missing:?}"
    );
}

/// An observer that panics on a line stands for any bug on the console's
/// reader thread: the console closes at once and says why, instead of
/// every wait running into its timeout with the prompt already in the log.
#[test]
fn a_panic_on_the_reader_thread_closes_the_console_loudly() {
    use bootrig::console::{Console, ConsoleObserver, ConsoleOptions, ExpectError};
    use std::io::Write;
    use std::time::{Duration, Instant};

    struct Buggy;
    impl ConsoleObserver for Buggy {
        fn on_line(
            &mut self,
            line: &[u8],
            _now: Instant,
        ) -> Option<bootrig_diagnostics::crash::CrashReport> {
            assert!(!line.starts_with(b"[9999"), "observer bug on {line:?}");
            None
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut guest, host) = std::os::unix::net::UnixStream::pair().unwrap();
    let log = std::fs::File::create(dir.path().join("serial.log")).unwrap();
    let console = Console::start(
        host,
        log,
        ConsoleOptions {
            observer: Some(Box::new(Buggy)),
            ..ConsoleOptions::default()
        },
    )
    .unwrap();
    guest
        .write_all(b"[99999999999999999999.0] forged\nlogin: ")
        .unwrap();
    let re = regex::bytes::Regex::new("never printed").unwrap();
    let started = Instant::now();
    let err = console
        .expect(&re, Duration::from_secs(30))
        .expect_err("nothing matches");
    assert!(matches!(err, ExpectError::Closed { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "it timed out");
    let why = console.close_error().unwrap_or_default();
    assert!(why.contains("panicked: observer bug"), "{why:?}");
}
