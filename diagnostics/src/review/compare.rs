//! `bootrig compare OLD NEW`: what changed between two runs. Tests:
//! regressions (new failures), fixes, new skips, added and removed tests.
//! Timings: each boot phase per image, flagged when the new median is
//! slower than the old one by more than a threshold.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::metadata::Outcome;

use super::timings::{self, median, phase_order};
use super::{find_runs, ReviewError, Run};

/// Which regressions make `compare` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    /// Only test regressions.
    Tests,
    /// Only timing regressions.
    Timing,
    /// Either (the default).
    #[default]
    Both,
    /// Never: report only.
    None,
}

impl std::str::FromStr for FailOn {
    type Err = String;
    fn from_str(s: &str) -> Result<FailOn, String> {
        match s {
            "tests" => Ok(FailOn::Tests),
            "timing" => Ok(FailOn::Timing),
            "both" => Ok(FailOn::Both),
            "none" => Ok(FailOn::None),
            _ => Err(format!(
                "unknown --fail-on value {s:?} (expected tests, timing, both or none)"
            )),
        }
    }
}

/// How timings are judged and what fails the comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// A phase is slower when its new median exceeds the old by more than
    /// this fraction (0.10 = 10 %).
    pub threshold: f64,
    /// ... and by more than this many milliseconds (so a 40 ms phase
    /// taking 50 ms is not a regression).
    pub min_delta_ms: u64,
    /// What fails the comparison.
    pub fail_on: FailOn,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            threshold: 0.10,
            min_delta_ms: 100,
            fail_on: FailOn::Both,
        }
    }
}

/// A test whose outcome differs between the runs (or that is in one only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestChange {
    /// The test.
    pub test: String,
    /// Its outcome in the old run (`None`: added).
    pub old: Option<Outcome>,
    /// Its outcome in the new run (`None`: removed).
    pub new: Option<Outcome>,
    /// Why it did not pass in the new run.
    pub headline: Option<String>,
}

fn failing(o: Outcome) -> bool {
    o.is_failure() || o == Outcome::Running
}

impl TestChange {
    /// It fails now and did not before (or did not exist).
    pub fn is_regression(&self) -> bool {
        self.new.is_some_and(failing) && !self.old.is_some_and(failing)
    }
    /// It failed before and passes now.
    pub fn is_fix(&self) -> bool {
        self.old.is_some_and(failing)
            && self
                .new
                .is_some_and(|o| !failing(o) && o != Outcome::Skipped)
    }
    /// It is skipped now and was not before.
    pub fn is_new_skip(&self) -> bool {
        self.new == Some(Outcome::Skipped) && self.old.is_some_and(|o| o != Outcome::Skipped)
    }
    /// It is new in the new run.
    pub fn is_added(&self) -> bool {
        self.old.is_none()
    }
    /// It is gone from the new run.
    pub fn is_removed(&self) -> bool {
        self.new.is_none()
    }
}

/// One boot phase of one image in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingChange {
    /// The image (see [`timings::image_key`]).
    pub image: String,
    /// The phase.
    pub phase: String,
    /// Old samples (ms).
    pub old: Vec<u64>,
    /// New samples (ms).
    pub new: Vec<u64>,
    /// Whether the new median is slower beyond the threshold.
    pub slower: bool,
}

impl TimingChange {
    /// Old median (ms).
    pub fn old_median(&self) -> Option<f64> {
        median(&self.old)
    }
    /// New median (ms).
    pub fn new_median(&self) -> Option<f64> {
        median(&self.new)
    }
    /// New median / old median - 1 (0.25 = 25 % slower).
    pub fn change(&self) -> Option<f64> {
        let (o, n) = (self.old_median()?, self.new_median()?);
        (o > 0.0).then(|| n / o - 1.0)
    }
}

/// A titled list of test changes in the rendering.
type Section = (&'static str, fn(&TestChange) -> bool);

/// The comparison of two runs.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The old run's id and folder.
    pub old: (String, std::path::PathBuf),
    /// The new run's id and folder.
    pub new: (String, std::path::PathBuf),
    /// Tests whose outcome changed, in name order.
    pub tests: Vec<TestChange>,
    /// Every image/phase seen in either run, in image then boot order.
    pub timings: Vec<TimingChange>,
    /// The options used.
    pub options: Options,
}

