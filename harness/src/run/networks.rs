//! A test's private networks and the VMs on them: which networks the test
//! made, which VM joined which, and which guests have been set up, so
//! that bringing one guest up also names it in the `/etc/hosts` of every
//! guest already up on a network they share.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::errors::{Error, Result};
use crate::guest::network::{configure, write_hosts};
use crate::guest::session::Session;
use crate::vm::network::{Member, Network, NetworkPort, MAX_NETWORKS};

#[derive(Debug)]
struct NetVm {
    name: String,
    session: Arc<Session>,
    ports: Vec<NetworkPort>,
    up: bool,
}

/// The networks of one test. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Networks {
    nets: Vec<Network>,
    vms: Vec<NetVm>,
}

impl Networks {
    /// Starts network `name`, the next subnet of the test.
    pub(crate) fn create(&mut self, name: &str) -> Result<Network> {
        if self.nets.iter().any(|n| n.name() == name) {
            return Err(Error::Config {
                what: format!("network {name:?}"),
                message: "the test already has a network of that name".into(),
            });
        }
        let index = u8::try_from(self.nets.len() + 1).unwrap_or(MAX_NETWORKS + 1);
        let net = Network::new(name, index)?;
        self.nets.push(net.clone());
        Ok(net)
    }

    /// Refuses a second machine called `name` on the test's networks: it
    /// would have the first one's address, MAC address and folder.
    pub(crate) fn check_new(&self, name: &str) -> Result<()> {
        if self.vms.iter().any(|v| v.name == name) {
            return Err(Error::Config {
                what: format!("machine {name:?}"),
                message: "the test already has a machine of that name on a network".into(),
            });
        }
        Ok(())
    }

    /// Remembers that `session`'s VM, machine `name`, is on `ports`'
    /// networks.
    pub(crate) fn add_vm(&mut self, name: &str, session: Arc<Session>, ports: Vec<NetworkPort>) {
        if !ports.is_empty() {
            self.vms.push(NetVm {
                name: name.to_string(),
                session,
                ports,
                up: false,
            });
        }
    }

    /// Forgets `session`'s VM (stopped before it was set up: a warm start
    /// whose restore failed, replaced by a cold boot of the same machine).
    pub(crate) fn remove_vm(&mut self, session: &Arc<Session>) {
        self.vms.retain(|v| !Arc::ptr_eq(&v.session, session));
    }

    /// The machines on the networks of `ports`, each once.
    fn members_of(&self, ports: &[NetworkPort]) -> Vec<Member> {
        let mut out: BTreeMap<(String, std::net::Ipv4Addr), Member> = BTreeMap::new();
        for port in ports {
            let Some(net) = self.nets.iter().find(|n| n.name() == port.network) else {
                continue;
            };
            for m in net.members() {
                out.insert((m.name.clone(), m.address), m);
            }
        }
        out.into_values().collect()
    }

    /// Sets up `session`'s guest on its networks (addresses, `/etc/hosts`)
    /// and adds it to the `/etc/hosts` of the guests already up that share
    /// a network with it. A VM on no network is left alone.
    pub(crate) fn up(&mut self, session: &Arc<Session>) -> Result<()> {
        let Some(i) = self
            .vms
            .iter()
            .position(|v| Arc::ptr_eq(&v.session, session))
        else {
            return Ok(());
        };
        for port in &self.vms[i].ports {
            configure(session, port)?;
        }
        self.vms[i].up = true;
        let shared = |a: &NetVm| {
            a.ports
                .iter()
                .any(|p| self.vms[i].ports.iter().any(|q| q.network == p.network))
        };
        for vm in self.vms.iter().filter(|v| v.up && shared(v)) {
            let members = self.members_of(&vm.ports);
            write_hosts(&vm.session, &vm.ports[0], &members)?;
        }
        Ok(())
    }
}
