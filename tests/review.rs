//! `bootrig report`, `compare` and `history` on run folders built with
//! `bootrig_diagnostics` (TestDir, metadata phases, artifacts, run.json):
//! no VM boots here. The end-to-end checks on real runs and in Chromium
//! are in `review_e2e.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bootrig_diagnostics::catalog::Producer;
use bootrig_diagnostics::crash::CrashReport;
use bootrig_diagnostics::metadata::{BootRole, BootSource, Failure, FailureKind, Outcome, Phase};
use bootrig_diagnostics::run::RunSummary;
use bootrig_diagnostics::TestDir;
use bootrig_tests::bootrig_bin;
use chrono::{DateTime, TimeZone, Utc};

/// One test to put in a generated run.
struct Spec {
    name: &'static str,
    outcome: Outcome,
    failure: Option<Failure>,
    /// Boot phase durations: qemu start, firmware, kernel, userspace (ms).
    boot: Option<[u64; 4]>,
    serial: &'static [u8],
}

fn spec(name: &'static str, outcome: Outcome) -> Spec {
    Spec {
        name,
        outcome,
        failure: None,
        boot: Some([100, 700, 2000, 400]),
        serial: b"\x1b[1;32mbusybox\x1b[0m:/# true\r\n",
    }
}

/// Writes a run folder `root/id` holding `tests`, as the harness would.
fn make_run(root: &Path, id: &str, started: DateTime<Utc>, tests: Vec<Spec>) -> PathBuf {
    let run = root.join(id);
    std::fs::create_dir_all(&run).unwrap();
    for (k, s) in tests.into_iter().enumerate() {
        let t0 = started + chrono::Duration::seconds(k as i64 * 10);
        let mut t = TestDir::create(&run, s.name, t0).unwrap();
        let ms = Duration::from_millis;
        if let Some([q, f, kern, u]) = s.boot {
            let m = t.metadata_mut();
            m.phase_start("image busybox", ms(0));
            m.phase_end("image busybox", ms(1));
            m.phase_start(Phase::QEMU_START, ms(10));
            m.phase_end(Phase::QEMU_START, ms(10 + q));
            m.phase_start(Phase::FIRMWARE, ms(10 + q));
            m.phase_end(Phase::FIRMWARE, ms(10 + q + f));
            m.phase_start(Phase::KERNEL, ms(10 + q + f));
            m.phase_end(Phase::KERNEL, ms(10 + q + f + kern));
            let u0 = 10 + q + f + kern;
            m.phase_start(Phase::USERSPACE, ms(u0));
            m.phase_end(Phase::USERSPACE, ms(u0 + u));
            m.phase_start(Phase::SHELL_READY, ms(u0 + u));
            m.phase_end(Phase::SHELL_READY, ms(u0 + u));
            m.phase_start("step 1: succeed: true", ms(u0 + u + 5));
            m.phase_end("step 1: succeed: true", ms(u0 + u + 50));
            if let Some(step) = s.failure.as_ref().and_then(|f| f.step.as_ref()) {
                let name = Phase::step_name(step.index, &step.description);
                m.phase_start(name.clone(), ms(u0 + u + 60));
                m.phase_end(&name, ms(u0 + u + 100));
            }
            m.boot_sources.push(BootSource {
                role: BootRole::Kernel,
                path: "/cache/busybox/vmlinuz".into(),
                size: 3,
                sha256: "ab".repeat(32),
            });
        }
        t.write_artifact(
            "serial.log",
            "serial.log",
            s.serial,
            Producer::console("raw serial console bytes"),
            None,
            None,
        )
        .unwrap();
        t.write_artifact(
            "dmesg-tail",
            "diagnostics/dmesg-tail.txt",
            b"[    1.0] virtio_blk virtio1: [vda] 131072 512-byte logical blocks\n[    2.0] last kernel line\n",
            Producer::command("dmesg | tail -n 200"),
            Some(0),
            Some(Duration::from_millis(30)),
        )
        .unwrap();
        t.finish(s.outcome, s.failure, t0 + chrono::Duration::seconds(5))
            .unwrap();
        t.update_run_summary(&run, id).unwrap();
    }
    RunSummary::mark_ended(&run, started + chrono::Duration::seconds(60)).unwrap();
    run
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).unwrap()
}

fn bootrig(args: &[&str], cwd: &Path) -> Output {
    bootrig_tests::run_bootrig(args, cwd, &[])
}

fn text(o: &Output) -> String {
    bootrig_tests::output_text(o)
}

