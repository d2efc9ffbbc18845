//! Running tests: scenario files and their steps, the per-test context,
//! the run engine, its events and the reporters that show a run.
//!
//! ```text
//! cli ─┐                         ┌─ marks, select, budget
//!      ├─ engine ── context ─────┤
//! suite┘    │                    └─ settings ── events ── reporters
//!           ├─ scenario_test ── scenario, steps
//!           └─ networks (private networks of a test)
//! ```

pub mod budget;
pub mod context;
pub mod engine;
pub mod hold;
pub mod host_paths;
pub mod locate;
pub mod machine_spec;
pub mod machines;
pub mod marks;
pub mod networks;
pub mod panics;
pub mod params;
pub mod reporters;
pub mod scenario;
pub mod scenario_test;
pub mod select;
pub mod settings;
pub mod signals;
pub mod snapshots;
pub mod steps;
pub mod suite;
pub mod warm;
