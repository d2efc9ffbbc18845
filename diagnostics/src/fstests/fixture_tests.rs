//! The parsers on real fstests results (`shared/fixtures/fstests`: a
//! 15-test ext4 run and a two-section run, made by the real suite in a
//! VM) and on variants generated from them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// `shared/fixtures/fstests`: the first ancestor of the crate holding it
/// (`../shared` beside the repository in CI and the main checkout; further
/// up from a worktree). A missing fixture fails the test: these tests must
/// not pass by skipping.
fn fixtures() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/fixtures/fstests"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("shared/fixtures/fstests not found above {}", here.display()))
}

/// A writable copy of fixture `name` (fixtures are read-only).
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join(name), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::write(&target, std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn outcomes(r: &FsResults) -> Vec<(Option<String>, String, FsOutcome)> {
    r.tests
        .iter()
        .map(|t| (t.section.clone(), t.name.clone(), t.outcome))
        .collect()
}

const EXT4_RAN: [&str; 15] = [
    "btrfs/001",
    "ext4/001",
    "generic/001",
    "generic/002",
    "generic/003",
    "generic/005",
    "generic/006",
    "generic/011",
    "generic/013",
    "generic/020",
    "generic/028",
    "generic/062",
    "generic/105",
    "generic/124",
    "xfs/001",
];

#[test]
fn ext4_15tests_parses_to_its_15_tests() {
    let dir = fixtures().join("ext4-15tests");
    // The folder holding results/ and results/ itself read the same.
    let r = FsResults::load(&dir).unwrap();
    assert_eq!(r, FsResults::load(&dir.join("results")).unwrap());
    let names: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, EXT4_RAN);
    assert!(r.tests.iter().all(|t| t.section.is_none()));
    let failed: Vec<&str> = r
        .tests
        .iter()
        .filter(|t| t.outcome == FsOutcome::Failed)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(failed, ["btrfs/001", "xfs/001"]);
    assert_eq!(
        r.tests
            .iter()
            .filter(|t| t.outcome == FsOutcome::Passed)
            .count(),
        13
    );
    let btrfs = r.get(None, "btrfs/001").unwrap();
    assert_eq!(
        btrfs.reason.as_deref(),
        Some("- output mismatch (see /opt/fstests/results//btrfs/001.out.bad)")
    );
    assert_eq!(btrfs.duration, Some(Duration::from_secs(3)));
    let xfs = r.get(None, "xfs/001").unwrap();
    assert_eq!(
        xfs.reason.as_deref(),
        Some("- output mismatch (see /opt/fstests/results//xfs/001.out.bad)")
    );
    assert_eq!(xfs.duration, Some(Duration::from_secs(2)));
    // Every duration is result.xml's (check.time has only the passes).
    let secs: Vec<u64> = r
        .tests
        .iter()
        .map(|t| t.duration.unwrap().as_secs())
        .collect();
    assert_eq!(secs, [3, 7, 22, 4, 12, 3, 5, 6, 15, 6, 7, 10, 3, 14, 2]);
    assert!(r
        .tests
        .iter()
        .filter(|t| t.outcome == FsOutcome::Passed)
        .all(|t| t.reason.is_none()));
    // Files, absolute.
    let results = dir.join("results");
    assert_eq!(
        btrfs.files.out_bad.as_deref(),
        Some(results.join("btrfs/001.out.bad").as_path())
    );
    assert_eq!(
        btrfs.files.full.as_deref(),
        Some(results.join("btrfs/001.full").as_path())
    );
    assert_eq!(btrfs.files.dmesg, None);
    assert_eq!(r.get(None, "generic/013").unwrap().files.out_bad, None);
    assert_eq!(btrfs.trial_name(), "fstests::btrfs/001");
    // Summary, in fstests' words.
    assert_eq!(
        r.summary_lines(),
        [
            "ext4: 15 tests, 2 failures, 0 skipped, 165 seconds",
            "  Failures: btrfs/001 xfs/001"
        ]
    );
    // JSON.
    let json = r.to_json();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 15);
    assert_eq!(
        arr[0],
        serde_json::json!({"section": null, "test": "btrfs/001", "outcome": "failed",
            "reason": "- output mismatch (see /opt/fstests/results//btrfs/001.out.bad)", "duration_s": 3.0})
    );
    assert_eq!(arr[1]["outcome"], "passed");
    // The text form: same values, keys in the documented order.
    let text = r.to_json_string();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        json
    );
    let first = &text[..text.find('}').unwrap()];
    let keys: Vec<usize> = [
        "\"section\"",
        "\"test\"",
        "\"outcome\"",
        "\"reason\"",
        "\"duration_s\"",
    ]
    .iter()
    .map(|k| first.find(k).unwrap())
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{first}");
    assert_eq!(arr[1]["reason"], serde_json::Value::Null);
}

