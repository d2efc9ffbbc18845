//! JUnit XML, the report CI systems read, written from [`TestRecord`]s
//! (with quick-junit).
//!
//! [`write_junit`] writes one file for one run. [`merge_junit`] is for runs
//! spread over several processes (cargo-nextest runs one process per
//! test): each process adds its records to a sidecar file keyed by the run
//! id, under a lock, and rewrites the XML from all of them, so the file
//! holds every test of the run rather than the last process's.

use std::fs::File;
use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::atomic::write_json_atomic;
use crate::errors::{Error, Result};
use crate::metadata::{FailureClass, Outcome};
use crate::results::TestRecord;

/// Writes a JUnit XML report to `path`: one test case per record. A failed
/// test (or an unexpected pass) has its one-line failure
/// ([`TestRecord::headline`]) as `failure message=`, its full stand-alone
/// report as the failure text, its console tail in system-out, and its
/// artifacts folder as a suite property `artifacts:<test name>` (Jenkins'
/// schema has no per-testcase properties) and as a `[[ATTACHMENT|...]]`
/// line in system-out (read by GitLab and Jenkins' attachments plugin).
pub fn write_junit(path: &Path, suite_name: &str, records: &[TestRecord]) -> Result<()> {
    let mut report = Report::new("bootrig");
    report.add_test_suite(suite(suite_name, records));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("creating the JUnit report's folder", dir, e))?;
    }
    let xml = report
        .to_string()
        .map_err(|e| Error::io("rendering the JUnit report", path, std::io::Error::other(e)))?;
    crate::atomic::write_atomic(path, xml.as_bytes())
}

/// Adds `records` of run `run_id` to the JUnit report at `path` and
/// rewrites it with every record of that run seen so far (a record of the
/// same test replaces the earlier one). The records are kept in a sidecar
/// next to the XML (see [`sidecar_path`]); a sidecar of another run is
/// replaced. Processes writing at the same time take turns on a lock file.
pub fn merge_junit(
    path: &Path,
    suite_name: &str,
    run_id: &str,
    records: &[TestRecord],
) -> Result<Vec<TestRecord>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("creating the JUnit report's folder", dir, e))?;
    }
    let lock_path = with_suffix(path, ".lock");
    let lock = File::create(&lock_path)
        .map_err(|e| Error::io("creating the JUnit lock", &lock_path, e))?;
    lock.lock()
        .map_err(|e| Error::io("locking the JUnit report", &lock_path, e))?;
    let sidecar = sidecar_path(path);
    let mut run = match crate::json::load_versioned::<JunitRun>(
        &sidecar,
        "loading the JUnit run records",
        SIDECAR_VERSION,
    ) {
        Ok(run) if run.run_id == run_id => run,
        _ => JunitRun {
            schema_version: SIDECAR_VERSION,
            run_id: run_id.to_string(),
            records: Vec::new(),
        },
    };
    for r in records {
        match run.records.iter_mut().find(|o| o.name() == r.name()) {
            Some(o) => *o = r.clone(),
            None => run.records.push(r.clone()),
        }
    }
    write_json_atomic(&sidecar, &run)?;
    write_junit(path, suite_name, &run.records)?;
    Ok(run.records)
}

/// Where [`merge_junit`] keeps a run's records: `<xml>.bootrig-run.json`.
pub fn sidecar_path(xml: &Path) -> PathBuf {
    with_suffix(xml, ".bootrig-run.json")
}

const SIDECAR_VERSION: u32 = 1;

