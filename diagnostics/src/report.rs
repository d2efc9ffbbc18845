//! The stand-alone failure message printed by `cargo test`: everything a
//! reader needs to understand a failure without opening the artifacts,
//! between clear banners.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::catalog::ArtifactCatalog;
use crate::layout;
use crate::metadata::Failure;
use crate::testdir::TestDir;

/// Output of one diagnostics collector (a command run in the guest after
/// the failure, a unit's status, QEMU's stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorOutput {
    /// Its name (`journalctl -b`, `systemctl --failed`).
    pub name: String,
    /// What it printed.
    pub text: String,
    /// What a reader should know (`command not found in guest`, `guest did
    /// not answer`).
    pub note: Option<String>,
}

/// A diagnostics collector that had nothing to say because the guest
/// lacks the tool it needs (`journalctl` on a busybox guest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The collector's name (`journal`).
    pub name: String,
    /// The missing tool (`journalctl`).
    pub tool: String,
}

/// A failure message. Build it with [`FailureReport::new`] and the builder
/// methods, then [`render`](FailureReport::render) it (or `Display` it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReport {
    /// The test's full name.
    pub test: String,
    /// What failed.
    pub failure: Failure,
    /// The console text (ANSI escapes are removed when rendering).
    pub console: String,
    /// Collector outputs, in the order they ran.
    pub collectors: Vec<CollectorOutput>,
    /// Collectors whose tool the guest lacks: one line in the message.
    pub unavailable: Vec<Unavailable>,
    /// The test's artifacts folder.
    pub folder: Option<PathBuf>,
    /// Paths of every artifact.
    pub artifacts: Vec<PathBuf>,
}

/// The banner line.
const BANNER: &str =
    "==============================================================================";

impl FailureReport {
    /// How many console lines are shown (the last ones).
    pub const CONSOLE_LINES: usize = 30;
    /// How many lines of each collector's output are shown (the last
    /// ones: the newest journal and kernel lines, not the boot's first).
    pub const COLLECTOR_LINES: usize = 8;

    /// A report of `failure` of test `test`, with nothing else yet.
    pub fn new(test: impl Into<String>, failure: Failure) -> FailureReport {
        FailureReport {
            test: test.into(),
            failure,
            console: String::new(),
            collectors: Vec::new(),
            unavailable: Vec::new(),
            folder: None,
            artifacts: Vec::new(),
        }
    }

    /// The report of a finished test's folder (None if it did not fail),
    /// with `console` text and every cataloged artifact.
    pub fn from_test_dir(dir: &TestDir, console: &str) -> Option<FailureReport> {
        let m = dir.metadata();
        let failure = m.failure.clone()?;
        Some(
            FailureReport::new(m.test.clone(), failure)
                .console(console)
                .artifacts_in(dir.path(), &m.artifacts),
        )
    }

    /// Sets the console text.
    pub fn console(mut self, text: impl Into<String>) -> FailureReport {
        self.console = text.into();
        self
    }

    /// Adds a collector's output.
    pub fn collector(
        mut self,
        name: impl Into<String>,
        text: impl Into<String>,
        note: Option<&str>,
    ) -> FailureReport {
        self.collectors.push(CollectorOutput {
            name: name.into(),
            text: text.into(),
            note: note.map(str::to_string),
        });
        self
    }

    /// Adds a collector that did not run because the guest has no `tool`:
    /// listed on one line, its (empty) output left out.
    pub fn unavailable(
        mut self,
        name: impl Into<String>,
        tool: impl Into<String>,
    ) -> FailureReport {
        self.unavailable.push(Unavailable {
            name: name.into(),
            tool: tool.into(),
        });
        self
    }

    /// Sets the folder, and lists `metadata.json` and every artifact of
    /// `catalog` in it.
    pub fn artifacts_in(mut self, folder: &Path, catalog: &ArtifactCatalog) -> FailureReport {
        self.folder = Some(folder.to_path_buf());
        self.artifacts = std::iter::once(folder.join(layout::METADATA.path))
            .chain(catalog.iter().map(|a| folder.join(&a.path)))
            .collect();
        self
    }

