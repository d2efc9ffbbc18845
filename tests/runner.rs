//! The runner's rules, without VMs: xfail, unexpected passes, runtime skips
//! (and their CI=true strictness), parametrized names, panics, the run's
//! events and totals, JUnit.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bootrig::events::Event;
use bootrig::{check_failed, Events, Marks, Reporter, Requirement, RunSettings, Suite};
use bootrig_diagnostics::metadata::Outcome;
use bootrig_diagnostics::results::Totals;
use libtest_mimic::Arguments;

fn settings(dir: &Path, strict: bool) -> RunSettings {
    let mut s = RunSettings::from_env(dir.to_path_buf());
    s.run_dir = dir.join("run");
    s.strict_requirements = strict;
    s.events = bootrig::events::Events::discard();
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
            .find(|r| r.name() == name)
            .map(|r| r.outcome())
    };
    assert_eq!(outcome("plain::passes"), Some(Outcome::Passed));
    assert_eq!(outcome("plain::fails"), Some(Outcome::Failed));
    assert_eq!(outcome("mark::xfail_fails"), Some(Outcome::Xfail));
    assert_eq!(outcome("mark::xfail_passes"), Some(Outcome::Xpass));
    assert_eq!(
        outcome("mark::requires_missing_tool"),
        Some(Outcome::Skipped)
    );
    assert_eq!(outcome("plain::panics"), Some(Outcome::Failed));
    assert_eq!(outcome("param::fs::ext4"), Some(Outcome::Passed));
    assert_eq!(outcome("param::fs::xfs"), Some(Outcome::Passed));
    assert_ne!(code, std::process::ExitCode::SUCCESS);

    let rec = |name: &str| records.iter().find(|r| r.name() == name).unwrap();
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
    let panicked = rec("plain::panics").message.as_deref().unwrap();
    assert!(panicked.contains("boom"), "{panicked}");
    // A panic in the test's own code is the test's failure, with where.
    assert!(panicked.contains("(at tests/runner.rs:"), "{panicked}");
    assert_eq!(
        rec("plain::panics").entry.failure_kind,
        Some(bootrig::FailureKind::Check)
    );
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
        .find(|r| r.name() == "mark::requires_missing_tool")
        .unwrap();
    assert_eq!(r.outcome(), Outcome::Failed);
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

/// Keeps every event it is sent.
#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl Reporter for Recorder {
    fn report(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[test]
fn a_reporter_sees_the_run_in_order_with_typed_totals() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let mut s = settings(dir.path(), false);
    s.events = Events::new(recorder.clone());
    let (records, _) = suite(dir.path(), false).with_settings(s).run_collect();
    let events = recorder.0.lock().unwrap();
    // RunStarted, then each test's TestStarted and TestFinished (one
    // test at a time here), then RunFinished.
    assert!(
        matches!(&events[0], Event::RunStarted { tests: 8, .. }),
        "{:?}",
        events[0]
    );
    let per_test = &events[1..events.len() - 1];
    assert_eq!(per_test.len(), 2 * records.len(), "{per_test:#?}");
    for pair in per_test.chunks(2) {
        match pair {
            [Event::TestStarted { test }, Event::TestFinished { record }] => {
                assert_eq!(test, record.name())
            }
            other => panic!("out of order: {other:#?}"),
        }
    }
    let Some(Event::RunFinished { totals, .. }) = events.last() else {
        panic!("no RunFinished last: {:?}", events.last());
    };
    assert_eq!(
        *totals,
        Totals {
            passed: 3,
            failed: 2,
            skipped: 1,
            xfail: 1,
            xpass: 1,
            running: 0,
            infra: 0
        }
    );
    assert!(totals.failed_any());
    assert_eq!(
        totals.to_string(),
        "3 passed, 2 failed, 1 skipped, 1 xfail, 1 xpass"
    );
    // The requirement skip has no folder; the xfail says why it failed.
    let finished = |name: &str| {
        events
            .iter()
            .find_map(|e| match e {
                Event::TestFinished { record } if record.name() == name => Some(record.clone()),
                _ => None,
            })
            .unwrap()
    };
    let skipped = finished("mark::requires_missing_tool");
    assert!(skipped.artifacts.as_os_str().is_empty());
    assert!(skipped.headline().unwrap().contains("bootrig-no-such-tool"));
    let xfail = finished("mark::xfail_fails");
    assert_eq!(xfail.headline(), Some("check failed: known bug hit"));
    let failed = finished("plain::fails");
    assert_eq!(failed.headline(), Some("check failed: deliberate failure"));
}

