//! Mounting the machine's host shares (9p) in the guest.
//!
//! Once a session has a root shell (after attaching to a root shell,
//! logging in as root, or becoming root) and again after each reboot, the
//! session mounts every [`Share`](crate::vm::links::Share) of its machine
//! at its guest path. A read-only share is mounted `ro` as well, but it is
//! QEMU that refuses writes to it. A shell that is not root mounts
//! nothing; the transcript says so once, and the shares are mounted when
//! the shell becomes root.

use crate::errors::{Error, Result};
use crate::guest::protocol::shell_quote;
use crate::guest::session::Session;
use crate::vm::links::{mount_tag, SHARE_MSIZE};

/// Loads 9p where it is a module and checks the kernel has it. Exits 3
/// when the kernel knows no 9p file system, 4 when the virtio transport is
/// missing (in a subshell: the session's shell must not exit).
const CHECK_9P: &str = "(grep -qw 9p /proc/filesystems || modprobe 9p >/dev/null 2>&1; \
     grep -qw 9p /proc/filesystems || exit 3; \
     [ -d /sys/module/9pnet_virtio ] || modprobe 9pnet_virtio >/dev/null 2>&1; \
     [ -d /sys/module/9pnet_virtio ] || exit 4)";

impl Session {
    /// Mounts the machine's shares if the shell is root and they are not
    /// mounted in this boot yet (see the module documentation).
    pub(super) fn mount_shares(&self) -> Result<()> {
        let shares = self.machine.shares();
        if shares.is_empty() {
            return Ok(());
        }
        {
            let mut st = self.state();
            if st.shares_mounted {
                return Ok(());
            }
            if !st.root {
                drop(st);
                self.transcript.entry(
                    "shares: not mounted yet, the shell is not root (they are mounted when it becomes root)",
                );
                return Ok(());
            }
            // Marked first: a failure below is reported once, not again
            // at the next shell set-up.
            st.shares_mounted = true;
        }
        let first = &shares[0];
        let doing = |s: &crate::vm::links::Share| {
            format!("mounting share {} at {}", s.host.display(), s.guest)
        };
        let check = self.run(CHECK_9P)?;
        let missing = match check.exit {
            0 => None,
            3 => Some("9p file system"),
            4 => Some("9p virtio transport (9pnet_virtio)"),
            _ => Some("working 9p (checking for it failed)"),
        };
        if let Some(what) = missing {
            return Err(Error::Guest {
                doing: doing(first),
                message: format!(
                    "the guest kernel has no {what}, built in or as a module \
                     (CONFIG_9P_FS and CONFIG_NET_9P_VIRTIO): host folders cannot be shared into this guest{}",
                    if check.output.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", check.output.trim())
                    }
                ),
                tail: String::new(),
            });
        }
        for (i, share) in shares.iter().enumerate() {
            let guest = shell_quote(&share.guest);
            let ro = if share.writable { "" } else { ",ro" };
            let cmd = format!(
                "mkdir -p {guest} && mount -t 9p -o trans=virtio,version=9p2000.L,msize={SHARE_MSIZE}{ro} {} {guest}",
                mount_tag(i)
            );
            let out = self.run(&cmd)?;
            if out.exit != 0 {
                return Err(Error::Guest {
                    doing: doing(share),
                    message: format!("mount exited with {}: {}", out.exit, out.output.trim()),
                    tail: String::new(),
                });
            }
            self.transcript.entry(&format!(
                "share: {} mounted at {} ({})",
                share.host.display(),
                share.guest,
                if share.writable {
                    "read-write"
                } else {
                    "read-only"
                }
            ));
        }
        Ok(())
    }
}
