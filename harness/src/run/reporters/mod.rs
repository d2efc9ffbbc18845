//! Reporters: what shows a run, each fed the engine's
//! [`Event`](crate::events::Event)s.
//!
//! - [`HumanReporter`]: the `PASS  name (1.2s)` lines, failure reports and
//!   the totals line of `bootrig run`.
//! - [`JunitReporter`]: the JUnit XML file (`--junit`, `BOOTRIG_JUNIT`).
//! - [`ProgressReporter`]: image-build lines, run-wide notes, live spinners.
//!
//! A new one (HTML, a live view) implements
//! [`Reporter`](crate::events::Reporter) and is added to the run's
//! [`Events`](crate::events::Events), next to these.

mod human;
mod junit;
mod progress;

pub use human::HumanReporter;
pub use junit::JunitReporter;
pub use progress::ProgressReporter;

use std::sync::Arc;

use crate::events::{Events, Fanout, Reporter};

/// The reporters of a run started from the command line: progress on
/// stderr, the `PASS`/`FAIL` lines on stdout, and the JUnit file if asked.
pub fn console_events(junit: Option<&Arc<JunitReporter>>) -> Events {
    let mut reporters: Vec<Box<dyn Reporter>> = vec![
        Box::new(ProgressReporter::stderr()),
        Box::new(HumanReporter::stdout()),
    ];
    if let Some(j) = junit {
        reporters.push(Box::new(j.clone()));
    }
    Events::new(Fanout(reporters))
}
