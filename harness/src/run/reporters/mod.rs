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
