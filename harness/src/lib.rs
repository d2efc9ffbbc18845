//! bootrig tests operating-system images the way pytest tests code.
//!
//! It boots ISO, disk or kernel+initrd images in QEMU ([`Machine`]), drives
//! them over the serial console with an ANSI-tolerant expect engine
//! ([`console::Console`]), logs in and runs commands with exact output and
//! exit codes ([`Session`]), and runs declarative scenarios and Rust tests
//! as libtest trials ([`Suite`]). When a test fails it leaves a postmortem
//! (collectors, artifact catalog, `metadata.json`) through the
//! [`diagnostics`] crate.
//!
//! The public API is re-exported here; the folders show the architecture
//! and stay private: `vm/` (QEMU process, arguments, accelerator, QMP,
//! machine), [`console`] (serial bytes, ANSI stripping, expect), `guest/`
//! (session protocol, login, keys, transcripts, waits), `run/` (scenarios,
//! steps, suite, context, engine, reporters), `postmortem/` (collectors,
//! catalog, verdict, report), with [`events`] between the engine and what
//! shows a run, and [`Deadline`] carried from the test down to every wait.
//! `docs/architecture.md` draws the map.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     bootrig::Suite::from_args()
//!         .test("boot::busybox::uname", |ctx| {
//!             let vm = ctx.vm(bootrig::Image::builtin("busybox"))?;
//!             let out = vm.succeed("uname -s")?;
//!             bootrig::check!(out == "Linux\n", "uname printed {out:?}");
//!             Ok(())
//!         })
//!         .run()
//! }
//! ```
#![warn(missing_docs)]

pub mod cli;
pub mod console;
pub mod deadline;
pub mod events;
pub mod fstests;

mod cli_attach;
mod cli_kernel;
mod cli_kill;
mod cli_review;
mod doctor;
mod errors;
mod guest;
mod image;
mod postmortem;
mod run;
mod vm;

pub use bootrig_diagnostics as diagnostics;
pub use bootrig_diagnostics::ansi;
pub use bootrig_diagnostics::catalog::{Producer, ProducerKind};
pub use bootrig_diagnostics::metadata::{FailureKind, Outcome, PhaseEdge};
pub use bootrig_diagnostics::results::{TestRecord, Totals};

/// Fails a Rust test with a formatted message: `return check_failed!("...")`.
#[macro_export]
macro_rules! check_failed {
    ($($arg:tt)*) => { Err($crate::Error::Check(format!($($arg)*))) };
}

/// Fails a Rust test unless `cond` holds: `check!(x == 1)` fails with the
/// condition's text, `check!(x == 1, "x is {x}")` with the message.
#[macro_export]
macro_rules! check {
    ($cond:expr $(,)?) => {
        if !$cond {
            return Err($crate::Error::Check(format!("`{}` is false", stringify!($cond))));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond { return Err($crate::Error::Check(format!($($arg)+))); }
    };
}

pub use deadline::{poll_until, Deadline, POLL_INTERVAL};
pub use errors::{signal_name, Error, Result};
pub use events::{Event, Events, Fanout, Reporter};
pub use guest::keys::Key;
pub use guest::protocol::{compile, shell_quote};
pub use guest::restore::SavedShell;
pub use guest::session::{CommandOutput, Session, SessionHooks, Timeouts};
pub use guest::{LOGIN_PROMPT, PHASE_BECOME_ROOT, PHASE_LOGIN, PHASE_REBOOT, PHASE_SHELL};
pub use image::{Image, ImageManifest, ImageRef, ImageStore, RecipeSource, BUILTIN};
pub use postmortem::collectors::{collect_guest, collect_host, GuestCommand};
pub use postmortem::{
    ArtifactSource, Collected, Collector, CrashWatch, Ending, Postmortem, Side, VmHandle,
};
pub use run::budget::VmBudget;
pub use run::context::TestContext;
pub use run::engine::{Body, Engine, RunReport, Test};
pub use run::marks::{Marks, Requirement};
pub use run::params::Params;
pub use run::reporters::{HumanReporter, JunitReporter, ProgressReporter};
pub use run::scenario::Scenario;
pub use run::select::{MarkExpr, MarkExprError};
pub use run::settings::{default_artifacts_root, RunSettings};
pub use run::signals::{install as install_signal_handlers, Interrupts};
pub use run::snapshots::{SnapshotInfo, SnapshotStore, SNAPSHOTS_ENV};
pub use run::steps::{Step, StepKind};
pub use run::suite::Suite;
pub use run::warm::{Start, WarmState, PHASE_WARM_START};
pub use vm::accel::AccelVerdict;
pub use vm::config::{parse_size, Accel, Drive, Firmware, MachineConfig};
pub use vm::initramfs::MODULES_TAG;
pub use vm::kernel::{kernel_release, KernelInfo, ModulesDir, UserKernel, KERNEL_ENV};
pub use vm::links::{Forward, Share};
pub use vm::machine::Snapshotting;
pub use vm::machine::{Machine, MachineOptions};
pub use vm::network::{Member, Network, NetworkPort};
pub use vm::process::OwnedChild;
pub use vm::qmp::{Qmp, QmpError};