#[test]
fn ext4_15tests_failure_message_has_diff_and_paths() {
    let dir = fixtures().join("ext4-15tests");
    let r = FsResults::load(&dir).unwrap();
    let m = r.get(None, "btrfs/001").unwrap().failure_message();
    assert!(
        m.starts_with("fstests fstests::btrfs/001: failed: - output mismatch"),
        "{m}"
    );
    assert!(m.contains("--- tests/btrfs/001.out"), "{m}");
    assert!(
        m.contains("+/opt/fstests/tests/btrfs/001: line 26: _btrfs: command not found"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "out.bad: {}",
            dir.join("results/btrfs/001.out.bad").display()
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "full: {}",
            dir.join("results/btrfs/001.full").display()
        )),
        "{m}"
    );
    // Without fstests' diff in result.xml: the golden output from a tree,
    // else the .out.bad itself.
    let mut t = r.get(None, "xfs/001").unwrap().clone();
    t.details.diff = None;
    let m = t.failure_message();
    assert!(m.contains(".out.bad (no golden output"), "{m}");
    assert!(
        m.contains("_scratch_get_bmx_prefix: command not found"),
        "{m}"
    );
    assert!(m.contains("could not find bmx prefix from inode 12"), "{m}");
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("tests/xfs")).unwrap();
    std::fs::write(
        tree.path().join("tests/xfs/001.out"),
        "QA output created by 001\ntesting u.bmx[0].extentflag with 1 bits\n",
    )
    .unwrap();
    let m = t.failure_message_with_tree(Some(tree.path()));
    assert!(
        m.contains("-testing u.bmx[0].extentflag with 1 bits\n"),
        "{m}"
    );
    assert!(
        m.contains("+could not find bmx prefix from inode 12\n"),
        "{m}"
    );
}

#[test]
fn sections_ext4_xfs_gives_14_tests_and_the_3_notruns() {
    let dir = fixtures().join("sections-ext4-xfs");
    let r = FsResults::load(&dir).unwrap();
    assert_eq!(r.tests.len(), 14);
    let sections: Vec<Option<&str>> = r.sections.iter().map(|s| s.name.as_deref()).collect();
    assert_eq!(sections, [Some("ext4_4k"), Some("xfs_1k")]);
    let notrun: Vec<(String, String, Option<String>)> = r
        .tests
        .iter()
        .filter(|t| t.outcome == FsOutcome::NotRun)
        .map(|t| (t.section.clone().unwrap(), t.name.clone(), t.reason.clone()))
        .collect();
    let reflink = Some("Reflink not supported by test filesystem type: ext4".to_string());
    assert_eq!(
        notrun,
        [
            ("ext4_4k".into(), "generic/110".into(), reflink.clone()),
            ("ext4_4k".into(), "generic/111".into(), reflink),
            (
                "ext4_4k".into(),
                "xfs/050".into(),
                Some("Installed kernel does not support XFS quota".into())
            ),
        ]
    );
    assert!(r
        .tests
        .iter()
        .filter(|t| t.outcome != FsOutcome::NotRun)
        .all(|t| t.outcome == FsOutcome::Passed));
    let t = r.get(Some("xfs_1k"), "xfs/050").unwrap();
    assert_eq!(t.duration, Some(Duration::from_secs(28)));
    assert_eq!(t.trial_name(), "fstests::xfs_1k::xfs/050");
    let notrun_file = dir.join("results/ext4_4k/xfs/050.notrun");
    assert_eq!(
        r.get(Some("ext4_4k"), "xfs/050")
            .unwrap()
            .files
            .notrun
            .as_deref(),
        Some(notrun_file.as_path())
    );
    assert_eq!(
        r.summary_lines(),
        [
            "ext4_4k: 7 tests, 0 failures, 3 skipped, 67 seconds",
            &format!(
                "xfs_1k: 7 tests, 0 failures, 0 skipped, {} seconds",
                r.sections[1].seconds
            ),
        ]
    );
    assert_eq!(r.sections[0].properties["FSTYP"], "ext4");
    assert!(r.sections.iter().all(|s| s.complete));
    // check.log says "Passed all 7 tests" for ext4_4k: the outcomes above
    // come from result.xml, not from that line.
    let log = std::fs::read_to_string(dir.join("results/ext4_4k/check.log")).unwrap();
    assert!(log.contains("Passed all 7 tests"));
    let blocks = parse_check_log(&std::fs::read_to_string(dir.join("results/check.log")).unwrap());
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].not_run, ["generic/110", "generic/111", "xfs/050"]);
    let json = r.to_json();
    assert_eq!(json[0]["section"], "ext4_4k");
    assert_eq!(json[5]["outcome"], "passed");
    assert_eq!(json[3]["outcome"], "notrun");
}

