//! bootrig tests operating-system images the way pytest tests code.
//!
//! It boots ISO, disk or kernel+initrd images in QEMU ([`Machine`]), drives
//! them over the serial console with an ANSI-tolerant expect engine
//! ([`console::Console`]), logs in and runs commands with exact output and
//! exit codes ([`Session`]), and runs declarative scenarios and Rust tests
//! as libtest trials ([`Suite`]). When a test fails it leaves a postmortem
//! through the `bootrig-diagnostics` crate.
#![warn(missing_docs)]

pub mod cli;
pub mod deadline;
pub mod doctor;
pub mod errors;
pub mod guest;
pub mod image;
pub mod postmortem;
pub mod progress;
pub mod run;
pub mod vm;

pub use bootrig_diagnostics::ansi;
pub use guest::{console, session};
pub use postmortem::collectors as collect;
pub use run::{context, scenario, signals, suite};
pub use vm::{accel, config, machine, process, qemu_args, qmp};

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

pub use config::{Accel, Drive, Firmware, MachineConfig};
pub use context::{RunSettings, TestContext};
pub use deadline::Deadline;
pub use errors::{Error, Result};
pub use image::{Image, ImageRef, ImageStore};
pub use machine::{Machine, MachineOptions};
pub use run::engine::{Engine, Test};
pub use run::events::{Event, Events, PhaseEdge, Reporter};
pub use run::marks::{Marks, Requirement};
pub use run::reporters::{HumanReporter, JunitReporter};
pub use session::{CommandOutput, Key, Session, Timeouts};
pub use suite::Suite;
