//! Warm start: machines as fixtures with a scope wider than a test, as
//! pytest's `scope="session"`.
//!
//! The first test that asks for a machine in a given state
//! ([`WarmState`]: a shell, logged in, root, units active) boots it cold,
//! brings it to that state, and saves a snapshot (`vm/migrate.rs`: QEMU's
//! state and the disk it refers to) into the snapshot cache
//! (`run/snapshots.rs`); the guest then runs on for that test. Every later
//! test with the same key starts a new QEMU from the snapshot on its own
//! throwaway overlay (so no test sees another's changes), and the session
//! takes the shell over with a new token, sets the guest's clock and
//! reseeds its entropy (`guest/restore.rs`). A restore that fails falls
//! back to a cold boot, with one line saying why; `metadata.json` records
//! how the test started (`extra.start`).

use std::borrow::Borrow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootrig_diagnostics::hash::HashCache;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::deadline::Deadline;
use crate::errors::Result;
use crate::guest::session::{Session, Timeouts};
use crate::image::{Image, ImageRef};
use crate::run::context::TestContext;
use crate::run::snapshots::{
    key_inputs, snapshot_key, warm_conflict, warm_unsupported, SnapshotInfo, SnapshotStore,
    DISK_FILE, STATE_FILE,
};
use crate::vm::config::MachineConfig;
use crate::vm::machine::Snapshotting;

/// How long saving a machine's state may take.
const SAVE_TIMEOUT: Duration = Duration::from_secs(300);

/// How long loading a saved state may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The phase of a warm start in `metadata.json` (restore and shell
/// takeover, or the cold boot and save that make the snapshot).
pub const PHASE_WARM_START: &str = "warm start";

/// The `metadata.json` entry (`extra`) that says, per machine of a test's
/// private networks, how it started (`extra.start` does for a lone
/// machine).
pub const START_MACHINES: &str = "start_machines";

/// How a scenario's machine starts (`"machine": {"start": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Every test boots its machine.
    #[default]
    Cold,
    /// Tests restore a snapshot of the machine in its ready state.
    Warm,
}

impl Start {
    /// Whether a machine with these parts may start this way: `warm`
    /// cannot save a persistent disk, extra drives, an ISO or UEFI's
    /// variables.
    pub(crate) fn check(
        self,
        persist: bool,
        drives: bool,
        iso: bool,
        uefi: bool,
    ) -> Result<(), String> {
        match (self, warm_conflict(persist, drives, iso, uefi)) {
            (Start::Warm, Some(why)) => {
                Err(format!("\"start\": \"warm\" cannot be used with {why}"))
            }
            _ => Ok(()),
        }
    }
}

/// The state a warm machine is saved in, and part of its snapshot's key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmState {
    /// Attach to a shell without login, whose prompt matches this regex.
    pub shell_prompt: Option<String>,
    /// Log in on the serial getty as this user with this password.
    pub login: Option<(String, String)>,
    /// Become root after the login (`sudo -i` with the login password).
    pub root: bool,
    /// systemd units that must be active (waited for only in guests that
    /// run systemd).
    pub units: Vec<String>,
}

impl WarmState {
    /// A shell without login (an initramfs shell) with prompt `prompt`.
    pub fn shell(prompt: impl Into<String>) -> WarmState {
        WarmState {
            shell_prompt: Some(prompt.into()),
            ..WarmState::default()
        }
    }

    /// Logged in on the serial getty.
    pub fn login(user: impl Into<String>, password: impl Into<String>) -> WarmState {
        WarmState {
            login: Some((user.into(), password.into())),
            ..WarmState::default()
        }
    }

    /// Root after the login.
    pub fn root(mut self) -> WarmState {
        self.root = true;
        self
    }

    /// With `unit` active too (in a systemd guest).
    pub fn with_unit(mut self, unit: impl Into<String>) -> WarmState {
        self.units.push(unit.into());
        self
    }

    /// The ready state of a built-in image: its shell (`busybox`), or
    /// logged in as its user, root, with `multi-user.target` reached
    /// (`debian`).
    pub fn for_image(image: &Image) -> WarmState {
        let m = &image.manifest;
        match (&m.login, &m.shell_prompt) {
            (Some(c), _) => WarmState::login(&c.user, &c.password)
                .root()
                .with_unit("multi-user.target"),
            (None, Some(p)) => WarmState::shell(p),
            (None, None) => WarmState::default(),
        }
    }

    /// Brings a freshly booted machine's session to this state (what a
    /// cold start does before the snapshot is saved).
    pub fn reach(&self, vm: &Session) -> Result<()> {
        if let Some((user, password)) = &self.login {
            vm.login(user, password)?;
            if self.root {
                vm.become_root()?;
            }
        } else if let Some(prompt) = &self.shell_prompt {
            vm.attach_shell(prompt)?;
        }
        if !self.units.is_empty() && vm.run("test -d /run/systemd/system")?.exit == 0 {
            for unit in &self.units {
                vm.wait_for_unit(unit)?;
            }
        }
        Ok(())
    }
}

