//! bootrig tests operating-system images the way pytest tests code.
//!
//! It boots ISO, disk or kernel+initrd images in QEMU ([`Machine`]), drives
//! them over the serial console with an ANSI-tolerant expect engine
//! ([`console::Console`]), logs in and runs commands with exact output and
//! exit codes ([`Session`]), and runs declarative scenarios and Rust tests
//! as libtest trials ([`Suite`]). When a test fails it leaves a postmortem
//! through the `bootrig-diagnostics` crate.
#![warn(missing_docs)]

pub mod accel;
pub mod ansi;
pub mod config;
pub mod console;
pub mod errors;
pub mod image;
pub mod machine;
pub mod process;
pub mod qemu_args;
pub mod qmp;
pub mod scenario;
pub mod session;
pub mod wait;

pub use config::{Accel, Drive, Firmware, MachineConfig};
pub use errors::{Error, Result};
pub use image::{Image, ImageRef, ImageStore};
pub use machine::{Machine, MachineOptions};
pub use session::{CommandOutput, Key, Session, Timeouts};
