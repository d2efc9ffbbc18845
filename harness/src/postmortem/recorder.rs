//! The per-test recorder: keeps `metadata.json` up to date while the test
//! runs (rewritten atomically at each phase, so a killed harness still
//! leaves a valid file saying the test did not finish), sends each phase
//! and step as a run [`Event`], and holds what the end of the test needs:
//! the registered collectors, the added artifacts, the console timeline.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bootrig_diagnostics::catalog::Producer;
use bootrig_diagnostics::crash::CrashConfig;
use bootrig_diagnostics::hash::HashCache;
use bootrig_diagnostics::metadata::{BootRole, BootSource, HostInfo, Phase, QemuInfo};
use bootrig_diagnostics::reserve::{Reserve, DEFAULT_RESERVE_BYTES};
use bootrig_diagnostics::TestDir;

use crate::errors::{Error, Result};
use crate::events::{Event, Events, PhaseEdge};
use crate::guest::session::SessionHooks;
use crate::postmortem::collector::Collector;
use crate::postmortem::collectors::{self, builtin};
use crate::postmortem::timeline::Timeline;
use crate::postmortem::watch::CrashWatch;
use crate::vm::machine::Machine;

/// Where an added artifact's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactSource {
    /// A file on the host: catalogued where it is if it is inside the
    /// test's folder (hashed again when the test ends, as it may still
    /// grow), copied into the folder otherwise.
    File(PathBuf),
    /// Bytes, written into the test's folder.
    Bytes(Vec<u8>),
}

impl From<PathBuf> for ArtifactSource {
    fn from(p: PathBuf) -> Self {
        ArtifactSource::File(p)
    }
}

impl From<&Path> for ArtifactSource {
    fn from(p: &Path) -> Self {
        ArtifactSource::File(p.to_path_buf())
    }
}

impl From<Vec<u8>> for ArtifactSource {
    fn from(b: Vec<u8>) -> Self {
        ArtifactSource::Bytes(b)
    }
}

impl From<&[u8]> for ArtifactSource {
    fn from(b: &[u8]) -> Self {
        ArtifactSource::Bytes(b.to_vec())
    }
}

impl From<String> for ArtifactSource {
    fn from(s: String) -> Self {
        ArtifactSource::Bytes(s.into_bytes())
    }
}

pub(crate) struct Inner {
    pub(crate) dir: TestDir,
    pub(crate) step: Option<(usize, String)>,
    pub(crate) qemu_started: Option<Instant>,
    pub(crate) shell_ready: Option<Instant>,
    /// Added artifacts that live in the folder: (name, relative path,
    /// producer), hashed again at the end.
    pub(crate) live_files: Vec<(String, String, Producer)>,
    /// Space held on the artifacts disk for the final records (see
    /// `bootrig_diagnostics::reserve`); None when it could not be taken.
    pub(crate) reserve: Option<Reserve>,
}

/// Per-test postmortem recorder. See the `postmortem` module documentation.
pub struct Postmortem {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) started: Instant,
    cache_dir: PathBuf,
    events: Events,
    crash_config: Mutex<CrashConfig>,
    pub(crate) timeline: Arc<Mutex<Timeline>>,
    /// The crash watches of the test's consoles, flushed when it ends.
    watches: Mutex<Vec<CrashWatch>>,
    collectors: Mutex<Vec<Arc<dyn Collector>>>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Postmortem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postmortem")
            .field("test", &self.name)
            .field("dir", &self.path)
            .finish()
    }
}

fn diag_err(doing: &str, e: bootrig_diagnostics::errors::Error) -> Error {
    use bootrig_diagnostics::errors::{Error as DiagError, ErrorKind};
    let DiagError { action, path, kind } = e;
    match kind {
        // A full disk is the host's failure (`host-resources`), not a
        // configuration error: the I/O error is kept.
        ErrorKind::Io(source) if bootrig_diagnostics::reserve::is_disk_full(&source) => Error::Io {
            context: format!("{doing}: {action} {}", path.display()),
            source,
        },
        kind => Error::Config {
            what: doing.to_string(),
            message: DiagError { action, path, kind }.to_string(),
        },
    }
}