    /// The message.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let f = &self.failure;
        o.push_str(BANNER);
        o.push_str(&format!(
            "\nbootrig: test {} FAILED ({})\n",
            self.test, f.kind
        ));
        o.push_str(BANNER);
        o.push('\n');
        o.push_str(&format!("what failed: {}\n", f.kind));
        if let Some(s) = &f.step {
            o.push_str(&format!(
                "failing step: step {}: {}\n",
                s.index + 1,
                s.description
            ));
        }
        o.push_str("message:\n");
        push_indented(&mut o, &f.message);

        if let Some(c) = &f.crash {
            o.push_str(&format!("\n---- kernel crash: {} ----\n", c.title));
            push_indented(&mut o, &c.excerpt);
        }

        let console = strip_ansi(&self.console);
        let lines: Vec<&str> = console.lines().collect();
        let shown = &lines[lines.len().saturating_sub(FailureReport::CONSOLE_LINES)..];
        o.push_str(&format!(
            "\n---- console: last {} of {} lines ----\n",
            shown.len(),
            lines.len()
        ));
        if shown.is_empty() {
            o.push_str("  (no console output)\n");
        }
        for l in shown {
            o.push_str(&format!("  {l}\n"));
        }

        for c in &self.collectors {
            let text = strip_ansi(&c.text);
            let lines: Vec<&str> = text.lines().collect();
            let shown = &lines[lines.len().saturating_sub(FailureReport::COLLECTOR_LINES)..];
            o.push_str(&format!(
                "\n---- {}: last {} of {} lines",
                c.name,
                shown.len(),
                lines.len()
            ));
            if let Some(note) = &c.note {
                o.push_str(&format!(" ({note})"));
            }
            o.push_str(" ----\n");
            for l in shown {
                o.push_str(&format!("  {l}\n"));
            }
        }
        if !self.unavailable.is_empty() {
            let list: Vec<String> = self
                .unavailable
                .iter()
                .map(|u| format!("{} ({})", u.name, u.tool))
                .collect();
            o.push_str(&format!(
                "\n---- not available in the guest: {} ----\n",
                list.join(", ")
            ));
        }

        match &self.folder {
            Some(dir) => o.push_str(&format!("\n---- artifacts in {} ----\n", dir.display())),
            None => o.push_str("\n---- artifacts ----\n"),
        }
        if self.artifacts.is_empty() {
            o.push_str("  (none)\n");
        }
        for a in &self.artifacts {
            o.push_str(&format!("  {}\n", a.display()));
        }
        o.push_str(BANNER);
        o.push_str(&format!("\nend of bootrig report for {}\n", self.test));
        o.push_str(BANNER);
        o.push('\n');
        o
    }
}

impl fmt::Display for FailureReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

fn push_indented(o: &mut String, text: &str) {
    for l in text.lines() {
        o.push_str("  ");
        o.push_str(l);
        o.push('\n');
    }
}

