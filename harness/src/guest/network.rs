//! The guest side of a private network: the NIC bootrig gave the machine
//! (found by its MAC address) gets its static address and is brought up,
//! and `/etc/hosts` names every machine of the machine's networks.
//!
//! Plain shell with `ip`, `sed` and `printf`, so busybox and full
//! distributions alike; needs a root shell. Under systemd-networkd the NIC
//! is first declared unmanaged (a runtime `.network` file matching its
//! MAC), so a DHCP client does not fight over it.

use std::time::Duration;

use crate::errors::{Error, Result};
use crate::guest::protocol::shell_quote;
use crate::guest::session::Session;
use crate::vm::network::{Member, NetworkPort};

/// How long the guest may take to show the NIC (its driver is a module a
/// busybox initramfs loads at boot and udev loads on a distribution).
pub const NIC_TIMEOUT: Duration = Duration::from_secs(60);

/// The tag ending the `/etc/hosts` lines bootrig writes (and rewrites).
pub const HOSTS_TAG: &str = "# bootrig-network";

fn failed(port: &NetworkPort, doing: &str, e: Error) -> Error {
    Error::Config {
        what: format!("network {:?}", port.network),
        message: format!("{doing} in the guest failed (it needs a root shell): {e}"),
    }
}

/// Finds the NIC with `port`'s MAC address, gives it `port`'s address and
/// brings it up.
pub fn configure(vm: &Session, port: &NetworkPort) -> Result<()> {
    let mac = shell_quote(&port.mac);
    let find = format!(
        "n=; for d in /sys/class/net/*; do \
         [ \"$(cat \"$d/address\" 2>/dev/null)\" = {mac} ] && n=${{d##*/}}; done; \
         [ -n \"$n\" ] && echo \"$n\""
    );
    let nic = vm
        .wait_until_succeeds(&find, NIC_TIMEOUT)
        .map_err(|e| failed(port, &format!("finding the NIC with MAC {}", port.mac), e))?;
    let nic = shell_quote(nic.trim());
    // Written whenever systemd runs, so a networkd that starts later
    // reads it too; a running one is told to reload.
    let unmanaged = format!(
        "if [ -d /run/systemd/system ]; then \
         mkdir -p /run/systemd/network && \
         printf '[Match]\\nMACAddress=%s\\n\\n[Link]\\nUnmanaged=yes\\n' {mac} \
         > /run/systemd/network/05-bootrig-{}.network && \
         {{ ! systemctl is-active -q systemd-networkd || networkctl reload; }}; fi",
        port.mac.replace(':', "")
    );
    let up = format!(
        "{unmanaged}; ip addr flush dev {nic} && ip addr add {}/{} dev {nic} && ip link set {nic} up",
        port.address, port.prefix
    );
    vm.succeed(&up)
        .map_err(|e| failed(port, &format!("setting {} on {nic}", port.address), e))?;
    Ok(())
}

/// The `/etc/hosts` lines naming `members`.
pub fn hosts_lines(members: &[Member]) -> Vec<String> {
    members
        .iter()
        .map(|m| format!("{} {} {HOSTS_TAG}", m.address, m.name))
        .collect()
}

/// Replaces the lines bootrig wrote in the guest's `/etc/hosts` with lines
/// naming `members` (`port` only names the network in errors).
pub fn write_hosts(vm: &Session, port: &NetworkPort, members: &[Member]) -> Result<()> {
    let lines: Vec<String> = hosts_lines(members)
        .iter()
        .map(|l| shell_quote(l))
        .collect();
    let cmd = format!(
        "touch /etc/hosts && sed -i '/{HOSTS_TAG}$/d' /etc/hosts && printf '%s\\n' {} >> /etc/hosts",
        lines.join(" ")
    );
    vm.succeed(&cmd)
        .map_err(|e| failed(port, "writing /etc/hosts", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn hosts_lines_are_tagged() {
        let lines = hosts_lines(&[Member {
            name: "server".into(),
            address: Ipv4Addr::new(10, 1, 0, 1),
        }]);
        assert_eq!(lines, ["10.1.0.1 server # bootrig-network"]);
    }
}
