//! fstests (xfstests) in a VM, every fstests test its own trial.
//!
//! [`FstestsConfig`] says what to run: a built tree ([`FstestsTree`], or
//! one built from source with [`build_from_source`]), the sections
//! ([`Section`], or the user's `local.config`), the devices, the
//! selection, the deadlines. [`crate::Suite::fstests`] adds one trial per
//! (section, test), named `fstests::<section>::<test>`; the first trial
//! that runs in a process runs all the selected ones in VMs
//! ([`runner`]) and each trial reports its own slice. `bootrig fstests`
//! (in [`cli`]) runs the same trials through the same engine.
//!
//! Built on the public API only: [`crate::TestContext`] boots the VMs and
//! catalogues every fstests file with
//! [`crate::TestContext::add_artifact`]. See `docs/fstests.md`.

mod attempt;
pub mod cli;
pub mod config;
pub mod disk;
pub mod driver;
pub mod history;
pub mod hostdev;
pub mod rerun;
pub mod results_api;
pub mod runner;
mod shard;
pub mod tree;
pub mod trials;

use std::path::PathBuf;

pub use config::{DeviceSet, Devices, Layout, Plan, Section, Selection};
pub use runner::{Deadlines, RunOutcome};
pub use tree::{build_from_source, FstestsTree, BUILD_PACKAGES};
pub use trials::Trials;

use crate::{Image, ImageRef};

/// Everything an fstests run needs; build it with the `with_*` methods.
#[derive(Debug, Clone)]
pub struct FstestsConfig {
    /// The built tree.
    pub tree: FstestsTree,
    /// Sections or the user's `local.config`.
    pub layout: Layout,
    /// The devices each VM gets.
    pub devices: Devices,
    /// Which tests.
    pub selection: Selection,
    /// The guest image (default: the built-in `fstests`).
    pub image: ImageRef,
    /// Per-test and whole-run deadlines.
    pub deadlines: Deadlines,
    /// A `check.time` whose durations set the per-test deadlines (without
    /// one, the durations the last runs of this tree recorded in the
    /// cache; a test never run gets [`Deadlines::unknown`]).
    pub history: Option<PathBuf>,
    /// Known failures: they become expected failures (xfail).
    pub baseline: Option<PathBuf>,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Guest CPUs.
    pub cpus: u32,
    /// Rerun each failure this many times and label it flaky or
    /// consistent.
    pub rerun_failures: u32,
    /// VMs that take the tests from one shared queue (1: one VM runs
    /// `check` once per section).
    pub vms: usize,
    /// How many VMs a test may take down (hang or crash) before it is not
    /// retried ([`runner::MAX_DEATHS`] by default).
    pub max_deaths: usize,
}

impl FstestsConfig {
    /// A run of `tree` with one section `fstype` named after it, no tests
    /// selected yet.
    pub fn new(tree: FstestsTree, fstype: &str) -> FstestsConfig {
        FstestsConfig {
            tree,
            layout: Layout::Sections(vec![Section::new(fstype, fstype)]),
            devices: Devices::default(),
            selection: Selection {
                iterations: 1,
                ..Selection::default()
            },
            image: Image::builtin("fstests"),
            deadlines: Deadlines::default(),
            history: None,
            baseline: None,
            memory_mib: 2048,
            cpus: 2,
            rerun_failures: 0,
            vms: 1,
            max_deaths: runner::MAX_DEATHS,
        }
    }

    /// Uses these sections.
    pub fn with_sections(mut self, sections: Vec<Section>) -> FstestsConfig {
        self.layout = Layout::Sections(sections);
        self
    }

    /// Uses the user's own `local.config` as it is.
    pub fn with_local_config(mut self, path: impl Into<PathBuf>) -> FstestsConfig {
        self.layout = Layout::LocalConfig(path.into());
        self
    }

    /// Adds tests by name (`generic/001`).
    pub fn with_tests<S: Into<String>>(
        mut self,
        tests: impl IntoIterator<Item = S>,
    ) -> FstestsConfig {
        self.selection
            .tests
            .extend(tests.into_iter().map(Into::into));
        self
    }

    /// Adds groups (`quick`).
    pub fn with_groups<S: Into<String>>(
        mut self,
        groups: impl IntoIterator<Item = S>,
    ) -> FstestsConfig {
        self.selection
            .groups
            .extend(groups.into_iter().map(Into::into));
        self
    }

    /// Runs the named tests in the order given (`check --exact-order`).
    pub fn with_exact_order(mut self) -> FstestsConfig {
        self.selection.exact_order = true;
        self
    }

    /// Uses this selection.
    pub fn with_selection(mut self, selection: Selection) -> FstestsConfig {
        self.selection = selection;
        self
    }

    /// Uses these devices.
    pub fn with_devices(mut self, devices: Devices) -> FstestsConfig {
        self.devices = devices;
        self
    }

    /// Uses these deadlines.
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> FstestsConfig {
        self.deadlines = deadlines;
        self
    }

    /// Takes per-test durations from this `check.time`.
    pub fn with_history(mut self, check_time: impl Into<PathBuf>) -> FstestsConfig {
        self.history = Some(check_time.into());
        self
    }

    /// Turns the failures listed in this file into expected failures.
    pub fn with_baseline(mut self, path: impl Into<PathBuf>) -> FstestsConfig {
        self.baseline = Some(path.into());
        self
    }

    /// Reruns each failure `n` times (`--rerun-failures`).
    pub fn with_rerun_failures(mut self, n: u32) -> FstestsConfig {
        self.rerun_failures = n;
        self
    }

    /// Runs the tests on `n` VMs at once, from one shared queue, longest
    /// first (by `check.time`), each VM with its own devices.
    pub fn with_vms(mut self, n: usize) -> FstestsConfig {
        self.vms = n;
        self
    }

    /// A test that takes `n` VMs down is not retried again (at least 1).
    pub fn with_max_deaths(mut self, n: usize) -> FstestsConfig {
        self.max_deaths = n.max(1);
        self
    }

    /// Gives each VM `cpus` vCPUs (default 2). Under TCG every vCPU is a
    /// host thread: VMs times vCPUs beyond the host's cores slows every
    /// guest down.
    pub fn with_cpus(mut self, cpus: u32) -> FstestsConfig {
        self.cpus = cpus;
        self
    }

    /// Gives each VM `mib` MiB of memory (default 2048).
    pub fn with_memory_mib(mut self, mib: u64) -> FstestsConfig {
        self.memory_mib = mib;
        self
    }

    /// Boots another image.
    pub fn with_image(mut self, image: ImageRef) -> FstestsConfig {
        self.image = image;
        self
    }

    /// The plan: tests per section.
    pub fn plan(&self) -> crate::Result<Plan> {
        config::validate_devices(&self.layout, &self.devices)?;
        if self.vms == 0 {
            return Err(crate::Error::Config {
                what: "fstests vms".into(),
                message: "must be at least 1, not 0".into(),
            });
        }
        let sets = config::device_sets(&self.layout, &self.devices);
        if let Some(given) = sets
            .iter()
            .find(|s| !s.devices.paths.is_empty())
            .filter(|_| self.vms > 1)
        {
            return Err(crate::Error::Config {
                what: "fstests vms".into(),
                message: format!(
                    "{} VMs cannot share the devices given as paths ({}): each VM needs its own; use sparse devices (no --device) or one VM",
                    self.vms,
                    given.devices.paths[0].display()
                ),
            });
        }
        Plan::new(&self.layout, &self.selection, Some(&self.tree))
    }
}