#[test]
fn without_result_xml_check_log_and_notrun_files_give_the_same_outcomes() {
    let with_xml = FsResults::load(&fixtures().join("sections-ext4-xfs")).unwrap();
    let copy = copy_fixture("sections-ext4-xfs");
    for s in ["ext4_4k", "xfs_1k"] {
        std::fs::remove_file(copy.path().join("results").join(s).join("result.xml")).unwrap();
    }
    let r = FsResults::load(copy.path()).unwrap();
    assert_eq!(outcomes(&r), outcomes(&with_xml));
    let reasons = |r: &FsResults| r.tests.iter().map(|t| t.reason.clone()).collect::<Vec<_>>();
    assert_eq!(reasons(&r), reasons(&with_xml));
    // Durations then come from check.time (passes only).
    assert_eq!(
        r.get(Some("ext4_4k"), "generic/001").unwrap().duration,
        Some(Duration::from_secs(24))
    );
    assert_eq!(
        r.get(Some("ext4_4k"), "generic/110").unwrap().duration,
        None
    );

    // No sections, no result.xml: the check.log's failures.
    let copy = copy_fixture("ext4-15tests");
    std::fs::remove_file(copy.path().join("results/result.xml")).unwrap();
    let r = FsResults::load(copy.path()).unwrap();
    let failed: Vec<&str> = r
        .tests
        .iter()
        .filter(|t| t.outcome == FsOutcome::Failed)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(failed, ["btrfs/001", "xfs/001"]);
    assert_eq!(r.tests.len(), 15);
}

#[test]
fn check_log_appended_runs_last_block_wins() {
    let copy = copy_fixture("ext4-15tests");
    let results = copy.path().join("results");
    std::fs::remove_file(results.join("result.xml")).unwrap();
    // An older run before, a newer one (another locale) after: the last
    // block is the run.
    let log = std::fs::read_to_string(results.join("check.log")).unwrap();
    let newer = "\nKernel version: 6.1.0-56-cloud-amd64\nmar. 24 nov. 2026 02:10:00 UTC\nRan: generic/001 generic/002\nNot run: generic/002\nFailures: generic/001\nFailed 1 of 2 tests\n";
    let older = "\nKernel version: 6.1.0-40\nMo 23. Nov 10:00:00 CET 2026\nRan: ext4/001\nPassed all 1 tests\n";
    std::fs::write(results.join("check.log"), format!("{older}{log}{newer}")).unwrap();
    let r = FsResults::load(copy.path()).unwrap();
    assert_eq!(
        outcomes(&r),
        [
            (None, "generic/001".to_string(), FsOutcome::Failed),
            (None, "generic/002".to_string(), FsOutcome::NotRun)
        ]
    );
}

