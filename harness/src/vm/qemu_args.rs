//! The QEMU command line, one small function per group of arguments.
//!
//! Reading [`QemuArgs::build`] is reading the command line a VM gets: each
//! group (`base_args`, `machine_args`, `kernel_args`, ...) is a documented
//! function returning its own arguments, so a reviewer can check one group
//! at a time and a test can check one group in isolation.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::vm::config::{Accel, Firmware};

/// Everything needed to render a QEMU command line, with all paths resolved
/// (overlays created, firmware copied, sockets bound).
#[derive(Debug, Clone)]
pub struct QemuArgs {
    /// A name for the VM (`-name`), shown by `ps` and in QMP.
    pub name: String,
    /// The resolved accelerator: never [`Accel::Auto`].
    pub accel: Accel,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Number of virtual CPUs.
    pub cpus: u32,
    /// Direct kernel boot: kernel, optional initrd, command line.
    pub kernel: Option<(PathBuf, Option<PathBuf>, String)>,
    /// UEFI firmware: code (read-only) and this VM's private copy of the vars.
    pub uefi: Option<(PathBuf, PathBuf)>,
    /// An ISO attached as a CD-ROM.
    pub iso: Option<PathBuf>,
    /// The root disk (already the throwaway overlay unless persistent) and
    /// its format.
    pub disk: Option<(PathBuf, String)>,
    /// Extra drives: path and format.
    pub drives: Vec<(PathBuf, String)>,
    /// Unix socket QEMU connects to for the serial console.
    pub serial_socket: PathBuf,
    /// Unix socket QEMU connects to for QMP.
    pub qmp_socket: PathBuf,
    /// Unix socket QEMU connects to for the command channel, when the
    /// machine has one.
    pub channel_socket: Option<PathBuf>,
    /// Add a user-mode network interface.
    pub network: bool,
    /// TCP forwards on the user-mode network: (host port on 127.0.0.1,
    /// 0 for any free one; guest port).
    pub forwards: Vec<(u16, u16)>,
    /// Host folders shared over 9p: (folder, mount tag, read-only).
    pub shares: Vec<(PathBuf, String, bool)>,
    /// NICs on private networks: the switch socket and the MAC address.
    pub private_networks: Vec<(PathBuf, String)>,
    /// Exit QEMU instead of rebooting the guest.
    pub no_reboot: bool,
    /// Give the guest a VGA display (needed for `screendump`).
    pub display: bool,
    /// A host folder shared read-only over 9p as the user kernel's
    /// modules (tag [`crate::vm::initramfs::MODULES_TAG`]).
    pub modules_share: Option<PathBuf>,
    /// A VM generation ID device (machines whose state is snapshotted:
    /// a restored guest sees a new ID and reseeds its random generator).
    pub vmgenid: bool,
    /// Wait for an incoming migration (`-incoming defer`): the machine
    /// is restored from a saved state instead of booting.
    pub incoming: bool,
    /// Extra arguments appended verbatim, last.
    pub extra: Vec<String>,
}

impl QemuArgs {
    /// The complete argument list (without the binary).
    pub fn build(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        args.extend(base_args(&self.name, self.display));
        args.extend(machine_args(self.accel, self.no_reboot));
        args.extend(cpu_memory_args(self.cpus, self.memory_mib));
        if let Some((code, vars)) = &self.uefi {
            args.extend(uefi_firmware_args(code, vars));
        }
        if let Some((kernel, initrd, append)) = &self.kernel {
            args.extend(kernel_args(kernel, initrd.as_deref(), append));
        }
        if let Some(iso) = &self.iso {
            args.extend(cdrom_args(iso));
        }
        if let Some((disk, format)) = &self.disk {
            args.extend(drive_args("disk0", disk, format, "root", true));
        }
        for (i, (path, format)) in self.drives.iter().enumerate() {
            let id = format!("drive{}", i + 1);
            let serial = format!("bootrig{}", i + 1);
            args.extend(drive_args(&id, path, format, &serial, false));
        }
        args.extend(console_device(&self.serial_socket));
        args.extend(qmp_args(&self.qmp_socket));
        if let Some(socket) = &self.channel_socket {
            args.extend(command_channel_args(socket));
        }
        if self.network {
            args.extend(network_args(&self.forwards));
        }
        for (i, (folder, tag, readonly)) in self.shares.iter().enumerate() {
            args.extend(share_args(i, folder, tag, *readonly));
        }
        for (i, (socket, mac)) in self.private_networks.iter().enumerate() {
            args.extend(private_network_args(i, socket, mac));
        }
        args.extend(rng_args());
        if let Some(dir) = &self.modules_share {
            args.extend(modules_share_args(dir));
        }
        if self.vmgenid {
            args.extend(vmgenid_args());
        }
        if self.incoming {
            args.extend(incoming_args());
        }
        args.extend(self.extra.iter().map(OsString::from));
        args
    }
}