impl Comparison {
    /// Compares `old` with `new`.
    pub fn new(old: &Run, new: &Run, options: Options) -> Comparison {
        let names: BTreeSet<&str> = old
            .tests
            .iter()
            .chain(&new.tests)
            .map(|t| t.name())
            .collect();
        let mut tests = Vec::new();
        for n in names {
            let o = old.test(n).map(|t| t.outcome());
            let nt = new.test(n);
            let nw = nt.map(|t| t.outcome());
            if o != nw {
                tests.push(TestChange {
                    test: n.to_string(),
                    old: o,
                    new: nw,
                    headline: nt.and_then(|t| {
                        (!matches!(t.outcome(), Outcome::Passed))
                            .then(|| t.headline())
                            .flatten()
                    }),
                });
            }
        }
        let (so, sn) = (timings::samples(old), timings::samples(new));
        let keys: BTreeSet<&(String, String)> = so.keys().chain(sn.keys()).collect();
        let mut timings: Vec<TimingChange> = keys
            .into_iter()
            .map(|k| {
                let old = so.get(k).cloned().unwrap_or_default();
                let new = sn.get(k).cloned().unwrap_or_default();
                let slower = match (median(&old), median(&new)) {
                    (Some(o), Some(n)) => {
                        n > o * (1.0 + options.threshold) && n - o > options.min_delta_ms as f64
                    }
                    _ => false,
                };
                TimingChange {
                    image: k.0.clone(),
                    phase: k.1.clone(),
                    old,
                    new,
                    slower,
                }
            })
            .collect();
        timings.sort_by(|a, b| {
            (&a.image, phase_order(&a.phase), &a.phase).cmp(&(
                &b.image,
                phase_order(&b.phase),
                &b.phase,
            ))
        });
        Comparison {
            old: (old.id().to_string(), old.dir.clone()),
            new: (new.id().to_string(), new.dir.clone()),
            tests,
            timings,
            options,
        }
    }

    /// The tests that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &TestChange> {
        self.tests.iter().filter(|t| t.is_regression())
    }

    /// The phases that got slower.
    pub fn slower(&self) -> impl Iterator<Item = &TimingChange> {
        self.timings.iter().filter(|t| t.slower)
    }

    /// Whether the comparison fails under [`Options::fail_on`].
    pub fn failed(&self) -> bool {
        let tests = self.regressions().next().is_some();
        let timing = self.slower().next().is_some();
        match self.options.fail_on {
            FailOn::Tests => tests,
            FailOn::Timing => timing,
            FailOn::Both => tests || timing,
            FailOn::None => false,
        }
    }

    /// The terminal rendering.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "bootrig compare: {} -> {}", self.old.0, self.new.0);
        let _ = writeln!(
            o,
            "  old: {}\n  new: {}",
            self.old.1.display(),
            self.new.1.display()
        );
        let sections: [Section; 5] = [
            ("regressions (new failures)", TestChange::is_regression),
            ("fixes", TestChange::is_fix),
            ("new skips", TestChange::is_new_skip),
            ("added tests", TestChange::is_added),
            ("removed tests", TestChange::is_removed),
        ];
        let show = |x: Option<Outcome>| x.map_or("-".to_string(), |o| o.to_string());
        for (title, pick) in sections {
            let list: Vec<&TestChange> = self.tests.iter().filter(|t| pick(t)).collect();
            let _ = writeln!(o, "\n{title}: {}", list.len());
            for t in list {
                let _ = write!(o, "  {}: {} -> {}", t.test, show(t.old), show(t.new));
                if let Some(h) = &t.headline {
                    let _ = write!(o, "  ({h})");
                }
                o.push('\n');
            }
        }
        let _ = writeln!(
            o,
            "\nboot timings (median ms; slower when > {:.0} % and > {} ms):",
            self.options.threshold * 100.0,
            self.options.min_delta_ms
        );
        let _ = writeln!(
            o,
            "  {:<20} {:<14} {:>10} {:>10} {:>8}  samples",
            "image", "phase", "old", "new", "change"
        );
        let ms = |m: Option<f64>| m.map_or("-".to_string(), |v| format!("{v:.0}"));
        for t in &self.timings {
            let _ = writeln!(
                o,
                "  {:<20} {:<14} {:>10} {:>10} {:>8}  {}/{}{}",
                t.image,
                t.phase,
                ms(t.old_median()),
                ms(t.new_median()),
                t.change()
                    .map_or("-".into(), |c| format!("{:+.0}%", c * 100.0)),
                t.old.len(),
                t.new.len(),
                if t.slower { "  SLOWER" } else { "" }
            );
        }
        let regressions = self.regressions().count();
        let slower = self.slower().count();
        let _ = writeln!(
            o,
            "\n{regressions} test regression(s), {slower} slower phase(s){}",
            if self.failed() { ": FAIL" } else { "" }
        );
        o
    }
}

/// The newest run in the folder of runs `dir` whose tests all passed,
/// leaving out `except` (the run being compared).
pub fn latest_passing(dir: &Path, except: Option<&Path>) -> Result<Run, ReviewError> {
    let except = except.and_then(|p| std::fs::canonicalize(p).ok());
    let runs = find_runs(dir)?;
    let looked = runs.len();
    runs.into_iter()
        .rev()
        .filter(|r| Some(&r.dir) != except.as_ref())
        .find(Run::all_passed)
        .ok_or(ReviewError::NoPassingRun {
            dir: dir.to_path_buf(),
            looked,
        })
}