/// `text` without terminal escape sequences, as the console engine sees it
/// (see [`crate::ansi::AnsiStripper`]).
pub fn strip_ansi(text: &str) -> String {
    String::from_utf8_lossy(&crate::ansi::strip(text.as_bytes())).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Producer;
    use crate::crash::CrashReport;
    use crate::metadata::{FailureKind, Outcome};

    fn console_text(n: usize) -> String {
        (1..=n)
            .map(|i| format!("\u{1b}[32mline {i}\u{1b}[0m\r\n"))
            .collect()
    }

    #[test]
    fn renders_every_section() {
        let crash = CrashReport {
            title: "kernel panic: sysrq triggered crash".into(),
            excerpt: "sysrq: Trigger a crash\nKernel panic - not syncing: sysrq triggered crash"
                .into(),
            fatal: true,
        };
        let failure = Failure::new(
            FailureKind::KernelCrash,
            "the kernel crashed\nwhile running a step",
        )
        .with_step(2, "run: echo c > /proc/sysrq-trigger")
        .with_crash(&crash);
        let journal: String = (1..=20).map(|i| format!("journal {i}\n")).collect();
        let r = FailureReport::new("boot::debian::smoke", failure)
            .console(console_text(45))
            .collector("journalctl -b", journal, None)
            .collector("lsblk", "", Some("command not found in guest"))
            .unavailable("journal", "journalctl")
            .unavailable("systemctl-failed", "systemctl");
        let s = r.render();
        assert!(s.starts_with(BANNER), "{s}");
        assert!(s.contains("bootrig: test boot::debian::smoke FAILED (kernel-crash)"));
        assert!(s.contains("what failed: kernel-crash"));
        assert!(s.contains("failing step: step 3: run: echo c > /proc/sysrq-trigger"));
        assert!(s.contains("  while running a step\n"));
        assert!(s.contains("---- kernel crash: kernel panic: sysrq triggered crash ----"));
        assert!(s.contains("  Kernel panic - not syncing: sysrq triggered crash\n"));
        // Last 30 console lines, ANSI-stripped.
        assert!(s.contains("console: last 30 of 45 lines"));
        assert!(!s.contains("line 15\n"));
        assert!(s.contains("  line 16\n") && s.contains("  line 45\n"));
        assert!(!s.contains('\u{1b}') && !s.contains('\r'));
        // Last lines of each collector (the newest), with notes.
        assert!(s.contains("---- journalctl -b: last 8 of 20 lines ----"));
        assert!(s.contains("  journal 13\n") && s.contains("  journal 20\n"));
        assert!(!s.contains("journal 12\n") && !s.contains("journal 1\n"));
        assert!(s.contains("---- lsblk: last 0 of 0 lines (command not found in guest) ----"));
        // Missing tools: one line, no output block.
        assert!(s.contains(
            "\n---- not available in the guest: journal (journalctl), systemctl-failed (systemctl) ----\n"
        ));
        assert!(!s.contains("---- journal:"));
        assert!(s.contains("---- artifacts ----\n  (none)"));
        assert!(s.trim_end().ends_with(BANNER));
        assert!(s.contains("end of bootrig report for boot::debian::smoke"));
        assert_eq!(r.to_string(), s);
    }

    #[test]
    fn from_test_dir_lists_every_artifact_path() {
        let run = tempfile::tempdir().unwrap();
        let mut t = TestDir::create(run.path(), "t::x", chrono::Utc::now()).unwrap();
        t.write_artifact(
            "journal",
            "collect/journal.txt",
            b"j",
            Producer::command("journalctl"),
            Some(0),
            None,
        )
        .unwrap();
        assert!(FailureReport::from_test_dir(&t, "").is_none());
        t.finish(
            Outcome::Failed,
            Some(Failure::new(
                FailureKind::BootTimeout,
                "no login prompt after 60s",
            )),
            chrono::Utc::now(),
        )
        .unwrap();
        let s = FailureReport::from_test_dir(&t, "").unwrap().render();
        assert!(s.contains(&format!("---- artifacts in {} ----", t.path().display())));
        assert!(s.contains(&t.path().join("metadata.json").display().to_string()));
        assert!(s.contains(&t.path().join("collect/journal.txt").display().to_string()));
        assert!(s.contains("(no console output)"));
        assert!(!s.contains("failing step"));
        assert!(!s.contains("kernel crash"));
    }

    #[test]
    fn ansi_stripping() {
        assert_eq!(strip_ansi("\u{1b}[1;31mred\u{1b}[0m"), "red");
        assert_eq!(strip_ansi("\u{1b}]0;root@vm: ~\u{7}$ "), "$ ");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{1b}\\x"), "x");
        assert_eq!(strip_ansi("\u{1b}(0lqk\u{1b}(B"), "lqk");
        assert_eq!(strip_ansi("10%\r20%\r30%\r\n"), "10%\n20%\n30%\n");
        assert_eq!(strip_ansi("a\tb\u{7}\u{8}c…"), "a\tbc…");
        assert_eq!(
            strip_ansi("\u{1b}[?25l\u{1b}[K[  OK  ] Started"),
            "[  OK  ] Started"
        );
    }
}
