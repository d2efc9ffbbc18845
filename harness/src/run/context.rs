//! The per-test context: fixtures in pytest's sense.
//!
//! A test asks its [`TestContext`] for what it needs (a VM booted from an
//! image or a [`MachineConfig`], an artifacts folder) and the context tears
//! it all down when the test ends. When the test failed, the context
//! collects diagnostics from every VM it still has, while the guests still
//! answer, and writes the postmortem into the test's artifacts folder.
//!
//! A test or a subsystem extends the postmortem through the context:
//! [`TestContext::add_collector`] (runs on every VM if the test fails) and
//! [`TestContext::add_artifact`] (a file or bytes, catalogued with its
//! sha256 whatever the outcome).

use std::borrow::Borrow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::errors::Result;
use crate::events::Event;
use crate::guest::session::{Session, Timeouts};
use crate::image::{Image, ImageRef};
use crate::postmortem::{ArtifactSource, Collector, Ending, Postmortem, Producer, VmHandle};
use crate::run::hold::Held;
use crate::run::networks::Networks;
pub use crate::run::settings::RunSettings;
use crate::vm::config::MachineConfig;
use crate::vm::machine::Snapshotting;
use crate::vm::machine::{Machine, MachineOptions};
use crate::vm::network::Network;
use bootrig_diagnostics::layout::VmLayout;
use bootrig_diagnostics::metadata::Phase;

/// What a test is given: fixtures, and a place for artifacts.
#[derive(Debug)]
pub struct TestContext {
    name: String,
    settings: RunSettings,
    vms: Mutex<Vec<VmHandle>>,
    networks: Mutex<Networks>,
    /// Slots of the VM budget the test took (0: not run by the engine).
    vm_slots: AtomicUsize,
    started: Instant,
    deadline: Mutex<Deadline>,
    postmortem: Arc<Postmortem>,
}

