//! Talking to a running machine's QEMU over QMP beyond single commands:
//! waiting for an event (a guest `RESET`) without holding QMP for long, and
//! commands whose failure is an [`Error`] saying what was being done.

use std::time::Duration;

use crate::deadline::Deadline;
use crate::errors::{Error, Result};
use crate::vm::machine::Machine;
use crate::vm::qmp::{Qmp, QmpError};

/// How long QMP is held at a time while waiting for an event, so that
/// taking the machine down (which needs QMP) is never held up longer.
const EVENT_SLICE: Duration = Duration::from_millis(200);

impl Machine {
    /// Waits for the QMP event `name` until `deadline`, holding QMP only
    /// briefly at a time. `Ok(None)`: the deadline passed first.
    pub fn wait_event(&self, name: &str, deadline: Deadline) -> Result<Option<serde_json::Value>> {
        loop {
            let slice = deadline.remaining().min(EVENT_SLICE);
            let got = self.qmp(|q| q.wait_event(name, slice));
            match got {
                None => return Err(self.qmp_gone(&format!("waiting for the {name} event"))),
                Some(Err(e)) => {
                    return Err(Error::Qemu {
                        message: format!("waiting for the QMP event {name}: {e}"),
                        stderr_tail: self.stderr_tail(20),
                    })
                }
                Some(Ok(Some(event))) => return Ok(Some(event)),
                Some(Ok(None)) if deadline.expired() => return Ok(None),
                Some(Ok(None)) => {}
            }
        }
    }

    /// Runs a QMP command, its failure (or QMP being gone) an error saying
    /// what was being done.
    pub fn qmp_checked<T>(
        &self,
        doing: &str,
        f: impl FnOnce(&mut Qmp) -> std::result::Result<T, QmpError>,
    ) -> Result<T> {
        match self.qmp(f) {
            None => Err(self.qmp_gone(doing)),
            Some(r) => r.map_err(|e| Error::Qemu {
                message: format!("{doing}: {e}"),
                stderr_tail: self.stderr_tail(20),
            }),
        }
    }

    fn qmp_gone(&self, doing: &str) -> Error {
        Error::Qemu {
            message: format!("{doing}: QMP is closed (QEMU was stopped)"),
            stderr_tail: self.stderr_tail(20),
        }
    }
}