/// The sidecar's contents.
#[derive(Debug, Serialize, Deserialize)]
struct JunitRun {
    schema_version: u32,
    run_id: String,
    records: Vec<TestRecord>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn suite(suite_name: &str, records: &[TestRecord]) -> TestSuite {
    let mut suite = TestSuite::new(suite_name);
    for r in records {
        let (classname, name) = match r.name().rsplit_once("::") {
            Some((c, n)) => (c.to_string(), n.to_string()),
            None => (suite_name.to_string(), r.name().to_string()),
        };
        let outcome = r.outcome();
        let status = match outcome {
            Outcome::Passed | Outcome::Xfail => TestCaseStatus::success(),
            Outcome::Skipped => {
                let mut s = TestCaseStatus::skipped();
                if let Some(m) = &r.message {
                    s.set_message(m.as_str());
                }
                s
            }
            Outcome::Failed | Outcome::Xpass | Outcome::Running => {
                // The infrastructure's failures are JUnit errors (the test
                // could not run to a verdict), the test's are failures.
                let infra = r
                    .entry
                    .failure_kind
                    .filter(|k| outcome == Outcome::Failed && k.class() == FailureClass::Infra);
                let kind = match infra {
                    Some(_) => NonSuccessKind::Error,
                    None => NonSuccessKind::Failure,
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(r.headline().unwrap_or("failed"));
                match infra {
                    Some(k) => s.set_type(k.as_str()),
                    None => s.set_type(outcome.as_str()),
                };
                s.set_description(r.message.as_deref().unwrap_or_default());
                s
            }
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(classname);
        case.set_time(r.duration());
        let failed = outcome.is_failure() || outcome == Outcome::Running;
        if failed && !r.artifacts.as_os_str().is_empty() {
            let folder = r.artifacts.display().to_string();
            suite.add_property((format!("artifacts:{}", r.name()).as_str(), folder.as_str()));
            let mut out = format!(
                "artifacts: {folder}\n[[ATTACHMENT|{}]]\n",
                r.artifacts.join(crate::layout::SERIAL_LOG.path).display()
            );
            if !r.console_tail.is_empty() {
                out.push_str("--- console tail ---\n");
                out.push_str(&r.console_tail);
            }
            case.set_system_out_lossy(out.as_bytes());
        }
        suite.add_test_case(case);
    }
    suite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunEntry;

    fn rec(name: &str, outcome: Outcome) -> TestRecord {
        TestRecord {
            entry: RunEntry {
                test: name.into(),
                outcome,
                duration_ms: Some(1500),
                folder: "x".into(),
                failure_kind: None,
                summary: None,
                attempts: Vec::new(),
                flaky: false,
            },
            artifacts: "/tmp/run/x".into(),
            message: (outcome != Outcome::Passed).then(|| format!("{outcome}: details\nmore")),
            console_tail: "login: <&>".into(),
        }
    }

    #[test]
    fn junit_has_failures_artifacts_and_escaped_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/junit.xml");
        let records = [
            rec("sc::ok", Outcome::Passed),
            rec("sc::bad", Outcome::Failed),
            rec("sc::skip", Outcome::Skipped),
        ];
        write_junit(&path, "bootrig", &records).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(xml.contains(r#"tests="3""#), "{xml}");
        assert!(xml.contains(r#"failures="1""#), "{xml}");
        assert!(
            xml.contains(r#"disabled="1""#) && xml.contains("<skipped"),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<property name="artifacts:sc::bad" value="/tmp/run/x"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains("[[ATTACHMENT|/tmp/run/x/serial.log]]"),
            "{xml}"
        );
        assert!(xml.contains("login: &lt;&amp;&gt;"), "{xml}");
        assert!(xml.contains(r#"classname="sc""#));
    }

    #[test]
    fn failure_message_is_the_one_line_failure_not_the_banner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut bad = rec("sc::bad", Outcome::Failed);
        bad.entry.summary = Some("`false` was expected to succeed (exit 1)".into());
        bad.message = Some(
            "===== FAILED sc::bad =====\n`false` was expected to succeed (exit 1)\n...".into(),
        );
        write_junit(&path, "bootrig", &[bad]).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.contains(r#"message="`false` was expected to succeed (exit 1)""#),
            "{xml}"
        );
        assert!(!xml.contains(r#"message="====="#), "{xml}");
        // The whole report is still the failure's text.
        assert!(xml.contains("===== FAILED sc::bad ====="), "{xml}");
    }

    #[test]
    fn merging_keeps_every_process_s_tests_of_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        // Two processes of one nextest run, one test each.
        merge_junit(
            &path,
            "bootrig",
            "run-1",
            &[rec("sc::one", Outcome::Passed)],
        )
        .unwrap();
        let all = merge_junit(
            &path,
            "bootrig",
            "run-1",
            &[rec("sc::two", Outcome::Failed)],
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(xml.contains(r#"tests="2""#), "{xml}");
        assert!(
            xml.contains(r#"name="one""#) && xml.contains(r#"name="two""#),
            "{xml}"
        );
        assert!(sidecar_path(&path).is_file());
        // A retry of the same test replaces it.
        let all = merge_junit(
            &path,
            "bootrig",
            "run-1",
            &[rec("sc::two", Outcome::Passed)],
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains(r#"failures="0""#));
        // A new run starts over.
        let all = merge_junit(
            &path,
            "bootrig",
            "run-2",
            &[rec("sc::three", Outcome::Passed)],
        )
        .unwrap();
        assert_eq!(all.len(), 1);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains(r#"tests="1""#));
    }

    #[test]
    fn junit_validates_against_the_schema_ci_systems_read() {
        let xsd =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/junit.xsd");
        let Ok(status) = std::process::Command::new("xmllint")
            .arg("--version")
            .output()
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "xmllint is required under CI=true"
            );
            eprintln!("skipped: xmllint not installed (apt-get install libxml2-utils)");
            return;
        };
        assert!(status.status.success());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        let mut weird = rec("sc::odd \"name\" <&>", Outcome::Failed);
        weird.console_tail = "bad bytes \u{1b}[31m\u{7}".into();
        let records = [
            rec("sc::ok", Outcome::Passed),
            rec("sc::bad", Outcome::Failed),
            rec("sc::skip", Outcome::Skipped),
            rec("sc::x", Outcome::Xfail),
            rec("sc::y", Outcome::Xpass),
            weird,
        ];
        write_junit(&path, "bootrig", &records).unwrap();
        let out = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&xsd)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&path).unwrap()
        );
    }

    #[test]
    fn summary_lines() {
        assert_eq!(
            rec("a::b", Outcome::Passed).summary_line(),
            "PASS  a::b (1.5s)"
        );
        assert!(rec("a::b", Outcome::Failed)
            .summary_line()
            .ends_with("artifacts: /tmp/run/x"));
    }

    #[test]
    fn infrastructure_failures_are_errors() {
        let mut killed = rec("a::killed", Outcome::Failed);
        killed.entry.failure_kind = Some(crate::metadata::FailureKind::QemuKilled);
        let mut failed = rec("a::failed", Outcome::Failed);
        failed.entry.failure_kind = Some(crate::metadata::FailureKind::Command);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junit.xml");
        write_junit(&path, "s", &[killed, failed]).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        assert!(
            xml.contains(r#"<error message="#) && xml.contains(r#"type="qemu-killed""#),
            "{xml}"
        );
        assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
        assert_eq!(xml.matches("<error ").count(), 1, "{xml}");
    }
}