#[test]
fn crashed_run_keeps_the_tests_done_and_is_incomplete() {
    // check rewrites result.xml before each test with time=""; a crash
    // during the 4th test leaves the first three, and an older check.log.
    let copy = copy_fixture("ext4-15tests");
    let xml = copy.path().join("results/result.xml");
    let text = std::fs::read_to_string(&xml).unwrap();
    let cut = text
        .find("\t<testcase classname=\"xfstests.global\" name=\"generic/002\"")
        .unwrap();
    let crashed = format!("{}</testsuite>\n", &text[..cut]).replace("time=\"165\"", "time=\"\"");
    std::fs::write(&xml, crashed).unwrap();
    let r = FsResults::load(copy.path()).unwrap();
    let names: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["btrfs/001", "ext4/001", "generic/001"]);
    assert!(!r.sections[0].complete);
    assert_eq!(r.sections[0].seconds, 3 + 7 + 22);
    assert!(
        r.summary_lines()[0].ends_with("(incomplete)"),
        "{:?}",
        r.summary_lines()
    );
    // A file cut mid-testcase reads too.
    std::fs::write(&xml, &text[..text.find("generic/003").unwrap()]).unwrap();
    let r = FsResults::load(copy.path()).unwrap();
    assert_eq!(r.tests.len(), 4);
    assert!(!r.sections[0].complete);
}

#[test]
fn result_xml_edge_cases_on_the_real_file() {
    let copy = copy_fixture("ext4-15tests");
    let xml = copy.path().join("results/result.xml");
    // Older files: default namespace. Unescaped message. A -L rerun that
    // passed. An expunged test: no testcase at all. A kernel-log.
    edit(
        &xml,
        "<testsuite\n",
        "<testsuite xmlns=\"https://git.kernel.org/pub/scm/fs/xfs/xfstests-dev.git\"\n",
    );
    edit(
        &xml,
        "- output mismatch (see /opt/fstests/results//xfs/001.out.bad)\"",
        "_check_dmesg: something found \"<WARNING>\" & more (see /opt/fstests/results//xfs/001.dmesg)\"",
    );
    edit(
        &xml,
        "\t\t<system-out>\n<![CDATA[\ncould not find",
        "\t\t<kernel-log>\n<![CDATA[\n[  182.4] WARNING: CPU: 1 PID: 7 at fs/xfs/xfs_inode.c:9\n]]>\n\t\t</kernel-log>\n\t\t<system-out>\n<![CDATA[\ncould not find",
    );
    let text = std::fs::read_to_string(&xml).unwrap();
    let rerun =
        "\t<testcase classname=\"xfstests.global\" name=\"btrfs/001\" time=\"2\">\n\t</testcase>\n";
    let text = text.replacen(
        "\t<testcase classname=\"xfstests.global\" name=\"ext4/001\"",
        &format!("{rerun}{rerun}\t<testcase classname=\"xfstests.global\" name=\"ext4/001\""),
        1,
    );
    let start = text
        .find("\t<testcase classname=\"xfstests.global\" name=\"generic/124\"")
        .unwrap();
    let end = start + text[start..].find("</testcase>\n").unwrap() + "</testcase>\n".len();
    let text = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(&xml, text).unwrap();

    let r = FsResults::load(copy.path()).unwrap();
    assert_eq!(r.tests.len(), 14);
    assert!(r.get(None, "generic/124").is_none());
    let xfs = r.get(None, "xfs/001").unwrap();
    assert_eq!(
        xfs.reason.as_deref(),
        Some("_check_dmesg: something found \"<WARNING>\" & more (see /opt/fstests/results//xfs/001.dmesg)")
    );
    assert!(
        xfs.failure_message().contains("WARNING: CPU: 1 PID: 7"),
        "{}",
        xfs.failure_message()
    );
    let btrfs = r.get(None, "btrfs/001").unwrap();
    assert_eq!(btrfs.outcome, FsOutcome::Failed);
    assert_eq!(
        btrfs.attempts,
        [FsOutcome::Failed, FsOutcome::Passed, FsOutcome::Passed]
    );
    assert_eq!(btrfs.flaky(), FlakyLabel::Flaky { failed: 1, runs: 3 });
    assert_eq!(btrfs.duration, Some(Duration::from_secs(3)));
    assert_eq!(
        r.summary_lines(),
        [
            "ext4: 14 tests, 2 failures, 0 skipped, 165 seconds",
            "  Failures: btrfs/001 xfs/001",
            "  Flaky: btrfs/001 (1/3)",
        ]
    );
}

