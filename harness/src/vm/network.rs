//! Private host-local networks between the VMs of a test.
//!
//! A [`Network`] is a [`Switch`] on a Unix socket in a private folder, a
//! subnet `10.<index>.0.0/24` and the machines that joined it. A machine
//! joins when its config is built ([`crate::MachineConfig::with_network`]):
//! it gets the next address (`10.<index>.0.1`, `.2`, ...) and a MAC
//! address that says which network and which member it is, so the guest
//! side can find the NIC of each network by its MAC. The network has no
//! gateway and no route out; nothing but its members is on it.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::errors::{Error, Result};
use crate::vm::switch::Switch;

/// Members a network can have (addresses `.1` to `.250`).
pub const MAX_MEMBERS: usize = 250;

/// Networks a test can have (`10.1.0.0/24` to `10.250.0.0/24`).
pub const MAX_NETWORKS: u8 = 250;

/// One machine's place on a network: what QEMU needs (the switch socket,
/// the MAC address) and what the guest is given (its address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPort {
    /// The network's name.
    pub network: String,
    /// The switch's Unix socket.
    pub socket: PathBuf,
    /// The NIC's MAC address, `02:b7:<network>:00:00:<member>` (locally
    /// administered, unique in the test).
    pub mac: String,
    /// The machine's address on the network.
    pub address: Ipv4Addr,
    /// The subnet's prefix length (24).
    pub prefix: u8,
}

/// A machine on a network: its name (the host name the others use) and
/// address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The machine's name.
    pub name: String,
    /// Its address.
    pub address: Ipv4Addr,
}

#[derive(Debug)]
struct Inner {
    name: String,
    index: u8,
    members: Mutex<Vec<Member>>,
    switch: Switch,
    /// Holds the switch's socket; removed after the switch stops.
    _dir: tempfile::TempDir,
}

/// A private network: see the module documentation. Cloning gives another
/// handle to the same network; the switch stops when the last handle is
/// dropped (after the VMs on it, which the test context drops first).
#[derive(Debug, Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

impl Network {
    /// Starts network `name`, the `index`-th of its test (1-based: its
    /// subnet is `10.<index>.0.0/24`).
    pub fn new(name: &str, index: u8) -> Result<Network> {
        if !valid_name(name) {
            return Err(Error::Config {
                what: format!("network {name:?}"),
                message: "a network name is 1 to 32 letters, digits, '-' or '_'".into(),
            });
        }
        if index == 0 || index > MAX_NETWORKS {
            return Err(Error::Config {
                what: format!("network {name:?}"),
                message: format!("a test has at most {MAX_NETWORKS} networks"),
            });
        }
        // Short paths: Unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bootrig-net-")
            .tempdir()
            .map_err(|e| Error::io("creating the network's folder in the temp dir", e))?;
        let switch = Switch::start(&dir.path().join("switch.sock"))?;
        Ok(Network {
            inner: Arc::new(Inner {
                name: name.to_string(),
                index,
                members: Mutex::default(),
                switch,
                _dir: dir,
            }),
        })
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its subnet's address, `10.<index>.0.0`.
    pub fn subnet(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.inner.index, 0, 0)
    }

    fn members_mut(&self) -> MutexGuard<'_, Vec<Member>> {
        self.inner.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The machines that joined, in joining order.
    pub fn members(&self) -> Vec<Member> {
        self.members_mut().clone()
    }

    /// How many VMs are connected to the switch now.
    pub fn connected(&self) -> usize {
        self.inner.switch.ports()
    }

    /// Machine `machine` joins (again: the same place): its port.
    pub fn join(&self, machine: &str) -> Result<NetworkPort> {
        let mut members = self.members_mut();
        let n = match members.iter().position(|m| m.name == machine) {
            Some(n) => n,
            None if members.len() >= MAX_MEMBERS => {
                return Err(Error::Config {
                    what: format!("network {:?}", self.name()),
                    message: format!("a network has at most {MAX_MEMBERS} machines"),
                })
            }
            None => {
                let host = members.len() as u8 + 1;
                members.push(Member {
                    name: machine.to_string(),
                    address: Ipv4Addr::new(10, self.inner.index, 0, host),
                });
                members.len() - 1
            }
        };
        Ok(NetworkPort {
            network: self.name().to_string(),
            socket: self.inner.switch.socket().to_path_buf(),
            mac: format!("02:b7:{:02x}:00:00:{:02x}", self.inner.index, n + 1),
            address: members[n].address,
            prefix: 24,
        })
    }
}

/// Whether `name` is a usable network name.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `name` can be a machine's host name on a network: 1 to 63
/// lowercase letters, digits or '-', starting with a letter.
pub fn valid_host_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_get_addresses_and_macs_in_joining_order() {
        let net = Network::new("lan", 3).unwrap();
        let a = net.join("server").unwrap();
        let b = net.join("client").unwrap();
        assert_eq!(a.address, Ipv4Addr::new(10, 3, 0, 1));
        assert_eq!(b.address, Ipv4Addr::new(10, 3, 0, 2));
        assert_eq!(a.mac, "02:b7:03:00:00:01");
        assert_eq!(b.mac, "02:b7:03:00:00:02");
        assert_eq!(
            net.join("server").unwrap(),
            a,
            "joining again is the same place"
        );
        assert_eq!(net.members().len(), 2);
        assert!(a.socket.exists());
    }

    #[test]
    fn names_are_checked() {
        assert!(Network::new("a b", 1).is_err());
        assert!(Network::new("lan", 0).is_err());
        assert!(valid_host_name("web-1"));
        assert!(!valid_host_name("Web"));
        assert!(!valid_host_name("1web"));
        assert!(!valid_host_name(""));
    }
}
