//! Streamed sha256 of files, and a persistent cache so that an unchanged
//! multi-gigabyte disk image is not re-hashed on every run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::atomic::write_json_atomic;
use crate::errors::{Error, Result};

/// Size of the read buffer: memory use of hashing does not depend on the
/// file's size.
pub const HASH_BUFFER: usize = 1 << 20;

/// The sha256 and size of some content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The digest of an in-memory buffer.
pub fn digest_bytes(bytes: &[u8]) -> FileDigest {
    FileDigest {
        sha256: hex(&Sha256::digest(bytes)),
        size: bytes.len() as u64,
    }
}

/// The digest of everything `reader` yields, read through a fixed
/// [`HASH_BUFFER`]-sized buffer.
pub fn digest_reader(mut reader: impl Read) -> io::Result<FileDigest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileDigest {
        sha256: hex(&hasher.finalize()),
        size,
    })
}

/// The digest of the file at `path`, streamed (never loaded in memory).
pub fn digest_file(path: &Path) -> Result<FileDigest> {
    let f = File::open(path).map_err(|e| Error::io("hashing", path, e))?;
    digest_reader(f).map_err(|e| Error::io("hashing", path, e))
}

/// What identifies an unchanged file for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_s: i64,
    mtime_ns: u32,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> io::Result<Stamp> {
        let (mtime_s, mtime_ns) = match meta.modified()?.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                (-(d.as_secs() as i64), d.subsec_nanos())
            }
        };
        Ok(Stamp {
            size: meta.len(),
            mtime_s,
            mtime_ns,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheEntry {
    #[serde(flatten)]
    stamp: Stamp,
    sha256: String,
}

/// Version of the cache file's format; a file with another version is ignored.
const CACHE_VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, CacheEntry>,
}

/// sha256 digests keyed by (canonical path, mtime, size).
///
/// **Contract:** a file whose size and modification time (to the
/// nanosecond) are unchanged is assumed unchanged; its cached digest is
/// returned without reading it. Content rewritten in place with the
/// modification time restored (`touch -r`) is not noticed. Any change to
/// either (e.g. `touch`) makes the next lookup hash the file again.
///
/// The cache is a JSON file (e.g. `~/.cache/bootrig/hashes.json`, see
/// [`HashCache::default_path`]). A missing, unreadable, corrupt or
/// other-version file loads as an empty cache: it is only an optimisation.
/// [`save`](HashCache::save) merges with what other processes saved
/// meanwhile and writes atomically, so concurrent runs never corrupt it.
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, CacheEntry>,
    dirty: bool,
    hits: u64,
    misses: u64,
}

impl HashCache {
    /// A cache that lives only in memory.
    pub fn in_memory() -> HashCache {
        HashCache::default()
    }

    /// `$XDG_CACHE_HOME/bootrig/hashes.json`, else
    /// `$HOME/.cache/bootrig/hashes.json`; None if neither variable is set.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("bootrig").join("hashes.json"))
    }

    /// The cache persisted at `path` (empty if the file is missing or unusable).
    pub fn load(path: &Path) -> HashCache {
        HashCache {
            path: Some(path.to_path_buf()),
            entries: read_entries(path),
            ..HashCache::default()
        }
    }

    /// Where the cache is saved, if anywhere.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Number of cached digests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no digest is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Lookups answered from the cache since it was loaded.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that had to read the file since the cache was loaded.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The digest of the file at `path`: from the cache if its canonical
    /// path, size and mtime match an entry, otherwise by hashing it (and
    /// remembering the result unless the file changed while being read).
    pub fn digest(&mut self, path: &Path) -> Result<FileDigest> {
        let err = |e| Error::io("hashing", path, e);
        let canonical = std::fs::canonicalize(path).map_err(err)?;
        let key = canonical.to_string_lossy().into_owned();
        let file = File::open(&canonical).map_err(err)?;
        let before = Stamp::of(&file.metadata().map_err(err)?).map_err(err)?;
        if let Some(e) = self.entries.get(&key) {
            if e.stamp == before {
                self.hits += 1;
                return Ok(FileDigest {
                    sha256: e.sha256.clone(),
                    size: before.size,
                });
            }
        }
        self.misses += 1;
        let digest = digest_reader(&file).map_err(err)?;
        let after = Stamp::of(&file.metadata().map_err(err)?).map_err(err)?;
        if after == before && digest.size == before.size {
            self.entries.insert(
                key,
                CacheEntry {
                    stamp: before,
                    sha256: digest.sha256.clone(),
                },
            );
            self.dirty = true;
        }
        Ok(digest)
    }

    /// Writes the cache to its file (if it has one and anything changed),
    /// merged with entries other processes saved meanwhile; ours win.
    pub fn save(&mut self) -> Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        let mut merged = read_entries(&path);
        merged.extend(self.entries.iter().map(|(k, v)| (k.clone(), v.clone())));
        let file = CacheFile {
            version: CACHE_VERSION,
            entries: merged,
        };
        write_json_atomic(&path, &file)?;
        self.entries = file.entries;
        self.dirty = false;
        Ok(())
    }
}

