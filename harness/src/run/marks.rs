//! Markers on a test, as in pytest: what it requires of the host, whether
//! it is slow, expected to fail, or has a deadline.

use std::path::Path;
use std::time::Duration;

/// A host capability a test needs; missing ones skip the test at run time
/// with the reason (under `CI=true` they fail it instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A working KVM: `/dev/kvm` opens *and* the accelerator probe
    /// (`accel=auto`'s, cached per host boot) found that a kernel boots
    /// under it.
    Kvm,
    /// `qemu-system-x86_64`.
    Qemu,
    /// OVMF firmware.
    Uefi,
    /// A host tool on PATH.
    Tool(String),
}

impl Requirement {
    /// Why the requirement is not met, or None.
    pub fn missing(&self) -> Option<String> {
        match self {
            Requirement::Kvm => kvm_missing(),
            Requirement::Qemu => {
                crate::vm::machine::resolve_binary(Path::new("qemu-system-x86_64"))
                    .err()
                    .map(|e| e.to_string())
            }
            Requirement::Uefi => crate::vm::qemu_args::find_uefi_code()
                .is_none()
                .then(|| "OVMF firmware not found (apt-get install ovmf)".to_string()),
            Requirement::Tool(t) => crate::vm::machine::resolve_binary(Path::new(t))
                .err()
                .map(|_| format!("{t} is not installed")),
        }
    }
}

/// Why KVM cannot be used here: the device, then the probe's verdict
/// (booting the cached `busybox` kernel, as `bootrig doctor` does).
fn kvm_missing() -> Option<String> {
    if let Err(why) = crate::vm::accel::kvm_device_usable() {
        return Some(why);
    }
    let qemu = match crate::vm::machine::resolve_binary(Path::new("qemu-system-x86_64")) {
        Ok(q) => q,
        Err(e) => return Some(format!("KVM cannot be probed: {e}")),
    };
    let store = crate::image::ImageStore::default();
    let probe = store
        .cached("busybox")
        .ok()
        .flatten()
        .and_then(|i| i.kernel());
    kvm_missing_with(&qemu, &store.cache, probe.as_deref())
}

/// [`kvm_missing`] past the device check, for `qemu`, a verdict cache in
/// `cache` and a kernel to probe with.
fn kvm_missing_with(qemu: &Path, cache: &Path, probe: Option<&Path>) -> Option<String> {
    use crate::vm::config::Accel;
    let version = crate::vm::machine::qemu_version(qemu).unwrap_or_default();
    let verdict = crate::vm::accel::resolve(Accel::Auto, qemu, &version, probe, cache);
    (verdict.accel != Accel::Kvm).then(|| {
        if verdict.reason.is_empty() {
            "KVM does not work on this host".to_string()
        } else {
            verdict.reason
        }
    })
}

/// Markers on a test, as in pytest.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    pub(crate) requires: Vec<Requirement>,
    pub(crate) slow: bool,
    pub(crate) xfail: Option<String>,
    pub(crate) timeout: Option<Duration>,
    /// How many VMs the test runs at once (slots taken from the budget;
    /// 0 is read as 1).
    pub(crate) vms: usize,
    /// The body is bootrig's own code (a declarative scenario test): any
    /// panic in it is a harness bug.
    pub(crate) declarative: bool,
    /// The body only reports what an earlier test of the run did (an
    /// fstests trial): it still runs after an interruption, so what was
    /// done is reported, and its result is its own (it says itself
    /// whether the interruption cut it short).
    pub(crate) after_interrupt: bool,
    /// User-defined markers (`net`, `smoke`), selected with `-m EXPR`.
    pub(crate) names: Vec<String>,
}

impl Marks {
    /// No markers.
    pub fn new() -> Marks {
        Marks::default()
    }
    /// Skip at run time unless `req` is met.
    pub fn requires(mut self, req: Requirement) -> Marks {
        self.requires.push(req);
        self
    }
    /// Ignored unless `--include-ignored` / `--ignored`.
    pub fn slow(mut self) -> Marks {
        self.slow = true;
        self
    }
    /// Expected to fail, because `reason`.
    pub fn xfail(mut self, reason: impl Into<String>) -> Marks {
        self.xfail = Some(reason.into());
        self
    }
    /// A deadline for the whole test: every wait of its VMs is bounded by
    /// it, and the VMs are killed when it passes.
    pub fn timeout(mut self, timeout: Duration) -> Marks {
        self.timeout = Some(timeout);
        self
    }

    /// Sets `after_interrupt` (see the field).
    pub(crate) fn reports_after_interrupt(mut self) -> Marks {
        self.after_interrupt = true;
        self
    }

    /// The test runs `n` VMs at once (machines on a private network): it
    /// takes `n` slots of the VM budget (`BOOTRIG_MAX_VMS`, `-j`), at most
    /// the whole budget.
    pub fn vms(mut self, n: usize) -> Marks {
        self.vms = n;
        self
    }

    /// A user-defined marker (`net`, `smoke`), for selection with
    /// `bootrig run -m EXPR` or `BOOTRIG_MARKS=EXPR` (see
    /// `docs/writing-tests.md`). A name that is not a word
    /// (`[A-Za-z_][A-Za-z0-9_-]*`) can never be selected.
    pub fn mark(mut self, name: impl Into<String>) -> Marks {
        let name = name.into();
        if !self.names.contains(&name) {
            self.names.push(name);
        }
        self
    }

    /// The markers a selection sees: the user-defined ones, and `slow` and
    /// `xfail` when they apply.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let builtin = [
            self.slow.then_some("slow"),
            self.xfail.is_some().then_some("xfail"),
        ];
        self.names
            .iter()
            .map(String::as_str)
            .chain(builtin.into_iter().flatten())
    }

    /// Whether the test carries marker `name` (see [`Marks::names`]).
    pub fn has(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }

    /// The reason the test is expected to fail, if it is.
    pub fn xfail_reason(&self) -> Option<&str> {
        self.xfail.as_deref()
    }

    /// The first requirement this host does not meet, with the reason.
    pub fn unmet(&self) -> Option<String> {
        self.requires.iter().find_map(Requirement::missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn kvm_is_missing_when_the_probe_says_so() {
        let dir = tempfile::tempdir().unwrap();
        // A QEMU whose KVM aborts, as on hosts where /dev/kvm opens but
        // `kvm_buf_set_msrs` fails.
        let qemu = dir.path().join("qemu-system-x86_64");
        std::fs::write(
            &qemu,
            "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'QEMU emulator version 9.9.9'; exit 0; }\n\
             echo 'kvm_buf_set_msrs: Assertion failed' >&2; exit 134\n",
        )
        .unwrap();
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"kernel").unwrap();
        let why = kvm_missing_with(&qemu, &dir.path().join("cache"), Some(&kernel));
        let why = why.expect("an unusable KVM is missing");
        assert!(why.contains("unusable"), "{why}");
    }
}
