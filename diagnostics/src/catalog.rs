//! The artifact catalog (every file a test left, with its size, hash and
//! what produced it) and [`TestDir`], a test's folder that keeps its
//! catalog and `metadata.json` up to date.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{digest_bytes, digest_file, FileDigest};
use crate::metadata::{Failure, Metadata, Outcome};
use crate::names::{join_inside, safe_name};
use crate::run::RunEntry;

/// What produced an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProducerKind {
    /// Captured from a serial console.
    Console,
    /// Output of a command run in the guest.
    Command,
    /// QEMU itself (stderr, QMP answers, a memory dump).
    Qemu,
    /// bootrig (its own logs, the failure report).
    Harness,
    /// Collected on the host (a copy of an image's log, `dmesg`).
    Host,
}

/// What produced an artifact, and from what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// The kind of producer.
    pub kind: ProducerKind,
    /// The command line for `command`, otherwise the source
    /// (`serial0`, `qemu stderr`, `query-status`).
    pub source: String,
}

impl Producer {
    /// A producer of `kind` with `source`.
    pub fn new(kind: ProducerKind, source: impl Into<String>) -> Producer {
        Producer {
            kind,
            source: source.into(),
        }
    }

    /// Captured from console `source` (`serial0`).
    pub fn console(source: impl Into<String>) -> Producer {
        Producer::new(ProducerKind::Console, source)
    }

    /// Output of `command` run in the guest.
    pub fn command(command: impl Into<String>) -> Producer {
        Producer::new(ProducerKind::Command, command)
    }

    /// Produced by QEMU (`stderr`, a QMP command).
    pub fn qemu(source: impl Into<String>) -> Producer {
        Producer::new(ProducerKind::Qemu, source)
    }

    /// Written by bootrig.
    pub fn harness(source: impl Into<String>) -> Producer {
        Producer::new(ProducerKind::Harness, source)
    }

    /// Collected on the host.
    pub fn host(source: impl Into<String>) -> Producer {
        Producer::new(ProducerKind::Host, source)
    }
}

/// One file in a test's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Short unique name (`serial`, `journal`, `systemctl-status`).
    pub name: String,
    /// Path relative to the test's folder, `/`-separated (`collect/journal.txt`).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// What produced it.
    pub produced_by: Producer,
    /// The command's exit code, for command outputs that finished.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// How long producing it took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Anything a reader should know (`command not found in guest`,
    /// `guest did not answer`, `truncated at 16 MiB`).
    #[serde(default)]
    pub note: Option<String>,
}

impl Artifact {
    /// An entry for the file at `rel_path` with `digest`, made by
    /// `produced_by` (no exit code, duration or note yet).
    fn of(name: &str, rel_path: &str, digest: FileDigest, produced_by: Producer) -> Artifact {
        Artifact {
            name: name.to_string(),
            path: portable(rel_path),
            bytes: digest.size,
            sha256: digest.sha256,
            produced_by,
            exit_code: None,
            duration_ms: None,
            note: None,
        }
    }
}

/// The artifacts of a test, in the order they were added; names are unique.
/// Serialised as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArtifactCatalog {
    artifacts: Vec<Artifact>,
}

impl ArtifactCatalog {
    /// An empty catalog.
    pub fn new() -> ArtifactCatalog {
        ArtifactCatalog::default()
    }

    /// Adds `artifact`; one with the same name is replaced in place (the
    /// file was written again). Returns the stored entry.
    pub fn insert(&mut self, artifact: Artifact) -> &mut Artifact {
        match self.artifacts.iter().position(|a| a.name == artifact.name) {
            Some(i) => {
                self.artifacts[i] = artifact;
                &mut self.artifacts[i]
            }
            None => {
                self.artifacts.push(artifact);
                self.artifacts.last_mut().expect("just pushed")
            }
        }
    }

    /// The artifact called `name`.
    pub fn get(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    /// The artifact called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Artifact> {
        self.artifacts.iter_mut().find(|a| a.name == name)
    }

    /// All artifacts, in the order they were added.
    pub fn iter(&self) -> std::slice::Iter<'_, Artifact> {
        self.artifacts.iter()
    }

    /// Number of artifacts.
    pub fn len(&self) -> usize {
        self.artifacts.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.artifacts.is_empty()
    }
}

impl<'a> IntoIterator for &'a ArtifactCatalog {
    type Item = &'a Artifact;
    type IntoIter = std::slice::Iter<'a, Artifact>;
    fn into_iter(self) -> Self::IntoIter {
        self.artifacts.iter()
    }
}

