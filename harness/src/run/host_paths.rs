//! Host folders and files a scenario's machine names beyond its boot
//! files: the JSON shape of `shares` and the checks of shares and
//! forwards, and whether a host path the guest writes to is inside the
//! scenario's folder (drives, persistent disks and writable shares
//! outside it need `"allow_outside": true`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::vm::links::{check_forwards, check_shares, Forward, Share};

/// A host folder shared into the guest (`machine.shares[]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSpec {
    /// The host folder (relative to the scenario file's folder).
    pub host: PathBuf,
    /// Where bootrig mounts it in the guest (absolute).
    pub guest: String,
    /// Whether the guest may write to it (default: read-only, enforced by
    /// QEMU).
    #[serde(default)]
    pub writable: bool,
    /// Allow a writable `host` folder outside the scenario's folder.
    #[serde(default)]
    pub allow_outside: bool,
}

impl ShareSpec {
    /// The machine's [`Share`].
    pub fn share(&self) -> Share {
        Share {
            host: self.host.clone(),
            guest: self.guest.clone(),
            writable: self.writable,
        }
    }
}

/// Makes relative share folders relative to `base` (the scenario's
/// folder), then checks the shares and forwards. An error names the
/// scenario key to locate (`shares`, `forwards`) and what is wrong.
pub(crate) fn check_links(
    shares: &mut [ShareSpec],
    forwards: &[Forward],
    base: &Path,
) -> Result<(), (&'static str, String)> {
    for s in shares.iter_mut() {
        if s.host.is_relative() {
            s.host = base.join(&s.host);
        }
    }
    let machine_shares: Vec<Share> = shares.iter().map(ShareSpec::share).collect();
    check_shares(&machine_shares).map_err(|e| ("shares", e))?;
    check_forwards(forwards).map_err(|e| ("forwards", e))?;
    for (i, s) in shares.iter().enumerate() {
        if s.writable && !s.allow_outside && !inside(base, &s.host) {
            return Err((
                "shares",
                format!(
                    "shares[{i}].host: {} is outside the scenario's folder and the guest writes to it; \
                     add \"allow_outside\": true to share it anyway",
                    s.host.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `path` (symbolic links resolved) is inside the folder `base`.
pub(crate) fn inside(base: &Path, path: &Path) -> bool {
    let base = fs::canonicalize(if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    });
    match (base, fs::canonicalize(path)) {
        (Ok(b), Ok(p)) => p.starts_with(b),
        _ => false,
    }
}
