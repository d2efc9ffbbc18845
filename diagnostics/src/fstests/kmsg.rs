//! The kernel lines fstests writes at each test start, found in a console
//! log or a `dmesg`.
//!
//! Before each test check writes `run fstests <test> at <date>` to
//! `/dev/kmsg`. On a serial console these lines interleave with check's
//! own output, often on the same line (`generic/001  24s ... [   93.05]
//! run fstests generic/001 at 2026-11-24 01:51:48`), so they are matched
//! anywhere in a line; they tell which test is running and cut the kernel
//! log into one piece per test.

use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;

/// Where a test started, from its `run fstests` kernel line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestStart {
    /// The kernel timestamp (`[   93.055778]`), when the line has one.
    pub kernel_time: Option<Duration>,
    /// The guest's wall clock, as check wrote it (`2026-11-24 01:51:48`).
    pub date: String,
    /// The 1-based line of `text` holding it.
    pub line: usize,
    /// The byte offset of that line's start in `text`.
    pub offset: usize,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?:\[\s*(\d+)\.(\d+)\]\s*)?run fstests ([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+) at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)",
        )
        .expect("valid regex")
    })
}

/// Every `run fstests <test> at <date>` line of `text` (a console log or a
/// dmesg; terminal escapes are ignored), in order: the test and where it
/// started. A test run twice (two sections, reruns) appears twice.
pub fn tests_started_in_kernel_log(text: &str) -> Vec<(String, TestStart)> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line_offset = offset;
        offset += raw.len();
        if !raw.contains("run fstests ") {
            continue;
        }
        let clean = if raw.contains('\x1b') {
            String::from_utf8_lossy(&crate::ansi::strip(raw.as_bytes())).into_owned()
        } else {
            raw.to_string()
        };
        if let Some(c) = pattern().captures(&clean) {
            let kernel_time = match (c.get(1), c.get(2)) {
                (Some(s), Some(frac)) => {
                    let secs: u64 = s.as_str().parse().unwrap_or(0);
                    let digits = frac.as_str();
                    let micros: u64 = digits.get(..6).unwrap_or(digits).parse().unwrap_or(0);
                    let scale = 10u64.pow(6 - digits.len().min(6) as u32);
                    Some(Duration::from_secs(secs) + Duration::from_micros(micros * scale))
                }
                _ => None,
            };
            starts.push((
                c[3].to_string(),
                TestStart {
                    kernel_time,
                    date: c[4].to_string(),
                    line: i + 1,
                    offset: line_offset,
                },
            ));
        }
    }
    starts
}

/// The kernel log cut per test: each test's piece runs from its `run
/// fstests` line to the line before the next test's (the last one to the
/// end). Text before the first test is not included.
pub fn kernel_log_per_test(text: &str) -> Vec<(String, &str)> {
    let starts = tests_started_in_kernel_log(text);
    starts
        .iter()
        .enumerate()
        .map(|(i, (test, s))| {
            let end = starts.get(i + 1).map_or(text.len(), |n| n.1.offset);
            (test.clone(), &text[s.offset..end])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_console_lines() {
        let text = "[   17.1] EXT4-fs (vdb): mounted\r\n\
            btrfs/001          [   21.940907] run fstests btrfs/001 at 2026-11-24 01:43:16\r\n\
            [   24.4] ext4: Unknown parameter 'subvolid'\r\n\
            [failed, exit status 1][   24.5] EXT4-fs (vdb): unmounting filesystem.\r\n\
            generic/001  24s ... \x1b[0m[   93.055778] run fstests generic/001 at 2026-11-24 01:51:48\r\n\
            run fstests xfs/050 at 2026-11-24 01:53:02\n\
            Nov 24 logger: run xfstest generic/002\n";
        let s = tests_started_in_kernel_log(text);
        let names: Vec<_> = s.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["btrfs/001", "generic/001", "xfs/050"]);
        assert_eq!(s[0].1.kernel_time, Some(Duration::from_micros(21_940_907)));
        assert_eq!(s[0].1.date, "2026-11-24 01:43:16");
        assert_eq!(s[0].1.line, 2);
        assert_eq!(s[1].1.kernel_time, Some(Duration::from_micros(93_055_778)));
        assert_eq!(s[2].1.kernel_time, None);
        let pieces = kernel_log_per_test(text);
        assert_eq!(pieces.len(), 3);
        assert!(pieces[0].1.contains("Unknown parameter 'subvolid'"));
        assert!(!pieces[0].1.contains("generic/001"));
        assert!(pieces[2].1.starts_with("run fstests xfs/050"));
    }

    #[test]
    fn short_fractions_and_nothing_found() {
        let s = tests_started_in_kernel_log("[ 5.5] run fstests ext4/001 at 2026-01-01 00:00:00\n");
        assert_eq!(s[0].1.kernel_time, Some(Duration::from_millis(5500)));
        assert!(tests_started_in_kernel_log("no tests here\nrun fstests at\n").is_empty());
        assert!(kernel_log_per_test("").is_empty());
    }
}
