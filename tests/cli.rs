//! The `bootrig` command line without VMs: exit codes, scenario errors,
//! listing. (VM runs are covered by the `vm` target.)

use std::path::Path;
use std::process::Output;

fn bootrig(args: &[&str], cwd: &Path) -> Output {
    let artifacts = cwd.join("artifacts");
    let artifacts = artifacts.to_str().expect("utf-8 temp path");
    bootrig_tests::run_bootrig(args, cwd, &[("BOOTRIG_ARTIFACTS", artifacts)])
}

fn text(o: &Output) -> String {
    bootrig_tests::output_text(o)
}

#[test]
fn invalid_scenario_is_located_and_nothing_boots() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.json"),
        "{\n  \"name\": \"bad\",\n  \"machine\": { \"image\": \"busybox\", \"memroy\": \"1G\" },\n  \"tests\": []\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("good.json"),
        r#"{"name": "good", "machine": {"image": "busybox"}, "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"#,
    )
    .unwrap();
    let out = bootrig(&["run", "bad.json", "good.json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("bad.json:3:"), "no file:line:column in {t}");
    assert!(t.contains("unknown field `memroy`"), "{t}");
    assert!(t.contains("nothing was run"), "{t}");
    assert!(
        !dir.path().join("artifacts").exists(),
        "a run folder was created"
    );
}

#[test]
fn semantic_error_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.json"),
        "{ \"name\": \"s\",\n  \"machine\": { \"kernel\": \"missing-vmlinuz\" },\n  \"tests\": [{\"name\": \"t\", \"steps\": []}] }\n",
    )
    .unwrap();
    let out = bootrig(&["run", "s.json"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(
        t.contains("s.json:2:") && t.contains("missing-vmlinuz") && t.contains("does not exist"),
        "{t}"
    );
}

#[test]
fn list_and_filter_do_not_boot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"name": "a", "machine": {"image": "debian"}, "tests": [
            {"name": "one", "steps": [{"expect": "x"}]}, {"name": "two", "steps": [{"expect": "x"}]}]}"#,
    )
    .unwrap();
    let out = bootrig(&["run", "--list", "--filter", "two", "."], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a::two\n");
}

#[test]
fn bad_usage_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(bootrig(&["run"], dir.path()).status.code(), Some(2));
    assert_eq!(bootrig(&["frobnicate"], dir.path()).status.code(), Some(2));
    assert_eq!(
        bootrig(&["run", "no-such-file.json"], dir.path())
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn the_shipped_scenarios_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let out = bootrig(
        &["run", "--list", root.to_str().unwrap()],
        &std::env::temp_dir(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("busybox-smoke::shell"), "{listed}");
    assert!(listed.contains("e2e-debian::systemd"), "{listed}");
}

#[test]
fn a_step_that_needs_a_shell_fails_before_anything_boots() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vmlinuz"), b"not booted").unwrap();
    std::fs::write(
        dir.path().join("s.json"),
        r#"{"name": "noshell", "machine": {"kernel": "vmlinuz"},
            "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"#,
    )
    .unwrap();
    let out = bootrig(&["run", "s.json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("needs a shell"), "{}", text(&out));
    let test_dir = dir.path().join("artifacts/latest/noshell.t");
    assert!(test_dir.join("metadata.json").is_file());
    assert!(
        !test_dir.join("qemu-cmdline.txt").exists(),
        "a VM was started"
    );
}

#[test]
fn a_filter_that_matches_nothing_is_an_error_and_leaves_no_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"name": "a", "machine": {"image": "debian"}, "tests": [
            {"name": "one", "steps": [{"expect": "x"}]}]}"#,
    )
    .unwrap();
    let out = bootrig(&["run", "--filter", "nope", "a.json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("no test matches the filter \"nope\""), "{t}");
    assert!(
        !dir.path().join("artifacts").exists(),
        "a run folder (or latest) was created"
    );
}

