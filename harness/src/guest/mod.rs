//! The guest side: the serial console with its expect engine, and the
//! session that logs in and runs commands over it.

pub mod console;
pub mod session;
