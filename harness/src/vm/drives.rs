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
    let what = format!("disk {}", disk.display());
    overlay(&abs(disk), &format, workdir, &what)
}

/// A throwaway qcow2 overlay in `workdir` over `saved`, a disk bootrig
/// saved with a machine's state (a qcow2 whose backing file is the
/// image's disk: bootrig wrote that header, no guest did).
pub(crate) fn overlay_over_saved_disk(saved: &Path, workdir: &Path) -> Result<(PathBuf, String)> {
    let what = format!("saved disk {}", saved.display());
    overlay(saved, "qcow2", workdir, &what)
}

/// Creates `workdir/root-overlay.qcow2` over `backing` (of `format`);
/// `what` names the disk in errors.
fn overlay(backing: &Path, format: &str, workdir: &Path, what: &str) -> Result<(PathBuf, String)> {
    let overlay = workdir.join("root-overlay.qcow2");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
        .arg(backing)
        .arg(&overlay)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running qemu-img create (package qemu-utils)", e))?;
    if !out.status.success() {
        return Err(Error::Config {
            what: what.to_string(),
            message: format!(
                "qemu-img could not create an overlay: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok((overlay, "qcow2".into()))
}

/// The image format as qemu-img sees it, if bootrig may attach it: `raw`,
/// or a `qcow2` that names no other host file.
///
/// A guest writes its drives, so the next run cannot trust what a file
/// says it is: a guest that wrote a qcow2 header naming `/etc/shadow` as
/// backing file (or as external data file), or a VMDK descriptor naming
/// extents, would make QEMU open that host file. Such images are refused
/// (bootrig never follows a drive's references to other files), and the
/// format found is passed to QEMU explicitly (`format=`), never probed
/// again by QEMU.
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
    attachable_format(&info).map_err(|message| Error::Config {
        what: format!("disk {}", path.display()),
        message,
    })
}

/// The format in `qemu-img info` JSON, if an image of it may be attached
/// (see [`image_format`]).
fn attachable_format(info: &serde_json::Value) -> std::result::Result<String, String> {
    let format = info.get("format").and_then(|f| f.as_str()).unwrap_or("raw");
    match format {
        "raw" => Ok(format.into()),
        "qcow2" => {
            if let Some(backing) = info.get("backing-filename").and_then(|b| b.as_str()) {
                return Err(format!(
                    "it is a qcow2 image with a backing file ({backing}); bootrig does not \
                     attach images that name other host files (a guest may have written that \
                     header): flatten it with `qemu-img convert -O qcow2`"
                ));
            }
            let data_file = info
                .pointer("/format-specific/data/data-file")
                .and_then(|d| d.as_str());
            if let Some(data) = data_file {
                return Err(format!(
                    "it is a qcow2 image with an external data file ({data}); bootrig does \
                     not attach images that name other host files"
                ));
            }
            Ok(format.into())
        }
        other => Err(format!(
            "its format is {other}; bootrig attaches raw and qcow2 images only (convert it \
             with `qemu-img convert -O qcow2`)"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img(args: &[&str]) {
        let ok = Command::new("qemu-img")
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "qemu-img {args:?}");
    }

    #[test]
    fn images_naming_host_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(p("plain.raw"), vec![0u8; 4096]).unwrap();
        qemu_img(&["create", "-q", "-f", "qcow2", &p("ok.qcow2"), "1M"]);
        // What a guest can write into a raw drive: a qcow2 header whose
        // backing file is a host file.
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "/etc/hostname",
            &p("evil.qcow2"),
            "1M",
        ]);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", p("data.raw")),
            &p("ext.qcow2"),
            "1M",
        ]);
        qemu_img(&["create", "-q", "-f", "vmdk", &p("x.vmdk"), "1M"]);
        let drives = |names: &[&str]| {
            let d: Vec<Drive> = names.iter().map(|n| Drive::File(p(n).into())).collect();
            prepare_drives(&d, dir.path())
        };
        let ok = drives(&["plain.raw", "ok.qcow2"]).unwrap();
        assert_eq!(ok[0].1, "raw");
        assert_eq!(ok[1].1, "qcow2");
        let e = drives(&["evil.qcow2"]).unwrap_err().to_string();
        assert!(e.contains("backing file (/etc/hostname)"), "{e}");
        let e = drives(&["ext.qcow2"]).unwrap_err().to_string();
        assert!(e.contains("external data file"), "{e}");
        let e = drives(&["x.vmdk"]).unwrap_err().to_string();
        assert!(e.contains("format is vmdk"), "{e}");
        // The root disk's overlay is not made over such an image either.
        let e = prepare_disk(Path::new(&p("evil.qcow2")), false, dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("backing file"), "{e}");
    }
}
