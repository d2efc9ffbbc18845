//! The artifact layout: the name, producer and relative path of every file
//! bootrig leaves in a run folder, in one place.
//!
//! ```text
//! <run>/                          run folder (BOOTRIG_ARTIFACTS/<run id>)
//!   run.json                      RUN_SUMMARY
//!   <safe_name(test)>/            test_folder(test)
//!     metadata.json               METADATA
//!     kernel-reports.txt          KERNEL_REPORTS
//!     serial.log  serial.txt      VM files of the test's first VM
//!     transcript.log  login-transcript.log
//!     qemu-cmdline.txt  qemu-stderr.log  screendump.png
//!     diagnostics/<collector>.txt collector outputs (first VM)
//!     <safe_name(vm)>/            the same VM files and diagnostics/ for
//!                                 the second and later VMs of the test
//!     machines/<safe_name(m)>/    the same, for each machine on a private
//!                                 network (named machines of a test)
//! ```
//!
//! The writers (the machine, the session, the postmortem) and the offline
//! readers (`TestDir`, `FailureReport`)
//! take names and paths from here; a [`VmLayout`] says where one VM's files
//! go inside its test's folder.

use std::path::{Path, PathBuf};

use crate::catalog::{Producer, ProducerKind};
use crate::names::safe_name;

/// One file of the layout: its catalog name, its path relative to the
/// folder it lives in, and what produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// Its name in the artifact catalog (`serial.log`, `transcript`).
    pub name: &'static str,
    /// Its path relative to its folder (the test's, the VM's or the run's).
    pub path: &'static str,
    /// What kind of producer writes it.
    pub kind: ProducerKind,
    /// What it holds, as recorded in the catalog's `produced_by.source`.
    pub description: &'static str,
}

impl FileSpec {
    /// Its catalog producer.
    pub fn producer(&self) -> Producer {
        Producer::new(self.kind, self.description)
    }
}

/// `run.json`, in the run folder: one line per test.
pub const RUN_SUMMARY: FileSpec = FileSpec {
    name: "run.json",
    path: "run.json",
    kind: ProducerKind::Harness,
    description: "summary of the run's tests",
};

/// `metadata.json`, in the test folder (never catalogued: it is the
/// catalog).
pub const METADATA: FileSpec = FileSpec {
    name: "metadata.json",
    path: "metadata.json",
    kind: ProducerKind::Harness,
    description: "the test's metadata and artifact catalog",
};

/// Kernel crash reports seen on any console of the test, in the test
/// folder.
pub const KERNEL_REPORTS: FileSpec = FileSpec {
    name: "kernel-reports",
    path: "kernel-reports.txt",
    kind: ProducerKind::Console,
    description: "crash reports detected on the serial console",
};

/// Raw serial console bytes (per VM).
pub const SERIAL_LOG: FileSpec = FileSpec {
    name: "serial.log",
    path: "serial.log",
    kind: ProducerKind::Console,
    description: "raw serial console bytes",
};

/// The serial console without terminal escapes (per VM).
pub const SERIAL_TXT: FileSpec = FileSpec {
    name: "serial.txt",
    path: "serial.txt",
    kind: ProducerKind::Harness,
    description: "serial.log with terminal escapes removed",
};

/// The session's transcript (per VM).
pub const TRANSCRIPT: FileSpec = FileSpec {
    name: "transcript",
    path: "transcript.log",
    kind: ProducerKind::Harness,
    description: "login, escalation and every command with output and exit code",
};

/// Every byte of login and escalation (per VM).
pub const LOGIN_TRANSCRIPT: FileSpec = FileSpec {
    name: "login-transcript",
    path: "login-transcript.log",
    kind: ProducerKind::Harness,
    description: "every byte sent and received during login and escalation",
};

/// QEMU's command line (per VM).
pub const QEMU_CMDLINE: FileSpec = FileSpec {
    name: "qemu-cmdline",
    path: "qemu-cmdline.txt",
    kind: ProducerKind::Qemu,
    description: "QEMU argv",
};

/// QEMU's stdout and stderr (per VM).
pub const QEMU_STDERR: FileSpec = FileSpec {
    name: "qemu-stderr",
    path: "qemu-stderr.log",
    kind: ProducerKind::Qemu,
    description: "QEMU stdout and stderr",
};

/// A QMP screendump of a VM with a display (per VM).
pub const SCREENDUMP: FileSpec = FileSpec {
    name: "screendump",
    path: "screendump.png",
    kind: ProducerKind::Qemu,
    description: "QMP screendump",
};

/// The files a VM leaves in its folder, in catalogue order.
pub const VM_FILES: [FileSpec; 7] = [
    SERIAL_LOG,
    SERIAL_TXT,
    TRANSCRIPT,
    LOGIN_TRANSCRIPT,
    QEMU_CMDLINE,
    QEMU_STDERR,
    SCREENDUMP,
];