impl TestContext {
    /// Like [`TestContext::vm`], but started warm: the image's machine in
    /// its ready state ([`WarmState::for_image`]) restored from a
    /// snapshot, made by the first test that asks. The session comes back
    /// with its shell ready (for `debian`: logged in, root).
    pub fn vm_warm(&self, image: impl Borrow<ImageRef>) -> Result<Arc<Session>> {
        let image = image.borrow();
        let img = self.image(image)?;
        let config = img.machine_config(&format!("{}-1", image.name), None);
        self.boot_warm(config, &WarmState::for_image(&img), Timeouts::default())
    }

    /// Starts `config` in `state` from a snapshot (see the module
    /// documentation); boots it cold and saves the snapshot when there is
    /// none yet, and boots it cold (one line says why) when it cannot
    /// start warm or the restore fails. The session comes back in `state`.
    pub fn boot_warm(
        &self,
        config: MachineConfig,
        state: &WarmState,
        timeouts: Timeouts,
    ) -> Result<Arc<Session>> {
        let mut config = config;
        if let Some(accel) = self.settings().accel {
            config.accel = accel;
        }
        let pm = self.postmortem();
        pm.phase_start(PHASE_WARM_START);
        let result = self.start_warm(config, state, timeouts);
        pm.phase_end(PHASE_WARM_START);
        result
    }

    fn start_warm(
        &self,
        config: MachineConfig,
        state: &WarmState,
        timeouts: Timeouts,
    ) -> Result<Arc<Session>> {
        if let Some(why) = warm_unsupported(&config) {
            return self.cold_instead(config, state, timeouts, &why);
        }
        let who = on_network(&config);
        let who = who.as_deref();
        let inputs = match self.snapshot_inputs(&config, state) {
            Ok(i) => i,
            Err(e) => return self.cold_instead(config, state, timeouts, &e.to_string()),
        };
        let key = snapshot_key(&inputs);
        let store = SnapshotStore::for_cache(&self.settings().images.cache);
        let mut fallback = Value::Null;
        if let Some(info) = store.load(&key) {
            match self.restore(&store, &info, &config, timeouts) {
                Ok(vm) => return Ok(vm),
                Err(e) => fallback = self.restore_failed(&store, &key, who, &e.to_string()),
            }
        }
        // Make it, unless another test makes it meanwhile: then use it.
        let lock = store.lock(&key)?;
        if let Some(info) = store.load(&key) {
            drop(lock);
            return self.restore(&store, &info, &config, timeouts).or_else(|e| {
                self.restore_failed(&store, &key, who, &e.to_string());
                self.cold(config, state, timeouts, None)
            });
        }
        let vm = self.cold(config, state, timeouts, Some(Snapshotting::Source))?;
        let tmp = store.begin(&key)?;
        let saved_at = Instant::now();
        let disk = vm.machine().disk_overlay().map(|_| tmp.join(DISK_FILE));
        let deadline = Deadline::after(SAVE_TIMEOUT).min(self.deadline());
        let saved = vm
            .machine()
            .save_state(&tmp.join(STATE_FILE), disk.as_deref(), deadline)
            .and_then(|()| {
                let (name, shell) = (vm.machine().name(), vm.shell_state()?);
                store.commit(&tmp, &key, name, shell, inputs, &mut self.hashes())
            });
        drop(lock);
        let info = match saved {
            Ok(info) => info,
            Err(e) => {
                // The test goes on cold: the guest runs again if it can.
                let why = e.to_string();
                let first = why.lines().next().unwrap_or(&why);
                self.output(&format!("warm start: saving snapshot {key} failed ({first}); the test goes on in the machine it booted"));
                let _ = vm.machine().qmp(|q| q.execute("cont", None));
                let _ = std::fs::remove_dir_all(&tmp);
                self.record_start(
                    who,
                    json!({ "mode": "cold", "requested": "warm", "save_failed": why }),
                );
                return Ok(vm);
            }
        };
        vm.note(&format!("saved as warm-start snapshot {key}"));
        self.record_start(
            who,
            json!({
                "mode": "warm",
                "snapshot": snapshot_json(&store, &info),
                "created": true,
                "restore_failed": fallback,
                "save_seconds": saved_at.elapsed().as_secs_f64(),
            }),
        );
        Ok(vm)
    }

