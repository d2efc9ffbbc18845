//! Run reports: the JUnit XML that CI systems read (written with
//! quick-junit) and the one-line-per-test console summary.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::run::suite::TrialRecord;

/// Writes a JUnit XML report: one test case per trial; a failed test's
/// message, its console tail as system-out, and its artifacts folder as a
/// suite property `artifacts:<test name>` (Jenkins' schema has no
/// per-testcase properties), in the failure text, and as a
/// `[[ATTACHMENT|...]]` line in system-out (read by GitLab and Jenkins'
/// attachments plugin).
pub fn write_junit(path: &Path, suite_name: &str, records: &[TrialRecord]) -> std::io::Result<()> {
    let mut report = Report::new("bootrig");
    let mut suite = TestSuite::new(suite_name);
    for r in records {
        let (classname, name) = match r.name.rsplit_once("::") {
            Some((c, n)) => (c.to_string(), n.to_string()),
            None => (suite_name.to_string(), r.name.clone()),
        };
        let status = match r.outcome {
            "passed" | "xfail" => TestCaseStatus::success(),
            "skipped" => {
                let mut s = TestCaseStatus::skipped();
                if let Some(m) = &r.message {
                    s.set_message(m.as_str());
                }
                s
            }
            _ => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let msg = r.message.clone().unwrap_or_default();
                s.set_message(msg.lines().next().unwrap_or("failed"));
                s.set_type(r.outcome);
                s.set_description(msg.as_str());
                s
            }
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(classname);
        case.set_time(r.duration);
        let failed = matches!(r.outcome, "failed" | "xpass");
        if failed && !r.artifacts.as_os_str().is_empty() {
            let folder = r.artifacts.display().to_string();
            suite.add_property((format!("artifacts:{}", r.name).as_str(), folder.as_str()));
            let mut out = format!(
                "artifacts: {folder}\n[[ATTACHMENT|{}]]\n",
                r.artifacts.join("serial.log").display()
            );
            if !r.console_tail.is_empty() {
                out.push_str("--- console tail ---\n");
                out.push_str(&r.console_tail);
            }
            case.set_system_out_lossy(out.as_bytes());
        }
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let xml = report
        .to_string()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::write(path, xml)
}

/// One line per test: outcome, name, duration, and the artifacts folder
/// when it did not pass.
pub fn summary_line(r: &TrialRecord) -> String {
    let tag = match r.outcome {
        "passed" => "PASS ",
        "failed" => "FAIL ",
        "skipped" => "SKIP ",
        "xfail" => "XFAIL",
        "xpass" => "XPASS",
        other => other,
    };
    let mut line = format!("{tag} {} ({:.1}s)", r.name, r.duration.as_secs_f64());
    if matches!(r.outcome, "failed" | "xpass" | "xfail") && !r.artifacts.as_os_str().is_empty() {
        line.push_str(&format!("  artifacts: {}", r.artifacts.display()));
    }
    if r.outcome == "skipped" {
        if let Some(m) = &r.message {
            line.push_str(&format!("  ({m})"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(name: &str, outcome: &'static str) -> TrialRecord {
        TrialRecord {
            name: name.into(),
            outcome,
            duration: Duration::from_millis(1500),
            message: (outcome != "passed").then(|| format!("{outcome}: details\nmore")),
            artifacts: "/tmp/run/x".into(),
            console_tail: "login: <&>".into(),
        }
    }

    #[test]
    fn junit_has_failures_artifacts_and_escaped_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/junit.xml");
        let records = [
            rec("sc::ok", "passed"),
            rec("sc::bad", "failed"),
            rec("sc::skip", "skipped"),
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
        let mut weird = rec("sc::odd \"name\" <&>", "failed");
        weird.console_tail = "bad bytes \u{1b}[31m\u{7}".into();
        let records = [
            rec("sc::ok", "passed"),
            rec("sc::bad", "failed"),
            rec("sc::skip", "skipped"),
            rec("sc::x", "xfail"),
            rec("sc::y", "xpass"),
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
        assert_eq!(summary_line(&rec("a::b", "passed")), "PASS  a::b (1.5s)");
        assert!(summary_line(&rec("a::b", "failed")).ends_with("artifacts: /tmp/run/x"));
    }
}
