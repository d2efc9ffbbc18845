//! The snapshot cache of warm starts: saved machine states under
//! `<cache>/snapshots/<key>/` (or `BOOTRIG_SNAPSHOTS`), kept across runs.
//!
//! A snapshot folder holds `state` (QEMU's migration stream), `disk.qcow2`
//! (the root disk's overlay at that moment, whose backing file is the
//! image's disk; absent for machines without a disk) and `snapshot.json`
//! ([`SnapshotInfo`]: what it was made from, its sha256, the shell's
//! state). The key hashes everything that affects the state
//! ([`snapshot_key`]), so any change (an image rebuilt, another kernel,
//! more memory, another QEMU, another login) names another folder and the
//! old one is simply not used again. A snapshot is written into
//! `<key>.tmp` and renamed into place, under `<key>.lock`, so a reader
//! sees a whole snapshot or none, and two tests that want the same one at
//! once make it once.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use bootrig_diagnostics::hash::HashCache;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::errors::{Error, Result};
use crate::guest::restore::SavedShell;
use crate::vm::config::{Drive, MachineConfig};

/// Bumped when what a snapshot folder holds or how it is used changes:
/// snapshots of another format get other keys.
const FORMAT: u32 = 1;

/// The environment variable naming another snapshot folder.
pub const SNAPSHOTS_ENV: &str = "BOOTRIG_SNAPSHOTS";

/// The file of a snapshot's migration stream.
pub(crate) const STATE_FILE: &str = "state";
/// The file of a snapshot's root disk.
pub(crate) const DISK_FILE: &str = "disk.qcow2";
/// The file describing a snapshot.
const INFO_FILE: &str = "snapshot.json";

/// `snapshot.json`: what a snapshot is and what it was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The cache key (the folder's name).
    pub key: String,
    /// When it was saved (RFC 3339).
    pub created: String,
    /// The machine it was saved from (its name, for listings).
    pub machine: String,
    /// sha256 of the state file.
    pub state_sha256: String,
    /// Size of the state file in bytes.
    pub state_bytes: u64,
    /// Size of the saved disk in bytes (0: no disk).
    pub disk_bytes: u64,
    /// The shell the state holds.
    pub shell: SavedShell,
    /// Everything the key was computed from.
    pub inputs: Value,
}

