//! Existing host files or block devices as the guest's test and scratch
//! devices (`devices.paths`). A block device is refused when it holds the
//! host's root filesystem, is mounted, or is in use (an exclusive open
//! fails), and is used at all only with `devices.allow_block_devices`:
//! fstests writes all over it.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::{Error, Result};

/// Checks that `path` may be given to the guest as a writable fstests
/// device.
pub fn check(path: &Path, allow_block: bool) -> Result<()> {
    let bad = |message: String| Error::Config {
        what: format!("device {}", path.display()),
        message,
    };
    let meta = fs::metadata(path).map_err(|e| bad(format!("cannot be used: {e}")))?;
    if meta.is_file() {
        return Ok(());
    }
    if !meta.file_type().is_block_device() {
        return Err(bad("is neither a regular file nor a block device".into()));
    }
    if !allow_block {
        return Err(bad(
            "is a block device: fstests overwrites it; allow it explicitly (devices.allow_block_devices, --allow-block-devices)".into(),
        ));
    }
    let dev = meta.rdev();
    let root = fs::metadata("/").map(|m| m.dev()).unwrap_or(0);
    if dev == root || disk_of(root).is_some_and(|d| d == dev) {
        return Err(bad("holds the host's root filesystem".into()));
    }
    let (major, minor) = (libc_major(dev), libc_minor(dev));
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let id = format!("{major}:{minor}");
    if mountinfo
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(id.as_str()))
    {
        return Err(bad(format!("is mounted on the host (device {id})")));
    }
    let holders = Path::new("/sys/dev/block").join(&id).join("holders");
    if fs::read_dir(&holders).is_ok_and(|mut d| d.next().is_some()) {
        return Err(bad(format!(
            "is in use ({} is not empty)",
            holders.display()
        )));
    }
    // An exclusive open fails while anything else (a mount, LVM, md)
    // holds the device.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
        .map_err(|e| bad(format!("is in use: exclusive open failed: {e}")))?;
    Ok(())
}

/// The whole disk holding the partition `dev`, if `dev` is a partition.
fn disk_of(dev: u64) -> Option<u64> {
    let id = format!("{}:{}", libc_major(dev), libc_minor(dev));
    let link = fs::canonicalize(Path::new("/sys/dev/block").join(id)).ok()?;
    if !link.join("partition").exists() {
        return None;
    }
    let parent = fs::read_to_string(link.parent()?.join("dev")).ok()?;
    let (ma, mi) = parent.trim().split_once(':')?;
    Some(libc::makedev(ma.parse().ok()?, mi.parse().ok()?))
}

fn libc_major(dev: u64) -> u32 {
    libc::major(dev)
}

fn libc_minor(dev: u64) -> u32 {
    libc::minor(dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_pass_and_unsafe_block_devices_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("dev.raw");
        fs::write(&f, "").unwrap();
        check(&f, false).unwrap();
        let err = check(d.path(), true).unwrap_err().to_string();
        assert!(
            err.contains("neither a regular file nor a block device"),
            "{err}"
        );
        // The host's root disk: refused without the opt-in, and with it.
        let root = fs::metadata("/").unwrap().dev();
        let dev = disk_of(root).unwrap_or(root);
        let id = format!("{}:{}", libc_major(dev), libc_minor(dev));
        let Ok(node) = fs::canonicalize(Path::new("/sys/dev/block").join(&id)) else {
            return; // no sysfs entry (container): nothing more to check
        };
        let name = node.file_name().unwrap().to_string_lossy().into_owned();
        let path = Path::new("/dev").join(&name);
        if !path.exists() {
            return;
        }
        let err = check(&path, false).unwrap_err().to_string();
        assert!(err.contains("allow it explicitly"), "{err}");
        let err = check(&path, true).unwrap_err().to_string();
        assert!(
            err.contains("root filesystem") || err.contains("mounted") || err.contains("in use"),
            "{err}"
        );
    }
}