#[test]
fn the_run_prints_typed_lines_and_totals_and_writes_junit() {
    // A test that fails before booting (no shell): the whole CLI path runs
    // without a VM.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vmlinuz"), b"not booted").unwrap();
    std::fs::write(
        dir.path().join("s.json"),
        r#"{"name": "noshell", "machine": {"kernel": "vmlinuz"},
            "tests": [{"name": "t", "steps": [{"succeed": "true"}]},
                      {"name": "x", "xfail": "no shell here", "steps": [{"succeed": "true"}]}]}"#,
    )
    .unwrap();
    let out = bootrig(
        &["run", "-j", "2", "--junit", "junit.xml", "s.json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("bootrig: running 2 test(s); artifacts in "),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("FAIL  noshell::t (")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("XFAIL noshell::x (")),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        // A scenario that cannot work here is bootrig's failure (harness
        // error), not the test's: counted as infra, a JUnit <error>.
        last.starts_with(
            "bootrig: 0 passed, 1 failed (1 infra), 0 skipped, 1 xfail, 0 xpass; artifacts in "
        ),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(
        xml.contains(r#"tests="2""#)
            && xml.contains(r#"errors="1""#)
            && xml.contains(r#"failures="0""#),
        "{xml}"
    );
    assert!(xml.contains("needs a shell"), "{xml}");
    assert!(!xml.contains(r#"message="====="#), "{xml}");
    let run =
        bootrig_diagnostics::run::RunSummary::load(&dir.path().join("artifacts/latest/run.json"))
            .unwrap();
    assert_eq!(run.tests.len(), 2);
    assert!(run.ended_at.is_some());
}

#[test]
fn bad_shares_and_forwards_are_exit_2_before_booting() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |machine: &str| {
        format!(
            "{{ \"name\": \"s\",\n  \"machine\": {{ \"image\": \"busybox\",\n    {machine} }},\n  \"tests\": [{{\"name\": \"t\", \"steps\": [{{\"reboot\": true}}]}}] }}\n"
        )
    };
    for (machine, says) in [
        (
            r#""shares": [{"host": "no-such-folder", "guest": "/mnt/x"}]"#,
            "shares[0].host: ",
        ),
        (
            r#""shares": [{"host": ".", "guest": "relative"}]"#,
            "is not an absolute guest path",
        ),
        (
            r#""forwards": [{"guest": 80}, {"guest": 80}]"#,
            "guest port 80 is forwarded twice",
        ),
    ] {
        std::fs::write(dir.path().join("s.json"), scenario(machine)).unwrap();
        let out = bootrig(&["run", "s.json"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{machine}: {}", text(&out));
        let t = text(&out);
        assert!(
            t.contains("s.json:3:") && t.contains(says),
            "{machine}: {t}"
        );
        assert!(
            !dir.path().join("artifacts").exists(),
            "a run folder was created"
        );
    }
}

/// A minimal bzImage: the setup header's magic and version string.
fn fake_bzimage(version: &str) -> Vec<u8> {
    let mut b = vec![0u8; 0x400];
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    b[0x300..0x300 + version.len()].copy_from_slice(version.as_bytes());
    b
}

#[test]
fn a_bad_kernel_or_modules_folder_is_refused_before_anything_boots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("s.json"),
        r#"{"name": "s", "machine": {"image": "busybox"}, "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"#,
    )
    .unwrap();
    std::fs::create_dir(d.join("kdir")).unwrap();
    std::fs::write(
        d.join("bzImage"),
        fake_bzimage("6.12.9-test (me@host) #1 SMP"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("staging/lib/modules/6.1.0-9-amd64/kernel")).unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--kernel", "kdir"], &["--kernel: kdir is a directory"]),
        (&["--kernel", "nope"], &["--kernel: nope does not exist"]),
        (
            &["--kernel", "bzImage", "--modules", "staging"],
            &[
                "--modules: staging",
                "6.1.0-9-amd64",
                "bzImage is 6.12.9-test",
            ],
        ),
        (
            &[
                "--kernel",
                "bzImage",
                "--modules",
                "staging/lib/modules/6.1.0-9-amd64",
            ],
            &["6.1.0-9-amd64", "6.12.9-test"],
        ),
        (&["--modules", "staging"], &["--kernel"]),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.push("s.json");
        let out = bootrig(&args, d);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {t}");
        for e in *expected {
            assert!(t.contains(e), "{flags:?}: {e:?} not in {t}");
        }
        assert!(
            !d.join("artifacts").exists(),
            "{flags:?}: a run folder was created"
        );
    }
    // BOOTRIG_KERNEL is checked the same way, and named.
    let out = bootrig_tests::run_bootrig(&["run", "s.json"], d, &[("BOOTRIG_KERNEL", "kdir")]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("BOOTRIG_KERNEL") && t.contains("kdir is a directory"),
        "{t}"
    );
    // bootrig fstests takes the same flags.
    let out = bootrig(&["fstests", "--help"], d);
    let t = text(&out);
    assert!(
        t.contains("--kernel") && t.contains("--modules") && t.contains("--append"),
        "{t}"
    );
}

fn marked_scenarios(dir: &Path) {
    std::fs::write(
        dir.join("m.json"),
        r#"{"name": "m", "marks": ["busybox"], "machine": {"image": "busybox"}, "tests": [
            {"name": "fast", "marks": ["net"], "steps": [{"succeed": "true"}]},
            {"name": "slow", "marks": ["net", "slow"], "steps": [{"succeed": "true"}]},
            {"name": "local", "steps": [{"succeed": "true"}]}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("n.json"),
        r#"{"name": "n", "machine": {"image": "debian"}, "tests": [
            {"name": "smoke", "marks": ["smoke"], "steps": [{"succeed": "true"}]},
            {"name": "known", "xfail": "bug 1", "steps": [{"succeed": "true"}]}]}"#,
    )
    .unwrap();
}

#[test]
fn marker_selection_in_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    marked_scenarios(dir.path());
    let list = |expr: &str| {
        let out = bootrig(&["run", "--list", "-m", expr, "."], dir.path());
        assert_eq!(out.status.code(), Some(0), "{expr}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(list("net and not slow"), "m::fast\n");
    assert_eq!(list("busybox and not net"), "m::local\n");
    assert_eq!(list("smoke or xfail"), "n::smoke\nn::known\n");
    assert_eq!(list("not (busybox or smoke)"), "n::known\n");
    // The long form, with the filter.
    let out = bootrig(
        &["run", "--list", "--marks", "net", "--filter", "slow", "."],
        dir.path(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "m::slow\n");
}

#[test]
fn marker_errors_are_exit_2_with_the_position() {
    let dir = tempfile::tempdir().unwrap();
    marked_scenarios(dir.path());
    let out = bootrig(
        &["run", "--list", "-m", "net and (slow or", "."],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("column 17") && t.contains("expected a marker name"),
        "{t}"
    );
    // An unknown marker: a warning (pytest's default), and nothing
    // matches it; with --strict-markers an error.
    let out = bootrig(&["run", "--list", "-m", "not nett", "."], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("warning: no test carries the marker(s) nett"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
    let out = bootrig(
        &["run", "--list", "--strict-markers", "-m", "not nett", "."],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("unknown marker(s) nett"),
        "{}",
        text(&out)
    );
    // Selecting nothing runs nothing (and says so).
    let out = bootrig(&["run", "-m", "nett", "."], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no test matches -m"), "{}", text(&out));
    assert!(!dir.path().join("artifacts").exists());
    // A marker name in a scenario is checked where it is written.
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"name\": \"b\", \"machine\": {\"image\": \"busybox\"}, \"tests\": [\n  {\"name\": \"t\", \"marks\": [\"not ok\"], \"steps\": []}]}",
    )
    .unwrap();
    let out = bootrig(&["run", "--list", "bad.json"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("bad.json:2:") && t.contains("invalid marker name \"not ok\""),
        "{t}"
    );
}
