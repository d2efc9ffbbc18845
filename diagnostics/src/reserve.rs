//! Space held back on the artifacts disk for the records that end a test.
//!
//! A guest that floods its console, a big artifact or another process can
//! fill the disk the artifacts go to while a test runs. The records that
//! say how the test ended (`metadata.json`, its line in `run.json`,
//! `junit.xml`) are written last, so they would be the first casualties. A
//! [`Reserve`] is a file of real (not sparse) zero bytes written when the
//! test's folder is created and removed right before those final writes:
//! they then find at least its size free, whatever filled the disk in the
//! meantime (unless another writer takes the space back first).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::errors::{Error, ErrorKind, Result};

/// The reserve's file name inside the folder it guards.
pub const RESERVE_FILE: &str = ".bootrig-reserve";

/// The default size: the final `metadata.json` (a few KB; written to a
/// temporary file before the rename, so the old one still counts),
/// `run.json` and `junit.xml` of runs of a few hundred tests.
pub const DEFAULT_RESERVE_BYTES: u64 = 512 << 10;

/// A file of zero bytes holding space; removed by [`Reserve::release`] or
/// on drop.
#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
    held: bool,
}

impl Reserve {
    /// Writes `bytes` zero bytes to [`RESERVE_FILE`] in `dir`. Fails (and
    /// leaves no file) when they do not fit: the disk is already full.
    pub fn create(dir: &Path, bytes: u64) -> Result<Reserve> {
        Reserve::at(&dir.join(RESERVE_FILE), bytes)
    }

    /// Writes `bytes` zero bytes to the file `path` (replacing it); as
    /// [`Reserve::create`].
    pub fn at(path: &Path, bytes: u64) -> Result<Reserve> {
        let written = (|| -> io::Result<()> {
            let mut f = std::fs::File::create(path)?;
            let zeros = vec![0u8; 64 << 10];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                f.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            // Delayed allocation (ext4, xfs) counts unflushed blocks as
            // used, but only a flush proves they exist.
            f.sync_all()
        })();
        match written {
            Ok(()) => Ok(Reserve {
                path: path.to_path_buf(),
                held: true,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(Error::new(
                    "reserving space for the final records in",
                    path,
                    ErrorKind::Io(e),
                ))
            }
        }
    }

    /// Frees the space. True if it was still held.
    pub fn release(&mut self) -> bool {
        if !self.held {
            return false;
        }
        self.held = false;
        let _ = std::fs::remove_file(&self.path);
        true
    }

    /// Whether the space is still held.
    pub fn is_held(&self) -> bool {
        self.held
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        self.release();
    }
}

/// Whether `e` is an operating-system "no space left" (`ENOSPC`, or a
/// quota: `EDQUOT`).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == ENOSPC || code == EDQUOT)
        || e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
}

/// [`is_disk_full`] for this crate's errors.
pub fn error_is_disk_full(e: &Error) -> bool {
    match &e.kind {
        ErrorKind::Io(io) => is_disk_full(io),
        _ => false,
    }
}

/// Linux's `ENOSPC` and `EDQUOT` (this crate does not depend on libc).
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_real_bytes_and_releases_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reserve::create(dir.path(), 100_000).unwrap();
        let p = dir.path().join(RESERVE_FILE);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 100_000);
        assert!(r.is_held());
        assert!(r.release());
        assert!(!p.exists());
        assert!(!r.release());
        // Drop removes a held reserve.
        drop(Reserve::create(dir.path(), 10).unwrap());
        assert!(!p.exists());
    }

    #[test]
    fn no_space_is_told_apart() {
        assert!(is_disk_full(&io::Error::from_raw_os_error(28)));
        assert!(is_disk_full(&io::Error::from_raw_os_error(122)));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(13)));
        let e = Error::io("writing", "/x", io::Error::from_raw_os_error(28));
        assert!(error_is_disk_full(&e));
    }

    #[test]
    fn a_reserve_that_does_not_fit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert!(Reserve::create(&missing, 10).is_err());
        assert!(!missing.join(RESERVE_FILE).exists());
    }
}