fn os(s: impl AsRef<std::ffi::OsStr>) -> OsString {
    s.as_ref().to_os_string()
}

fn joined(prefix: &str, path: &Path, suffix: &str) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(escape_commas(path));
    s.push(suffix);
    s
}

/// QEMU option values separate keys with commas; a comma inside a path is
/// written twice.
fn escape_commas(path: &Path) -> OsString {
    let text = path.as_os_str().to_string_lossy();
    if text.contains(',') {
        OsString::from(text.replace(',', ",,"))
    } else {
        path.as_os_str().to_os_string()
    }
}

/// The user kernel's modules folder, shared read-only over 9p: QEMU
/// refuses writes (`readonly=on`), whatever the guest mounts;
/// `security_model=none` needs no root on the host.
pub fn modules_share_args(dir: &Path) -> Vec<OsString> {
    let tag = crate::vm::initramfs::MODULES_TAG;
    vec![
        os("-fsdev"),
        joined(
            &format!("local,id={tag},path="),
            dir,
            ",security_model=none,readonly=on",
        ),
        os("-device"),
        os(format!("virtio-9p-pci,fsdev={tag},mount_tag={tag}")),
    ]
}

/// Identity and isolation: a VM name, no default devices, no user config
/// files, no window, and no monitor on stdio (QEMU's stdio is never used).
pub fn base_args(name: &str, display: bool) -> Vec<OsString> {
    let mut args = vec![
        os("-name"),
        os(format!("{name},process=bootrig-{name}")),
        os("-nodefaults"),
        os("-no-user-config"),
        os("-display"),
        os("none"),
    ];
    if display {
        args.extend([os("-device"), os("VGA")]);
    }
    args
}

/// Machine type and accelerator: q35 with KVM (and the host CPU model) or
/// TCG; `-no-reboot` turns a guest reboot (e.g. after a panic) into a
/// QEMU exit the harness can see.
pub fn machine_args(accel: Accel, no_reboot: bool) -> Vec<OsString> {
    let mut args = vec![os("-machine")];
    match accel {
        Accel::Kvm => args.extend([os("q35,accel=kvm"), os("-cpu"), os("host")]),
        Accel::Tcg | Accel::Auto => args.push(os("q35,accel=tcg")),
    }
    if no_reboot {
        args.push(os("-no-reboot"));
    }
    args
}

/// Virtual CPUs and memory.
pub fn cpu_memory_args(cpus: u32, memory_mib: u64) -> Vec<OsString> {
    vec![
        os("-smp"),
        os(cpus.to_string()),
        os("-m"),
        os(format!("{memory_mib}M")),
    ]
}

/// Direct kernel boot: `-kernel`, `-initrd`, `-append`.
pub fn kernel_args(kernel: &Path, initrd: Option<&Path>, append: &str) -> Vec<OsString> {
    let mut args = vec![os("-kernel"), os(kernel)];
    if let Some(initrd) = initrd {
        args.extend([os("-initrd"), os(initrd)]);
    }
    if !append.is_empty() {
        args.extend([os("-append"), os(append)]);
    }
    args
}

/// OVMF as two pflash units: the shared read-only code and this VM's own
/// copy of the variable store.
pub fn uefi_firmware_args(code: &Path, vars: &Path) -> Vec<OsString> {
    vec![
        os("-drive"),
        joined("if=pflash,format=raw,unit=0,readonly=on,file=", code, ""),
        os("-drive"),
        joined("if=pflash,format=raw,unit=1,file=", vars, ""),
    ]
}

/// An ISO image on an emulated CD-ROM drive, read-only and always `raw`
/// (never probed: a file named as an ISO is not followed anywhere).
pub fn cdrom_args(iso: &Path) -> Vec<OsString> {
    vec![
        os("-drive"),
        joined(
            "file=",
            iso,
            ",format=raw,media=cdrom,readonly=on,if=ide,index=2",
        ),
    ]
}

/// A virtio block device. `serial` shows up in the guest as
/// `/dev/disk/by-id/virtio-<serial>`. Throwaway root overlays use
/// `cache=unsafe` (nothing survives the VM anyway).
pub fn drive_args(id: &str, path: &Path, format: &str, serial: &str, root: bool) -> Vec<OsString> {
    let cache = if root { "unsafe" } else { "writeback" };
    vec![
        os("-drive"),
        joined(
            "file=",
            path,
            &format!(",format={format},if=none,id={id},cache={cache},discard=unmap"),
        ),
        os("-device"),
        os(format!("virtio-blk-pci,drive={id},serial={serial}")),
    ]
}