/// The folder, inside a VM's folder, of the diagnostics collectors' outputs.
pub const DIAGNOSTICS_DIR: &str = "diagnostics";

/// The folder, inside a test's folder, of its named machines' folders.
pub const MACHINES_DIR: &str = "machines";

/// The folder of test `test` in its run folder.
pub fn test_folder(test: &str) -> String {
    safe_name(test)
}

/// Where one VM's files go, relative to its test's folder: the folder
/// itself for the test's first VM, `<safe_name(vm)>/` for later ones.
/// Decided once, when the VM boots, and kept with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmLayout {
    /// `""` or `<folder>/`.
    prefix: String,
}

impl VmLayout {
    /// The layout of the test's first VM: its files are in the test folder.
    pub fn first() -> VmLayout {
        VmLayout::default()
    }

    /// The layout of the VM called `vm_name`, the `index`-th (0-based) VM
    /// of its test.
    pub fn nth(index: usize, vm_name: &str) -> VmLayout {
        if index == 0 {
            VmLayout::first()
        } else {
            VmLayout {
                prefix: format!("{}/", safe_name(vm_name)),
            }
        }
    }

    /// The layout of the named machine `machine` (a machine on a private
    /// network): its files are in `machines/<machine>/`, whichever VM of
    /// the test it is.
    pub fn machine(machine: &str) -> VmLayout {
        VmLayout {
            prefix: format!("{MACHINES_DIR}/{}/", safe_name(machine)),
        }
    }

    /// Its subfolder of the test folder (`None` for the first VM).
    pub fn subfolder(&self) -> Option<&str> {
        self.prefix.strip_suffix('/')
    }

    /// The VM's folder, given its test's folder.
    pub fn dir(&self, test_dir: &Path) -> PathBuf {
        match self.subfolder() {
            Some(sub) => test_dir.join(sub),
            None => test_dir.to_path_buf(),
        }
    }

    /// `rel` (relative to the VM's folder) relative to the test folder.
    pub fn path(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// The catalog name of the VM's artifact `name` (unique in the test:
    /// later VMs' names carry their folder).
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The path of `file` relative to the test folder.
    pub fn file(&self, file: &FileSpec) -> String {
        self.path(file.path)
    }

    /// The path, relative to the test folder, of the output of the
    /// collector called `collector`: `diagnostics/<collector>.txt`.
    pub fn collector_output(&self, collector: &str) -> String {
        self.path(&format!("{DIAGNOSTICS_DIR}/{collector}.txt"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_later_vms() {
        let first = VmLayout::nth(0, "busybox-1");
        assert_eq!(first, VmLayout::first());
        assert_eq!(first.subfolder(), None);
        assert_eq!(first.file(&SERIAL_LOG), "serial.log");
        assert_eq!(first.name(TRANSCRIPT.name), "transcript");
        assert_eq!(first.collector_output("journal"), "diagnostics/journal.txt");
        assert_eq!(first.dir(Path::new("/r/t")), Path::new("/r/t"));

        let second = VmLayout::nth(1, "peer vm");
        let sub = safe_name("peer vm");
        assert_eq!(second.subfolder(), Some(sub.as_str()));
        assert_eq!(second.file(&QEMU_STDERR), format!("{sub}/qemu-stderr.log"));
        assert_eq!(second.name("journal"), format!("{sub}/journal"));
        assert_eq!(
            second.collector_output("lsblk"),
            format!("{sub}/diagnostics/lsblk.txt")
        );
        assert_eq!(second.dir(Path::new("/r/t")), Path::new("/r/t").join(&sub));
    }

    #[test]
    fn named_machines_have_a_folder_each_under_machines() {
        let server = VmLayout::machine("server");
        assert_eq!(server.subfolder(), Some("machines/server"));
        assert_eq!(server.file(&SERIAL_LOG), "machines/server/serial.log");
        assert_eq!(server.name(TRANSCRIPT.name), "machines/server/transcript");
        assert_eq!(
            server.collector_output("network"),
            "machines/server/diagnostics/network.txt"
        );
        assert_eq!(
            server.dir(Path::new("/r/t")),
            Path::new("/r/t/machines/server")
        );
    }

    #[test]
    fn names_and_paths_are_unique() {
        let all: Vec<FileSpec> = VM_FILES
            .iter()
            .copied()
            .chain([METADATA, KERNEL_REPORTS])
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.path, b.path);
            }
        }
        assert_eq!(SCREENDUMP.producer(), Producer::qemu("QMP screendump"));
        assert_eq!(test_folder("boot::debian::smoke"), "boot.debian.smoke");
    }
}