impl TestContext {
    /// A context for the test `name`, with its folder under the run folder.
    pub fn new(name: &str, settings: RunSettings) -> Result<TestContext> {
        let postmortem = Arc::new(Postmortem::begin(
            name,
            &settings.run_dir,
            &settings.images.cache,
            settings.events.clone(),
            settings.attempt,
        )?);
        point_latest_at(&settings.run_dir);
        Ok(TestContext {
            name: name.to_string(),
            settings,
            vms: Mutex::new(Vec::new()),
            networks: Mutex::default(),
            vm_slots: AtomicUsize::new(0),
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
            vm.session().set_deadline(deadline);
        }
    }

    /// Records that the test took `n` slots of the VM budget: starting
    /// more VMs than that says so (the budget cannot count them, and
    /// waiting for more slots mid-test could deadlock two such tests).
    pub(crate) fn set_vm_slots(&self, n: usize) {
        self.vm_slots.store(n, Ordering::Relaxed);
    }

    /// Says, once per extra VM, that the test runs more VMs at once than
    /// it took slots of the budget for.
    fn note_over_budget(&self) {
        let slots = self.vm_slots.load(Ordering::Relaxed);
        let running = self
            .vms()
            .iter()
            .filter(|vm| vm.machine().exit_status().is_none())
            .count();
        if slots > 0 && running >= slots {
            self.settings.events.send(Event::Output {
                test: self.name.clone(),
                line: format!(
                    "{} starts VM {} while it took {slots} slot(s) of the VM budget: \
                     the budget does not count it; give the test Marks::vms({})",
                    self.name,
                    running + 1,
                    running + 1
                ),
            });
        }
    }

    /// The postmortem recorder (metadata.json, phases, failure).
    pub fn postmortem(&self) -> &Postmortem {
        &self.postmortem
    }

    fn vms(&self) -> MutexGuard<'_, Vec<VmHandle>> {
        self.vms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a diagnostics collector: if the test fails, it runs on
    /// every VM of the test after the built-in ones registered before it
    /// (guest collectors while the guest still answers, then host
    /// collectors). See [`Collector`].
    pub fn add_collector(&self, collector: impl Collector + 'static) {
        self.postmortem.add_collector(Arc::new(collector));
    }

    /// Adds an artifact to the test's folder and to the catalog in its
    /// `metadata.json`, with its sha256, whatever the test's outcome.
    /// `name` is its catalog name and, for bytes or a file outside the
    /// folder (copied), its path in the folder (`/`-separated, no `..`);
    /// a file already inside the folder stays where it is and is hashed
    /// again when the test ends.
    pub fn add_artifact(
        &self,
        name: &str,
        source: impl Into<ArtifactSource>,
        producer: Producer,
    ) -> Result<()> {
        self.postmortem.add_artifact(name, source.into(), producer)
    }

    /// Shows a line about this test while it runs (an [`Event::Output`]).
    pub fn output(&self, line: &str) {
        self.settings.events.send(Event::Output {
            test: self.name.clone(),
            line: line.to_string(),
        });
    }

    /// Builds (if needed) an image.
    pub fn image(&self, image: impl Borrow<ImageRef>) -> Result<Image> {
        let image = image.borrow();
        self.postmortem
            .phase_start(&format!("image {}", image.name));
        let img = self
            .settings
            .images
            .ensure(image, &mut |line| self.output(line));
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
        let vm = self.boot_with(config, timeouts)?;
        if img.manifest.login.is_none() {
            if let Some(prompt) = &img.manifest.shell_prompt {
                vm.attach_shell(prompt)?;
            }
        }
        Ok(vm)
    }

    fn networks(&self) -> MutexGuard<'_, Networks> {
        self.networks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the private network `name` for this test: a host-local
    /// switch and the subnet `10.<n>.0.0/24` (`n` counts the test's
    /// networks from 1). Machines join it through
    /// [`MachineConfig::with_network`] or [`TestContext::vm_on`]; it stops
    /// when the test ends.
    pub fn network(&self, name: &str) -> Result<Network> {
        self.networks().create(name)
    }

    /// Boots the machine `name` from a built-in image on `networks`, gets
    /// its shell (root: images with a login are logged in with their
    /// credentials and become root with `sudo -i`) and brings it up on its networks
    /// ([`TestContext::network_up`]). Its files go to `machines/<name>/`
    /// in the test's folder.
    pub fn vm_on(
        &self,
        name: &str,
        image: impl Borrow<ImageRef>,
        networks: &[&Network],
    ) -> Result<Arc<Session>> {
        let img = self.image(image)?;
        let mut config = img.machine_config(name, None);
        for net in networks {
            config = config.with_network(net)?;
        }
        let vm = self.boot(config)?;
        let m = &img.manifest;
        if let Some(login) = &m.login {
            vm.login(&login.user, &login.password)?.become_root()?;
        } else if let Some(prompt) = &m.shell_prompt {
            vm.attach_shell(prompt)?;
        }
        self.network_up(&vm)?;
        Ok(vm)
    }

    /// Sets up the guest of `vm` (booted by this context from a config
    /// with networks) on its private networks, once it has a root shell:
    /// the NIC of each network (found by the MAC address bootrig gave it)
    /// gets the machine's address and comes up, `/etc/hosts` names every
    /// machine of its networks, and the guests already up on a network
    /// with it learn its name. Nothing for a VM on no network.
    pub fn network_up(&self, vm: &Arc<Session>) -> Result<()> {
        self.networks().up(vm)
    }

    /// Boots a VM from an explicit config with the default [`Timeouts`].
    /// The first VM of a test writes its logs into the test folder, later
    /// ones into `<folder>/<vm name>/`, and a VM on a private network
    /// into `<folder>/machines/<vm name>/`.
    pub fn boot(&self, config: MachineConfig) -> Result<Arc<Session>> {
        self.boot_with(config, Timeouts::default())
    }

    /// [`TestContext::boot`] with other deadlines.
    pub fn boot_with(&self, config: MachineConfig, timeouts: Timeouts) -> Result<Arc<Session>> {
        self.start_vm(config, timeouts, None)
    }

    /// [`TestContext::boot_with`] for a machine whose state is saved or
    /// restored (`run/warm.rs`).
    pub(crate) fn start_vm(
        &self,
        mut config: MachineConfig,
        timeouts: Timeouts,
        snapshot: Option<Snapshotting>,
    ) -> Result<Arc<Session>> {
        if let Some(accel) = self.settings.accel {
            config.accel = accel;
        }
        // A run-wide kernel (`--kernel`, `BOOTRIG_KERNEL`) replaces the
        // image's kernel, and any kernel the test chose, on every VM.
        if let Some(kernel) = &self.settings.kernel {
            config.user_kernel = Some(kernel.clone());
        }
        // Where this VM's files go, decided once and kept with it.
        let layout = if config.networks.is_empty() {
            VmLayout::nth(self.vms().len(), &config.name)
        } else {
            self.networks().check_new(&config.name)?;
            VmLayout::machine(&config.name)
        };
        let out_dir = layout.dir(self.artifacts_dir());
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
        options.owner = Some((self.settings.run_dir.clone(), self.name.clone()));
        options.snapshot = snapshot;
        self.note_over_budget();
        self.postmortem.phase_start(Phase::QEMU_START);
        let machine = Machine::start(&config, options)?;
        self.postmortem.phase_end(Phase::QEMU_START);
        if let Some(note) = machine.accel().note() {
            // Run-wide: shown once per run, however many VMs hit it.
            self.settings.events.send(Event::Output {
                test: String::new(),
                line: note,
            });
        }
        self.postmortem.record_machine(&machine);
        let session = Arc::new(Session::new(machine, timeouts));
        session.set_deadline(self.deadline());
        session.set_hooks(Some(self.postmortem.clone()));
        self.settings.interrupts.register(&session);
        self.vms()
            .push(VmHandle::new(session.clone(), layout, out_dir));
        self.networks()
            .add_vm(&config.name, session.clone(), config.networks.clone());
        if self.settings.interrupts.interrupted().is_some() {
            // Interrupted while this VM was starting: stop it too.
            session.machine().kill();
        }
        Ok(session)
    }

    /// Stops and forgets the test's last VM (a warm start whose restore
    /// failed, replaced by a cold boot that writes into its folder).
    pub(crate) fn discard_last_vm(&self) {
        if let Some(vm) = self.vms().pop() {
            vm.machine().kill();
            self.networks().remove_vm(vm.session());
        }
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
        let vms: Vec<VmHandle> = std::mem::take(&mut *self.vms());
        self.postmortem.finish(&vms, outcome, xfail)
    }

    /// [`TestContext::finish`], except that when the run holds failures
    /// ([`RunSettings::hold`]) and this test failed, its VMs are returned
    /// still running with the networks that join them, for
    /// [`crate::run::hold`] (empty otherwise).
    pub(crate) fn finish_or_hold(
        self,
        outcome: &Result<()>,
        xfail: Option<&str>,
    ) -> (Ending, Held) {
        let vms: Vec<VmHandle> = std::mem::take(&mut *self.vms());
        let ending = self
            .postmortem
            .finish_or_hold(&vms, outcome, xfail, self.settings.hold);
        let held = if ending.held {
            Held {
                vms,
                networks: std::mem::take(&mut *self.networks()),
            }
        } else {
            Held::default()
        };
        (ending, held)
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
