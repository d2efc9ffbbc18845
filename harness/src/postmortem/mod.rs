//! The harness side of the postmortem: what a test leaves behind, and the
//! failure message that explains it.
//!
//! While the test runs, the [`Postmortem`] recorder keeps `metadata.json`
//! up to date (phases, steps, QEMU facts, boot sources) and a
//! [`CrashWatch`] follows each console. When the test ends,
//! [`Postmortem::finish`] runs a pipeline, one module per stage:
//!
//! ```text
//! snapshot ──▶ collectors ──▶ catalog ──▶ verdict ──▶ rendering
//! (console     (guest and     (every file  (outcome,   (the stand-alone
//!  tail, guest  host, on       with its     failure,    failure message)
//!  identity,    failure only)  sha256)      run.json)
//!  crash reports)
//! ```
//!
//! Two extension points let a test or a subsystem add to it:
//! [`Collector`]s ([`TestContext::add_collector`](crate::TestContext::add_collector);
//! the built-in ones in [`collectors`] are registered the same way) and
//! artifacts ([`TestContext::add_artifact`](crate::TestContext::add_artifact),
//! a file or bytes with its [`Producer`]). Where every file goes is
//! [`bootrig_diagnostics::layout`].
//!
//! The schema, catalog and report types are `bootrig-diagnostics`'; this
//! module is the part that needs a live VM.

pub mod collector;
pub mod collectors;

mod catalog;
mod finish;
mod recorder;
mod render;
mod run_summary;
mod snapshot;
mod timeline;
mod verdict;
mod watch;

pub use bootrig_diagnostics::catalog::Producer;
pub use collector::{Collected, Collector, Side, VmHandle};
pub use finish::Ending;
pub use recorder::{ArtifactSource, Postmortem};
pub use watch::CrashWatch;