impl Postmortem {
    /// Creates the test's folder under `run_dir` and writes the first
    /// `metadata.json` (outcome `running`, and the runner's `attempt` when
    /// it retries); the built-in collectors are registered. Phases and
    /// steps also go to `events`.
    pub fn begin(
        name: &str,
        run_dir: &Path,
        cache_dir: &Path,
        events: Events,
        attempt: Option<u64>,
    ) -> Result<Postmortem> {
        let mut dir = TestDir::create(run_dir, name, chrono::Utc::now())
            .map_err(|e| diag_err("creating the test's artifacts folder", e))?;
        dir.metadata_mut().host = Some(HostInfo::detect());
        // A runner that retries tests (nextest) numbers the attempts: a
        // test that passes on attempt 2 is flaky (`bootrig report`).
        if let Some(n) = attempt {
            dir.metadata_mut().extra.insert("attempt".into(), n.into());
        }
        let _ = dir.save_metadata();
        // A disk too full for the reserve is too full for the test's
        // evidence: say so now rather than lose it later.
        let reserve = match Reserve::create(dir.path(), DEFAULT_RESERVE_BYTES) {
            Ok(r) => Some(r),
            Err(e) if bootrig_diagnostics::reserve::error_is_disk_full(&e) => {
                // Its metadata.json may already exist: it says so too.
                let failure = bootrig_diagnostics::metadata::Failure::new(
                    bootrig_diagnostics::metadata::FailureKind::HostResources,
                    format!("the test did not start: {e}"),
                );
                let failed = bootrig_diagnostics::metadata::Outcome::Failed;
                if dir
                    .finish(failed, Some(failure), chrono::Utc::now())
                    .is_ok()
                {
                    crate::postmortem::run_summary::record(&dir);
                } else {
                    let _ = std::fs::remove_file(dir.path().join(TestDir::METADATA_FILE));
                }
                return Err(diag_err("creating the test's artifacts folder", e));
            }
            Err(e) => {
                eprintln!("bootrig: {e} (continuing without it)");
                None
            }
        };
        Ok(Postmortem {
            name: name.to_string(),
            path: dir.path().to_path_buf(),
            started: Instant::now(),
            cache_dir: cache_dir.to_path_buf(),
            events,
            crash_config: Mutex::new(CrashConfig::default()),
            timeline: Arc::default(),
            watches: Mutex::default(),
            collectors: Mutex::new(builtin()),
            inner: Mutex::new(Inner {
                dir,
                step: None,
                qemu_started: None,
                shell_ready: None,
                live_files: Vec::new(),
                reserve,
            }),
        })
    }

