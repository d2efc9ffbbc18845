//! A scenario's machine: the `machine` object (or one entry of
//! `machines`), its fields, and their checks when the scenario is loaded.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::errors::{Error, Result};
use crate::run::host_paths::{check_links, inside, ShareSpec};
use crate::vm::config::{check_drive_size, check_memory, parse_size, Accel, Firmware};
use crate::vm::links::Forward;
use crate::vm::network::valid_name;

/// The `machine` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// A built-in image (`busybox`, `debian`, `iso`).
    pub image: Option<String>,
    /// A kernel for direct boot; with `image`, your own kernel on its root.
    pub kernel: Option<PathBuf>,
    /// Its initrd (not with `image`).
    pub initrd: Option<PathBuf>,
    /// Its command line (with `image`: added to the image's).
    pub append: Option<String>,
    /// With `image` and `kernel`: its modules (see `crate::UserKernel`).
    pub modules: Option<PathBuf>,
    /// An ISO to boot.
    pub iso: Option<PathBuf>,
    /// `bios` or `uefi`.
    pub firmware: Option<Firmware>,
    /// A disk image (booted through a throwaway overlay).
    pub disk: Option<PathBuf>,
    /// Write to the disk image itself (only inside the scenario's folder
    /// unless `allow_outside`).
    #[serde(default)]
    pub persist: bool,
    /// Allow a `persist` disk outside the scenario's folder.
    #[serde(default)]
    pub allow_outside: bool,
    /// Extra drives.
    #[serde(default)]
    pub drives: Vec<DriveSpec>,
    /// Memory, e.g. `1G`.
    pub memory: Option<SizeText>,
    /// Virtual CPUs.
    pub cpus: Option<u32>,
    /// `auto`, `kvm`, `tcg`.
    pub accel: Option<Accel>,
    /// Give the guest a VGA display (a screendump is taken on failure).
    #[serde(default)]
    pub display: bool,
    /// Carry command output on the command channel (a virtio-serial port;
    /// default true). `false` reads it from the console between markers.
    #[serde(default = "yes")]
    pub command_channel: bool,
    /// `cold` (default) or `warm` (see `run/warm.rs`).
    #[serde(default)]
    pub start: crate::run::warm::Start,
    /// Host folders shared into the guest (9p), mounted by bootrig.
    #[serde(default)]
    pub shares: Vec<ShareSpec>,
    /// Guest TCP ports reachable from the host at 127.0.0.1.
    #[serde(default)]
    pub forwards: Vec<Forward>,
    /// The private networks the machine is on (in a scenario with
    /// `machines`), by name.
    #[serde(default)]
    pub networks: Vec<String>,
    /// QEMU user-mode networking (outbound only, through the host; default
    /// true). `false`: the machine's only links are its private networks.
    #[serde(default = "yes")]
    pub user_network: bool,
}

fn yes() -> bool {
    true
}

/// An extra drive: an existing file, or a scratch disk of a size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSpec {
    /// An existing image file.
    pub path: Option<PathBuf>,
    /// A sparse scratch disk size, e.g. `2G`.
    pub size: Option<SizeText>,
    /// Allow `path` outside the scenario's folder (it is attached
    /// read-write, so by default only files next to the scenario are).
    #[serde(default)]
    pub allow_outside: bool,
}