#[test]
fn compare_reports_a_regression_a_fix_and_a_new_notrun() {
    let old_dir = fixtures().join("ext4-15tests");
    let copy = copy_fixture("ext4-15tests");
    let xml = copy.path().join("results/result.xml");
    // Fix: btrfs/001 passes. Regression: generic/002 fails. New notrun:
    // generic/005 is not run.
    let text = std::fs::read_to_string(&xml).unwrap();
    let start = text
        .find("\t\t<failure message=\"- output mismatch (see /opt/fstests/results//btrfs/001")
        .unwrap();
    let end = text
        .find("\t<testcase classname=\"xfstests.global\" name=\"ext4/001\"")
        .unwrap();
    let text = format!("{}\t</testcase>\n{}", &text[..start], &text[end..]);
    std::fs::write(&xml, text).unwrap();
    edit(
        &xml,
        "name=\"generic/002\" time=\"4\">\n",
        "name=\"generic/002\" time=\"4\">\n\t\t<failure message=\"_check_generic_filesystem: filesystem on /dev/vdb is inconsistent\" type=\"TestFail\" />\n",
    );
    edit(
        &xml,
        "name=\"generic/005\" time=\"3\">\n",
        "name=\"generic/005\" time=\"1\">\n\t\t<skipped message=\"this test requires a valid $SCRATCH_DEV\" />\n",
    );
    let old = load_any(&old_dir).unwrap();
    let new = load_any(copy.path()).unwrap();
    let c = compare(&old, &new);
    let names = |l: &[Change]| l.iter().map(|c| c.test.clone()).collect::<Vec<_>>();
    assert_eq!(names(&c.regressions), ["generic/002"]);
    assert_eq!(names(&c.fixes), ["btrfs/001"]);
    assert_eq!(names(&c.new_notrun), ["generic/005"]);
    assert!(c.added.is_empty() && c.removed.is_empty());
    assert!(c.has_regressions());
    let text = c.to_string();
    assert!(text.contains("Regressions (1):\n  generic/002: passed -> failed (_check_generic_filesystem: filesystem on /dev/vdb is inconsistent)\n"), "{text}");
    assert!(
        text.contains("Fixed (1):\n  btrfs/001: failed -> passed"),
        "{text}"
    );
    assert!(text.contains("Newly not run (1):\n  generic/005: passed -> notrun (this test requires a valid $SCRATCH_DEV)\n"), "{text}");
    // The other way round: the fix is a regression, the regression a fix.
    let back = compare(&new, &old);
    assert_eq!(names(&back.regressions), ["btrfs/001"]);
    assert_eq!(names(&back.fixes), ["generic/002"]);
    assert!(back.new_notrun.is_empty());
    assert!(!compare(&old, &old).has_regressions());
}

#[test]
fn several_results_folders_merge() {
    let parent = tempfile::tempdir().unwrap();
    copy_dir(
        &fixtures().join("sections-ext4-xfs"),
        &parent.path().join("shard-1"),
    );
    copy_dir(
        &fixtures().join("ext4-15tests"),
        &parent.path().join("shard-2"),
    );
    let merged = load_any(parent.path()).unwrap();
    assert_eq!(merged.tests.len(), 14 + 15);
    let names: Vec<String> = merged
        .sections
        .iter()
        .map(|s| s.display_name().to_string())
        .collect();
    assert_eq!(names, ["ext4_4k", "xfs_1k", "ext4"]);
    let listed = load_all(&[parent.path().join("shard-1"), parent.path().join("shard-2")]).unwrap();
    assert_eq!(listed, merged);
    // The same run twice: one test each, two attempts.
    let twice = load_all(&[
        fixtures().join("ext4-15tests"),
        fixtures().join("ext4-15tests"),
    ])
    .unwrap();
    assert_eq!(twice.tests.len(), 15);
    assert_eq!(twice.get(None, "xfs/001").unwrap().attempts.len(), 2);
    assert_eq!(twice.sections[0].seconds, 330);
    // A broken shard fails the whole, naming its file.
    std::fs::write(
        parent.path().join("shard-2/results/result.xml"),
        "<testsuite",
    )
    .unwrap();
    let e = load_any(parent.path()).unwrap_err().to_string();
    assert!(e.contains("shard-2/results/result.xml"), "{e}");
    // A result.xml or check.log file stands for its folder.
    let file = fixtures().join("sections-ext4-xfs/results/xfs_1k/result.xml");
    let one = load_any(&file).unwrap();
    assert_eq!(one.tests.len(), 7);
    assert_eq!(one.tests[0].section.as_deref(), Some("xfs_1k"));
    // Not a results folder: a clear error.
    let empty = tempfile::tempdir().unwrap();
    let e = load_any(empty.path()).unwrap_err().to_string();
    assert!(
        e.contains("not an fstests results folder")
            && e.contains(&empty.path().display().to_string()),
        "{e}"
    );
}