/// A run with a pass, a command failure, a kernel crash, a skip, and a
/// test whose console prints a `<script>`.
fn mixed_run(root: &Path) -> PathBuf {
    let crash = CrashReport {
        title: "kernel panic: sysrq triggered crash".into(),
        excerpt:
            "[    2.691109] Kernel panic - not syncing: sysrq triggered crash\n[    2.69] CPU: 0"
                .into(),
        fatal: true,
    };
    make_run(
        root,
        "20261129-020000-1",
        t0(),
        vec![
            spec("smoke::passes", Outcome::Passed),
            Spec {
                failure: Some(
                    Failure::new(FailureKind::Command, "command `false` exited 1, expected 0")
                        .with_step(1, "succeed: false"),
                ),
                serial: b"boot line\r\n\x1b[1;32mbusybox\x1b[0m:/# true\r\n\x1b[1;32mbusybox\x1b[0m:/# false\r\n\x1b[31mafter\x1b[0m\r\n",
                ..spec("smoke::command-fails", Outcome::Failed)
            },
            Spec {
                failure: Some(
                    Failure::new(FailureKind::KernelCrash, "kernel crash: kernel panic: sysrq triggered crash")
                        .with_step(0, "succeed: echo c > /proc/sysrq-trigger")
                        .with_crash(&crash),
                ),
                serial: b"busybox:/# echo c > /proc/sysrq-trigger\r\n[    2.689636] sysrq: Trigger a crash\r\n[    2.691109] Kernel panic - not syncing: sysrq triggered crash\r\n[    2.69] CPU: 0\r\n",
                ..spec("smoke::crash", Outcome::Failed)
            },
            Spec {
                failure: None,
                boot: None,
                ..spec("smoke::skipped", Outcome::Skipped)
            },
            Spec {
                serial: b"busybox:/# echo '<script>document.title=\"pwned\"</script>'\r\n<script>document.title=\"pwned\"</script>\r\n",
                ..spec("smoke::script", Outcome::Passed)
            },
        ],
    )
}

#[test]
fn report_summarises_and_shows_each_failure_from_a_copied_folder() {
    let root = tempfile::tempdir().unwrap();
    let run = mixed_run(root.path());
    // A CI download: the folder lands somewhere else.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("downloaded-run");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&run)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(&run).unwrap();

    let out = bootrig(&["report", copy.to_str().unwrap()], elsewhere.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("2 passed, 2 failed, 1 skipped, 0 xfail, 0 xpass, 0 flaky (5 tests)"),
        "{t}"
    );
    assert!(t.contains("2 failure(s):"), "{t}");
    assert!(t.contains("==== FAIL smoke::command-fails ===="), "{t}");
    assert!(t.contains("kind: command"), "{t}");
    assert!(t.contains("failing step: step 2: succeed: false"), "{t}");
    // The console around the failure, the failing line marked, colours gone.
    assert!(t.contains(" >     3 | busybox:/# false"), "{t}");
    assert!(t.contains("       4 | after"), "{t}");
    assert!(!t.contains('\u{1b}'), "{t}");
    // The crash points at the panic line, not the command.
    assert!(t.contains("kind: kernel-crash"), "{t}");
    assert!(
        t.contains(" >     3 | [    2.691109] Kernel panic - not syncing"),
        "{t}"
    );
    // Key diagnostics and artifact paths relative to the run folder.
    assert!(
        t.contains("-- dmesg-tail [smoke.command-fails/diagnostics/dmesg-tail.txt]"),
        "{t}"
    );
    assert!(t.contains("     [    2.0] last kernel line"), "{t}");
    assert!(t.contains("  smoke.crash/serial.log ("), "{t}");
    assert!(
        !t.contains(&run.display().to_string()),
        "old location leaked: {t}"
    );
}

