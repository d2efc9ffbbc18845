//! Owned child processes: every process the harness starts lives in its own
//! process group, dies with the harness, and is reaped.
//!
//! Three layers make sure no QEMU outlives the test that started it:
//!
//! 1. [`OwnedChild`]'s `Drop` terminates the whole process group (SIGTERM,
//!    then SIGKILL after a grace period) and reaps the child. This covers
//!    normal returns, errors and panics (unwinding).
//! 2. The child is started with `PR_SET_PDEATHSIG = SIGKILL`, so when the
//!    harness dies without unwinding (SIGKILL, SIGTERM, SIGINT with the
//!    default disposition, `panic = "abort"`), the kernel kills the child.
//!    The parent-death signal fires when the *thread* that spawned the child
//!    exits, so an `OwnedChild` must be dropped by (or before) the thread
//!    that created it; the runner and the CLI keep each VM on one thread.
//! 3. The child gets its own process group (`setpgid(0, 0)`), so a Ctrl-C
//!    at the terminal reaches the harness only, and the harness decides how
//!    QEMU goes down (it may still want to collect diagnostics).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How often [`OwnedChild::wait_deadline`] polls `try_wait`.
///
/// `waitpid` has no timeout; polling every 10 ms keeps the added latency
/// negligible next to a VM's lifetime.
const REAP_POLL: Duration = Duration::from_millis(10);

/// Default grace period between SIGTERM and SIGKILL when an
/// [`OwnedChild`] is dropped: QEMU flushes its disk images and exits well
/// within it.
const DEFAULT_TERM_GRACE: Duration = Duration::from_secs(3);

/// A child process owned by the harness: own process group, killed with
/// its group on drop, always reaped.
#[derive(Debug)]
pub struct OwnedChild {
    child: Child,
    name: String,
    status: Option<ExitStatus>,
    /// Grace period between SIGTERM and SIGKILL on drop.
    term_grace: Duration,
}

