//! The virtual machine: QEMU's command line, its process, the accelerator
//! choice, QMP, and the machine's lifecycle. Nothing here knows about
//! shells, tests or postmortems.

pub mod accel;
pub mod channel;
pub mod config;
mod drives;
pub mod machine;
pub mod migrate;
pub mod process;
pub mod qemu_args;
pub mod qmp;