/// The layout of a `--vms N` run: each VM's `attempt-N/results/` holds
/// one whole results folder per test (`job-N`); the run folder, a VM's
/// folder and its `results/` all read as the merged tests.
#[test]
fn vm_job_folders_merge_as_shards() {
    let run = tempfile::tempdir().unwrap();
    copy_dir(
        &fixtures().join("sections-ext4-xfs/results"),
        &run.path().join("attempt-1/results/job-1"),
    );
    copy_dir(
        &fixtures().join("ext4-15tests/results"),
        &run.path().join("attempt-2/results/job-2"),
    );
    std::fs::create_dir_all(run.path().join("attempt-2/logs")).unwrap();
    let whole = load_any(run.path()).unwrap();
    assert_eq!(whole.tests.len(), 14 + 15);
    let vm = load_any(&run.path().join("attempt-1")).unwrap();
    assert_eq!(vm.tests.len(), 14);
    let results = load_any(&run.path().join("attempt-2/results")).unwrap();
    assert_eq!(results.tests.len(), 15);
    // A job folder is never taken for a section.
    assert!(whole
        .sections
        .iter()
        .all(|s| !s.display_name().starts_with("job-")));
}

#[test]
fn kernel_log_of_the_console_fixtures() {
    let text = std::fs::read_to_string(fixtures().join("ext4-15tests/serial-console.log")).unwrap();
    let starts = tests_started_in_kernel_log(&text);
    let names: Vec<&str> = starts.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, EXT4_RAN);
    assert_eq!(starts[0].1.date, "2026-11-24 01:43:16");
    assert_eq!(
        starts[0].1.kernel_time,
        Some(Duration::from_micros(21_940_907))
    );
    assert_eq!(
        starts[14].1.kernel_time,
        Some(Duration::from_micros(180_500_302))
    );
    let pieces = kernel_log_per_test(&text);
    assert_eq!(pieces.len(), 15);
    assert!(pieces[0].1.contains("ext4: Unknown parameter 'subvolid'"));
    assert!(!pieces[1].1.contains("subvolid"));
    // Two sections: every test twice, in run order.
    let text =
        std::fs::read_to_string(fixtures().join("sections-ext4-xfs/serial-console.log")).unwrap();
    let starts = tests_started_in_kernel_log(&text);
    assert_eq!(starts.len(), 14);
    let r = FsResults::load(&fixtures().join("sections-ext4-xfs")).unwrap();
    let from_results: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
    let from_console: Vec<&str> = starts.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(from_console, from_results);
}

