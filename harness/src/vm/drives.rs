//! The files a VM opens, prepared so that the originals are never
//! modified: a throwaway qcow2 overlay over the disk image, sized scratch
//! drives, and a private copy of the UEFI variable store.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::errors::{Error, Result};
use crate::vm::config::{Drive, Firmware};
use crate::vm::qemu_args;

/// `p` made absolute (QEMU runs with another working folder in mind).
pub(crate) fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The disk QEMU opens: a qcow2 overlay over `disk` in `workdir` (so the
/// image is never modified), or `disk` itself when `persist`.
pub(crate) fn prepare_disk(
    disk: &Path,
    persist: bool,
    workdir: &Path,
) -> Result<(PathBuf, String)> {
    let format = image_format(disk)?;
    if persist {
        return Ok((abs(disk), format));
    }
    let overlay = workdir.join("root-overlay.qcow2");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", &format, "-b"])
        .arg(abs(disk))
        .arg(&overlay)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running qemu-img create (package qemu-utils)", e))?;
    if !out.status.success() {
        return Err(Error::Config {
            what: format!("disk {}", disk.display()),
            message: format!(
                "qemu-img could not create an overlay: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok((overlay, "qcow2".into()))
}

/// The image format as qemu-img sees it (`raw`, `qcow2`, ...).
fn image_format(path: &Path) -> Result<String> {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running qemu-img info (package qemu-utils)", e))?;
    if !out.status.success() {
        return Err(Error::Config {
            what: format!("disk {}", path.display()),
            message: format!(
                "qemu-img info failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Ok(info
        .get("format")
        .and_then(|f| f.as_str())
        .unwrap_or("raw")
        .to_string())
}

/// The scratch and file drives, in order, with their formats.
pub(crate) fn prepare_drives(drives: &[Drive], workdir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for (i, d) in drives.iter().enumerate() {
        match d {
            Drive::File(path) => out.push((abs(path), image_format(path)?)),
            Drive::Scratch(size) => {
                let path = workdir.join(format!("scratch{}.raw", i + 1));
                let f = File::create(&path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                f.set_len(*size).map_err(|e| {
                    Error::io(format!("sizing {} to {size} bytes", path.display()), e)
                })?;
                out.push((path, "raw".into()));
            }
        }
    }
    Ok(out)
}

/// The UEFI firmware and a private copy of its variable store in `workdir`,
/// when `firmware` needs OVMF.
pub(crate) fn prepare_uefi(
    firmware: Firmware,
    workdir: &Path,
) -> Result<Option<(PathBuf, PathBuf)>> {
    if !qemu_args::needs_ovmf(firmware) {
        return Ok(None);
    }
    let (code, vars) = qemu_args::find_uefi_code().ok_or_else(|| Error::MissingTool {
        tool: "OVMF firmware".into(),
        hint: "firmware \"uefi\" needs /usr/share/OVMF/OVMF_CODE_4M.fd: apt-get install ovmf"
            .into(),
    })?;
    let own_vars = workdir.join("OVMF_VARS.fd");
    fs::copy(&vars, &own_vars).map_err(|e| {
        Error::io(
            format!("copying {} to {}", vars.display(), own_vars.display()),
            e,
        )
    })?;
    Ok(Some((code, own_vars)))
}