#[test]
fn html_report_is_self_contained_and_escapes_guest_text() {
    let root = tempfile::tempdir().unwrap();
    let run = mixed_run(root.path());
    let page = root.path().join("report.html");
    let out = bootrig(
        &[
            "report",
            run.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
        ],
        root.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let h = std::fs::read_to_string(&page).unwrap();
    assert!(h.starts_with("<!DOCTYPE html>"));
    // No script, no external asset: the only URL is the SVG namespace.
    assert!(
        !h.to_lowercase().contains("<script"),
        "a script tag in the page"
    );
    let urls: Vec<&str> = h
        .match_indices("http")
        .map(|(i, _)| &h[i..i + 26])
        .collect();
    assert!(
        urls.iter()
            .all(|u| u.starts_with("http://www.w3.org/2000/svg")),
        "{urls:?}"
    );
    assert!(!h.contains("src=\"http") && !h.contains("href=\"http"));
    assert!(h.contains("&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;"));
    // Summary, a timeline per booted test, colours as spans.
    assert!(h.contains("<table class=\"summary\">"));
    assert_eq!(h.matches("<svg class=\"timeline\"").count(), 5);
    assert!(h.contains("<span style=\"color:#0dbc79;font-weight:bold;\">busybox</span>"));
    // The failure line is highlighted and linked.
    let fail_line = h
        .find("class=\"line fail\" id=\"t1-L3\"")
        .expect("highlighted failure line");
    assert!(h[fail_line..]
        .starts_with("class=\"line fail\" id=\"t1-L3\"><a class=\"ln\" href=\"#t1-L3\">3</a>"));
    assert!(h.contains("<a class=\"failure-link\" href=\"#t1-L3\">line 3</a>"));
    assert!(h.contains("<a class=\"failure-link\" href=\"#t2-L3\">line 3</a>"));
    // The failed step is red in its timeline; diagnostics are collapsible.
    assert!(h.contains("<g class=\"phase failed\"><title>step 2: succeed: false: 40 ms"));
    assert!(h.contains("<details class=\"artifact\"><summary>dmesg-tail"));
    assert!(h.contains("sha256 <code>abababab"));
}

#[test]
fn verify_detects_a_modified_and_a_deleted_artifact() {
    let root = tempfile::tempdir().unwrap();
    let run = mixed_run(root.path());
    let arg = run.to_str().unwrap();
    let out = bootrig(&["report", "--verify", arg], root.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("verify: 10 artifact(s) checked, 0 problem(s)"),
        "{t}"
    );

    std::fs::write(run.join("smoke.passes/serial.log"), b"tampered\n").unwrap();
    std::fs::remove_file(run.join("smoke.crash/diagnostics/dmesg-tail.txt")).unwrap();
    let out = bootrig(&["report", "--verify", arg], root.path());
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "smoke::passes: serial.log [smoke.passes/serial.log]: MODIFIED: catalog sha256 "
        ),
        "{t}"
    );
    assert!(
        t.contains("smoke::crash: dmesg-tail [smoke.crash/diagnostics/dmesg-tail.txt]: MISSING"),
        "{t}"
    );
    assert!(
        t.contains("verify: 10 artifact(s) checked, 2 problem(s)"),
        "{t}"
    );
}

#[test]
fn not_a_run_folder_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let out = bootrig(&["report", "."], root.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("not a bootrig run folder"),
        "{}",
        text(&out)
    );
    // Without RUN: the last run under BOOTRIG_ARTIFACTS.
    let out = Command::new(bootrig_bin())
        .arg("report")
        .current_dir(root.path())
        .env("BOOTRIG_ARTIFACTS", root.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("none/latest"), "{}", text(&out));
    let out = bootrig(&["report", "missing"], root.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("missing"), "{}", text(&out));
    let out = bootrig(&["compare", "a", "b", "--threshold", "ten"], root.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("\"ten\" is not a percentage"),
        "{}",
        text(&out)
    );
}

/// Old and new runs: `a` regresses, `c` is fixed, `b` is skipped now, `d`
/// is removed, `e` added; the kernel phase is 50 % slower.
fn two_runs(root: &Path, kernel_new: u64) -> (PathBuf, PathBuf) {
    let with_kernel = |mut s: Spec, k: u64| {
        s.boot = Some([100, 700, k, 400]);
        s
    };
    let fails = |s: Spec| Spec {
        failure: Some(Failure::new(FailureKind::Command, "exit 1").with_step(0, "succeed: true")),
        ..s
    };
    let old = make_run(
        root,
        "old",
        t0(),
        vec![
            with_kernel(spec("s::a", Outcome::Passed), 2000),
            with_kernel(spec("s::b", Outcome::Passed), 2100),
            with_kernel(fails(spec("s::c", Outcome::Failed)), 1900),
            with_kernel(spec("s::d", Outcome::Passed), 2000),
        ],
    );
    let new = make_run(
        root,
        "new",
        t0() + chrono::Duration::days(1),
        vec![
            with_kernel(fails(spec("s::a", Outcome::Failed)), kernel_new),
            Spec {
                boot: None,
                ..spec("s::b", Outcome::Skipped)
            },
            with_kernel(spec("s::c", Outcome::Passed), kernel_new),
            with_kernel(spec("s::e", Outcome::Passed), kernel_new),
        ],
    );
    (old, new)
}

