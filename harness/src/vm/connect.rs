//! QEMU connecting to bootrig's sockets at start-up (serial console, QMP,
//! command channel), with an early failure when QEMU exits instead.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::errors::{Error, Result};
use crate::vm::process::OwnedChild;
use crate::vm::qemu_bin::tail_of_file;

/// How long QEMU may take to start and connect its sockets.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the wait for QEMU's connections also checks whether QEMU
/// exited (a QEMU that fails at start-up never connects).
const CONNECT_POLL: Duration = Duration::from_millis(50);

/// Waits for QEMU to connect to `listener`, failing early if QEMU exits.
pub(crate) fn accept_until(
    listener: &UnixListener,
    child: &mut OwnedChild,
    deadline: Instant,
    stderr_path: &Path,
) -> Result<UnixStream> {
    loop {
        let now = Instant::now();
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("checking QEMU", e))?
        {
            return Err(Error::Qemu {
                message: format!("QEMU exited during start-up with {status}"),
                stderr_tail: tail_of_file(stderr_path, 20),
            });
        }
        if now >= deadline {
            return Err(Error::Qemu {
                message: format!(
                    "QEMU did not connect to its sockets within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ),
                stderr_tail: tail_of_file(stderr_path, 20),
            });
        }
        let wait_ms = (deadline - now).min(CONNECT_POLL).as_millis() as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, wait_ms) };
        if n > 0 {
            let (stream, _) = listener
                .accept()
                .map_err(|e| Error::io("accepting QEMU's connection", e))?;
            return Ok(stream);
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io("waiting for QEMU to connect", err));
            }
        }
    }
}
