//! fstests' `check.time`: the last passing duration of each test, one
//! `<test> <seconds>` line each (check rewrites it after every section;
//! with sections the top-level copy is merged over all of them).
//! Used for durations when `result.xml` lacks one and, by the VM side, to
//! default per-test deadlines and to order tests longest first.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::errors::{Error, Result};

/// Parses `check.time`: `generic/001 22` per line; a later line for the
/// same test wins; lines that are not `<test> <seconds>` are ignored.
pub fn parse_check_time(text: &str) -> BTreeMap<String, Duration> {
    let mut times = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(test), Some(secs), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let Ok(secs) = secs.parse::<f64>() else {
            continue;
        };
        if test.contains('/') && secs.is_finite() && secs >= 0.0 {
            times.insert(test.to_string(), Duration::from_secs_f64(secs));
        }
    }
    times
}

/// The contents of one `check.time`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckTime {
    /// Test name → its last passing duration.
    pub times: BTreeMap<String, Duration>,
}

impl CheckTime {
    /// Reads `check.time` at `path` (an error names the file).
    pub fn load(path: &Path) -> Result<CheckTime> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading check.time", path, e))?;
        Ok(CheckTime::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Parses the text of a `check.time`.
    pub fn parse(text: &str) -> CheckTime {
        CheckTime {
            times: parse_check_time(text),
        }
    }

    /// The last passing duration of `test`.
    pub fn get(&self, test: &str) -> Option<Duration> {
        self.times.get(test).copied()
    }

    /// The tests, longest first (ties by name): the order that keeps
    /// parallel VMs busy to the end.
    pub fn longest_first(&self) -> Vec<(&str, Duration)> {
        let mut v: Vec<_> = self.times.iter().map(|(t, d)| (t.as_str(), *d)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_junk_and_repeats() {
        let t = parse_check_time("generic/001 22\nxfs/050 28\n\ngarbage\ngeneric/001 24\nbad/1 x\nthree words here\next4/001 0.5\n");
        assert_eq!(t.len(), 3);
        assert_eq!(t["generic/001"], Duration::from_secs(24));
        assert_eq!(t["ext4/001"], Duration::from_millis(500));
    }

    #[test]
    fn load_names_the_missing_file_and_orders_longest_first() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("check.time");
        let e = CheckTime::load(&missing).unwrap_err().to_string();
        assert!(e.contains("check.time"), "{e}");
        std::fs::write(&missing, "a/1 3\nb/2 9\nc/3 3\n").unwrap();
        let t = CheckTime::load(&missing).unwrap();
        let order: Vec<_> = t.longest_first().into_iter().map(|x| x.0).collect();
        assert_eq!(order, ["b/2", "a/1", "c/3"]);
        assert_eq!(t.get("b/2"), Some(Duration::from_secs(9)));
    }
}
