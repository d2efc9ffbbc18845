//! Atomic file replacement: a reader sees either the old file or the whole
//! new one, never a half-written file, even if the writer is killed.
//!
//! The bytes go to a temporary file in the destination's folder (same file
//! system, so the rename is atomic), which is fsynced, then renamed over the
//! destination; the folder is fsynced too so the rename survives a crash. A
//! writer killed before the rename can leave a `.tmp*` file behind (never
//! under the destination's name); on any error the temporary file is removed.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::errors::{Error, ErrorKind, Result};

/// Atomically replaces (or creates) `path` with `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |e| Error::io("writing", path, e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    // NamedTempFile creates files with mode 0600; the file gets the mode
    // an ordinary new file would (0666 less the umask), so bootrig's
    // private artifact mode (umask 077) and a shared one both hold.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()));
    }
    tmp.persist(path).map_err(|e| err(e.error))?;
    // Make the rename durable; failure to sync a folder is not worth failing for.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The process's umask, read without changing it (`/proc/self/status`);
/// 022 when it cannot be read.
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Atomically writes `value` as pretty JSON followed by a newline.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::new("serialising", path, ErrorKind::Serialize(e)))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two!").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two!");
        assert!(leftovers(dir.path()).is_empty());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn json_is_pretty_with_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_json_atomic(&p, &serde_json::json!({"a": [1, 2]})).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.ends_with("}\n"));
        assert!(s.contains("\n  \"a\""));
    }

    #[test]
    fn error_names_path_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-folder").join("x.json");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().starts_with("writing "), "{e}");
        assert!(e.to_string().contains("missing-folder"), "{e}");
        // Renaming onto a directory fails after the temp file was written.
        let d = dir.path().join("isdir");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("keep"), b"").unwrap();
        assert!(write_atomic(&d, b"x").is_err());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_reader_never_sees_partial_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_json_atomic(&p, &serde_json::json!({"gen": 0, "pad": ""})).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let s = std::fs::read_to_string(&p).expect("the file always exists");
                    let v: serde_json::Value =
                        serde_json::from_str(&s).unwrap_or_else(|e| panic!("partial JSON: {e}"));
                    assert!(v["gen"].is_u64());
                    reads += 1;
                }
                reads
            })
        };
        // Large documents make a torn write likely if writes were not atomic.
        let pad = "x".repeat(256 * 1024);
        for gen in 1..200 {
            write_json_atomic(&p, &serde_json::json!({"gen": gen, "pad": pad})).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 0);
        assert!(leftovers(dir.path()).is_empty());
    }
}
