//! What a person watching a run sees while tests are still going: the
//! `Output` lines (image-build steps; run-wide notes such as the
//! accelerator choice, each once per run) on stderr, and on a terminal a
//! live spinner line per test while its VM boots.

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use bootrig_diagnostics::metadata::{Phase, PhaseEdge};

use crate::events::{Event, Reporter};

/// Progress on stderr. See the module documentation.
#[derive(Debug)]
pub struct ProgressReporter {
    tty: bool,
    notes: Mutex<BTreeSet<String>>,
    spinners: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

impl ProgressReporter {
    /// Progress on stderr; spinners only when stderr is a terminal.
    pub fn stderr() -> ProgressReporter {
        ProgressReporter {
            tty: std::io::stderr().is_terminal(),
            notes: Mutex::default(),
            spinners: Mutex::default(),
        }
    }

    fn line(&self, text: &str) {
        let spinners = self.spinners.lock().unwrap_or_else(|p| p.into_inner());
        // Printed above any live spinner instead of through it.
        match spinners.values().next() {
            Some(bar) => bar.suspend(|| eprintln!("bootrig: {text}")),
            None => eprintln!("bootrig: {text}"),
        }
    }

    fn spin(&self, test: &str) {
        if !self.tty {
            return;
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(format!("{test}: booting"));
        bar.enable_steady_tick(Duration::from_millis(120));
        let mut spinners = self.spinners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = spinners.insert(test.to_string(), bar) {
            old.finish_and_clear();
        }
    }

    fn stop(&self, test: &str) {
        let bar = self
            .spinners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(test);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
}

impl Reporter for ProgressReporter {
    fn report(&self, event: &Event) {
        match event {
            Event::Output { test, line } if test.is_empty() => {
                let fresh = self
                    .notes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(line.clone());
                if fresh {
                    self.line(line);
                }
            }
            Event::Output { line, .. } => self.line(line),
            Event::Phase {
                test,
                phase,
                edge: PhaseEdge::Start,
            } if phase == Phase::QEMU_START => self.spin(test),
            Event::Phase { test, phase, .. } if phase == Phase::SHELL_READY => self.stop(test),
            Event::TestFinished { record } => self.stop(record.name()),
            _ => {}
        }
    }
}

impl Drop for ProgressReporter {
    fn drop(&mut self) {
        for (_, bar) in self
            .spinners
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            bar.finish_and_clear();
        }
    }
}
