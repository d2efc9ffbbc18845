//! The stand-alone failure message of an fstests test: what failed, the
//! diff, the kernel messages, and where the files are.

use std::fmt::Write as _;
use std::path::Path;

use super::results::{FsOutcome, FsTest};

/// At most this many lines of a diff or `.out.bad` in a message.
const MAX_DIFF_LINES: usize = 200;
/// At most this many lines of `.dmesg`.
const MAX_DMESG_LINES: usize = 60;
/// At most this many bytes read from one file for a message.
const MAX_READ: u64 = 1 << 20;

impl FsTest {
    /// The failure message, standing on its own (see
    /// [`FsTest::failure_message_with_tree`]), without an fstests tree.
    pub fn failure_message(&self) -> String {
        self.failure_message_with_tree(None)
    }

    /// The failure message:
    ///
    /// 1. `fstests <trial>: <outcome>: <reason>`;
    /// 2. the diff: fstests' own (`result.xml`'s `<system-err>`), else the
    ///    golden output `tree/tests/<test>.out` against `.out.bad` when the
    ///    tree is given, else the `.out.bad` content and `result.xml`'s
    ///    `<system-out>` (the `.full`);
    /// 3. a dmesg excerpt from `.dmesg` (or `<kernel-log>`);
    /// 4. `.hints`, then the paths of `.out.bad`, `.full`, `.dmesg`.
    ///
    /// Long texts are cut to their first lines, with a note. For results
    /// read from a bootrig run, the recorded message is returned as is.
    pub fn failure_message_with_tree(&self, tree: Option<&Path>) -> String {
        if let Some(m) = &self.details.message {
            return m.clone();
        }
        let mut out = format!("fstests {}: {}", self.trial_name(), self.outcome);
        if let Some(r) = &self.reason {
            let _ = write!(out, ": {r}");
        }
        out.push('\n');
        if self.outcome == FsOutcome::NotRun {
            return out;
        }
        let out_bad = self.files.out_bad.as_deref().and_then(read_capped);
        let golden =
            tree.and_then(|t| read_capped(&t.join("tests").join(format!("{}.out", self.name))));
        if let Some(diff) = &self.details.diff {
            section(
                &mut out,
                "diff (golden output vs .out.bad, from result.xml)",
                diff,
                MAX_DIFF_LINES,
            );
        } else if let (Some(golden), Some(bad)) = (&golden, &out_bad) {
            let diff = similar::TextDiff::from_lines(golden, bad)
                .unified_diff()
                .context_radius(3)
                .header(
                    &format!("tests/{}.out", self.name),
                    &format!("{}.out.bad", self.name),
                )
                .to_string();
            section(
                &mut out,
                "diff (golden output vs .out.bad)",
                &diff,
                MAX_DIFF_LINES,
            );
        } else {
            if let Some(bad) = &out_bad {
                section(
                    &mut out,
                    ".out.bad (no golden output to diff against)",
                    bad,
                    MAX_DIFF_LINES,
                );
            }
            if let Some(so) = &self.details.system_out {
                section(&mut out, ".full (from result.xml)", so, MAX_DIFF_LINES);
            }
        }
        let dmesg = self
            .files
            .dmesg
            .as_deref()
            .and_then(read_capped)
            .or_else(|| self.details.kernel_log.clone());
        if let Some(d) = dmesg {
            section(&mut out, "dmesg", &d, MAX_DMESG_LINES);
        }
        if let Some(h) = self.files.hints.as_deref().and_then(read_capped) {
            section(&mut out, "hints", &h, MAX_DMESG_LINES);
        }
        for (kind, path) in self.files.present() {
            if kind != "notrun" {
                let _ = writeln!(out, "{kind}: {}", path.display());
            }
        }
        out
    }
}

/// Appends `== title ==` and the first `max` lines of `text` (`==`, not
/// `---`, which starts a diff's own header).
fn section(out: &mut String, title: &str, text: &str, max: usize) {
    let _ = writeln!(out, "== {title} ==");
    let lines: Vec<&str> = text.lines().collect();
    for l in lines.iter().take(max) {
        out.push_str(l);
        out.push('\n');
    }
    if lines.len() > max {
        let _ = writeln!(out, "... ({} more lines)", lines.len() - max);
    }
}

/// The file's text (lossy UTF-8), at most [`MAX_READ`] bytes; `None` when
/// unreadable.
fn read_capped(path: &Path) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_READ).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fstests::results::{FsDetails, FsTestFiles};

    fn failed(files: FsTestFiles, details: FsDetails) -> FsTest {
        FsTest {
            section: Some("ext4_4k".into()),
            name: "generic/999".into(),
            outcome: FsOutcome::Failed,
            reason: Some("- output mismatch (see x)".into()),
            duration: None,
            files,
            attempts: vec![FsOutcome::Failed],
            details,
        }
    }

    #[test]
    fn diff_from_the_tree_when_result_xml_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("tests/generic")).unwrap();
        std::fs::write(
            tree.join("tests/generic/999.out"),
            "QA output created by 999\nok\n",
        )
        .unwrap();
        let bad = dir.path().join("999.out.bad");
        std::fs::write(&bad, "QA output created by 999\nnot ok\n").unwrap();
        let dmesg = dir.path().join("999.dmesg");
        std::fs::write(
            &dmesg,
            "[ 5.0] WARNING: CPU: 0 PID: 1 at fs/ext4/inode.c:1\n",
        )
        .unwrap();
        let files = FsTestFiles {
            out_bad: Some(bad.clone()),
            dmesg: Some(dmesg.clone()),
            ..FsTestFiles::default()
        };
        let t = failed(files, FsDetails::default());
        let m = t.failure_message_with_tree(Some(&tree));
        assert!(
            m.starts_with("fstests fstests::ext4_4k::generic/999: failed: - output mismatch"),
            "{m}"
        );
        assert!(m.contains("-ok\n+not ok\n"), "{m}");
        assert!(m.contains("WARNING: CPU: 0"), "{m}");
        assert!(m.contains(&format!("out.bad: {}", bad.display())), "{m}");
        assert!(m.contains(&format!("dmesg: {}", dmesg.display())), "{m}");
        // Without the tree: the .out.bad content itself.
        let m = t.failure_message();
        assert!(m.contains(".out.bad (no golden output"), "{m}");
        assert!(m.contains("not ok"), "{m}");
    }

    #[test]
    fn long_diffs_are_cut_with_a_note() {
        let diff: String = (0..500).map(|i| format!("+line {i}\n")).collect();
        let details = FsDetails {
            diff: Some(diff),
            ..FsDetails::default()
        };
        let m = failed(FsTestFiles::default(), details).failure_message();
        assert!(m.contains("+line 199\n"), "{m}");
        assert!(!m.contains("+line 200\n"), "{m}");
        assert!(m.contains("... (300 more lines)"), "{m}");
    }
}