#[test]
fn junit_of_a_run_split_over_processes_holds_every_test() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit/report.xml");
    // Two "processes" of one nextest run: same run folder, one test each.
    for name in ["split::one", "split::two"] {
        let (records, _) = Suite::with_args(args())
            .with_settings(settings(dir.path(), false))
            .junit(&junit)
            .test(name, |_| Ok(()))
            .run_collect();
        assert_eq!(records.len(), 1);
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="2""#), "{xml}");
    assert!(
        xml.contains(r#"name="one""#) && xml.contains(r#"name="two""#),
        "{xml}"
    );
}

#[test]
fn junit_failure_message_is_the_one_line_failure() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    Suite::with_args(args())
        .with_settings(settings(dir.path(), false))
        .junit(&junit)
        .test("plain::fails", |_| check_failed!("deliberate failure"))
        .run_collect();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"message="check failed: deliberate failure""#),
        "{xml}"
    );
    assert!(!xml.contains(r#"message="====="#), "{xml}");
}

#[test]
fn xfail_trials_are_marked_in_the_test_output() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("out.log");
    let mut a = args();
    a.logfile = Some(log.display().to_string());
    a.quiet = false;
    Suite::with_args(a)
        .with_settings(settings(dir.path(), false))
        .test_with("mark::xfail_fails", Marks::new().xfail("known bug"), |_| {
            check_failed!("known bug hit")
        })
        .run_collect();
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(out.contains("[xfail] mark::xfail_fails"), "{out}");
    // Listing keeps the plain name (nextest runs tests by it).
    let mut a = args();
    a.list = true;
    let names = Suite::with_args(a)
        .test_with("mark::x", Marks::new().xfail("known bug"), |_| Ok(()))
        .names();
    assert_eq!(names, ["mark::x"]);
}

/// What a new user writes first: `check!(cond)` without a message, and `?`
/// on a host I/O error inside a Rust test.
#[test]
fn check_without_message_and_io_errors_fail_the_test_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file");
    let (records, _) = Suite::with_args(args())
        .with_settings(settings(dir.path(), false))
        .test("newcomer::check", |_| {
            let answer = 6 * 7;
            bootrig::check!(answer == 41);
            Ok(())
        })
        .test("newcomer::io", move |_| {
            std::fs::read(&missing)?;
            Ok(())
        })
        .run_collect();
    let find = |name: &str| records.iter().find(|r| r.name() == name).unwrap();
    let check = find("newcomer::check");
    assert_eq!(check.outcome(), Outcome::Failed);
    let msg = check.message.as_deref().unwrap_or("");
    assert!(msg.contains("`answer == 41` is false"), "{msg}");
    let io = find("newcomer::io");
    assert_eq!(io.outcome(), Outcome::Failed);
    let msg = io.message.as_deref().unwrap_or("");
    assert!(
        msg.contains("host I/O") && msg.contains("No such file"),
        "{msg}"
    );
}