#[test]
fn bootrig_run_folders_are_read_through_run_json() {
    use crate::metadata::{Failure, FailureKind, Outcome};
    use crate::run::{RunEntry, RunSummary};
    use crate::TestDir;
    use chrono::Utc;

    let run = tempfile::tempdir().unwrap();
    let t0 = Utc::now();
    let add = |name: &str, outcome: Outcome, failure: Option<Failure>, files: &[(&str, &str)]| {
        let mut dir = TestDir::create(run.path(), name, t0).unwrap();
        for (rel, content) in files {
            dir.write_artifact(
                rel,
                rel,
                content.as_bytes(),
                crate::catalog::Producer::harness("fstests"),
                None,
                None,
            )
            .unwrap();
        }
        dir.finish(outcome, failure, t0 + chrono::Duration::seconds(3))
            .unwrap();
        let mut entry = dir.run_entry();
        if outcome == Outcome::Skipped {
            entry.summary = Some("Reflink not supported".into());
        }
        RunSummary::update(run.path(), "r1", t0, entry).unwrap();
    };
    add("fstests::ext4_4k::generic/001", Outcome::Passed, None, &[]);
    add(
        "fstests::ext4_4k::generic/002",
        Outcome::Failed,
        Some(Failure::new(
            FailureKind::Command,
            "generic/002 failed: - output mismatch\n--- diff\n+x",
        )),
        &[
            ("fstests/generic/002.out.bad", "x\n"),
            ("fstests/generic/002.full", "log\n"),
        ],
    );
    add("fstests::ext4_4k::generic/110", Outcome::Skipped, None, &[]);
    add(
        "fstests::xfs/001",
        Outcome::Xfail,
        Some(Failure::new(FailureKind::Command, "known")),
        &[],
    );
    add("boot::busybox", Outcome::Passed, None, &[]);
    // The folders holding the runs' VMs are not fstests tests.
    add("fstests::run", Outcome::Passed, None, &[]);
    add("fstests::run-2", Outcome::Passed, None, &[]);
    add(
        "fstests::run::ext4_4k::generic/001",
        Outcome::Passed,
        None,
        &[],
    );
    let _: &RunEntry = &RunSummary::load(&run.path().join("run.json"))
        .unwrap()
        .tests[0];

    for input in [run.path().to_path_buf(), run.path().join("run.json")] {
        let r = load_any(&input).unwrap();
        assert_eq!(
            outcomes(&r),
            [
                (
                    Some("ext4_4k".into()),
                    "generic/001".into(),
                    FsOutcome::Passed
                ),
                (
                    Some("ext4_4k".into()),
                    "generic/002".into(),
                    FsOutcome::Failed
                ),
                (
                    Some("ext4_4k".into()),
                    "generic/110".into(),
                    FsOutcome::NotRun
                ),
                (None, "xfs/001".into(), FsOutcome::Failed),
            ]
        );
        let failed = r.get(Some("ext4_4k"), "generic/002").unwrap();
        assert_eq!(
            failed.reason.as_deref(),
            Some("generic/002 failed: - output mismatch")
        );
        assert!(failed.failure_message().contains("+x"));
        assert!(failed
            .files
            .out_bad
            .as_ref()
            .unwrap()
            .ends_with("fstests/generic/002.out.bad"));
        assert!(failed.files.full.is_some());
        assert_eq!(
            r.get(Some("ext4_4k"), "generic/110")
                .unwrap()
                .reason
                .as_deref(),
            Some("Reflink not supported")
        );
        assert_eq!(failed.duration, Some(Duration::from_secs(3)));
    }
    // A run without fstests trials is refused, naming run.json.
    let other = tempfile::tempdir().unwrap();
    let mut d = TestDir::create(other.path(), "boot::x", t0).unwrap();
    d.finish(Outcome::Passed, None, t0).unwrap();
    d.update_run_summary(other.path(), "r2").unwrap();
    let e = load_any(other.path()).unwrap_err().to_string();
    assert!(
        e.contains("run.json") && e.contains("no fstests:: trials"),
        "{e}"
    );
}

#[test]
fn baseline_turns_the_fixture_failures_into_known_ones() {
    let r = FsResults::load(&fixtures().join("ext4-15tests")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("expunges.txt");
    std::fs::write(
        &file,
        "# not this filesystem\nbtrfs/001 # btrfs test on ext4\n",
    )
    .unwrap();
    let b = Baseline::load(&file).unwrap();
    let unexpected: Vec<&str> = r
        .tests
        .iter()
        .filter(|t| {
            t.outcome == FsOutcome::Failed
                && b.known_failure(t.section.as_deref(), &t.name).is_none()
        })
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(unexpected, ["xfs/001"]);
    assert_eq!(
        b.known_failure(None, "btrfs/001"),
        Some("btrfs test on ext4")
    );
}

#[test]
fn sections_come_in_the_order_they_ran() {
    let copy = copy_fixture("sections-ext4-xfs");
    // Make xfs_1k the first section to run: folder order no longer helps.
    edit(
        &copy.path().join("results/xfs_1k/result.xml"),
        "\n        timestamp=\"2026-11-24T01:5",
        "\n        timestamp=\"2026-11-24T01:4",
    );
    let r = FsResults::load(copy.path()).unwrap();
    let sections: Vec<&str> = r.sections.iter().map(|s| s.display_name()).collect();
    assert_eq!(sections, ["xfs_1k", "ext4_4k"]);
    assert_eq!(r.tests[0].section.as_deref(), Some("xfs_1k"));
}
