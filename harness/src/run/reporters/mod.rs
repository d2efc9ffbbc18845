//! Reporters: what shows a run, each fed the engine's
//! [`Event`](crate::run::events::Event)s.
//!
//! - [`HumanReporter`]: the `PASS  name (1.2s)` lines, failure reports and
//!   the totals line of `bootrig run`.
//! - [`JunitReporter`]: the JUnit XML file (`--junit`, `BOOTRIG_JUNIT`).
//!
//! A new one (HTML, a live view) implements
//! [`Reporter`](crate::run::events::Reporter) and is added to the run's
//! [`Events`](crate::run::events::Events), next to these.

mod human;
mod junit;

pub use human::HumanReporter;
pub use junit::JunitReporter;
