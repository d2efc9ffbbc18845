//! The artifact catalog: every file a test left, with its size, hash and
//! what produced it. `TestDir` keeps a test folder's
//! catalog up to date.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::hash::FileDigest;

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
    pub fn of(name: &str, rel_path: &str, digest: FileDigest, produced_by: Producer) -> Artifact {
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
