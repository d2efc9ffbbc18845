//! The runner's rules, without VMs: xfail, unexpected passes, runtime skips
//! (and their CI=true strictness), parametrized names, panics, JUnit.

use std::path::Path;

use bootrig::{check_failed, Marks, Requirement, RunSettings, Suite};
use libtest_mimic::Arguments;

fn settings(dir: &Path, strict: bool) -> RunSettings {
    let mut s = RunSettings::from_env(dir.to_path_buf());
    s.run_dir = dir.join("run");
    s.strict_requirements = strict;
    s.progress = bootrig::progress::Progress::quiet();
    s
}

/// Single-threaded, with the inner suites' own output (which includes
/// deliberate failures) sent to a log file instead of this test's stdout.
fn args() -> Arguments {
    let log = std::env::temp_dir().join(format!("bootrig-runner-test-{}.log", std::process::id()));
    Arguments {
        test_threads: Some(1),
        quiet: true,
        logfile: Some(log.display().to_string()),
        ..Arguments::default()
    }
}

fn suite(dir: &Path, strict: bool) -> Suite {
    Suite::with_args(args())
        .with_settings(settings(dir, strict))
        .test("plain::passes", |_| Ok(()))
        .test("plain::fails", |_| check_failed!("deliberate failure"))
        .test_with("mark::xfail_fails", Marks::new().xfail("known bug"), |_| {
            check_failed!("known bug hit")
        })
        .test_with(
            "mark::xfail_passes",
            Marks::new().xfail("known bug"),
            |_| Ok(()),
        )
        .test_with(
            "mark::requires_missing_tool",
            Marks::new().requires(Requirement::Tool("bootrig-no-such-tool".into())),
            |_| check_failed!("must not run"),
        )
        .test("plain::panics", |_| panic!("boom"))
        .parametrize(
            "param::fs",
            ["ext4", "xfs"],
            Marks::new(),
            |ctx, fs: &&str| {
                if ctx.name().ends_with(fs) {
                    Ok(())
                } else {
                    check_failed!("{} does not end with {fs}", ctx.name())
                }
            },
        )
}

#[test]
fn outcomes_follow_the_markers() {
    let dir = tempfile::tempdir().unwrap();
    let (records, code) = suite(dir.path(), false).run_collect();
    let outcome = |name: &str| {
        records
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.outcome)
            .unwrap_or("missing")
    };
    assert_eq!(outcome("plain::passes"), "passed");
    assert_eq!(outcome("plain::fails"), "failed");
    assert_eq!(outcome("mark::xfail_fails"), "xfail");
    assert_eq!(outcome("mark::xfail_passes"), "xpass");
    assert_eq!(outcome("mark::requires_missing_tool"), "skipped");
    assert_eq!(outcome("plain::panics"), "failed");
    assert_eq!(outcome("param::fs::ext4"), "passed");
    assert_eq!(outcome("param::fs::xfs"), "passed");
    assert_ne!(code, std::process::ExitCode::SUCCESS);

    let rec = |name: &str| records.iter().find(|r| r.name == name).unwrap();
    assert!(rec("mark::requires_missing_tool")
        .message
        .as_deref()
        .unwrap()
        .contains("bootrig-no-such-tool"));
    assert!(rec("mark::xfail_passes")
        .message
        .as_deref()
        .unwrap()
        .contains("UNEXPECTED PASS"));
    assert!(rec("plain::panics")
        .message
        .as_deref()
        .unwrap()
        .contains("boom"));
    assert!(rec("plain::fails")
        .message
        .as_deref()
        .unwrap()
        .contains("deliberate failure"));
    // Every trial that ran has its metadata.json; the skipped one never
    // made a folder.
    let md = rec("mark::xfail_fails").artifacts.join("metadata.json");
    let md = bootrig_diagnostics::metadata::Metadata::load(&md).unwrap();
    assert_eq!(md.outcome, bootrig_diagnostics::metadata::Outcome::Xfail);
    let run_json = dir.path().join("run/run.json");
    assert!(run_json.is_file(), "run.json missing");
}

#[test]
fn missing_requirements_fail_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let (records, _) = suite(dir.path(), true).run_collect();
    let r = records
        .iter()
        .find(|r| r.name == "mark::requires_missing_tool")
        .unwrap();
    assert_eq!(r.outcome, "failed");
    assert!(r.message.as_deref().unwrap().contains("CI=true"));
}

#[test]
fn parametrized_names_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let names = suite(dir.path(), false).names();
    assert!(names.contains(&"param::fs::ext4".to_string()));
    assert!(names.contains(&"param::fs::xfs".to_string()));
    // The standard positional filter selects by name.
    let mut a = args();
    a.filter = Some("param::fs".into());
    let (records, code) = Suite::with_args(a)
        .with_settings(settings(dir.path(), false))
        .parametrize("param::fs", ["ext4", "xfs"], Marks::new(), |_, _: &&str| {
            Ok(())
        })
        .test("other", |_| check_failed!("filtered out, never runs"))
        .run_collect();
    assert_eq!(records.len(), 2);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
}

#[test]
fn slow_tests_are_ignored_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let build = |a| {
        Suite::with_args(a)
            .with_settings(settings(dir.path(), false))
            .test_with("slow::one", Marks::new().slow(), |_| Ok(()))
    };
    let (records, _) = build(args()).run_collect();
    assert!(
        records.is_empty(),
        "a slow test ran without --include-ignored"
    );
    let mut a = args();
    a.include_ignored = true;
    let (records, _) = build(a).run_collect();
    assert_eq!(records.len(), 1);
}