fn read_entries(path: &Path) -> BTreeMap<String, CacheEntry> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
        .filter(|f| f.version == CACHE_VERSION)
        .map(|f| f.entries)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn known_vectors() {
        assert_eq!(
            digest_bytes(b"").sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest_bytes(b"abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let s = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            digest_reader(&s[..]).unwrap().sha256,
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            digest_file(&p).unwrap(),
            FileDigest {
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
                size: 3
            }
        );
    }

    #[test]
    fn buffer_boundaries() {
        // Content spanning several buffers hashes like the in-memory digest.
        let data: Vec<u8> = (0..(HASH_BUFFER * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        assert_eq!(digest_reader(&data[..]).unwrap(), digest_bytes(&data));
    }

    fn peak_rss_kib() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
        l.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn large_sparse_file_is_streamed() {
        // 256 MiB: big enough that loading it would show in the peak RSS,
        // small enough for an unoptimised test build (~50 MB/s for sha2).
        const SIZE: u64 = 256 << 20;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse.img");
        File::create(&p).unwrap().set_len(SIZE).unwrap();
        let before = peak_rss_kib();
        let d = digest_file(&p).unwrap();
        // `head -c 256M /dev/zero | sha256sum`
        assert_eq!(
            d.sha256,
            "a6d72ac7690f53be6ae46ba88506bd97302a093f7108472bd9efc3cefda06484"
        );
        assert_eq!(d.size, SIZE);
        if let (Some(b), Some(a)) = (before, peak_rss_kib()) {
            // Other tests run concurrently; anything near 1 GiB would mean
            // the file was loaded.
            assert!(
                a.saturating_sub(b) < 128 * 1024,
                "peak RSS grew by {} KiB",
                a - b
            );
        }
    }

    fn set_mtime(p: &Path, t: SystemTime) {
        File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn cache_hit_does_not_reread_and_touch_invalidates() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("cache/hashes.json");
        let img = dir.path().join("disk.img");
        std::fs::write(&img, b"abc").unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        set_mtime(&img, t0);

        let mut c = HashCache::load(&cache_path);
        assert!(c.is_empty());
        let d1 = c.digest(&img).unwrap();
        assert_eq!(d1, digest_bytes(b"abc"));
        assert_eq!((c.hits(), c.misses()), (0, 1));
        c.save().unwrap();
        assert!(cache_path.exists());

        // Same size and mtime, different content: by contract the cache
        // answers without reading the file, so it returns the old digest.
        std::fs::write(&img, b"xyz").unwrap();
        set_mtime(&img, t0);
        let mut c = HashCache::load(&cache_path);
        assert_eq!(c.len(), 1);
        // Through another spelling of the same path: keyed by canonical path.
        let other = dir.path().join(".").join("disk.img");
        assert_eq!(c.digest(&other).unwrap(), d1);
        assert_eq!((c.hits(), c.misses()), (1, 0));

        // Touching the file invalidates the entry.
        set_mtime(&img, t0 + Duration::from_secs(1));
        assert_eq!(c.digest(&img).unwrap(), digest_bytes(b"xyz"));
        assert_eq!((c.hits(), c.misses()), (1, 1));
        // So does a size change.
        std::fs::write(&img, b"xyzw").unwrap();
        set_mtime(&img, t0 + Duration::from_secs(1));
        assert_eq!(c.digest(&img).unwrap(), digest_bytes(b"xyzw"));
        c.save().unwrap();
        assert_eq!(HashCache::load(&cache_path).len(), 1);
    }

    #[test]
    fn corrupt_or_missing_cache_is_empty_and_save_merges() {
        let dir = tempfile::tempdir().unwrap();
        let cache_path = dir.path().join("hashes.json");
        std::fs::write(&cache_path, b"{not json").unwrap();
        let mut a = HashCache::load(&cache_path);
        assert!(a.is_empty());
        let mut b = HashCache::load(&cache_path);
        let (fa, fb) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&fa, b"a").unwrap();
        std::fs::write(&fb, b"b").unwrap();
        a.digest(&fa).unwrap();
        b.digest(&fb).unwrap();
        a.save().unwrap();
        b.save().unwrap();
        assert_eq!(HashCache::load(&cache_path).len(), 2);
        // Nothing to save: no write.
        let mut c = HashCache::load(&cache_path);
        c.save().unwrap();
        let e = HashCache::in_memory()
            .digest(&dir.path().join("nope"))
            .unwrap_err();
        assert!(e.to_string().starts_with("hashing "), "{e}");
    }
}
