//! The per-test context: fixtures in pytest's sense.
//!
//! A test asks its [`TestContext`] for what it needs (a VM booted from an
//! image or a [`MachineConfig`], an artifacts folder) and the context tears
//! it all down when the test ends. When the test failed, the context
//! collects diagnostics from every VM it still has, while the guests still
//! answer, and writes the postmortem into the test's artifacts folder.

use std::borrow::Borrow;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::errors::Result;
use crate::guest::session::{Session, Timeouts};
use crate::image::{Image, ImageRef};
use crate::postmortem::{Ending, Postmortem};
pub use crate::run::settings::RunSettings;
use crate::vm::config::MachineConfig;
use crate::vm::machine::{Machine, MachineOptions};
use bootrig_diagnostics::metadata::Phase;

/// What a test is given: fixtures, and a place for artifacts.
#[derive(Debug)]
pub struct TestContext {
    name: String,
    settings: RunSettings,
    vms: Mutex<Vec<Arc<Session>>>,
    started: Instant,
    deadline: Mutex<Deadline>,
    postmortem: Postmortem,
}

impl TestContext {
    /// A context for the test `name`, with its folder under the run folder.
    pub fn new(name: &str, settings: RunSettings) -> Result<TestContext> {
        let postmortem = Postmortem::begin(name, &settings.run_dir, &settings.images.cache)?;
        point_latest_at(&settings.run_dir);
        Ok(TestContext {
            name: name.to_string(),
            settings,
            vms: Mutex::new(Vec::new()),
            started: Instant::now(),
            deadline: Mutex::new(Deadline::never()),
            postmortem,
        })
    }

    /// The test's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test's artifacts folder.
    pub fn artifacts_dir(&self) -> &Path {
        self.postmortem.dir()
    }

    /// The run settings.
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// How long the test has been running.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The test's deadline ([`Deadline::never`] unless the runner set
    /// one): every VM booted by this context bounds its waits with it.
    pub fn deadline(&self) -> Deadline {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the test's deadline (the runner does, from the test's
    /// `timeout`); applies to VMs booted afterwards and to those running.
    pub fn set_deadline(&self, deadline: Deadline) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
        for vm in self.vms().iter() {
            vm.set_deadline(deadline);
        }
    }

    /// The postmortem recorder (metadata.json, phases, failure).
    pub fn postmortem(&self) -> &Postmortem {
        &self.postmortem
    }

    fn vms(&self) -> MutexGuard<'_, Vec<Arc<Session>>> {
        self.vms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Builds (if needed) an image.
    pub fn image(&self, image: impl Borrow<ImageRef>) -> Result<Image> {
        let image = image.borrow();
        let progress = self.settings.progress.clone();
        self.postmortem
            .phase_start(&format!("image {}", image.name));
        let img = self
            .settings
            .images
            .ensure(image, &mut |line| progress.line(line));
        self.postmortem.phase_end(&format!("image {}", image.name));
        img
    }

    /// Boots a VM from a built-in image. Images whose shell needs no login
    /// (`busybox`, `iso`) come back attached to their shell; for images
    /// with a getty (`debian`) call [`Session::login`].
    pub fn vm(&self, image: impl Borrow<ImageRef>) -> Result<Arc<Session>> {
        self.vm_with_timeouts(image, Timeouts::default())
    }

    /// [`TestContext::vm`] with other deadlines.
    pub fn vm_with_timeouts(
        &self,
        image: impl Borrow<ImageRef>,
        timeouts: Timeouts,
    ) -> Result<Arc<Session>> {
        let image = image.borrow();
        let img = self.image(image)?;
        let name = format!("{}-{}", image.name, self.vms().len() + 1);
        let config = img.machine_config(&name, None);
        let _spinner = self
            .settings
            .progress
            .spinner(&format!("{}: booting {name}", self.name));
        let vm = self.boot_with(config, timeouts)?;
        if img.manifest.login.is_none() {
            if let Some(prompt) = &img.manifest.shell_prompt {
                vm.attach_shell(prompt)?;
            }
        }
        Ok(vm)
    }

    /// Boots a VM from an explicit config with the default [`Timeouts`].
    /// The first VM of a test writes its logs into the test folder, later
    /// ones into `<folder>/<vm name>/`.
    pub fn boot(&self, config: MachineConfig) -> Result<Arc<Session>> {
        self.boot_with(config, Timeouts::default())
    }

    /// [`TestContext::boot`] with other deadlines.
    pub fn boot_with(&self, mut config: MachineConfig, timeouts: Timeouts) -> Result<Arc<Session>> {
        if let Some(accel) = self.settings.accel {
            config.accel = accel;
        }
        let out_dir = if self.vms().is_empty() {
            self.artifacts_dir().to_path_buf()
        } else {
            self.artifacts_dir()
                .join(bootrig_diagnostics::names::safe_name(&config.name))
        };
        // An ISO or disk boot has no kernel of its own to probe KVM with;
        // use the busybox image's if it is built.
        let probe_kernel = (|| {
            if config.kernel.is_some() {
                return None;
            }
            self.settings
                .images
                .cached("busybox")
                .ok()
                .flatten()
                .and_then(|i| i.kernel())
        })();
        let mut options = MachineOptions::new(&out_dir);
        options.cache_dir = self.settings.images.cache.clone();
        options.probe_kernel = probe_kernel;
        options.observer = Some(Box::new(self.postmortem.console_observer()));
        self.postmortem.phase_start(Phase::QEMU_START);
        let machine = Machine::start(&config, options)?;
        self.postmortem.phase_end(Phase::QEMU_START);
        if !machine.accel().reason.is_empty() {
            self.settings.progress.note(&machine.accel().reason);
        }
        self.postmortem.record_machine(&machine);
        let session = Arc::new(Session::new(machine, timeouts));
        session.set_deadline(self.deadline());
        self.settings.interrupts.register(&session);
        self.vms().push(session.clone());
        if self.settings.interrupts.interrupted().is_some() {
            // Interrupted while this VM was starting: stop it too.
            session.machine().kill();
        }
        Ok(session)
    }

    /// Kills every VM now (deadline enforcement from another thread).
    pub fn kill_all(&self) {
        for vm in self.vms().iter() {
            vm.machine().kill();
        }
    }

    /// Ends the test: on failure collects diagnostics from the VMs while
    /// they still answer, then stops them and finalises `metadata.json`.
    pub fn finish(self, outcome: &Result<()>, xfail: Option<&str>) -> Ending {
        let vms: Vec<Arc<Session>> = std::mem::take(&mut *self.vms());
        self.postmortem.finish(&vms, outcome, xfail)
    }
}

/// Makes `<artifacts root>/latest` a symlink to the run folder, so the
/// newest run is always at the same path. Best effort: replaced atomically
/// (a symlink under a temporary name, then renamed over the old one).
fn point_latest_at(run_dir: &Path) {
    let (Some(root), Some(name)) = (run_dir.parent(), run_dir.file_name()) else {
        return;
    };
    let latest = root.join("latest");
    if std::fs::read_link(&latest).is_ok_and(|t| t == Path::new(name)) {
        return;
    }
    let tmp = root.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::os::unix::fs::symlink(name, &tmp).is_ok() && std::fs::rename(&tmp, &latest).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