/// The first serial port, wired to a Unix socket the harness listens on.
/// QEMU connects as a client at start-up, so no byte is lost before the
/// harness reads.
pub fn console_device(socket: &Path) -> Vec<OsString> {
    vec![
        os("-chardev"),
        joined("socket,id=ser0,path=", socket, ",server=off"),
        os("-serial"),
        os("chardev:ser0"),
    ]
}

/// The QMP control channel, also a Unix socket the harness listens on.
pub fn qmp_args(socket: &Path) -> Vec<OsString> {
    vec![
        os("-chardev"),
        joined("socket,id=qmp,path=", socket, ",server=off"),
        os("-mon"),
        os("chardev=qmp,mode=control"),
    ]
}

/// The command channel: a virtio-serial port named
/// [`PORT_NAME`](crate::vm::channel::PORT_NAME), wired to a Unix socket the
/// harness listens on. Not a tty and never written by the kernel, so each
/// command's output arrives unaltered (see `vm/channel.rs`).
pub fn command_channel_args(socket: &Path) -> Vec<OsString> {
    vec![
        os("-device"),
        os("virtio-serial-pci,id=bootrig-vser"),
        os("-chardev"),
        joined("socket,id=bootrig-cmd,path=", socket, ",server=off"),
        os("-device"),
        os(format!(
            "virtserialport,bus=bootrig-vser.0,chardev=bootrig-cmd,name={}",
            crate::vm::channel::PORT_NAME
        )),
    ]
}

/// User-mode networking on a virtio NIC, with TCP forwards from
/// 127.0.0.1 (never any other host address) to guest ports: `(host,
/// guest)`, host port 0 for a free one QEMU picks.
pub fn network_args(forwards: &[(u16, u16)]) -> Vec<OsString> {
    let mut nic = String::from("user,model=virtio-net-pci");
    for (host, guest) in forwards {
        nic.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
    }
    vec![os("-nic"), os(nic)]
}

/// A host folder shared over 9p as mount tag `tag`: a `local` fsdev with
/// `security_model=none` (no root needed on the host: files the guest
/// creates belong to QEMU's user), `readonly=on` when the guest must not
/// write (QEMU refuses writes, whatever the guest mounts), and
/// `multidevs=remap` so a folder spanning file systems keeps unique
/// inode numbers.
pub fn share_args(index: usize, folder: &Path, tag: &str, readonly: bool) -> Vec<OsString> {
    let id = format!("bootrig-fs{index}");
    let ro = if readonly { ",readonly=on" } else { "" };
    vec![
        os("-fsdev"),
        joined(
            &format!("local,id={id},path="),
            folder,
            &format!(",security_model=none,multidevs=remap{ro}"),
        ),
        os("-device"),
        os(format!("virtio-9p-pci,fsdev={id},mount_tag={tag}")),
    ]
}

/// A NIC on a private network: a `stream` backend connecting to the
/// network's switch on its Unix socket (no host interface, nothing routed
/// out of it) and a virtio NIC with the MAC address bootrig assigned, by
/// which the guest side finds it.
pub fn private_network_args(index: usize, socket: &Path, mac: &str) -> Vec<OsString> {
    let id = format!("pnet{index}");
    vec![
        os("-netdev"),
        joined(
            &format!("stream,id={id},server=off,addr.type=unix,addr.path="),
            socket,
            "",
        ),
        os("-device"),
        os(format!("virtio-net-pci,netdev={id},mac={mac}")),
    ]
}

/// A virtio RNG so guests do not stall waiting for entropy.
pub fn rng_args() -> Vec<OsString> {
    vec![os("-device"), os("virtio-rng-pci")]
}

/// A VM generation ID (`vmgenid`, ACPI) with a new random ID every time
/// QEMU starts: a guest restored from a saved state sees its ID change and
/// Linux (5.18+, `CONFIG_VMGENID`) reseeds its random number generator, so
/// two restored guests never share random state.
pub fn vmgenid_args() -> Vec<OsString> {
    vec![os("-device"), os("vmgenid,guid=auto")]
}

/// Start paused, waiting for a saved state to be loaded over QMP
/// (`migrate-incoming`) instead of booting.
pub fn incoming_args() -> Vec<OsString> {
    vec![os("-incoming"), os("defer")]
}

