//! The virtual machine: QEMU's command line, its process, the accelerator
//! choice, QMP, and the machine's lifecycle. Nothing here knows about
//! shells, tests or postmortems.

pub mod accel;
pub mod channel;
pub mod config;
mod connect;
mod drives;
pub mod initramfs;
pub mod kernel;
pub mod links;
pub mod machine;
mod machine_qmp;
pub mod migrate;
pub mod network;
pub mod process;
pub mod qemu_args;
pub mod qemu_bin;
pub mod qmp;
pub mod registry;
pub mod switch;