    /// The test's artifacts folder.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub(crate) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn save(inner: &Inner) {
        if let Err(e) = inner.dir.save_metadata() {
            eprintln!("bootrig: could not update metadata.json: {e}");
        }
    }

    /// A console observer for a VM of this test: crash detection and boot
    /// milestones.
    pub fn console_observer(&self) -> CrashWatch {
        let config = *self.crash_config.lock().unwrap_or_else(|p| p.into_inner());
        let watch = CrashWatch::new(config, self.timeline.clone());
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(watch.clone());
        watch
    }

    /// The reports the crash watches still hold (unfinished, or inside
    /// their quiet window), finalised now: the end of a test judges them.
    pub(crate) fn flush_watches(&self) -> Vec<bootrig_diagnostics::crash::CrashReport> {
        let watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        watches.iter().filter_map(CrashWatch::flush_held).collect()
    }

    /// Whether kernel WARNINGs (and other non-fatal reports) fail the test
    /// or are only recorded (the default). Applies to VMs booted after.
    pub fn set_warnings_fatal(&self, fatal: bool) {
        self.crash_config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .warnings_fatal = fatal;
    }

    /// Registers `collector`: it runs on every VM of the test if the test
    /// fails, after those registered before it.
    pub fn add_collector(&self, collector: Arc<dyn Collector>) {
        self.collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(collector);
    }

    /// The registered collectors, in order.
    pub fn collectors(&self) -> Vec<Arc<dyn Collector>> {
        self.collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds artifact `name` (also its path in the test's folder, `/`
    /// separated, for bytes and copied files) from `source`, catalogued
    /// with its sha256 at once and kept whatever the outcome.
    pub fn add_artifact(
        &self,
        name: &str,
        source: ArtifactSource,
        producer: Producer,
    ) -> Result<()> {
        let doing = format!("adding artifact {name}");
        let mut inner = self.inner();
        match source {
            ArtifactSource::Bytes(bytes) => {
                inner
                    .dir
                    .write_artifact(name, name, &bytes, producer, None, None)
                    .map_err(|e| diag_err(&doing, e))?;
            }
            ArtifactSource::File(path) => match path.strip_prefix(&self.path) {
                Ok(rel) if !rel.as_os_str().is_empty() => {
                    let rel = rel.to_string_lossy().into_owned();
                    inner
                        .dir
                        .add_existing(name, &rel, producer.clone())
                        .map_err(|e| diag_err(&doing, e))?;
                    inner.live_files.push((name.to_string(), rel, producer));
                }
                _ => {
                    let to = inner
                        .dir
                        .artifact_path(name)
                        .map_err(|e| diag_err(&doing, e))?;
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            Error::io(format!("{doing}: creating {}", parent.display()), e)
                        })?;
                    }
                    std::fs::copy(&path, &to).map_err(|e| {
                        Error::io(format!("{doing}: copying {}", path.display()), e)
                    })?;
                    inner
                        .dir
                        .add_existing(name, name, producer)
                        .map_err(|e| diag_err(&doing, e))?;
                }
            },
        }
        Self::save(&inner);
        Ok(())
    }

    fn phase_event(&self, name: &str, edge: PhaseEdge) {
        self.events.send(Event::Phase {
            test: self.name.clone(),
            phase: name.to_string(),
            edge,
        });
    }

    /// A phase begins; one of the same name already running is not begun
    /// again (a session and its caller may both announce it).
    pub fn phase_start(&self, name: &str) {
        let at = self.started.elapsed();
        let mut inner = self.inner();
        let md = inner.dir.metadata_mut();
        if md
            .phases
            .iter()
            .any(|p| p.name == name && p.duration_ms.is_none())
        {
            return;
        }
        md.phase_start(name, at);
        Self::save(&inner);
        drop(inner);
        self.phase_event(name, PhaseEdge::Start);
    }

    /// A phase ends.
    pub fn phase_end(&self, name: &str) {
        let at = self.started.elapsed();
        let mut inner = self.inner();
        if inner.dir.metadata_mut().phase_end(name, at) {
            Self::save(&inner);
            drop(inner);
            self.phase_event(name, PhaseEdge::End);
        }
    }

    /// Records a phase that is already over, from `from` to `to`.
    pub(crate) fn phase_between(&self, inner: &mut Inner, name: &str, from: Instant, to: Instant) {
        let rel = |t: Instant| t.saturating_duration_since(self.started);
        let md = inner.dir.metadata_mut();
        md.phase_start(name, rel(from));
        md.phase_end(name, rel(to.max(from)));
        self.phase_event(name, PhaseEdge::Start);
        self.phase_event(name, PhaseEdge::End);
    }

    /// Sets a free-form entry of `metadata.json` (`extra.<key>`).
    pub fn set_extra(&self, key: &str, value: serde_json::Value) {
        let mut inner = self.inner();
        inner.dir.metadata_mut().extra.insert(key.into(), value);
        Self::save(&inner);
    }

    /// Sets `extra[key][entry]` in `metadata.json` (`extra[key]` an
    /// object, made or replaced when it is not one).
    pub fn set_extra_entry(&self, key: &str, entry: &str, value: serde_json::Value) {
        let mut inner = self.inner();
        let extra = &mut inner.dir.metadata_mut().extra;
        let slot = extra
            .entry(key.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !slot.is_object() {
            *slot = serde_json::Value::Object(Default::default());
        }
        if let Some(map) = slot.as_object_mut() {
            map.insert(entry.to_string(), value);
        }
        Self::save(&inner);
    }

    /// The scenario this test comes from.
    pub fn set_scenario(&self, name: &str, file: &Path) {
        let mut inner = self.inner();
        let md = inner.dir.metadata_mut();
        md.scenario = Some(name.to_string());
        md.extra
            .insert("scenario_file".into(), file.display().to_string().into());
        Self::save(&inner);
    }

    /// A scenario's `diagnostics`: registers the status and journal
    /// collectors of each unit, then one collector per command.
    pub fn set_diagnostics_spec(&self, units: &[String], commands: &[String]) {
        for u in units {
            for c in collectors::unit(u) {
                self.add_collector(Arc::new(c));
            }
        }
        for (i, cmd) in commands.iter().enumerate() {
            self.add_collector(Arc::new(collectors::command(i, cmd)));
        }
    }

    /// The shell answers: records the `shell ready` milestone (once per
    /// test: the first shell is the end of boot).
    pub fn mark_shell_ready(&self) {
        let at = self.started.elapsed();
        let mut inner = self.inner();
        if inner.shell_ready.is_some() {
            return;
        }
        inner.shell_ready = Some(Instant::now());
        let md = inner.dir.metadata_mut();
        md.phase_start(Phase::SHELL_READY, at);
        md.phase_end(Phase::SHELL_READY, at);
        Self::save(&inner);
        drop(inner);
        self.phase_event(Phase::SHELL_READY, PhaseEdge::Start);
        self.phase_event(Phase::SHELL_READY, PhaseEdge::End);
    }

    /// Step `i` starts.
    pub fn step_start(&self, i: usize, what: &str) {
        self.inner().step = Some((i, what.to_string()));
        self.events.send(Event::Step {
            test: self.name.clone(),
            index: i,
            description: what.to_string(),
        });
        self.phase_start(&Phase::step_name(i, what));
    }

    /// Step `i` ends; a failed step stays the failing step.
    pub fn step_end(&self, i: usize, ok: bool) {
        let what = self.inner().step.clone();
        if let Some((idx, what)) = what {
            if idx == i {
                self.phase_end(&Phase::step_name(i, &what));
                if ok {
                    self.inner().step = None;
                }
            }
        }
    }

    /// Records QEMU facts and the boot sources with their sha256 (streamed,
    /// cached by path + mtime + size in `<cache>/hashes.json`).
    pub fn record_machine(&self, machine: &Machine) {
        let mut cache = HashCache::load(&self.cache_dir.join("hashes.json"));
        let mut sources = Vec::new();
        for f in machine.boot_files() {
            let role = match f.role {
                "kernel" => BootRole::Kernel,
                "initrd" => BootRole::Initrd,
                "iso" => BootRole::Iso,
                "disk" => BootRole::Disk,
                "firmware" => BootRole::Firmware,
                _ => BootRole::Drive,
            };
            match BootSource::from_file(role, &f.path, &mut cache) {
                Ok(s) => sources.push(s),
                Err(e) => eprintln!("bootrig: could not hash {}: {e}", f.path.display()),
            }
        }
        let _ = cache.save();
        // The user's kernel (`--kernel`): which one, its release, its
        // modules folder.
        let user_kernel = machine.user_kernel().map(|k| {
            let sha256 = sources
                .iter()
                .find(|s| s.role == BootRole::Kernel)
                .map(|s| s.sha256.clone());
            serde_json::json!({
                "path": k.kernel.display().to_string(),
                "sha256": sha256,
                "release": k.release,
                "modules": k.modules.as_ref().map(|m| m.dir.display().to_string()),
            })
        });
        let mut inner = self.inner();
        inner.qemu_started.get_or_insert(machine.started());
        let md = inner.dir.metadata_mut();
        md.boot_sources.extend(sources);
        md.qemu = Some(QemuInfo {
            binary: machine.qemu().display().to_string(),
            version: Some(machine.qemu_version().to_string()),
            accel: Some(machine.accel().accel.to_string()),
            argv: machine.argv().to_vec(),
        });
        if let Some(k) = user_kernel {
            md.extra.insert("kernel".into(), k);
        }
        if !machine.accel().reason.is_empty() {
            md.extra
                .insert("accel_reason".into(), machine.accel().reason.clone().into());
        }
        // Where the host reaches the guest's forwarded ports, and what it
        // shares with it: one entry per VM and port or folder.
        let append = |md: &mut bootrig_diagnostics::metadata::Metadata,
                      key: &str,
                      items: Vec<serde_json::Value>| {
            if items.is_empty() {
                return;
            }
            let list = md
                .extra
                .entry(key.to_string())
                .or_insert_with(|| serde_json::json!([]));
            if let Some(list) = list.as_array_mut() {
                list.extend(items);
            }
        };
        let forwards = machine
            .forwards()
            .iter()
            .map(|(guest, host)| {
                serde_json::json!({ "vm": machine.name(), "guest": guest, "host": host, "address": "127.0.0.1" })
            })
            .collect();
        append(md, "forwards", forwards);
        let shares = machine
            .shares()
            .iter()
            .map(|s| {
                serde_json::json!({ "vm": machine.name(), "host": s.host.display().to_string(), "guest": s.guest, "writable": s.writable })
            })
            .collect();
        append(md, "shares", shares);
        Self::save(&inner);
    }
}

