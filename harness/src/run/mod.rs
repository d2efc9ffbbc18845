//! Running tests: scenario files and their steps, the per-test context,
//! the run engine, and the reports a run leaves.

pub mod context;
pub mod events;
pub mod junit;
pub mod scenario;
pub mod settings;
pub mod signals;
pub mod steps;
pub mod suite;
