//! The console lines of `bootrig run`.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::events::{Event, Reporter};

/// Prints a run for a person:
///
/// ```text
/// bootrig: running 2 test(s); artifacts in target/bootrig/20261124-100000-42
/// PASS  smoke::shell (8.1s)
/// FAIL  smoke::boot (30.2s)  artifacts: target/bootrig/…/smoke.boot
/// <the failure report>
/// bootrig: 1 passed, 1 failed, 0 skipped, 0 xfail, 0 xpass; artifacts in target/bootrig/…
/// ```
///
/// and, after an interruption, `bootrig: interrupted by SIGINT; 1 of 2
/// test(s) ran` on stderr.
pub struct HumanReporter {
    out: Mutex<Box<dyn Write + Send>>,
    selected: AtomicUsize,
    finished: AtomicUsize,
}

impl std::fmt::Debug for HumanReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HumanReporter")
    }
}

impl HumanReporter {
    /// Prints to stdout.
    pub fn stdout() -> HumanReporter {
        HumanReporter::to(std::io::stdout())
    }

    /// Prints to `out`.
    pub fn to(out: impl Write + Send + 'static) -> HumanReporter {
        HumanReporter {
            out: Mutex::new(Box::new(out)),
            selected: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
        }
    }

    fn print(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

impl Reporter for HumanReporter {
    fn report(&self, event: &Event) {
        match event {
            Event::RunStarted { tests, run_dir } => {
                self.selected.store(*tests, Ordering::SeqCst);
                self.print(&format!(
                    "bootrig: running {tests} test(s); artifacts in {}",
                    run_dir.display()
                ));
            }
            Event::TestFinished { record } => {
                self.finished.fetch_add(1, Ordering::SeqCst);
                let mut text = record.summary_line();
                if record.outcome().is_failure() {
                    if let Some(m) = &record.message {
                        text.push('\n');
                        text.push_str(m);
                    }
                }
                self.print(&text);
            }
            Event::RunFinished {
                totals,
                run_dir,
                interrupted,
            } => {
                self.print(&format!(
                    "bootrig: {totals}; artifacts in {}",
                    run_dir.display()
                ));
                if let Some(sig) = interrupted {
                    eprintln!(
                        "bootrig: interrupted by {}; {} of {} test(s) ran",
                        crate::errors::signal_name(*sig),
                        self.finished.load(Ordering::SeqCst),
                        self.selected.load(Ordering::SeqCst)
                    );
                }
            }
            Event::TestStarted { .. }
            | Event::Phase { .. }
            | Event::Step { .. }
            | Event::Output { .. } => {}
        }
    }
}