    /// The key inputs of `config` in `state` on this host.
    fn snapshot_inputs(&self, config: &MachineConfig, state: &WarmState) -> Result<Value> {
        let qemu = crate::vm::machine::resolve_binary(&config.qemu)?;
        let version = crate::vm::machine::qemu_version(&qemu)?;
        let cache = &self.settings().images.cache;
        let probe = config.kernel.as_ref().map(|k| k.kernel.clone());
        let verdict =
            crate::vm::accel::resolve(config.accel, &qemu, &version, probe.as_deref(), cache);
        let mut hashes = self.hashes();
        let state = serde_json::to_value(state).expect("serialising a warm state");
        let inputs = key_inputs(
            config,
            &version,
            &verdict.accel.to_string(),
            &state,
            &mut hashes,
        );
        let _ = hashes.save();
        inputs
    }

    /// Starts a machine from snapshot `info`.
    fn restore(
        &self,
        store: &SnapshotStore,
        info: &SnapshotInfo,
        config: &MachineConfig,
        timeouts: Timeouts,
    ) -> Result<Arc<Session>> {
        let started = Instant::now();
        let dir = store.path(&info.key);
        let state = dir.join(STATE_FILE);
        store.verify(info, &mut self.hashes())?;
        let disk = (info.disk_bytes > 0).then(|| dir.join(DISK_FILE));
        let vm = self.start_vm(
            config.clone(),
            timeouts,
            Some(Snapshotting::Restore { disk }),
        )?;
        let deadline = Deadline::after(LOAD_TIMEOUT).min(self.deadline());
        let taken_over = vm
            .machine()
            .load_state(&state, deadline)
            .and_then(|()| vm.resume(&info.shell).map(drop));
        if let Err(e) = taken_over {
            // Its folder is the cold boot's.
            self.discard_last_vm();
            return Err(e);
        }
        vm.note(&format!("started warm from snapshot {}", info.key));
        self.record_start(
            on_network(config).as_deref(),
            json!({
                "mode": "warm",
                "snapshot": snapshot_json(store, info),
                "created": false,
                "restore_seconds": started.elapsed().as_secs_f64(),
            }),
        );
        Ok(vm)
    }

    /// A restore failed: one line says why, and the snapshot is removed
    /// so that a new one is made. Returns the record for `metadata.json`.
    fn restore_failed(
        &self,
        store: &SnapshotStore,
        key: &str,
        who: Option<&str>,
        why: &str,
    ) -> Value {
        let first = why.lines().next().unwrap_or(why);
        self.output(&format!(
            "warm start: restoring snapshot {key} failed ({first}); booting cold"
        ));
        store.discard(key);
        let record = json!({ "snapshot": key, "reason": why });
        self.record_start(
            who,
            json!({ "mode": "cold", "requested": "warm", "restore_failed": record }),
        );
        record
    }

    /// A machine that cannot start warm boots cold, with one line why.
    fn cold_instead(
        &self,
        config: MachineConfig,
        state: &WarmState,
        timeouts: Timeouts,
        why: &str,
    ) -> Result<Arc<Session>> {
        self.output(&format!(
            "warm start: not possible for {} ({why}); booting cold",
            config.name
        ));
        self.record_start(
            on_network(&config).as_deref(),
            json!({ "mode": "cold", "requested": "warm", "reason": why }),
        );
        self.cold(config, state, timeouts, None)
    }

    /// Boots cold and reaches `state`.
    fn cold(
        &self,
        config: MachineConfig,
        state: &WarmState,
        timeouts: Timeouts,
        snapshot: Option<Snapshotting>,
    ) -> Result<Arc<Session>> {
        let vm = self.start_vm(config, timeouts, snapshot)?;
        state.reach(&vm)?;
        Ok(vm)
    }

    /// The file-hash memo of the cache (`hashes.json`).
    fn hashes(&self) -> HashCache {
        HashCache::load(&self.settings().images.cache.join("hashes.json"))
    }

    /// Records how the machine started in `metadata.json`: `extra.start`
    /// for a test's lone machine, `extra.start_machines.<name>` for
    /// machine `name` of a test's private networks (`who`).
    fn record_start(&self, who: Option<&str>, start: Value) {
        match who {
            None => self.postmortem().set_extra("start", start),
            Some(name) => self
                .postmortem()
                .set_extra_entry(START_MACHINES, name, start),
        }
    }
}

/// The name of `config`'s machine when it is on a private network (one
/// of several machines of a test, recorded by name).
fn on_network(config: &MachineConfig) -> Option<String> {
    (!config.networks.is_empty()).then(|| config.name.clone())
}

fn snapshot_json(store: &SnapshotStore, info: &SnapshotInfo) -> Value {
    json!({
        "key": info.key,
        "state_sha256": info.state_sha256,
        "state_bytes": info.state_bytes,
        "dir": store.path(&info.key).display().to_string(),
    })
}
