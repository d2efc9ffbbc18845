//! The guest side: the serial console with its expect engine, and the
//! session that logs in and runs commands over it.
//!
//! - [`console`]: the serial console, its reader thread and `expect`;
//! - [`session`]: [`Session`](session::Session), commands over the console;
//! - `login.rs`: logging in, becoming root, attaching to a shell;
//! - `waits.rs`: polled waits (a command succeeding, a systemd unit);
//! - `mounts.rs`: the machine's host shares mounted in the guest;
//! - `reboot.rs`: rebooting the guest and getting the shell back;
//! - `sync.rs`: resynchronising after a timeout, noticing a left shell;
//! - [`protocol`]: the markers that delimit each command's output;
//! - [`keys`]: key presses as terminal bytes;
//! - [`network`]: a private network's address and `/etc/hosts` in the guest;
//! - `transcript.rs`: `transcript.log` and `login-transcript.log`.
//!
//! `login.rs`, `waits.rs`, `sync.rs` and `channel.rs` extend [`Session`](session::Session); the
//! session uses the console, protocol, keys and transcript, none of which
//! know about sessions.

mod channel;
mod files;
pub mod keys;
mod login;
mod mounts;
pub mod network;
pub mod protocol;
mod reboot;
pub mod restore;
pub mod session;
mod sync;
mod transcript;
mod waits;

pub use login::{LOGIN_PROMPT, PHASE_BECOME_ROOT, PHASE_LOGIN, PHASE_SHELL};
pub use reboot::PHASE_REBOOT;
