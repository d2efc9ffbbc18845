//! Disks between the host and the guest, without root and without a host
//! mount: a folder becomes an ext4 image with `mke2fs -d`, and an ext4
//! image the guest wrote is read back with `debugfs -R rdump` (after
//! `e2fsck` replays its journal, so a guest that died mid-run still gives
//! back what reached the disk).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Makes `image` an ext4 filesystem holding a copy of `dir`, with `spare`
/// bytes free beyond what `dir` uses.
pub fn ext4_from_dir(dir: &Path, image: &Path, label: &str, spare: u64) -> Result<()> {
    let used = du_bytes(dir);
    // Inodes and metadata: a generous margin over the file bytes.
    let size = (used + used / 4 + spare + (64 << 20)).div_ceil(1 << 20);
    let _ = fs::remove_file(image);
    let out = Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            label,
            "-E",
            "root_owner=0:0",
            "-d",
        ])
        .arg(dir)
        .arg(image)
        .arg(format!("{size}M"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running mke2fs (package e2fsprogs)", e))?;
    if !out.status.success() {
        return Err(Error::Config {
            what: format!("disk image {}", image.display()),
            message: format!(
                "mke2fs -d {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Bytes used by the files under `dir`.
fn du_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len().max(4096),
                Err(_) => {}
            }
        }
    }
    total
}

/// Copies the folder `inside` of the ext4 `image` to `dest` (made if
/// missing): `e2fsck -fy` first (journal replay, repair after a crash),
/// then `debugfs -R "rdump inside dest"`. Returns the folder written,
/// `dest/<basename of inside>`.
pub fn read_back(image: &Path, inside: &str, dest: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
    // e2fsck exits 1 or 2 when it fixed something; 4 and up is an error.
    let fsck = Command::new("e2fsck")
        .args(["-f", "-y"])
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running e2fsck (package e2fsprogs)", e))?;
    if fsck.status.code().is_none_or(|c| c >= 4) {
        return Err(Error::Config {
            what: format!("results disk {}", image.display()),
            message: format!(
                "e2fsck failed ({}): {}",
                fsck.status,
                String::from_utf8_lossy(&fsck.stdout).trim()
            ),
        });
    }
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump {inside} {}", dest.display()))
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running debugfs (package e2fsprogs)", e))?;
    let copied = dest.join(Path::new(inside).file_name().unwrap_or_default());
    if !out.status.success() || !copied.exists() {
        return Err(Error::Config {
            what: format!("results disk {}", image.display()),
            message: format!(
                "debugfs rdump {inside} found nothing: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(copied)
}

/// Creates a sparse file of `size` bytes.
pub fn sparse(path: &Path, size: u64) -> Result<()> {
    File::create(path)
        .and_then(|f| f.set_len(size))
        .map_err(|e| Error::io(format!("creating the sparse file {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_goes_in_and_comes_back() {
        if Command::new("debugfs").arg("-V").output().is_err() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src/results/generic");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("001.out.bad"), "diff\n").unwrap();
        let img = d.path().join("disk.ext4");
        ext4_from_dir(&d.path().join("src"), &img, "res", 1 << 20).unwrap();
        let back = read_back(&img, "/results", &d.path().join("back")).unwrap();
        assert_eq!(
            fs::read_to_string(back.join("generic/001.out.bad")).unwrap(),
            "diff\n"
        );
        let err = read_back(&img, "/nothing", &d.path().join("none")).unwrap_err();
        assert!(err.to_string().contains("/nothing"), "{err}");
    }
}