/// The snapshot cache folder.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// Snapshots in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore { dir: dir.into() }
    }

    /// `BOOTRIG_SNAPSHOTS` if set, else `<cache>/snapshots`.
    pub fn for_cache(cache: &Path) -> SnapshotStore {
        match std::env::var_os(SNAPSHOTS_ENV) {
            Some(d) if !d.is_empty() => SnapshotStore::new(d),
            _ => SnapshotStore::new(cache.join("snapshots")),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of snapshot `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Snapshot `key`, if a whole one is there.
    pub fn load(&self, key: &str) -> Option<SnapshotInfo> {
        let text = fs::read(self.path(key).join(INFO_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Takes the lock of snapshot `key`, waiting for another process that
    /// holds it (it is making that snapshot). Released when dropped.
    pub fn lock(&self, key: &str) -> Result<File> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("creating {}", self.dir.display()), e))?;
        let path = self.dir.join(format!("{key}.lock"));
        File::create(&path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| Error::io(format!("locking {}", path.display()), e))
    }

    /// A fresh folder to save snapshot `key` into (call with its lock).
    pub(crate) fn begin(&self, key: &str) -> Result<PathBuf> {
        let tmp = self.dir.join(format!("{key}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        Ok(tmp)
    }

    /// Completes a snapshot saved into `tmp` (from [`SnapshotStore::begin`]):
    /// moves it into place, hashes its state (remembered in `hashes`, so
    /// a restore checks it for free while the file is unchanged) and
    /// writes `snapshot.json` last, which makes it whole.
    pub(crate) fn commit(
        &self,
        tmp: &Path,
        key: &str,
        machine: &str,
        shell: SavedShell,
        inputs: Value,
        hashes: &mut HashCache,
    ) -> Result<SnapshotInfo> {
        let dir = self.path(key);
        let _ = fs::remove_dir_all(&dir);
        fs::rename(tmp, &dir)
            .map_err(|e| Error::io(format!("moving {} into place", tmp.display()), e))?;
        let digest = hashes
            .digest(&dir.join(STATE_FILE))
            .map_err(|e| Error::Config {
                what: format!("snapshot {key}"),
                message: e.to_string(),
            })?;
        let _ = hashes.save();
        let info = SnapshotInfo {
            key: key.to_string(),
            created: chrono::Utc::now().to_rfc3339(),
            machine: machine.to_string(),
            state_sha256: digest.sha256,
            state_bytes: digest.size,
            disk_bytes: fs::metadata(dir.join(DISK_FILE))
                .map(|m| m.len())
                .unwrap_or(0),
            shell,
            inputs,
        };
        let json = serde_json::to_vec_pretty(&info).expect("serialising snapshot info");
        let info_path = dir.join(INFO_FILE);
        bootrig_diagnostics::atomic::write_atomic(&info_path, &json).map_err(|e| {
            Error::Config {
                what: format!("snapshot {key}"),
                message: e.to_string(),
            }
        })?;
        Ok(info)
    }

    /// Checks that snapshot `info`'s state file is the one that was saved
    /// (its sha256, from `hashes` while the file is unchanged).
    pub(crate) fn verify(&self, info: &SnapshotInfo, hashes: &mut HashCache) -> Result<()> {
        let state = self.path(&info.key).join(STATE_FILE);
        let what = || format!("snapshot {}", info.key);
        let digest = hashes.digest(&state).map_err(|e| Error::Config {
            what: what(),
            message: e.to_string(),
        })?;
        let _ = hashes.save();
        if digest.sha256 != info.state_sha256 {
            return Err(Error::Config {
                what: what(),
                message: format!(
                    "its state file changed since it was saved (sha256 {}, saved {})",
                    &digest.sha256[..16],
                    &info.state_sha256[..16.min(info.state_sha256.len())]
                ),
            });
        }
        Ok(())
    }

    /// Removes snapshot `key` (one that could not be restored), under its
    /// lock so that no one is making it meanwhile.
    pub(crate) fn discard(&self, key: &str) {
        if let Ok(_lock) = self.lock(key) {
            let _ = fs::remove_dir_all(self.path(key));
        }
    }

    /// Every whole snapshot, oldest first.
    pub fn list(&self) -> Vec<SnapshotInfo> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut all: Vec<SnapshotInfo> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| self.load(&e.file_name().to_string_lossy()))
            .collect();
        all.sort_by(|a, b| a.created.cmp(&b.created));
        all
    }

    /// Removes every snapshot (and unfinished ones); returns how many
    /// folders and the bytes freed. Snapshots being made are skipped.
    pub fn prune(&self) -> Result<(usize, u64)> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok((0, 0));
        };
        let (mut n, mut bytes) = (0, 0);
        for e in entries.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.trim_end_matches(".tmp");
            let lock = self.dir.join(format!("{key}.lock"));
            let guard = File::create(&lock).ok().filter(|f| f.try_lock().is_ok());
            if guard.is_none() {
                continue;
            }
            bytes += folder_bytes(&p);
            fs::remove_dir_all(&p)
                .map_err(|e| Error::io(format!("removing {}", p.display()), e))?;
            let _ = fs::remove_file(&lock);
            n += 1;
        }
        Ok((n, bytes))
    }
}

fn folder_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Why a machine cannot start warm, if it cannot: its drives would have
/// to be saved too, and a persistent disk is the image itself.
pub fn warm_unsupported(config: &MachineConfig) -> Option<String> {
    let uefi = crate::vm::qemu_args::needs_ovmf(config.firmware);
    warm_conflict(
        config.persist,
        !config.drives.is_empty(),
        config.iso.is_some(),
        uefi,
    )
    .map(|what| format!("it has {what}"))
}

/// What of a machine (a persistent disk, extra drives, an ISO, UEFI) keeps
/// it from starting warm, in a scenario's words: their state is not saved.
pub(crate) fn warm_conflict(
    persist: bool,
    drives: bool,
    iso: bool,
    uefi: bool,
) -> Option<&'static str> {
    [
        (persist, "a \"persist\" disk (the image itself is written)"),
        (drives, "\"drives\" (their contents are not saved)"),
        (iso, "an \"iso\" (a CD-ROM's state is not saved)"),
        (
            uefi,
            "\"firmware\": \"uefi\" (its variable store is not saved)",
        ),
    ]
    .into_iter()
    .find_map(|(yes, what)| yes.then_some(what))
}

/// What a snapshot key is computed from: the format, QEMU (binary,
/// version, accelerator), the machine's settings and arguments, the
/// sha256 of every boot file, the state asked for (`state`) and, on
/// private networks, the NICs' MAC addresses.
pub fn key_inputs(
    config: &MachineConfig,
    qemu_version: &str,
    accel: &str,
    state: &Value,
    hashes: &mut HashCache,
) -> Result<Value> {
    let mut files = Vec::new();
    let mut hash = |role: &str, path: &Path| -> Result<()> {
        let d = hashes.digest(path).map_err(|e| Error::Config {
            what: format!("{role} {}", path.display()),
            message: e.to_string(),
        })?;
        files.push(json!({ "role": role, "sha256": d.sha256, "size": d.size }));
        Ok(())
    };
    let mut append = None;
    if let Some(k) = &config.kernel {
        hash("kernel", &k.kernel)?;
        if let Some(i) = &k.initrd {
            hash("initrd", i)?;
        }
        append = Some(k.append.clone());
    }
    if let Some(disk) = &config.disk {
        hash("disk", disk)?;
    }
    for d in &config.drives {
        if let Drive::File(p) = d {
            hash("drive", p)?;
        }
    }
    let mut inputs = json!({
        "format": FORMAT,
        "qemu": config.qemu.display().to_string(),
        "qemu_version": qemu_version,
        "accel": accel,
        "memory_mib": config.memory_mib,
        "cpus": config.cpus,
        "firmware": config.firmware.to_string(),
        "network": config.network,
        "display": config.display,
        "command_channel": config.command_channel,
        "extra_args": config.extra_args,
        "append": append,
        "files": files,
        "state": state,
    });
    // NICs on private networks: their MAC addresses (network and place
    // in it), not the switch sockets, which are new in every test.
    if !config.networks.is_empty() {
        let macs: Vec<&str> = config.networks.iter().map(|p| p.mac.as_str()).collect();
        inputs["private_nics"] = json!(macs);
    }
    Ok(inputs)
}

/// The key of a snapshot made from `inputs` ([`key_inputs`]).
pub fn snapshot_key(inputs: &Value) -> String {
    let h = Sha256::digest(inputs.to_string().as_bytes());
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(config: &MachineConfig, state: &Value) -> Value {
        key_inputs(config, "QEMU 10", "tcg", state, &mut HashCache::in_memory()).unwrap()
    }

    #[test]
    fn the_key_follows_files_settings_and_state() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        let initrd = dir.path().join("initrd");
        fs::write(&kernel, b"kernel").unwrap();
        fs::write(&initrd, b"initrd").unwrap();
        let cfg = MachineConfig::new("a").with_kernel(&kernel, Some(initrd.clone()), "quiet");
        let shell = json!({ "shell_prompt": "# $" });
        let k0 = snapshot_key(&inputs(&cfg, &shell));
        // The machine's name does not matter.
        let mut renamed = cfg.clone();
        renamed.name = "b".into();
        assert_eq!(snapshot_key(&inputs(&renamed, &shell)), k0);
        // Everything else does.
        assert_ne!(
            snapshot_key(&inputs(&cfg.clone().with_memory_mib(512), &shell)),
            k0
        );
        assert_ne!(snapshot_key(&inputs(&cfg, &json!({ "root": true }))), k0);
        assert_ne!(
            snapshot_key(
                &key_inputs(&cfg, "QEMU 9", "tcg", &shell, &mut HashCache::in_memory()).unwrap()
            ),
            k0
        );
        fs::write(&initrd, b"another initrd").unwrap();
        assert_ne!(snapshot_key(&inputs(&cfg, &shell)), k0);
    }

    #[test]
    fn on_private_networks_the_key_follows_the_macs_not_the_sockets() {
        let port = |socket: &str, mac: &str| crate::vm::network::NetworkPort {
            network: "lan".into(),
            socket: socket.into(),
            mac: mac.into(),
            address: std::net::Ipv4Addr::new(10, 1, 0, 1),
            prefix: 24,
        };
        let cfg = MachineConfig::new("a");
        let shell = json!({ "shell_prompt": "# $" });
        let alone = snapshot_key(&inputs(&cfg, &shell));
        let on = |socket: &str, mac: &str| {
            let mut c = cfg.clone();
            c.networks.push(port(socket, mac));
            snapshot_key(&inputs(&c, &shell))
        };
        let k = on("/tmp/run1/lan.sock", "02:b7:01:00:00:01");
        assert_ne!(k, alone);
        assert_eq!(on("/tmp/run2/lan.sock", "02:b7:01:00:00:01"), k);
        assert_ne!(on("/tmp/run1/lan.sock", "02:b7:01:00:00:02"), k);
    }

    #[test]
    fn machines_with_drives_or_persistent_disks_start_cold() {
        let cfg = MachineConfig::new("a").with_kernel("/k", None, "");
        assert_eq!(warm_unsupported(&cfg), None);
        let why = warm_unsupported(&cfg.clone().with_drive(Drive::Scratch(1 << 20)));
        assert!(why.unwrap().contains("drives"));
        let why = warm_unsupported(&cfg.with_disk("/d").with_persist(true));
        assert!(why.unwrap().contains("persist"));
    }

    #[test]
    fn a_store_lists_commits_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path().join("snapshots"));
        assert!(store.list().is_empty());
        let _lock = store.lock("k1").unwrap();
        let tmp = store.begin("k1").unwrap();
        fs::write(tmp.join(STATE_FILE), b"state").unwrap();
        let shell = SavedShell {
            user: None,
            password: None,
            root: true,
            asks_cursor: true,
            port: None,
        };
        let mut hashes = HashCache::in_memory();
        let info = store
            .commit(&tmp, "k1", "vm", shell, json!({}), &mut hashes)
            .unwrap();
        assert_eq!(info.state_bytes, 5);
        store.verify(&info, &mut hashes).unwrap();
        // Same size, other bytes, a later mtime: caught.
        let state = store.path("k1").join(STATE_FILE);
        fs::write(&state, b"STATE").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        File::options()
            .write(true)
            .open(&state)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let e = store.verify(&info, &mut hashes).unwrap_err().to_string();
        assert!(e.contains("changed since it was saved"), "{e}");
        assert_eq!(store.load("k1"), Some(info.clone()));
        assert_eq!(store.list(), vec![info]);
        drop(_lock);
        let (n, bytes) = store.prune().unwrap();
        assert_eq!(n, 1);
        assert!(bytes >= 5);
        assert!(store.list().is_empty());
    }
}