/// The firmware files for a [`Firmware`] choice, as found on Debian
/// (package `ovmf`). Returns `None` for BIOS (QEMU's built-in SeaBIOS).
pub fn find_uefi_code() -> Option<(PathBuf, PathBuf)> {
    const CANDIDATES: &[(&str, &str)] = &[
        (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        (
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
        ),
        (
            "/usr/share/edk2/ovmf/OVMF_CODE.fd",
            "/usr/share/edk2/ovmf/OVMF_VARS.fd",
        ),
        (
            "/usr/share/qemu/OVMF_CODE.fd",
            "/usr/share/qemu/OVMF_VARS.fd",
        ),
    ];
    CANDIDATES
        .iter()
        .map(|(c, v)| (PathBuf::from(c), PathBuf::from(v)))
        .find(|(c, v)| c.is_file() && v.is_file())
}

/// Whether a firmware choice needs OVMF.
pub fn needs_ovmf(firmware: Firmware) -> bool {
    firmware == Firmware::Uefi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn kvm_gets_host_cpu_and_tcg_does_not() {
        let kvm = strings(machine_args(Accel::Kvm, true));
        assert_eq!(
            kvm,
            ["-machine", "q35,accel=kvm", "-cpu", "host", "-no-reboot"]
        );
        let tcg = strings(machine_args(Accel::Tcg, false));
        assert_eq!(tcg, ["-machine", "q35,accel=tcg"]);
    }

    #[test]
    fn forwards_bind_loopback_only_and_writable_shares_are_writable() {
        let args = strings(network_args(&[(8080, 80), (0, 22)]));
        assert_eq!(
            args[1],
            "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:0-:22"
        );
        let args = strings(share_args(1, Path::new("/d"), "bootrig1", false));
        assert!(!args[1].contains("readonly"), "{args:?}");
    }

    #[test]
    fn commas_in_paths_are_doubled() {
        let args = strings(cdrom_args(Path::new("/tmp/a,b.iso")));
        assert_eq!(
            args[1],
            "file=/tmp/a,,b.iso,format=raw,media=cdrom,readonly=on,if=ide,index=2"
        );
    }

    #[test]
    fn modules_share_is_read_only_9p() {
        let args = strings(modules_share_args(Path::new("/m/a,b")));
        assert_eq!(
            args,
            [
                "-fsdev",
                "local,id=bootrig_modules,path=/m/a,,b,security_model=none,readonly=on",
                "-device",
                "virtio-9p-pci,fsdev=bootrig_modules,mount_tag=bootrig_modules"
            ]
        );
    }

    #[test]
    fn kernel_without_initrd_or_append() {
        let args = strings(kernel_args(Path::new("/k"), None, ""));
        assert_eq!(args, ["-kernel", "/k"]);
    }

    #[test]
    fn full_command_line_has_every_group_once() {
        let q = QemuArgs {
            name: "t".into(),
            accel: Accel::Tcg,
            memory_mib: 1024,
            cpus: 2,
            kernel: Some(("/k".into(), Some("/i".into()), "console=ttyS0".into())),
            uefi: None,
            iso: None,
            disk: Some(("/d.qcow2".into(), "qcow2".into())),
            drives: vec![("/x.raw".into(), "raw".into())],
            serial_socket: "/s".into(),
            qmp_socket: "/q".into(),
            channel_socket: Some("/c".into()),
            network: true,
            forwards: vec![(0, 80)],
            shares: vec![("/srv/a,b".into(), "bootrig0".into(), true)],
            private_networks: Vec::new(),
            no_reboot: true,
            vmgenid: false,
            incoming: false,
            display: false,
            modules_share: None,
            extra: vec!["-S".into()],
        };
        let args = strings(q.build());
        let count = |flag: &str| args.iter().filter(|a| *a == flag).count();
        assert_eq!(count("-kernel"), 1);
        // serial, QMP, command channel
        assert_eq!(count("-chardev"), 3);
        // 2 disks, rng, virtio-serial bus and its port, a 9p share
        assert_eq!(count("-device"), 6, "{args:?}");
        assert!(args.contains(
            &"local,id=bootrig-fs0,path=/srv/a,,b,security_model=none,multidevs=remap,readonly=on"
                .to_string()
        ));
        assert!(args.contains(&"virtio-9p-pci,fsdev=bootrig-fs0,mount_tag=bootrig0".to_string()));
        assert!(args.contains(&"user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:0-:80".to_string()));
        assert!(args
            .iter()
            .any(|a| a.starts_with("virtserialport,") && a.ends_with("name=org.bootrig.cmd")));
        let without = QemuArgs {
            channel_socket: None,
            ..q.clone()
        };
        let args = strings(without.build());
        assert!(
            !args.iter().any(|a| a.contains("virtio-serial")),
            "{args:?}"
        );
        assert!(args.contains(&"virtio-blk-pci,drive=drive1,serial=bootrig1".to_string()));
        assert_eq!(args.last().unwrap(), "-S");
    }

    #[test]
    fn a_private_network_nic_connects_to_its_switch_and_nothing_else() {
        let args = strings(private_network_args(
            1,
            Path::new("/t/a,b.sock"),
            "02:b7:01:00:00:02",
        ));
        assert_eq!(
            args,
            [
                "-netdev",
                "stream,id=pnet1,server=off,addr.type=unix,addr.path=/t/a,,b.sock",
                "-device",
                "virtio-net-pci,netdev=pnet1,mac=02:b7:01:00:00:02"
            ]
        );
    }
}
