//! Markers on a test, as in pytest: what it requires of the host, whether
//! it is slow, expected to fail, or has a deadline.

use std::path::Path;
use std::time::Duration;

/// A host capability a test needs; missing ones skip the test at run time
/// with the reason (under `CI=true` they fail it instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A working KVM.
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
            Requirement::Kvm => crate::vm::accel::kvm_device_usable().err(),
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

/// Markers on a test, as in pytest.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    pub(crate) requires: Vec<Requirement>,
    pub(crate) slow: bool,
    pub(crate) xfail: Option<String>,
    pub(crate) timeout: Option<Duration>,
    /// The body is bootrig's own code (a declarative scenario test): any
    /// panic in it is a harness bug.
    pub(crate) declarative: bool,
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

    /// The reason the test is expected to fail, if it is.
    pub fn xfail_reason(&self) -> Option<&str> {
        self.xfail.as_deref()
    }

    /// The first requirement this host does not meet, with the reason.
    pub fn unmet(&self) -> Option<String> {
        self.requires.iter().find_map(Requirement::missing)
    }
}