/// The test's final `metadata.json` cannot be written (here its place is
/// taken by a folder): a test that passed fails as `host-resources`, its
/// record says why, `run.json` has it failed, and the run fails (101).
#[test]
fn an_unwritable_final_metadata_fails_the_test_as_host_resources() {
    let dir = tempfile::tempdir().unwrap();
    let (records, code) = Suite::with_args(args())
        .with_settings(settings(dir.path(), false))
        .test("records::lost", |ctx| {
            let md = ctx.artifacts_dir().join("metadata.json");
            std::fs::remove_file(&md)?;
            std::fs::create_dir_all(md.join("in-the-way"))?;
            Ok(())
        })
        .test("records::kept", |_| Ok(()))
        .run_collect();
    assert_eq!(code, std::process::ExitCode::from(101));
    let find = |name: &str| records.iter().find(|r| r.name() == name).unwrap();
    let lost = find("records::lost");
    assert_eq!(lost.outcome(), Outcome::Failed);
    assert_eq!(
        lost.entry.failure_kind,
        Some(bootrig_diagnostics::metadata::FailureKind::HostResources)
    );
    let msg = lost.message.as_deref().unwrap_or("");
    assert!(
        msg.contains("could not write the final metadata.json"),
        "{msg}"
    );
    assert_eq!(find("records::kept").outcome(), Outcome::Passed);
    let run = bootrig_diagnostics::run::RunSummary::load(&dir.path().join("run").join("run.json"))
        .expect("run.json written");
    let entry = run
        .tests
        .iter()
        .find(|e| e.test == "records::lost")
        .expect("the lost test in run.json");
    assert_eq!(entry.outcome, Outcome::Failed);
    assert_eq!(
        entry.failure_kind,
        Some(bootrig_diagnostics::metadata::FailureKind::HostResources)
    );
}

#[test]
fn a_trial_name_given_twice_is_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let ran = Arc::new(Mutex::new(0));
    let (r1, r2) = (ran.clone(), ran.clone());
    let (records, code) = Suite::with_args(args())
        .with_settings(settings(dir.path(), false))
        .test("dup::name", move |_| {
            *r1.lock().unwrap() += 1;
            Ok(())
        })
        .test("dup::name", move |_| {
            *r2.lock().unwrap() += 1;
            Ok(())
        })
        .run_collect();
    assert_eq!(code, std::process::ExitCode::from(2));
    assert!(records.is_empty());
    assert_eq!(*ran.lock().unwrap(), 0, "a duplicate ran");
    assert!(!dir.path().join("run").exists(), "a run folder was made");
}

/// A suite with user markers and a parameter grid, for selection.
fn marked_suite(dir: &Path) -> Suite {
    Suite::with_args(args())
        .with_settings(settings(dir, false))
        .test_with("sel::net_fast", Marks::new().mark("net"), |_| Ok(()))
        .test_with("sel::net_slow", Marks::new().mark("net").slow(), |_| Ok(()))
        .test_with("sel::disk", Marks::new().mark("disk").mark("smoke"), |_| {
            Ok(())
        })
        .test("sel::plain", |_| Ok(()))
        .parametrize_grid(
            "sel::grid",
            [
                ("image", vec!["busybox", "debian"]),
                ("fs", vec!["ext4", "xfs"]),
            ],
            Marks::new().mark("grid"),
            |ctx, p| {
                let (image, fs) = (p.value("image")?, p.value("fs")?);
                if ctx.name() == format!("sel::grid::{image}-{fs}") {
                    Ok(())
                } else {
                    check_failed!("{} got {p}", ctx.name())
                }
            },
        )
}

fn ran(records: &[bootrig_diagnostics::results::TestRecord]) -> Vec<String> {
    let mut names: Vec<String> = records.iter().map(|r| r.name().to_string()).collect();
    names.sort();
    names
}

#[test]
fn marker_expressions_select_tests() {
    let dir = tempfile::tempdir().unwrap();
    // `slow` is a marker like any other for selection (it still needs
    // --include-ignored to run, as a libtest ignored test).
    let mut a = args();
    a.include_ignored = true;
    let run = |expr: &str| {
        let (records, code) = marked_suite(dir.path())
            .select_marks(expr, false)
            .run_collect();
        assert_eq!(code, std::process::ExitCode::SUCCESS, "{expr}");
        ran(&records)
    };
    assert_eq!(run("net and not slow"), ["sel::net_fast"]);
    assert_eq!(
        run("disk or (net and not slow)"),
        ["sel::disk", "sel::net_fast"]
    );
    assert_eq!(
        run("grid and not (disk or net)"),
        [
            "sel::grid::busybox-ext4",
            "sel::grid::busybox-xfs",
            "sel::grid::debian-ext4",
            "sel::grid::debian-xfs"
        ]
    );
    // Without --include-ignored the slow test is listed but not run.
    assert_eq!(run("slow"), Vec::<String>::new());
    let (records, _) = Suite::with_args(a)
        .with_settings(settings(dir.path(), false))
        .test_with("x::slow", Marks::new().slow(), |_| Ok(()))
        .test("x::fast", |_| Ok(()))
        .select_marks("slow", false)
        .run_collect();
    assert_eq!(ran(&records), ["x::slow"]);
}

