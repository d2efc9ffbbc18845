//! [`TestDir`]: a test's folder, keeping its artifact catalog and
//! `metadata.json` up to date while the test runs, and reading them back
//! offline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::atomic::write_atomic;
use crate::catalog::{Artifact, ArtifactCatalog, Producer};
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{digest_bytes, digest_file};
use crate::layout;
use crate::metadata::{Failure, Metadata, Outcome};
use crate::names::join_inside;
use crate::run::{attempt_folder, RunEntry, RunSummary};

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
    pub const METADATA_FILE: &'static str = layout::METADATA.path;

    /// Creates the folder of test `test_name` under `run_dir` (created if
    /// needed) and writes the initial `metadata.json` (outcome `running`).
    /// A folder left by an earlier attempt of the same test in the same run
    /// is moved to `<folder>~attempt-N` (and recorded as an attempt in
    /// `run.json`), so no stale artifact can be mistaken for a new one and
    /// none is lost.
    pub fn create(run_dir: &Path, test_name: &str, started_at: DateTime<Utc>) -> Result<TestDir> {
        let folder = layout::test_folder(test_name);
        let dir = join_inside(run_dir, &folder)?;
        if dir.exists() {
            // An earlier attempt of the same test in this run (a runner
            // such as nextest retried it): its folder is evidence (a flaky
            // test's failure), so it is kept as `<folder>~attempt-N` and
            // run.json lists it as an attempt.
            let n = (1..)
                .find(|n| !run_dir.join(attempt_folder(&folder, *n)).exists())
                .unwrap_or(1);
            let moved = attempt_folder(&folder, n);
            let to = run_dir.join(&moved);
            std::fs::rename(&dir, &to)
                .map_err(|e| Error::io("keeping the earlier attempt's folder", &to, e))?;
            RunSummary::retire_attempt_in(run_dir, &folder, &moved)?;
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

    /// Records this test's line in `run_dir/run.json` (see
    /// [`RunSummary::update`]).
    pub fn update_run_summary(&self, run_dir: &Path, run_id: &str) -> Result<RunSummary> {
        RunSummary::update(run_dir, run_id, self.metadata.started_at, self.run_entry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::FailureKind;
    use crate::names::safe_name;
    use chrono::TimeZone;

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

    #[test]
    fn update_adds_and_replaces_entries() {
        let run = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let a = TestDir::create(run.path(), "a::one", t0).unwrap();
        let mut b = TestDir::create(run.path(), "b::two", t0).unwrap();
        a.update_run_summary(run.path(), "r").unwrap();
        b.update_run_summary(run.path(), "r").unwrap();
        b.finish(Outcome::Passed, None, t0).unwrap();
        let s = b.update_run_summary(run.path(), "r").unwrap();
        assert_eq!(s.tests.len(), 2);
        let loaded = RunSummary::load(&run.path().join(RunSummary::FILE)).unwrap();
        assert_eq!(loaded.tests, s.tests);
        assert_eq!(loaded.count(Outcome::Passed), 1);
        assert_eq!(loaded.count(Outcome::Running), 1);
    }

    #[test]
    fn round_trip_record_and_scan() {
        let run = tempfile::tempdir().unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap();
        let mut s = RunSummary::new("r1", t0);
        let mut a = TestDir::create(run.path(), "a::passes", t0).unwrap();
        a.finish(Outcome::Passed, None, t0 + chrono::Duration::seconds(3))
            .unwrap();
        let mut b = TestDir::create(run.path(), "b::fails", t0).unwrap();
        s.record(b.run_entry());
        assert_eq!(s.count(Outcome::Running), 1);
        b.finish(
            Outcome::Failed,
            Some(Failure::new(FailureKind::BootTimeout, "no login prompt")),
            t0 + chrono::Duration::seconds(60),
        )
        .unwrap();
        s.record(b.run_entry());
        s.record(a.run_entry());
        s.ended_at = Some(t0 + chrono::Duration::seconds(61));
        assert_eq!(s.tests.len(), 2);
        assert_eq!(s.count(Outcome::Failed), 1);
        assert_eq!(s.tests[0].failure_kind, Some(FailureKind::BootTimeout));
        assert_eq!(s.tests[0].duration_ms, Some(60_000));

        let p = run.path().join(RunSummary::FILE);
        s.save(&p).unwrap();
        assert_eq!(RunSummary::load(&p).unwrap(), s);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["tests"][0]["outcome"], "failed");
        assert_eq!(v["tests"][0]["folder"], "b.fails");

        // A stray file and a folder without metadata are ignored.
        std::fs::create_dir(run.path().join("junk")).unwrap();
        let scanned = RunSummary::scan(run.path(), "r1").unwrap();
        assert_eq!(scanned.tests.len(), 2);
        assert_eq!(scanned.tests[0].folder, "a.passes");
        assert_eq!(scanned.started_at, t0);
    }
}