/// A session's phases (`login`, `become root`, `shell`) and its shell
/// becoming ready are recorded like the test's own, for Rust tests and
/// scenarios alike.
impl SessionHooks for Postmortem {
    fn phase(&self, name: &str, edge: PhaseEdge) {
        match edge {
            PhaseEdge::Start => self.phase_start(name),
            PhaseEdge::End => self.phase_end(name),
        }
    }

    fn shell_ready(&self) {
        self.mark_shell_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(run: &Path) -> Postmortem {
        Postmortem::begin("pm::t", run, run, Events::discard(), None).unwrap()
    }

    #[test]
    fn added_artifacts_are_catalogued_with_their_hash() {
        let run = tempfile::tempdir().unwrap();
        let pm = recorder(run.path());
        pm.add_artifact(
            "notes/a.txt",
            b"abc".as_slice().into(),
            Producer::harness("test"),
        )
        .unwrap();
        let outside = run.path().join("outside.bin");
        std::fs::write(&outside, b"xyz").unwrap();
        pm.add_artifact("copy.bin", outside.clone().into(), Producer::host("copy"))
            .unwrap();
        let inside = pm.dir().join("live.log");
        std::fs::write(&inside, b"1").unwrap();
        pm.add_artifact("live", inside.into(), Producer::harness("live"))
            .unwrap();
        assert!(pm
            .add_artifact("../escape", b"x".as_slice().into(), Producer::harness("x"))
            .is_err());
        let inner = pm.inner();
        let cat = inner.dir.artifacts();
        let a = cat.get("notes/a.txt").unwrap();
        assert_eq!(a.path, "notes/a.txt");
        assert_eq!(
            a.sha256,
            bootrig_diagnostics::hash::digest_bytes(b"abc").sha256
        );
        assert_eq!(std::fs::read(pm.dir().join("copy.bin")).unwrap(), b"xyz");
        assert_eq!(cat.get("live").unwrap().path, "live.log");
        assert_eq!(inner.live_files.len(), 1);
    }

    #[test]
    fn a_running_phase_is_not_started_twice_and_shell_ready_is_once() {
        let run = tempfile::tempdir().unwrap();
        let pm = recorder(run.path());
        pm.phase_start("login");
        pm.phase_start("login");
        pm.phase_end("login");
        pm.phase_end("login");
        pm.mark_shell_ready();
        pm.mark_shell_ready();
        let inner = pm.inner();
        let names: Vec<&str> = inner
            .dir
            .metadata()
            .phases
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["login", "shell ready"]);
    }
}