#[test]
fn bad_marker_expressions_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (records, code) = marked_suite(dir.path())
        .select_marks("net and (slow or", false)
        .run_collect();
    assert!(records.is_empty());
    assert_eq!(code, std::process::ExitCode::from(2));
    // An unknown marker matches nothing (a warning)...
    let (records, code) = marked_suite(dir.path())
        .select_marks("nett", false)
        .run_collect();
    assert!(records.is_empty());
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    // ...and is an error when strict.
    let (records, code) = marked_suite(dir.path())
        .select_marks("not nett", true)
        .run_collect();
    assert!(records.is_empty());
    assert_eq!(code, std::process::ExitCode::from(2));
}

/// `Suite::run` takes the expression from `BOOTRIG_MARKS` (cargo test
/// passes no `-m`). Only this test of the target sets the variable, and
/// only this test calls `Suite::run`.
#[test]
fn bootrig_marks_selects_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let suite = || {
        Suite::with_args(args())
            .with_settings(settings(dir.path(), false))
            .test_with("env::good", Marks::new().mark("good"), |_| Ok(()))
            .test("env::bad", |_| {
                check_failed!("not selected by BOOTRIG_MARKS=good")
            })
    };
    std::env::remove_var("BOOTRIG_MARKS");
    assert_eq!(suite().run(), std::process::ExitCode::from(101));
    std::env::set_var("BOOTRIG_MARKS", "good");
    let selected = suite().run();
    std::env::set_var("BOOTRIG_MARKS", "good and");
    let invalid = suite().run();
    std::env::remove_var("BOOTRIG_MARKS");
    assert_eq!(selected, std::process::ExitCode::SUCCESS);
    assert_eq!(invalid, std::process::ExitCode::from(2));
}

/// The VM budget counts every VM a test declares: tests whose VMs do not
/// fit wait for slots (never more at once than the budget), and a test
/// with more VMs than the whole budget runs alone, saying so, instead of
/// waiting forever.
#[test]
fn the_vm_budget_counts_every_vm_of_a_test() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let mut s = settings(dir.path(), false);
    s.events = Events::new(recorder.clone());
    let engine = bootrig::Engine::new(s, bootrig::VmBudget::new(2));
    // Slots in use by running bodies, and the most seen at once.
    let used = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let test = |name: &str, vms: usize| {
        let used = used.clone();
        bootrig::Test::new(name, Marks::new().vms(vms), move |_| {
            let now = used.0.fetch_add(vms.min(2), Ordering::SeqCst) + vms.min(2);
            used.1.fetch_max(now, Ordering::SeqCst);
            // A window in which the other workers try to start theirs (what
            // is checked is the count, not the timing).
            std::thread::sleep(Duration::from_millis(200));
            used.0.fetch_sub(vms.min(2), Ordering::SeqCst);
            Ok(())
        })
    };
    let tests = [
        test("budget::two_a", 2),
        test("budget::one_a", 1),
        test("budget::one_b", 1),
        test("budget::two_b", 2),
        test("budget::three", 3),
    ];
    let report = engine.run(&tests, 4);
    assert_eq!(report.totals.passed, 5, "{:?}", report.totals);
    assert!(
        used.1.load(Ordering::SeqCst) <= 2,
        "{} slots in use at once with a budget of 2",
        used.1.load(Ordering::SeqCst)
    );
    let events = recorder.0.lock().unwrap();
    let notes: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Output { test, line } if test == "budget::three" => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        notes.iter().any(|l| l.contains("runs 3 VMs at once")
            && l.contains("VM budget of 2")
            && l.contains("runs alone")),
        "{notes:?}"
    );
}
