//! `bootrig history DIR...`: the median of each boot phase per image in
//! every run of one or more folders of runs (a nightly folder), oldest
//! first, so a slow drift shows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::timings::{self, median, phase_order};
use super::{find_runs, ReviewError};

/// One run's timings.
#[derive(Debug, Clone)]
pub struct HistoryRun {
    /// The run's id.
    pub id: String,
    /// Its folder.
    pub dir: PathBuf,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// `(image, phase)` → (median ms, number of samples).
    pub medians: BTreeMap<(String, String), (f64, usize)>,
}

/// Timings across runs.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The runs, oldest first.
    pub runs: Vec<HistoryRun>,
}

impl History {
    /// Loads every run in `paths` (each a run folder or a folder of runs).
    pub fn load(paths: &[PathBuf]) -> Result<History, ReviewError> {
        let mut runs: Vec<HistoryRun> = Vec::new();
        for p in paths {
            for run in find_runs(p)? {
                if runs.iter().any(|r| r.dir == run.dir) {
                    continue;
                }
                let medians = timings::samples(&run)
                    .into_iter()
                    .filter_map(|(k, v)| median(&v).map(|m| (k, (m, v.len()))))
                    .collect();
                runs.push(HistoryRun {
                    id: run.id().to_string(),
                    dir: run.dir.clone(),
                    started_at: run.summary.started_at,
                    medians,
                });
            }
        }
        runs.sort_by(|a, b| (a.started_at, &a.dir).cmp(&(b.started_at, &b.dir)));
        Ok(History { runs })
    }

    /// Every image seen.
    pub fn images(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .runs
            .iter()
            .flat_map(|r| r.medians.keys().map(|k| &k.0))
            .collect();
        set.into_iter().cloned().collect()
    }

    /// The phases seen for `image`, in boot order.
    pub fn phases(&self, image: &str) -> Vec<String> {
        let set: BTreeSet<&String> = self
            .runs
            .iter()
            .flat_map(|r| r.medians.keys().filter(|k| k.0 == image).map(|k| &k.1))
            .collect();
        let mut v: Vec<String> = set.into_iter().cloned().collect();
        v.sort_by_key(|p| (phase_order(p), p.clone()));
        v
    }

    /// The median of `phase` of `image` in each run (`None` where the run
    /// has no sample).
    pub fn series(&self, image: &str, phase: &str) -> Vec<Option<f64>> {
        let key = (image.to_string(), phase.to_string());
        self.runs
            .iter()
            .map(|r| r.medians.get(&key).map(|m| m.0))
            .collect()
    }

    /// One table per image: a row per run, a column per phase (median ms).
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "bootrig history: {} run(s)", self.runs.len());
        for image in self.images() {
            let phases = self.phases(&image);
            let _ = writeln!(o, "\nimage {image} (median ms per run):");
            let _ = write!(o, "  {:<24} {:<17}", "run", "started (UTC)");
            for p in &phases {
                let _ = write!(o, " {:>11}", p);
            }
            o.push('\n');
            for r in &self.runs {
                let _ = write!(
                    o,
                    "  {:<24} {:<17}",
                    r.id,
                    r.started_at.format("%Y-%m-%d %H:%M")
                );
                for p in &phases {
                    let v = r.medians.get(&(image.clone(), p.clone()));
                    let _ = write!(
                        o,
                        " {:>11}",
                        v.map_or("-".into(), |m| format!("{:.0}", m.0))
                    );
                }
                o.push('\n');
            }
        }
        o
    }
}
