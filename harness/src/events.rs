//! The interface between the run engine and whatever shows a run.
//!
//! The engine never prints. Everything a person or a tool can see of a
//! run (the `PASS`/`FAIL` lines of `bootrig run`, spinners, notes such as
//! the accelerator choice, the JUnit file, a future HTML report or live
//! view) is a [`Reporter`] that receives these [`Event`]s, in this order
//! for each test:
//!
//! ```text
//! RunStarted
//!   TestStarted ─┬─ Phase (start/end) ─┬─ … ── TestFinished(record)
//!                ├─ Step               │
//!                └─ Output (notes)  ───┘
//! RunFinished(totals)
//! ```
//!
//! Tests run in parallel, so events of different tests interleave; every
//! per-test event names its test. Outcomes and counts are typed
//! ([`TestRecord`], [`Totals`] from `bootrig-diagnostics`).

use std::path::PathBuf;
use std::sync::Arc;

use bootrig_diagnostics::results::{TestRecord, Totals};

pub use bootrig_diagnostics::metadata::PhaseEdge;

/// One thing that happened in a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The run starts with `tests` selected tests, artifacts in `run_dir`.
    RunStarted {
        /// Selected tests (0 when the scheduler does not know up front).
        tests: usize,
        /// The run's artifacts folder.
        run_dir: PathBuf,
    },
    /// A test starts.
    TestStarted {
        /// Its full name.
        test: String,
    },
    /// A phase of a test (`image busybox`, `qemu start`, `login`, ...)
    /// begins or ends.
    Phase {
        /// The test.
        test: String,
        /// The phase's name, as in `metadata.json`.
        phase: String,
        /// Begins or ends.
        edge: PhaseEdge,
    },
    /// A scenario step starts.
    Step {
        /// The test.
        test: String,
        /// 0-based step index.
        index: usize,
        /// `run (exit 0): uname -r`.
        description: String,
    },
    /// A line worth showing while the test runs: image-build progress, the
    /// accelerator choice.
    Output {
        /// The test (empty for run-wide notes).
        test: String,
        /// The text, one line.
        line: String,
    },
    /// A test ended.
    TestFinished {
        /// What happened to it.
        record: TestRecord,
    },
    /// The run ended (also after an interruption).
    RunFinished {
        /// The counts.
        totals: Totals,
        /// The run's artifacts folder.
        run_dir: PathBuf,
        /// The signal that interrupted the run, if one did.
        interrupted: Option<i32>,
    },
}

/// Receives a run's events. Called from the test threads: keep it quick
/// and do not block.
pub trait Reporter: Send + Sync {
    /// One event.
    fn report(&self, event: &Event);
}

/// A shared reporter handle, cheap to clone into every test.
#[derive(Clone)]
pub struct Events(Arc<dyn Reporter>);

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// Events go to `reporter`.
    pub fn new(reporter: impl Reporter + 'static) -> Events {
        Events(Arc::new(reporter))
    }

    /// Events go nowhere.
    pub fn discard() -> Events {
        Events::new(Fanout(Vec::new()))
    }

    /// Sends one event.
    pub fn send(&self, event: Event) {
        self.0.report(&event);
    }
}

impl Reporter for Events {
    fn report(&self, event: &Event) {
        self.0.report(event);
    }
}

/// A reporter shared with its creator, who reads its state after the run
/// (e.g. whether the JUnit file could be written).
impl<R: Reporter + ?Sized> Reporter for Arc<R> {
    fn report(&self, event: &Event) {
        (**self).report(event);
    }
}

/// Sends every event to each of several reporters, in order.
pub struct Fanout(pub Vec<Box<dyn Reporter>>);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({} reporters)", self.0.len())
    }
}

impl Reporter for Fanout {
    fn report(&self, event: &Event) {
        for r in &self.0 {
            r.report(event);
        }
    }
}
