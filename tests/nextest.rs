//! bootrig's runner under cargo-nextest: listing boots nothing, and a
//! partitioned run (how nightly jobs shard over machines) splits the
//! trials into disjoint sets that together are the whole suite.
//!
//! Skipped with a message when cargo-nextest is not installed (under
//! `CI=true` it fails instead).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

fn nextest_available() -> bool {
    let ok = Command::new(env!("CARGO"))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cargo-nextest is required under CI=true"
        );
        eprintln!("skipped: cargo-nextest is not installed");
    }
    ok
}

fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn nextest(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO"))
        .arg("nextest")
        .args(args)
        .current_dir(workspace())
        // The e2e target must not boot anything here: an image
        // cache that cannot be created makes any build or boot fail loudly.
        .env("BOOTRIG_CACHE", "/proc/bootrig-must-not-build-images")
        .output()
        .expect("running cargo nextest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `cargo nextest <verb> -p bootrig-tests --test vm <extra...>`.
fn nextest_vm(verb: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec![verb, "-p", "bootrig-tests", "--test", "vm"];
    args.extend_from_slice(extra);
    nextest(&args)
}

/// `cargo nextest run -p bootrig-tests --test vm -E FILTER EXTRA...` with
/// `env`, booting nothing (an image cache that cannot be created makes
/// any image build fail loudly); returns whether it passed and its output.
fn nextest_vm_filtered(
    filter: &str,
    extra: &[&str],
    env: &[(&str, &std::path::Path)],
) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["nextest", "run", "-p", "bootrig-tests", "--test", "vm"])
        .args(extra)
        .args(["-E", filter])
        .current_dir(workspace())
        .env("BOOTRIG_CACHE", "/proc/bootrig-must-not-build-images");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running cargo nextest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn listed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("bootrig-tests::vm "))
        .map(str::to_string)
        .collect()
}

#[test]
fn nextest_lists_vm_trials_without_booting() {
    if !nextest_available() {
        return;
    }
    let started = Instant::now();
    let (ok, text) = nextest_vm("list", &[]);
    assert!(ok, "{text}");
    let names = listed(&text);
    for expected in [
        "e2e-busybox::console-and-commands",
        "boot::iso::bios",
        "boot::iso::uefi",
        "session::debian::login_sudo_units",
    ] {
        assert!(names.contains(expected), "{expected} not listed:\n{text}");
    }
    // Listing builds nothing and boots nothing: no image build lines.
    assert!(!text.contains("building image"), "{text}");
    eprintln!("nextest list took {:?}", started.elapsed());
}

#[test]
fn partitions_are_disjoint_and_complete() {
    if !nextest_available() {
        return;
    }
    let (_, all) = nextest_vm("list", &[]);
    let all = listed(&all);
    let mut seen = BTreeSet::new();
    for k in 1..=3 {
        let part = format!("hash:{k}/3");
        let (ok, text) = nextest_vm("list", &["--partition", &part]);
        assert!(ok, "{text}");
        let names = listed(&text);
        assert!(
            seen.is_disjoint(&names),
            "partition {part} overlaps: {names:?}"
        );
        seen.extend(names);
    }
    assert_eq!(seen, all);
    // And a partitioned *run*: the runner's own non-VM trial, in whichever
    // partition it falls, passes under nextest.
    let mut ran = 0;
    for k in 1..=3 {
        let part = format!("hash:{k}/3");
        let (ok, text) = nextest_vm(
            "run",
            &[
                "--partition",
                &part,
                "--no-tests=pass",
                "-E",
                "test(=runner::xfail_expected_failure_passes)",
            ],
        );
        assert!(ok, "partition {part} failed:\n{text}");
        ran += text.matches("PASS [").count();
    }
    assert_eq!(
        ran, 1,
        "the xfail trial should run exactly once over all partitions"
    );
}

/// `BOOTRIG_JUNIT` under nextest (one process per test) holds every test
/// of the run, not only the last process's.
#[test]
fn bootrig_junit_under_nextest_holds_every_test() {
    if !nextest_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let artifacts = dir.path().join("artifacts");
    // Two trials that boot no guest: one never starts QEMU, the other
    // makes QEMU reject its command line.
    let (ok, text) = nextest_vm_filtered(
        "test(=runner::xfail_expected_failure_passes) | test(=machine::qemu_start_failure_is_clear)",
        &[],
        &[("BOOTRIG_ARTIFACTS", &artifacts), ("BOOTRIG_JUNIT", &junit)],
    );
    assert!(ok, "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="2""#), "{xml}");
    assert!(
        xml.contains(r#"name="xfail_expected_failure_passes""#)
            && xml.contains(r#"name="qemu_start_failure_is_clear""#),
        "{xml}"
    );
}

/// Under retries (the nightly profile's `retries = 1`) a test that failed
/// and then passed keeps both folders: the failed attempt's postmortem is
/// the evidence for a flaky test, and `run.json` says `flaky`.
#[test]
fn a_retried_test_keeps_every_attempt_and_is_flaky() {
    if !nextest_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts");
    let probe = dir.path().join("probe");
    let (ok, text) = nextest_vm_filtered(
        "test(=runner::flaky_on_first_attempt)",
        &["--retries", "1"],
        &[
            ("BOOTRIG_ARTIFACTS", &artifacts),
            ("BOOTRIG_FLAKY_PROBE", &probe),
        ],
    );
    assert!(ok, "{text}");
    let run = std::fs::canonicalize(artifacts.join("latest")).unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let tests = summary["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 1, "{summary:#}");
    let t = &tests[0];
    assert_eq!(t["outcome"], "passed", "{t:#}");
    assert_eq!(t["flaky"], true, "{t:#}");
    let attempts = t["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{t:#}");
    assert_eq!(attempts[0]["outcome"], "failed", "{t:#}");
    // The failed attempt's folder is whole: its metadata says why.
    let earlier = run.join(attempts[0]["folder"].as_str().unwrap());
    let md: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(earlier.join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(md["outcome"], "failed");
    let message = md["failure"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("first attempt fails on purpose"), "{md:#}");
    // `bootrig report` counts it as flaky.
    let report = Command::new(bootrig_tests::bootrig_bin())
        .arg("report")
        .arg(&run)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(report.contains("1 flaky"), "{report}");
}