/// A test's folder under a run folder: `<run>/<safe_name(test)>/`, holding
/// `metadata.json` and the artifacts it catalogs.
///
/// Call [`save_metadata`](TestDir::save_metadata) at each phase change so
/// that a harness killed mid-test leaves a valid `metadata.json` whose
/// outcome is `running`; [`finish`](TestDir::finish) writes the final one.
#[derive(Debug)]
pub struct TestDir {
    dir: PathBuf,
    folder: String,
    metadata: Metadata,
}

impl TestDir {
    /// The metadata file's name in the folder.
    pub const METADATA_FILE: &'static str = "metadata.json";

    /// Creates the folder of test `test_name` under `run_dir` (created if
    /// needed) and writes the initial `metadata.json` (outcome `running`).
    /// A folder left by an earlier attempt of the same test in the same run
    /// is replaced, so no stale artifact can be mistaken for a new one.
    pub fn create(run_dir: &Path, test_name: &str, started_at: DateTime<Utc>) -> Result<TestDir> {
        let folder = safe_name(test_name);
        let dir = join_inside(run_dir, &folder)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::io("removing the old folder", &dir, e))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io("creating the test folder", &dir, e))?;
        let t = TestDir {
            dir,
            folder,
            metadata: Metadata::new(test_name, started_at),
        };
        t.save_metadata()?;
        Ok(t)
    }

    /// Opens an existing test folder (offline use), loading its `metadata.json`.
    pub fn open(dir: &Path) -> Result<TestDir> {
        let metadata = Metadata::load(&dir.join(TestDir::METADATA_FILE))?;
        Ok(TestDir {
            dir: dir.to_path_buf(),
            folder: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            metadata,
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The folder's name in the run folder.
    pub fn folder_name(&self) -> &str {
        &self.folder
    }

    /// The metadata as it will be saved.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The metadata, to record phases, QEMU facts, etc.; saved by the next
    /// [`save_metadata`](TestDir::save_metadata).
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The catalog.
    pub fn artifacts(&self) -> &ArtifactCatalog {
        &self.metadata.artifacts
    }

    /// `rel_path` inside the folder; refuses escapes and `metadata.json`.
    pub fn artifact_path(&self, rel_path: &str) -> Result<PathBuf> {
        let p = join_inside(&self.dir, rel_path)?;
        if p == self.dir.join(TestDir::METADATA_FILE) {
            return Err(Error::new(
                "resolving a path inside",
                &self.dir,
                ErrorKind::Escape {
                    relative: rel_path.into(),
                    reason: "reserved for metadata.json",
                },
            ));
        }
        Ok(p)
    }

    /// Writes `bytes` to `rel_path` in the folder (atomically, creating
    /// subfolders), hashes them and catalogs the file as `name`.
    pub fn write_artifact(
        &mut self,
        name: &str,
        rel_path: &str,
        bytes: &[u8],
        produced_by: Producer,
        exit_code: Option<i32>,
        duration: Option<Duration>,
    ) -> Result<&Artifact> {
        let path = self.artifact_path(rel_path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        write_atomic(&path, bytes)?;
        let mut artifact = Artifact::of(name, rel_path, digest_bytes(bytes), produced_by);
        artifact.exit_code = exit_code;
        artifact.duration_ms = duration.map(|d| d.as_millis() as u64);
        Ok(self.metadata.artifacts.insert(artifact))
    }

    /// Catalogs a file already in the folder (e.g. `serial.log`, streamed
    /// by the console), hashing it as it is now.
    pub fn add_existing(
        &mut self,
        name: &str,
        rel_path: &str,
        produced_by: Producer,
    ) -> Result<&Artifact> {
        let path = self.artifact_path(rel_path)?;
        let digest = digest_file(&path)?;
        Ok(self
            .metadata
            .artifacts
            .insert(Artifact::of(name, rel_path, digest, produced_by)))
    }

    /// Attaches `note` to artifact `name`. Returns false if there is none.
    pub fn set_note(&mut self, name: &str, note: impl Into<String>) -> bool {
        match self.metadata.artifacts.get_mut(name) {
            Some(a) => {
                a.note = Some(note.into());
                true
            }
            None => false,
        }
    }

    /// Writes `metadata.json` atomically.
    pub fn save_metadata(&self) -> Result<()> {
        self.metadata.save(&self.dir.join(TestDir::METADATA_FILE))
    }

    /// Records the end of the test and writes the final `metadata.json`.
    pub fn finish(
        &mut self,
        outcome: Outcome,
        failure: Option<Failure>,
        ended_at: DateTime<Utc>,
    ) -> Result<()> {
        self.metadata.finish(outcome, failure, ended_at);
        self.save_metadata()
    }

    /// This test's line in `run.json`.
    pub fn run_entry(&self) -> RunEntry {
        RunEntry::from_metadata(&self.metadata, &self.folder)
    }
}

/// `rel` with `/` separators and without `.` components.
fn portable(rel: &str) -> String {
    Path::new(rel)
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::FailureKind;

    #[test]
    fn artifacts_are_written_hashed_and_cataloged() {
        let run = tempfile::tempdir().unwrap();
        let mut t = TestDir::create(run.path(), "boot::debian smoke", Utc::now()).unwrap();
        assert_eq!(t.path().parent(), Some(run.path()));
        assert_eq!(t.folder_name(), safe_name("boot::debian smoke"));
        // The initial metadata is on disk, marked running.
        let m = Metadata::load(&t.path().join("metadata.json")).unwrap();
        assert!(!m.finished());

        let a = t
            .write_artifact(
                "journal",
                "./collect/journal.txt",
                b"abc",
                Producer::command("journalctl -b"),
                Some(0),
                Some(Duration::from_millis(1500)),
            )
            .unwrap()
            .clone();
        assert_eq!(a.path, "collect/journal.txt");
        assert_eq!(a.bytes, 3);
        assert_eq!(
            a.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(a.duration_ms, Some(1500));
        assert_eq!(
            std::fs::read(t.path().join("collect/journal.txt")).unwrap(),
            b"abc"
        );

        std::fs::write(t.path().join("serial.log"), b"boot log\n").unwrap();
        t.add_existing("serial", "serial.log", Producer::console("serial0"))
            .unwrap();
        assert!(t.set_note("journal", "guest did not answer"));
        assert!(!t.set_note("nope", "x"));
        // Rewriting a name replaces its entry.
        t.write_artifact(
            "journal",
            "collect/journal.txt",
            b"abcd",
            Producer::command("journalctl -b"),
            Some(1),
            None,
        )
        .unwrap();
        assert_eq!(t.artifacts().len(), 2);
        assert_eq!(t.artifacts().get("journal").unwrap().bytes, 4);

        t.finish(
            Outcome::Failed,
            Some(Failure::new(FailureKind::Command, "exit 1")),
            Utc::now(),
        )
        .unwrap();
        let again = TestDir::open(t.path()).unwrap();
        assert!(again.metadata().finished());
        assert_eq!(again.artifacts(), t.artifacts());
        assert_eq!(again.artifacts().get("serial").unwrap().bytes, 9);
        let e = again.run_entry();
        assert_eq!(e.outcome, Outcome::Failed);
        assert_eq!(e.folder, t.folder_name());
    }

    #[test]
    fn escapes_and_metadata_json_are_refused() {
        let run = tempfile::tempdir().unwrap();
        let mut t = TestDir::create(run.path(), "t", Utc::now()).unwrap();
        for bad in [
            "../x",
            "/tmp/x",
            "a/../../x",
            "",
            "metadata.json",
            "./metadata.json",
        ] {
            let e = t
                .write_artifact("x", bad, b"x", Producer::harness("test"), None, None)
                .unwrap_err();
            assert!(matches!(e.kind, ErrorKind::Escape { .. }), "{bad}: {e}");
            assert!(t.add_existing("x", bad, Producer::harness("test")).is_err());
        }
        assert!(t.artifacts().is_empty());
        assert!(!run.path().join("x").exists());
        let e = t
            .add_existing("gone", "gone.txt", Producer::host("x"))
            .unwrap_err();
        assert!(e.to_string().starts_with("hashing "), "{e}");
    }

    #[test]
    fn create_replaces_a_stale_folder() {
        let run = tempfile::tempdir().unwrap();
        let t = TestDir::create(run.path(), "t", Utc::now()).unwrap();
        std::fs::write(t.path().join("stale.txt"), b"old").unwrap();
        let t = TestDir::create(run.path(), "t", Utc::now()).unwrap();
        assert!(!t.path().join("stale.txt").exists());
        assert!(t.path().join("metadata.json").exists());
    }
}