impl OwnedChild {
    /// Spawns `cmd` in a new process group with a parent-death signal.
    ///
    /// `name` is used in messages ("qemu", "image recipe busybox", ...).
    pub fn spawn(name: impl Into<String>, cmd: &mut Command) -> io::Result<OwnedChild> {
        // SAFETY: getpid is async-signal-safe.
        let parent = unsafe { libc::getpid() };
        cmd.process_group(0);
        // SAFETY: the closure runs between fork and exec and only calls
        // async-signal-safe functions (prctl, getppid, _exit,
        // sigemptyset, pthread_sigmask).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() != parent {
                    libc::_exit(127);
                }
                // The harness may block signals in its threads (bootrig
                // run receives SIGINT/SIGTERM on one thread); the child must
                // start with none blocked, or it would ignore SIGTERM.
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        Ok(OwnedChild {
            child,
            name: name.into(),
            status: None,
            term_grace: DEFAULT_TERM_GRACE,
        })
    }

    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the child's stdout pipe, if it was piped.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// What this child is, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets how long the drop path waits after SIGTERM before SIGKILL.
    pub fn set_term_grace(&mut self, grace: Duration) {
        self.term_grace = grace;
    }

    /// Returns the exit status if the child has exited (reaping it).
    ///
    /// The group is killed before the leader is reaped: while the leader
    /// is a zombie its pid (the group's id) cannot be reused, so the
    /// `killpg` reaches the group's stragglers only. After the reap no
    /// signal is sent to that id again ([`OwnedChild::signal_group`]
    /// refuses), since another process may have been given it.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() && self.exited_unreaped()? {
            self.kill_group_now();
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Whether the child has exited, without reaping it (`waitid` with
    /// `WNOWAIT`).
    fn exited_unreaped(&self) -> io::Result<bool> {
        // SAFETY: an all-zero siginfo_t is valid; waitid only writes it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: `info` is a valid, writable siginfo_t.
        let r = unsafe { libc::waitid(libc::P_PID, self.child.id(), &mut info, flags) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid filled `info` (si_pid is 0 when nothing exited).
        Ok(unsafe { info.si_pid() } != 0)
    }

    /// SIGKILL to the group while the leader is alive or a zombie.
    fn kill_group_now(&self) {
        // SAFETY: killpg has no memory-safety preconditions; the group id
        // is held by the unreaped leader.
        unsafe { libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL) };
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_deadline(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(REAP_POLL);
        }
    }

    /// Sends `signal` to the child's whole process group. Refused once
    /// the child was reaped: its pid may belong to another process group
    /// by now.
    pub fn signal_group(&self, signal: libc::c_int) -> io::Result<()> {
        if self.status.is_some() {
            return Err(io::Error::other(format!(
                "{} (pid {}) was already reaped; its process group id may be reused",
                self.name,
                self.child.id()
            )));
        }
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: killpg has no memory-safety preconditions.
        if unsafe { libc::killpg(pgid, signal) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Terminates the process group (SIGTERM, then SIGKILL after the grace
    /// period) and reaps the child. Returns its exit status.
    ///
    /// A grandchild that stayed behind when the leader exited is killed
    /// before the leader is reaped (see [`OwnedChild::try_wait`]), so it
    /// is not leaked, and no signal goes to a reaped group.
    pub fn terminate(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.signal_group(libc::SIGTERM)?;
        if let Some(status) = self.wait_deadline(self.term_grace)? {
            return Ok(status);
        }
        self.signal_group(libc::SIGKILL)?;
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        if let Err(err) = self.terminate() {
            eprintln!(
                "bootrig: could not stop {} (pid {}): {err}",
                self.name,
                self.child.id()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[test]
    fn drop_kills_the_whole_group() {
        // The shell starts a grandchild in the same group and prints its pid.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 600 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let mut child = OwnedChild::spawn("test shell", &mut cmd).unwrap();
        let mut out = child.child.stdout.take().unwrap();
        let mut line = String::new();
        use std::io::Read;
        let mut buf = [0u8; 1];
        while out.read(&mut buf).unwrap() == 1 && buf[0] != b'\n' {
            line.push(buf[0] as char);
        }
        let grandchild: u32 = line.trim().parse().unwrap();
        let pid = child.pid();
        assert!(alive(grandchild));
        drop(child);
        // The leader is reaped; the grandchild got SIGTERM from killpg and
        // is reaped by init, which can take a moment.
        let _ = crate::deadline::poll_until(
            Instant::now() + Duration::from_secs(5),
            Duration::from_millis(20),
            || Ok::<_, ()>((!alive(grandchild)).then_some(())),
        );
        assert!(!alive(grandchild), "grandchild {grandchild} survived");
        assert!(!alive(pid), "leader {pid} not reaped");
    }

    #[test]
    fn sigterm_ignoring_child_gets_sigkill() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"])
            .stdout(std::process::Stdio::piped());
        let mut child = OwnedChild::spawn("stubborn", &mut cmd).unwrap();
        // Only signal once the trap is in place.
        let mut ready = [0u8; 6];
        use std::io::Read;
        child.take_stdout().unwrap().read_exact(&mut ready).unwrap();
        child.set_term_grace(Duration::from_millis(200));
        let status = child.terminate().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn the_group_is_killed_before_the_leader_is_reaped_and_never_after() {
        // The leader exits at once, leaving a grandchild in its group.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 600 & echo $!"])
            .stdout(std::process::Stdio::piped());
        let mut child = OwnedChild::spawn("leaver", &mut cmd).unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.take_stdout().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        let status = child.wait_deadline(Duration::from_secs(5)).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(0));
        let gone = crate::deadline::poll_until(
            Instant::now() + Duration::from_secs(5),
            Duration::from_millis(20),
            || Ok::<_, ()>((!alive(grandchild)).then_some(())),
        );
        assert!(gone.is_ok(), "grandchild {grandchild} outlived the reap");
        // Reaped: the group id is no longer ours to signal.
        let e = child.signal_group(libc::SIGKILL).unwrap_err();
        assert!(e.to_string().contains("already reaped"), "{e}");
        assert_eq!(child.terminate().unwrap().code(), Some(0));
    }

    #[test]
    fn exit_status_is_kept() {
        let mut child = OwnedChild::spawn("false", &mut Command::new("false")).unwrap();
        let status = child
            .wait_deadline(Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(1));
        assert_eq!(child.terminate().unwrap().code(), Some(1));
    }
}
