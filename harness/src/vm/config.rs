//! What a VM is made of: boot sources, drives, memory, CPUs, accelerator.
//!
//! [`MachineConfig`] is a plain builder; it touches no file until
//! [`crate::Machine::start`] resolves it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::vm::kernel::UserKernel;
use crate::vm::links::{check_forwards, check_shares, Forward, Share};
use crate::vm::network::{Network, NetworkPort};

/// The least guest memory bootrig boots with, in MiB.
pub const MIN_MEMORY_MIB: u64 = 64;
/// The most guest memory bootrig asks QEMU for, in MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// The smallest scratch drive, in bytes (1 MiB).
pub const MIN_DRIVE_BYTES: u64 = 1 << 20;
/// The largest scratch drive, in bytes (16 TiB: the largest sparse file
/// ext4 holds).
pub const MAX_DRIVE_BYTES: u64 = 16 << 40;

/// Which accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// KVM when it works on this host, else TCG (with one line saying why).
    #[default]
    Auto,
    /// KVM; fails if it does not work.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

impl FromStr for Accel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!(
                "unknown accelerator {other:?} (expected auto, kvm or tcg)"
            )),
        }
    }
}

/// Which firmware boots an ISO or a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS, QEMU's built-in BIOS.
    #[default]
    Bios,
    /// OVMF (EDK II), from Debian's `ovmf` package.
    Uefi,
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        })
    }
}

/// An extra drive given to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drive {
    /// An existing image file, attached as it is (writes go to the file).
    File(PathBuf),
    /// A sparse raw image of this many bytes, created for the VM and
    /// deleted with it.
    Scratch(u64),
}

/// Direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelBoot {
    /// The kernel image (bzImage / vmlinuz).
    pub kernel: PathBuf,
    /// An optional initramfs.
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub append: String,
}

/// A VM description. Build it with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// Name used for the QEMU process and messages.
    pub name: String,
    /// Direct kernel boot, if any.
    pub kernel: Option<KernelBoot>,
    /// An ISO booted from CD-ROM, if any.
    pub iso: Option<PathBuf>,
    /// A disk image (root disk); booted through a throwaway overlay unless
    /// `persist` is set.
    pub disk: Option<PathBuf>,
    /// Write to `disk` directly instead of through an overlay.
    pub persist: bool,
    /// Firmware for ISO and disk boots.
    pub firmware: Firmware,
    /// Extra drives, attached after the root disk (`/dev/vdb`, ...).
    pub drives: Vec<Drive>,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Accelerator choice.
    pub accel: Accel,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// User-mode network.
    pub network: bool,
    /// The private networks the machine is on, one NIC each
    /// ([`MachineConfig::with_network`]).
    pub networks: Vec<NetworkPort>,
    /// A VGA display (for screendumps).
    pub display: bool,
    /// The command channel (a virtio-serial port that carries each
    /// command's output off the console); on by default.
    pub command_channel: bool,
    /// Host folders shared into the guest (9p), mounted once the session
    /// has a root shell.
    pub shares: Vec<Share>,
    /// Guest TCP ports reachable from the host at 127.0.0.1 (needs
    /// `network`).
    pub forwards: Vec<Forward>,
    /// Extra QEMU arguments, appended last.
    pub extra_args: Vec<String>,
    /// The user's own kernel, booted instead of `kernel`'s on the same
    /// root (see [`UserKernel`]).
    pub user_kernel: Option<UserKernel>,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            name: "vm".into(),
            kernel: None,
            iso: None,
            disk: None,
            persist: false,
            firmware: Firmware::Bios,
            drives: Vec::new(),
            memory_mib: 1024,
            cpus: 2,
            accel: Accel::Auto,
            qemu: PathBuf::from("qemu-system-x86_64"),
            network: true,
            networks: Vec::new(),
            display: false,
            command_channel: true,
            shares: Vec::new(),
            forwards: Vec::new(),
            extra_args: Vec::new(),
            user_kernel: None,
        }
    }
}