#[test]
fn compare_reports_test_changes_and_slower_phases() {
    let root = tempfile::tempdir().unwrap();
    let (old, new) = two_runs(root.path(), 3000);
    let (o, n) = (old.to_str().unwrap(), new.to_str().unwrap());
    let page = root.path().join("compare.html");
    let out = bootrig(
        &["compare", o, n, "--html", page.to_str().unwrap()],
        root.path(),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("regressions (new failures): 1\n  s::a: passed -> failed  (exit 1)"),
        "{t}"
    );
    assert!(t.contains("fixes: 1\n  s::c: failed -> passed"), "{t}");
    assert!(t.contains("new skips: 1\n  s::b: passed -> skipped"), "{t}");
    assert!(t.contains("added tests: 1\n  s::e: - -> passed"), "{t}");
    assert!(t.contains("removed tests: 1\n  s::d: passed -> -"), "{t}");
    let kernel = t.lines().find(|l| l.contains(" kernel ")).unwrap();
    assert!(
        kernel.contains("2000")
            && kernel.contains("3000")
            && kernel.contains("+50%")
            && kernel.ends_with("SLOWER"),
        "{kernel}"
    );
    let userspace = t.lines().find(|l| l.contains(" userspace ")).unwrap();
    assert!(!userspace.contains("SLOWER"), "{userspace}");
    assert!(
        t.contains("1 test regression(s), 2 slower phase(s): FAIL"),
        "{t}"
    );
    let h = std::fs::read_to_string(&page).unwrap();
    assert!(h.contains("<svg class=\"bars\""), "before/after bars");
    assert!(h.contains("<rect class=\"before\"") && h.contains("<rect class=\"after\""));
    assert!(h.contains(
        "<tr class=\"slower\"><td>kernel</td><td>2000 ms</td><td>3000 ms</td><td>+50%</td>"
    ));

    // What fails is configurable.
    let code = |extra: &[&str]| {
        let mut args = vec!["compare", o, n];
        args.extend_from_slice(extra);
        bootrig(&args, root.path()).status.code()
    };
    assert_eq!(code(&["--fail-on", "none"]), Some(0));
    assert_eq!(code(&["--fail-on", "timing"]), Some(1));
    assert_eq!(
        code(&["--fail-on", "timing", "--threshold", "60%"]),
        Some(0)
    );
    // Same speed: timing alone does not fail; tests still do.
    let root2 = tempfile::tempdir().unwrap();
    let (old, new) = two_runs(root2.path(), 2000);
    let (o, n) = (old.to_str().unwrap(), new.to_str().unwrap());
    assert_eq!(
        bootrig(&["compare", o, n, "--fail-on", "timing"], root.path())
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        bootrig(&["compare", o, n, "--fail-on", "tests"], root.path())
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn latest_passing_baseline_is_the_newest_green_run() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("nightly");
    let day = |d| t0() + chrono::Duration::days(d);
    make_run(&runs, "n1", day(0), vec![spec("s::a", Outcome::Passed)]);
    make_run(
        &runs,
        "n2",
        day(1),
        vec![
            spec("s::a", Outcome::Passed),
            spec("s::x", Outcome::Skipped),
        ],
    );
    let failing = Spec {
        failure: Some(Failure::new(FailureKind::Command, "exit 1")),
        ..spec("s::a", Outcome::Failed)
    };
    make_run(&runs, "n3", day(2), vec![failing]);
    let new = make_run(&runs, "n4", day(3), vec![spec("s::a", Outcome::Passed)]);
    std::os::unix::fs::symlink("n4", runs.join("latest")).unwrap();
    let out = bootrig(
        &[
            "compare",
            "--baseline",
            "latest-passing",
            runs.to_str().unwrap(),
            new.to_str().unwrap(),
        ],
        root.path(),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("bootrig compare: n2 -> n4"), "{t}");
    assert!(t.contains("baseline: n2"), "{t}");

    let only_failing = root.path().join("bad");
    make_run(
        &only_failing,
        "f1",
        day(0),
        vec![Spec {
            failure: Some(Failure::new(FailureKind::Command, "exit 1")),
            ..spec("s::a", Outcome::Failed)
        }],
    );
    let out = bootrig(
        &[
            "compare",
            "--baseline",
            "latest-passing",
            only_failing.to_str().unwrap(),
            new.to_str().unwrap(),
        ],
        root.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("none of its 1 run(s) passed every test"),
        "{}",
        text(&out)
    );
}

#[test]
fn history_shows_a_drift_in_a_table_and_a_trend_chart() {
    let root = tempfile::tempdir().unwrap();
    let runs = root.path().join("nightly");
    for (d, kernel) in [(0, 2000), (1, 2200), (2, 2600)] {
        let s = Spec {
            boot: Some([100, 700, kernel, 400]),
            ..spec("s::a", Outcome::Passed)
        };
        let s2 = Spec {
            boot: Some([100, 700, kernel + 100, 400]),
            ..spec("s::b", Outcome::Passed)
        };
        make_run(
            &runs,
            &format!("night-{d}"),
            t0() + chrono::Duration::days(d),
            vec![s, s2],
        );
    }
    let page = root.path().join("history.html");
    let out = bootrig(
        &[
            "history",
            runs.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
        ],
        root.path(),
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("bootrig history: 3 run(s)"), "{t}");
    assert!(t.contains("image busybox (median ms per run):"), "{t}");
    let rows: Vec<&str> = t
        .lines()
        .filter(|l| l.trim_start().starts_with("night-"))
        .collect();
    assert_eq!(rows.len(), 3, "{t}");
    // Kernel medians of each night, in order (2050, 2250, 2650).
    for (row, k) in rows.iter().zip(["2050", "2250", "2650"]) {
        assert!(row.split_whitespace().any(|c| c == k), "{row}");
    }
    let h = std::fs::read_to_string(&page).unwrap();
    assert!(h.contains("<svg class=\"trend\""));
    assert!(h.contains("<polyline class=\"series\""));
    assert!(h.contains("<title>kernel</title>"));
}

#[test]
fn run_last_failed_selects_the_last_runs_failures_without_booting() {
    let root = tempfile::tempdir().unwrap();
    let art = root.path().join("art");
    std::fs::write(
        root.path().join("s.json"),
        r#"{"name": "s", "machine": {"image": "debian"}, "tests": [
            {"name": "a", "steps": [{"expect": "x"}]}, {"name": "b", "steps": [{"expect": "x"}]},
            {"name": "c", "steps": [{"expect": "x"}]}]}"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--list", "--last-failed", "--artifacts", "art"];
        args.extend_from_slice(extra);
        args.push("s.json");
        let out = Command::new(bootrig_bin())
            .args(&args)
            .current_dir(root.path())
            .env_remove("BOOTRIG_ARTIFACTS")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            text(&out),
        )
    };
    // No earlier run: a clear error.
    let (code, _, t) = run(&[]);
    assert_eq!(code, Some(2), "{t}");
    assert!(t.contains("--last-failed: no earlier run in art"), "{t}");

    let fails = |name| Spec {
        failure: Some(Failure::new(FailureKind::Command, "exit 1")),
        ..spec(name, Outcome::Failed)
    };
    make_run(
        &art,
        "r1",
        t0(),
        vec![
            spec("s::a", Outcome::Passed),
            fails("s::b"),
            fails("s::gone"),
        ],
    );
    std::os::unix::fs::symlink("r1", art.join("latest")).unwrap();
    let (code, out, t) = run(&[]);
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(out, "s::b\n");

    // A last run without failures: everything.
    make_run(&art, "r2", t0(), vec![spec("s::b", Outcome::Passed)]);
    std::fs::remove_file(art.join("latest")).unwrap();
    std::os::unix::fs::symlink("r2", art.join("latest")).unwrap();
    let (code, out, t) = run(&[]);
    assert_eq!(code, Some(0), "{t}");
    assert_eq!(out, "s::a\ns::b\ns::c\n");
    assert!(
        t.contains("no test failed in the last run; running all"),
        "{t}"
    );
}

#[test]
fn a_test_that_passed_on_a_retry_is_flaky() {
    let root = tempfile::tempdir().unwrap();
    let run = make_run(
        root.path(),
        "r",
        t0(),
        vec![
            spec("s::steady", Outcome::Passed),
            spec("s::wobbly", Outcome::Passed),
        ],
    );
    // As the harness records it under nextest (`NEXTEST_ATTEMPT`).
    let path = run.join("s.wobbly/metadata.json");
    let mut m = bootrig_diagnostics::metadata::Metadata::load(&path).unwrap();
    m.extra.insert("attempt".into(), 2.into());
    m.save(&path).unwrap();
    let out = bootrig(&["report", run.to_str().unwrap()], root.path());
    let t = text(&out);
    assert!(
        t.contains("2 passed, 0 failed, 0 skipped, 0 xfail, 0 xpass, 1 flaky"),
        "{t}"
    );
    assert!(t.contains("PASS  s::wobbly (5.0s)  [flaky]"), "{t}");
    assert!(!t.contains("s::steady (5.0s)  [flaky]"), "{t}");
}
