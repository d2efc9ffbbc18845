//! fstests' `check.log`, read leniently.
//!
//! check appends one block per section and iteration at the end of each
//! (its `_wrapup`), and never truncates the file:
//!
//! ```text
//!
//! Kernel version: 6.1.0-56-cloud-amd64
//! Tue Nov 24 01:45:58 UTC 2026          <- `date`, in the guest's locale
//! Ran: btrfs/001 ext4/001 generic/001
//! Not run: generic/110                  <- optional
//! Interrupted!                          <- optional
//! Failures: btrfs/001                   <- or "Passed all 3 tests"
//! Failed 1 of 3 tests
//! ```
//!
//! With sections, `results/<section>/check.log` has that section's blocks
//! and `results/check.log` every section's blocks with no marker saying
//! which is which. The date is free text (locale-dependent), so blocks are
//! ordered by position only: the last block is the last run. `Ran:` lists
//! notrun tests too (check counts them as tried), which is why "Passed all
//! 7 tests" can mean 4 passed and 3 not run: outcomes come from
//! `result.xml` and `.notrun` files first, and from a block only when they
//! are missing.

/// One block of `check.log`: one section (or the whole run) of one
/// iteration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckLogBlock {
    /// `SECTION -- name` when the block carries one (check's own
    /// `check.log` does not; kept for logs that do, like the summary
    /// format).
    pub section: Option<String>,
    /// `Kernel version: ...`.
    pub kernel: Option<String>,
    /// The `date` line, as written (locale-dependent; not parsed).
    pub date: Option<String>,
    /// `Ran:`: every test tried, notruns included.
    pub ran: Vec<String>,
    /// `Not run:`.
    pub not_run: Vec<String>,
    /// `Failures:`.
    pub failures: Vec<String>,
    /// `Interrupted!`: check was stopped during the block's last test.
    pub interrupted: bool,
    /// 1-based line where the block starts.
    pub line: usize,
}

/// Parses every block of a `check.log`, in file order (see the module
/// doc). Unknown lines are ignored; a block starts at `Kernel version:`,
/// at `SECTION -- `, or at a `Ran:` when the current block already has
/// one.
pub fn parse_check_log(text: &str) -> Vec<CheckLogBlock> {
    let mut blocks: Vec<CheckLogBlock> = Vec::new();
    let mut open = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        let start_new = |blocks: &mut Vec<CheckLogBlock>| {
            blocks.push(CheckLogBlock {
                line: index + 1,
                ..CheckLogBlock::default()
            });
        };
        if let Some(rest) = line.strip_prefix("SECTION") {
            if let Some(name) = rest.trim_start().strip_prefix("--") {
                start_new(&mut blocks);
                open = true;
                blocks.last_mut().unwrap().section = Some(name.trim().to_string());
                continue;
            }
        }
        if let Some(kernel) = line.strip_prefix("Kernel version:") {
            // A `SECTION` line just before belongs to this block.
            let reuse = blocks
                .last()
                .is_some_and(|b| open && b.kernel.is_none() && b.ran.is_empty());
            if !reuse {
                start_new(&mut blocks);
            }
            open = true;
            blocks.last_mut().unwrap().kernel = Some(kernel.trim().to_string());
            continue;
        }
        if !open {
            start_new(&mut blocks);
            open = true;
        }
        let words = |rest: &str| {
            rest.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        if let Some(rest) = line.strip_prefix("Ran:") {
            if !blocks.last().unwrap().ran.is_empty() {
                start_new(&mut blocks);
            }
            blocks.last_mut().unwrap().ran = words(rest);
            continue;
        }
        let block = blocks.last_mut().unwrap();
        if let Some(rest) = line.strip_prefix("Not run:") {
            block.not_run = words(rest);
        } else if let Some(rest) = line.strip_prefix("Failures:") {
            block.failures = words(rest);
        } else if line == "Interrupted!" {
            block.interrupted = true;
        } else if line.starts_with("Passed all ")
            || (line.starts_with("Failed ") && line.contains(" of "))
        {
            // Counts only: derived from the lists above.
        } else if block.ran.is_empty() && block.date.is_none() {
            block.date = Some(line.to_string());
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(kernel: &str, date: &str, ran: &str, extra: &str) -> String {
        format!("\nKernel version: {kernel}\n{date}\nRan: {ran}\n{extra}")
    }

    #[test]
    fn one_block_with_failures() {
        let text = block(
            "6.1.0",
            "Tue Nov 24 01:45:58 UTC 2026",
            "btrfs/001 generic/001 xfs/001",
            "Failures: btrfs/001 xfs/001\nFailed 2 of 3 tests\n",
        );
        let b = parse_check_log(&text);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].kernel.as_deref(), Some("6.1.0"));
        assert_eq!(b[0].date.as_deref(), Some("Tue Nov 24 01:45:58 UTC 2026"));
        assert_eq!(b[0].ran, ["btrfs/001", "generic/001", "xfs/001"]);
        assert_eq!(b[0].failures, ["btrfs/001", "xfs/001"]);
        assert!(!b[0].interrupted);
        assert_eq!(b[0].line, 2);
    }

    #[test]
    fn appended_runs_sections_and_locales_last_block_wins() {
        // Three runs appended; dates in three locales; the top-level copy
        // of a two-section run has no marker.
        let mut text = block(
            "5.15",
            "Mo 23. Nov 10:00:00 CET 2026",
            "generic/001",
            "Passed all 1 tests\n",
        );
        text += &block(
            "6.1",
            "lun. 23 nov. 2026 11:00:00 CET",
            "generic/001 generic/002",
            "Not run: generic/002\nPassed all 2 tests\n",
        );
        text += &block(
            "6.1",
            "2026年 11月 24日 火曜日 01:45:58 UTC",
            "generic/001 generic/002",
            "Interrupted!\nFailures: generic/001\nFailed 1 of 2 tests\n",
        );
        let b = parse_check_log(&text);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].date.as_deref(), Some("Mo 23. Nov 10:00:00 CET 2026"));
        assert_eq!(b[1].not_run, ["generic/002"]);
        let last = b.last().unwrap();
        assert!(last.interrupted);
        assert_eq!(last.failures, ["generic/001"]);
        assert_eq!(
            last.date.as_deref(),
            Some("2026年 11月 24日 火曜日 01:45:58 UTC")
        );
    }

    #[test]
    fn section_markers_and_missing_headers() {
        let text = "SECTION       -- ext4_4k\n=========================\nRan: generic/001\nPassed all 1 tests\n\nSECTION       -- xfs_1k\nKernel version: 6.1\nRan: generic/001\nFailures: generic/001\n\nRan: generic/002\nPassed all 1 tests\n";
        let b = parse_check_log(text);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].section.as_deref(), Some("ext4_4k"));
        assert_eq!(b[1].section.as_deref(), Some("xfs_1k"));
        assert_eq!(b[1].kernel.as_deref(), Some("6.1"));
        assert_eq!(b[1].failures, ["generic/001"]);
        // A Ran: with no header after a complete block starts a new one.
        assert_eq!(b[2].section, None);
        assert_eq!(b[2].ran, ["generic/002"]);
    }

    #[test]
    fn crlf_and_garbage_are_tolerated() {
        let text = "\r\nKernel version: 6.1\r\nwhatever\r\nRan: a/1 a/2\r\nFailures: a/2\r\n\u{0}\u{1}junk\r\n";
        let b = parse_check_log(text);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].ran, ["a/1", "a/2"]);
        assert_eq!(b[0].failures, ["a/2"]);
        assert!(parse_check_log("").is_empty());
    }
}