impl MachineConfig {
    /// A new config with defaults: 1 GiB, 2 CPUs, `accel=auto`, BIOS.
    pub fn new(name: impl Into<String>) -> Self {
        MachineConfig {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Boots a kernel directly.
    pub fn with_kernel(
        mut self,
        kernel: impl Into<PathBuf>,
        initrd: Option<PathBuf>,
        append: impl Into<String>,
    ) -> Self {
        self.kernel = Some(KernelBoot {
            kernel: kernel.into(),
            initrd,
            append: append.into(),
        });
        self
    }

    /// Boots an ISO from CD-ROM.
    pub fn with_iso(mut self, iso: impl Into<PathBuf>) -> Self {
        self.iso = Some(iso.into());
        self
    }

    /// Attaches a root disk (through a throwaway overlay).
    pub fn with_disk(mut self, disk: impl Into<PathBuf>) -> Self {
        self.disk = Some(disk.into());
        self
    }

    /// Writes to the root disk itself instead of an overlay.
    pub fn with_persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// Chooses BIOS or UEFI.
    pub fn with_firmware(mut self, firmware: Firmware) -> Self {
        self.firmware = firmware;
        self
    }

    /// Adds an extra drive.
    pub fn with_drive(mut self, drive: Drive) -> Self {
        self.drives.push(drive);
        self
    }

    /// Sets guest memory in MiB.
    pub fn with_memory_mib(mut self, mib: u64) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Sets the number of virtual CPUs.
    pub fn with_cpus(mut self, cpus: u32) -> Self {
        self.cpus = cpus;
        self
    }

    /// Sets the accelerator.
    pub fn with_accel(mut self, accel: Accel) -> Self {
        self.accel = accel;
        self
    }

    /// Uses another QEMU binary.
    pub fn with_qemu(mut self, qemu: impl Into<PathBuf>) -> Self {
        self.qemu = qemu.into();
        self
    }

    /// Puts the machine on the private network `network`: a NIC whose
    /// backend is the network's switch, and the next address of its
    /// subnet, under the machine's `name` (its host name there). The guest
    /// side (address, `/etc/hosts`) is set by
    /// [`crate::TestContext::network_up`].
    pub fn with_network(mut self, network: &Network) -> crate::errors::Result<Self> {
        let port = network.join(&self.name)?;
        if !self.networks.contains(&port) {
            self.networks.push(port);
        }
        Ok(self)
    }

    /// Gives the guest a VGA display, so `screendump` works.
    pub fn with_display(mut self, display: bool) -> Self {
        self.display = display;
        self
    }

    /// With or without the command channel (on by default). Without it,
    /// command output is read from the console between markers.
    pub fn with_command_channel(mut self, channel: bool) -> Self {
        self.command_channel = channel;
        self
    }

    /// Shares a host folder into the guest ([`Share::read_only`] or
    /// [`Share::writable`]); bootrig mounts it at its guest path once the
    /// session has a root shell.
    pub fn with_share(mut self, share: Share) -> Self {
        self.shares.push(share);
        self
    }

    /// Makes guest TCP port `guest` reachable from the host at 127.0.0.1,
    /// on a free port QEMU picks: ask
    /// [`Machine::forwarded_port`](crate::Machine::forwarded_port) which.
    pub fn with_forward(self, guest: u16) -> Self {
        self.with_forward_on(guest, 0)
    }

    /// Makes guest TCP port `guest` reachable at 127.0.0.1:`host` (0: a
    /// free port).
    pub fn with_forward_on(mut self, guest: u16, host: u16) -> Self {
        self.forwards.push(Forward { guest, host });
        self
    }

    /// Boots `kernel` (with its modules and extra command line) instead of
    /// the image's kernel, on the image's root: the root disk of `debian`
    /// or `fstests`, the initramfs of `busybox`. bootrig builds the small
    /// initramfs the kernel needs to reach the root and shares the modules
    /// folder read-only at `/lib/modules/<release>`.
    pub fn with_user_kernel(mut self, kernel: UserKernel) -> Self {
        self.user_kernel = Some(kernel);
        self
    }

    /// Appends raw QEMU arguments.
    pub fn with_extra_args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Checks that the config can boot, naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.kernel.is_none() && self.iso.is_none() && self.disk.is_none() {
            return Err("no boot source: give a kernel, an iso or a disk".into());
        }
        if self.kernel.is_some() && self.iso.is_some() {
            return Err("kernel and iso are exclusive: give one boot source".into());
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(format!(
                "memory {} MiB is too small (at least 64M)",
                self.memory_mib
            ));
        }
        if self.memory_mib > MAX_MEMORY_MIB {
            return Err(format!(
                "memory {} MiB is too large (at most 1T)",
                self.memory_mib
            ));
        }
        for d in &self.drives {
            if let Drive::Scratch(size) = d {
                check_drive_size(*size).map_err(|e| format!("drives[].size: {e}"))?;
            }
        }
        check_shares(&self.shares)?;
        check_forwards(&self.forwards)?;
        if !self.forwards.is_empty() && !self.network {
            return Err("forwards need the user-mode network (network is off)".into());
        }
        if self.cpus == 0 || self.cpus > 64 {
            return Err(format!("cpus {} out of range (1..=64)", self.cpus));
        }
        let mut files: Vec<(&str, &Path)> = Vec::new();
        if let Some(k) = &self.kernel {
            files.push(("kernel", &k.kernel));
            if let Some(i) = &k.initrd {
                files.push(("initrd", i));
            }
        }
        if let Some(iso) = &self.iso {
            files.push(("iso", iso));
        }
        if let Some(disk) = &self.disk {
            files.push(("disk", disk));
        }
        for d in &self.drives {
            if let Drive::File(p) = d {
                files.push(("drives[].path", p));
            }
        }
        if let Some(user) = &self.user_kernel {
            user.check()?;
        }
        for (field, path) in files {
            if path.is_dir() {
                return Err(format!(
                    "{field}: {} is a directory, not a file",
                    path.display()
                ));
            }
            if !path.is_file() {
                return Err(format!(
                    "{field}: {} does not exist or is not a file",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// Whether `bytes` is a scratch drive size bootrig creates
/// ([`MIN_DRIVE_BYTES`]..=[`MAX_DRIVE_BYTES`]).
pub fn check_drive_size(bytes: u64) -> Result<(), String> {
    if bytes < MIN_DRIVE_BYTES {
        return Err(format!(
            "{bytes} bytes is too small for a drive (at least 1M)"
        ));
    }
    if bytes > MAX_DRIVE_BYTES {
        return Err(format!(
            "{bytes} bytes is too large for a drive (at most 16T)"
        ));
    }
    Ok(())
}

/// Whether `bytes` of guest memory is within
/// [`MIN_MEMORY_MIB`]..=[`MAX_MEMORY_MIB`].
pub fn check_memory(bytes: u64) -> Result<(), String> {
    let mib = bytes >> 20;
    if mib < MIN_MEMORY_MIB {
        return Err(format!("memory {bytes} bytes is too small (at least 64M)"));
    }
    if mib > MAX_MEMORY_MIB {
        return Err(format!("memory {bytes} bytes is too large (at most 1T)"));
    }
    Ok(())
}

/// Parses a size such as `512M`, `2G`, `1.5G`, `4096` (bytes), `64K`, `1T`
/// (binary units; an optional trailing `B`/`iB` is accepted). Only plain
/// decimal numbers are sizes (`1e30T`, `inf`, `-1G` are not), and a size
/// is at least one byte and fits in 64 bits.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let num = num.trim();
    let invalid = || format!("invalid size {text:?} (expected e.g. 512M, 2G)");
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(invalid());
    }
    let too_large = || format!("invalid size {text:?}: too large");
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(mult).ok_or_else(too_large)?;
    // The fraction: `0.5K` is 512 bytes, rounded down to a byte (digits
    // past the 18th cannot change that for any multiplier here).
    let frac = &frac[..frac.len().min(18)];
    if !frac.is_empty() {
        let f: u128 = frac.parse().map_err(|_| invalid())?;
        let part = f * u128::from(mult) / 10u128.pow(frac.len() as u32);
        bytes = bytes
            .checked_add(u64::try_from(part).map_err(|_| too_large())?)
            .ok_or_else(too_large)?;
    }
    if bytes == 0 {
        return Err(format!("invalid size {text:?}: must be at least 1 byte"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("0.5K").unwrap(), 512);
        assert!(parse_size("lots").unwrap_err().contains("lots"));
        assert!(parse_size("-1G").is_err());
        for bad in ["1e30T", "inf", "NaN", "1e3", "", ".", "1..2G", "0x10M"] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_size("0.1").unwrap_err().contains("at least 1 byte"));
        assert!(parse_size("0").is_err());
        assert!(parse_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn validation_names_the_field() {
        let err = MachineConfig::new("x").validate().unwrap_err();
        assert!(err.contains("boot source"));
        let err = MachineConfig::new("x")
            .with_kernel("/nonexistent/vmlinuz", None, "")
            .validate()
            .unwrap_err();
        assert!(err.starts_with("kernel: /nonexistent/vmlinuz"), "{err}");
        let err = MachineConfig::new("x")
            .with_kernel("/", None, "")
            .validate()
            .unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
        let dir = std::env::temp_dir();
        let k = dir.join(format!("bootrig-config-test-{}", std::process::id()));
        std::fs::write(&k, b"x").unwrap();
        let base = MachineConfig::new("x").with_kernel(&k, None, "");
        assert!(base.clone().with_memory_mib(2 << 20).validate().is_err());
        assert!(base
            .clone()
            .with_drive(Drive::Scratch(0))
            .validate()
            .unwrap_err()
            .contains("too small"));
        assert!(base.clone().validate().is_ok());
        let e = base
            .clone()
            .with_share(Share::read_only(&k, "/mnt/k"))
            .validate()
            .unwrap_err();
        assert!(
            e.starts_with("shares[0].host:") && e.contains("not a folder"),
            "{e}"
        );
        let mut offline = base.clone().with_forward(80);
        assert!(offline.validate().is_ok());
        offline.network = false;
        assert!(offline
            .validate()
            .unwrap_err()
            .contains("need the user-mode network"));
        std::fs::remove_file(&k).unwrap();
    }
}
