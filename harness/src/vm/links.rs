//! What a machine shares with its host besides disks: host folders shared
//! into the guest over 9p ([`Share`]) and host-to-guest TCP port forwards
//! bound to 127.0.0.1 ([`Forward`]).
//!
//! Both need no root on the host. A share is a QEMU `local` fsdev with
//! `security_model=none` (files the guest writes belong to the user
//! running QEMU); a read-only share is refused by QEMU itself
//! (`readonly=on`), whatever the guest mounts. A forward is a user-mode
//! network `hostfwd` rule on 127.0.0.1; host port 0 lets QEMU bind a free
//! port, which bootrig then reads back from QEMU (`info usernet`), so no
//! port is guessed and none is raced for.

use std::path::PathBuf;

use serde::Deserialize;

/// Bytes per 9p message the guest mounts with (the Linux virtio transport
/// takes up to about 500 KB).
pub const SHARE_MSIZE: u32 = 262_144;

/// A host folder shared into the guest, mounted by bootrig at `guest`
/// once the session has a root shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The host folder.
    pub host: PathBuf,
    /// Where it is mounted in the guest (an absolute path).
    pub guest: String,
    /// Whether the guest may write to it (QEMU refuses writes otherwise).
    pub writable: bool,
}

impl Share {
    /// A read-only share of `host` at `guest`.
    pub fn read_only(host: impl Into<PathBuf>, guest: impl Into<String>) -> Share {
        Share {
            host: host.into(),
            guest: guest.into(),
            writable: false,
        }
    }

    /// A share of `host` at `guest` the guest may write to.
    pub fn writable(host: impl Into<PathBuf>, guest: impl Into<String>) -> Share {
        Share {
            writable: true,
            ..Share::read_only(host, guest)
        }
    }
}

/// The 9p mount tag of the `index`-th share (what the guest mounts).
pub fn mount_tag(index: usize) -> String {
    format!("bootrig{index}")
}

/// Checks shares, naming the field and value at fault: each host folder
/// exists and is a folder, each guest path is absolute, and no two shares
/// use the same guest path.
pub fn check_shares(shares: &[Share]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, s) in shares.iter().enumerate() {
        if !s.host.exists() {
            return Err(format!(
                "shares[{i}].host: {} does not exist",
                s.host.display()
            ));
        }
        if !s.host.is_dir() {
            return Err(format!(
                "shares[{i}].host: {} is not a folder",
                s.host.display()
            ));
        }
        if !s.guest.starts_with('/') {
            return Err(format!(
                "shares[{i}].guest: {:?} is not an absolute guest path",
                s.guest
            ));
        }
        if s.guest.contains(['\n', '\0']) {
            return Err(format!(
                "shares[{i}].guest: {:?} contains a newline or NUL",
                s.guest
            ));
        }
        let normal = normal_guest_path(&s.guest);
        if normal == "/" {
            return Err(format!(
                "shares[{i}].guest: \"/\" cannot be a share's mount point"
            ));
        }
        if !seen.insert(normal) {
            return Err(format!(
                "shares[{i}].guest: {:?} is already the guest path of another share",
                s.guest
            ));
        }
    }
    Ok(())
}

/// `/mnt//x/` and `/mnt/x` are one mount point.
fn normal_guest_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// A TCP port of the guest reachable from the host at 127.0.0.1 (in a
/// scenario: `machine.forwards[]`, `{"guest": 80}` or `{"guest": 80,
/// "host": 8080}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The guest's port.
    pub guest: u16,
    /// The host's port on 127.0.0.1; 0 (the default) lets QEMU pick a free
    /// one (learn it with
    /// [`Machine::forwarded_port`](crate::Machine::forwarded_port); it is
    /// also written into `metadata.json`).
    #[serde(default)]
    pub host: u16,
}

/// Checks forwards: guest ports are 1..=65535 and forwarded once, a fixed
/// host port is used once.
pub fn check_forwards(forwards: &[Forward]) -> Result<(), String> {
    let mut guests = std::collections::BTreeSet::new();
    let mut hosts = std::collections::BTreeSet::new();
    for (i, f) in forwards.iter().enumerate() {
        if f.guest == 0 {
            return Err(format!(
                "forwards[{i}].guest: a guest port is 1..=65535, not 0"
            ));
        }
        if !guests.insert(f.guest) {
            return Err(format!(
                "forwards[{i}].guest: guest port {} is forwarded twice",
                f.guest
            ));
        }
        if f.host != 0 && !hosts.insert(f.host) {
            return Err(format!(
                "forwards[{i}].host: host port {} is used twice",
                f.host
            ));
        }
    }
    Ok(())
}