impl MachineSpec {
    /// Makes its relative paths relative to `base` (the scenario's folder)
    /// and checks it; `err(key, message)` locates a bad field.
    pub(crate) fn resolve(
        &mut self,
        base: &Path,
        err: &dyn Fn(&str, String) -> Error,
    ) -> Result<()> {
        let m = self;
        let files = [&mut m.kernel, &mut m.initrd, &mut m.iso, &mut m.disk];
        for p in files.into_iter().chain([&mut m.modules]).flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for d in &mut m.drives {
            if let Some(p) = &mut d.path {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        let sources = [
            m.image.is_some(),
            m.kernel.is_some(),
            m.iso.is_some(),
            m.disk.is_some(),
        ];
        if !sources.iter().any(|s| *s) {
            return Err(err(
                "machine",
                "machine needs a boot source: \"image\", \"kernel\", \"iso\" or \"disk\"".into(),
            ));
        }
        if m.image.is_some() && (m.iso.is_some() || m.disk.is_some()) {
            return Err(err(
                "image",
                "\"image\" replaces iso/disk: give one or the other".into(),
            ));
        }
        let uefi = m.firmware == Some(Firmware::Uefi);
        let drives = !m.drives.is_empty();
        (m.start.check(m.persist, drives, m.iso.is_some(), uefi)).map_err(|e| err("start", e))?;
        let (image, initrd) = (m.image.is_some(), m.initrd.is_some());
        let (kernel, modules) = (m.kernel.as_deref(), m.modules.as_deref());
        crate::vm::kernel::on_image(image, kernel, initrd, modules, m.append.as_deref())
            .map_err(|(key, e)| err(key, e))?;
        if m.kernel.is_some() && m.iso.is_some() {
            return Err(err("iso", "\"kernel\" and \"iso\" are exclusive".into()));
        }
        if m.kernel.is_none() && (m.initrd.is_some() || m.append.is_some()) {
            return Err(err(
                "initrd",
                "\"initrd\" and \"append\" need \"kernel\"".into(),
            ));
        }
        if let Some(name) = &m.image {
            if !crate::image::BUILTIN.contains(&name.as_str()) {
                return Err(err(
                    "image",
                    format!(
                        "unknown image {name:?} (built-in images: {})",
                        crate::image::BUILTIN.join(", ")
                    ),
                ));
            }
        }
        for (key, p) in [
            ("kernel", &m.kernel),
            ("initrd", &m.initrd),
            ("iso", &m.iso),
            ("disk", &m.disk),
        ] {
            if let Some(p) = p {
                if p.is_dir() {
                    return Err(err(
                        key,
                        format!("{key} {} is a directory, not a file", p.display()),
                    ));
                }
                if !p.is_file() {
                    return Err(err(
                        key,
                        format!("{key} file {} does not exist", p.display()),
                    ));
                }
            }
        }
        if let Some(mem) = m.memory {
            check_memory(mem.0).map_err(|e| err("memory", e))?;
        }
        for d in &m.drives {
            if let Some(size) = d.size {
                check_drive_size(size.0).map_err(|e| err("size", format!("drive size: {e}")))?;
            }
            if let Some(p) = d.path.as_ref().filter(|p| p.is_dir()) {
                return Err(err(
                    "drives",
                    format!("drive {} is a directory, not a file", p.display()),
                ));
            }
            match (&d.path, &d.size) {
                (Some(p), None) if !p.is_file() => {
                    return Err(err(
                        "drives",
                        format!("drive file {} does not exist", p.display()),
                    ))
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(err(
                        "drives",
                        "each drive has either \"path\" or \"size\"".into(),
                    ))
                }
            }
        }
        check_links(&mut m.shares, &m.forwards, base).map_err(|(key, e)| err(key, e))?;
        // Files the guest writes stay next to the scenario unless it says
        // otherwise: `"path": "../../etc/shadow"` is not attached by accident.
        let writable = m
            .drives
            .iter()
            .filter_map(|d| Some((d.path.as_ref()?, d.allow_outside, "drives")))
            .chain(
                m.disk
                    .as_ref()
                    .filter(|_| m.persist)
                    .map(|d| (d, m.allow_outside, "disk")),
            );
        for (p, allowed, key) in writable {
            if !allowed && !inside(base, p) {
                return Err(err(
                    key,
                    format!(
                        "{} is outside the scenario's folder and the guest writes to it; \
                             add \"allow_outside\": true to attach it anyway",
                        p.display()
                    ),
                ));
            }
        }
        if let Some(cpus) = m.cpus {
            if cpus == 0 || cpus > 64 {
                return Err(err("cpus", format!("cpus must be 1..=64, not {cpus}")));
            }
        }
        for net in &m.networks {
            if !valid_name(net) {
                return Err(err(
                    "networks",
                    format!("network name {net:?}: 1 to 32 letters, digits, '-' or '_'"),
                ));
            }
        }
        Ok(())
    }
}

/// A size given as text (`512M`, `2G`), checked at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SizeText(pub u64);

impl TryFrom<String> for SizeText {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        parse_size(&s).map(SizeText)
    }
}
