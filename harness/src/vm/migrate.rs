//! Saving a running machine's state to a file and starting a machine from
//! such a file: the QEMU side of a warm start.
//!
//! A saved state is QEMU's migration stream written to a file (`migrate`
//! to a `file:` URI, with the guest paused) plus, for a machine with a
//! root disk, a copy of its throwaway qcow2 overlay taken at the same
//! moment (the disk the state refers to). A machine restored from it gets
//! its own throwaway overlay over that copy (see `vm/drives.rs`)
//! and starts with `-incoming defer` ([`Snapshotting::Restore`]); [`Machine::load_state`] then feeds
//! it the file. Both sides carry the same devices, plus a `vmgenid` device
//! whose ID changes with every QEMU start (see
//! [`vmgenid_args`](crate::vm::qemu_args::vmgenid_args)).

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::deadline::{poll_until, Deadline};
use crate::errors::{Error, Result};
use crate::vm::machine::Machine;
#[cfg(doc)]
use crate::vm::machine::Snapshotting;
use crate::vm::qmp::QmpError;

/// How often the migration's progress is asked for. A restore takes well
/// under a second, so the poll must be fine-grained; a QMP query costs
/// microseconds.
const MIGRATION_POLL: Duration = Duration::from_millis(5);

/// No bandwidth limit for a migration to a local file (QEMU's default
/// caps it at 128 MiB/s, meant for networks).
const UNLIMITED_BANDWIDTH: u64 = 1 << 40;

/// A `file:` migration URI for `path` (absolute: QEMU has its own idea of
/// the working folder).
fn file_uri(path: &Path) -> String {
    format!("file:{}", crate::vm::drives::abs(path).display())
}

impl Machine {
    /// A QEMU failure with what was being done, QEMU's last word on it
    /// (the last line of its stderr, which says why a migration failed),
    /// and the end of its stderr.
    fn qemu_err(&self, doing: &str, e: impl std::fmt::Display) -> Error {
        let tail = self.stderr_tail(20);
        let message = match tail.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
            Some(last) => format!("{doing}: {e} (QEMU: {last})"),
            None => format!("{doing}: {e}"),
        };
        Error::Qemu {
            message,
            stderr_tail: tail,
        }
    }

    /// Runs a QMP command, failing when QMP is gone or the command fails.
    fn qmp_do(&self, doing: &str, command: &str, args: Option<Value>) -> Result<Value> {
        match self.qmp(|q| q.execute(command, args)) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(self.qemu_err(doing, e)),
            None => Err(self.qemu_err(doing, QmpError::Closed)),
        }
    }

    /// Waits until the migration in progress (outgoing or incoming) has
    /// completed; fails with QEMU's reason when it failed.
    fn wait_migration(&self, doing: &str, deadline: Deadline) -> Result<()> {
        let done = poll_until(deadline, MIGRATION_POLL, || {
            let info = self.qmp_do(doing, "query-migrate", None)?;
            match info.get("status").and_then(Value::as_str).unwrap_or("none") {
                "completed" => Ok(Some(())),
                status @ ("failed" | "cancelled") => {
                    let why = info
                        .get("error-desc")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given");
                    Err(self.qemu_err(doing, format!("migration {status}: {why}")))
                }
                _ => Ok(None),
            }
        })?;
        done.ok_or_else(|| {
            self.qemu_err(
                doing,
                format!("not finished after {:?}", deadline.remaining()),
            )
        })
    }

    /// Saves the machine's state: pauses the guest, writes QEMU's
    /// migration stream to `state`, copies the root disk's overlay (as it
    /// is at that moment, flushed) to `disk` when both exist, and lets the
    /// guest run on. The guest does not notice beyond the pause.
    pub fn save_state(&self, state: &Path, disk: Option<&Path>, deadline: Deadline) -> Result<()> {
        let doing = "saving the machine's state";
        self.qmp_do(doing, "stop", None)?;
        self.qmp_do(
            doing,
            "migrate-set-parameters",
            Some(json!({ "max-bandwidth": UNLIMITED_BANDWIDTH })),
        )?;
        self.qmp_do(doing, "migrate", Some(json!({ "uri": file_uri(state) })))?;
        self.wait_migration(doing, deadline)?;
        // The migration flushed the disk and handed it over (inactive):
        // the overlay is consistent with the state until `cont`.
        if let (Some(overlay), Some(copy)) = (self.disk_overlay(), disk) {
            fs::copy(overlay, copy).map_err(|e| {
                Error::io(
                    format!("copying {} to {}", overlay.display(), copy.display()),
                    e,
                )
            })?;
        }
        self.qmp_do("resuming the guest after saving its state", "cont", None)?;
        Ok(())
    }

    /// Loads a state saved by [`Machine::save_state`] into a machine
    /// started with [`Snapshotting::Restore`], and runs the guest.
    pub fn load_state(&self, state: &Path, deadline: Deadline) -> Result<()> {
        let doing = format!("restoring the machine's state from {}", state.display());
        self.qmp_do(
            &doing,
            "migrate-incoming",
            Some(json!({ "uri": file_uri(state) })),
        )?;
        self.wait_migration(&doing, deadline)?;
        let status = self
            .qmp(|q| q.query_status())
            .transpose()
            .map_err(|e| self.qemu_err(&doing, e))?
            .unwrap_or_default();
        if status != "running" {
            self.qmp_do(&doing, "cont", None)?;
        }
        Ok(())
    }
}