/// The host port QEMU bound for each of `forwards`, as (guest port, host
/// port), from the text of `info usernet` (see [`parse_usernet`]).
pub fn bound_ports(forwards: &[Forward], usernet: &str) -> Result<Vec<(u16, u16)>, String> {
    let bound = parse_usernet(usernet);
    forwards
        .iter()
        .map(|f| {
            bound
                .iter()
                .find(|(guest, _)| *guest == f.guest)
                .copied()
                .ok_or_else(|| {
                    format!(
                        "QEMU reported no host port for guest port {} (info usernet said {usernet:?})",
                        f.guest
                    )
                })
        })
        .collect()
}

/// The host ports QEMU bound for TCP forwards to the guest, as
/// `(guest port, host port)`, read from the text of the monitor's
/// `info usernet`:
///
/// ```text
///   Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ
///   TCP[HOST_FORWARD]   3       127.0.0.1 42859       10.0.2.15    80     0     0
/// ```
pub fn parse_usernet(text: &str) -> Vec<(u16, u16)> {
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.first() != Some(&"TCP[HOST_FORWARD]") || cols.len() < 6 {
                return None;
            }
            let host = cols[3].parse().ok()?;
            let guest = cols[5].parse().ok()?;
            Some((guest, host))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_checked_by_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let ok = Share::read_only(dir.path(), "/mnt/a");
        assert_eq!(check_shares(std::slice::from_ref(&ok)), Ok(()));
        let e = check_shares(&[Share::read_only(dir.path().join("nope"), "/mnt/a")]).unwrap_err();
        assert!(
            e.starts_with("shares[0].host:") && e.contains("does not exist"),
            "{e}"
        );
        let e = check_shares(&[Share::read_only(&file, "/mnt/a")]).unwrap_err();
        assert!(e.contains("is not a folder"), "{e}");
        let e = check_shares(&[Share::read_only(dir.path(), "mnt/a")]).unwrap_err();
        assert!(
            e.starts_with("shares[0].guest:") && e.contains("\"mnt/a\" is not an absolute"),
            "{e}"
        );
        let e = check_shares(&[ok.clone(), Share::writable(dir.path(), "/mnt//a/")]).unwrap_err();
        assert!(
            e.starts_with("shares[1].guest:") && e.contains("another share"),
            "{e}"
        );
        assert!(check_shares(&[Share::read_only(dir.path(), "/")]).is_err());
    }

    #[test]
    fn forwards_are_checked() {
        let f = |guest, host| Forward { guest, host };
        assert_eq!(check_forwards(&[f(80, 0), f(22, 0)]), Ok(()));
        assert!(check_forwards(&[f(0, 0)]).unwrap_err().contains("not 0"));
        assert!(check_forwards(&[f(80, 0), f(80, 0)])
            .unwrap_err()
            .contains("forwarded twice"));
        assert!(check_forwards(&[f(80, 8080), f(81, 8080)])
            .unwrap_err()
            .contains("used twice"));
    }

    #[test]
    fn usernet_ports_are_read_back() {
        let text = "Hub -1 (#net048):\r\n  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n  TCP[HOST_FORWARD]   3       127.0.0.1 42859       10.0.2.15    80     0     0\r\n  TCP[HOST_FORWARD]   4       127.0.0.1  2222       10.0.2.15    22     0     0\r\n  TCP[ESTABLISHED]   5       10.0.2.15 1234    1.2.3.4    80     0     0\r\n";
        assert_eq!(parse_usernet(text), vec![(80, 42859), (22, 2222)]);
        assert!(parse_usernet("").is_empty());
        let want = |guest| Forward { guest, host: 0 };
        assert_eq!(bound_ports(&[want(22)], text), Ok(vec![(22, 2222)]));
        assert!(bound_ports(&[want(443)], text)
            .unwrap_err()
            .contains("no host port for guest port 443"));
    }
}
