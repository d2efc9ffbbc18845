//! The first stage of the end of a test: what the VMs looked like when
//! the test ended, before the collectors add their own traffic.

use std::time::Duration;

use bootrig_diagnostics::crash::CrashReport;
use bootrig_diagnostics::metadata::{parse_os_release, GuestInfo};

use crate::deadline::Deadline;
use crate::postmortem::collector::VmHandle;

/// How long the guest identity query may take.
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(3);

/// How many console lines the end of a test keeps.
pub(crate) const CONSOLE_TAIL_LINES: usize = 30;

/// The VMs when the test ended.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The first VM's last console lines, markers made readable.
    pub(crate) console_tail: String,
    /// The guest's identity, from the first VM with a live shell.
    pub(crate) guest: Option<GuestInfo>,
}

impl Snapshot {
    /// Takes the console tail first, then asks the guest who it is.
    pub(crate) fn take(vms: &[VmHandle]) -> Snapshot {
        let console_tail = vms
            .first()
            .map(|vm| vm.session().console_tail(CONSOLE_TAIL_LINES))
            .unwrap_or_default();
        let guest = vms.iter().find_map(|vm| {
            let o = vm.query(
                "uname -r; cat /etc/os-release 2>/dev/null",
                Deadline::after(IDENTITY_TIMEOUT),
            )?;
            Some(guest_info(&o.output))
        });
        Snapshot {
            console_tail,
            guest,
        }
    }
}

/// The guest identity from `uname -r` followed by `/etc/os-release`.
fn guest_info(output: &str) -> GuestInfo {
    let mut lines = output.splitn(2, '\n');
    let kernel_release = lines
        .next()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    GuestInfo {
        kernel_release,
        os_release: parse_os_release(lines.next().unwrap_or("")),
    }
}

/// Every kernel report seen on the VMs' consoles so far (also those the
/// collectors provoked).
pub(crate) fn reports(vms: &[VmHandle]) -> Vec<CrashReport> {
    vms.iter()
        .flat_map(|vm| vm.machine().console().reports())
        .collect()
}

/// [`reports`], then stops the VMs.
pub(crate) fn stop(vms: &[VmHandle]) -> Vec<CrashReport> {
    let reports = reports(vms);
    for vm in vms {
        vm.machine().kill();
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_from_uname_and_os_release() {
        let g = guest_info("6.1.0\nID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(g.kernel_release.as_deref(), Some("6.1.0"));
        assert_eq!(g.os_release["VERSION_ID"], "12");
        assert_eq!(guest_info("").kernel_release, None);
    }
}
