//! bootrig's error type: every variant says what was being done, to what,
//! and carries what a reader needs to understand the failure without a
//! rerun (the console tail, QEMU's stderr, the command's output).

use std::io;
use std::time::Duration;

use bootrig_diagnostics::crash::CrashReport;
use bootrig_diagnostics::metadata::FailureKind;

use crate::console::ExpectError;

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while booting and driving a VM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is wrong.
    #[error("invalid {what}: {message}")]
    Config {
        /// What was being configured (`machine debian-smoke`, `scenario x.json`).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A host tool is missing.
    #[error("{tool} is not available: {hint}")]
    MissingTool {
        /// The tool.
        tool: String,
        /// How to get it.
        hint: String,
    },
    /// A host I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// QEMU failed to start or exited.
    #[error("{message}{}", section("QEMU stderr", stderr_tail))]
    Qemu {
        /// What happened.
        message: String,
        /// The end of QEMU's stderr.
        stderr_tail: String,
    },
    /// The guest did not reach the expected point of its boot in time.
    #[error("boot timeout: no {expected} on the console after {}s{}", waited.as_secs(), section("console tail", tail))]
    BootTimeout {
        /// What was awaited (`login prompt`, `shell prompt /# $/`).
        expected: String,
        /// How long bootrig waited.
        waited: Duration,
        /// The last console lines.
        tail: String,
    },
    /// Logging in failed.
    #[error("login as {user:?} failed: {message}{}", section("console tail", tail))]
    Login {
        /// The user.
        user: String,
        /// Why.
        message: String,
        /// The last console lines.
        tail: String,
    },
    /// Becoming root failed.
    #[error(
        "becoming root with {method} failed: {message}{}",
        section("console tail", tail)
    )]
    Escalation {
        /// `sudo -i` or `su -`.
        method: String,
        /// Why.
        message: String,
        /// The last console lines.
        tail: String,
    },
    /// A command's exit code or output was not what the test expected.
    #[error(
        "command `{command}` {expected}, but it exited with {exit}{}",
        section("output", output)
    )]
    Command {
        /// The command.
        command: String,
        /// The expectation (`was expected to succeed`, ...).
        expected: String,
        /// Its exit code.
        exit: i32,
        /// Its output.
        output: String,
    },
    /// A command did not finish in time (it was interrupted with Ctrl-C).
    #[error("command `{command}` did not finish within {}s{}", waited.as_secs(), section("console tail", tail))]
    CommandTimeout {
        /// The command.
        command: String,
        /// How long bootrig waited.
        waited: Duration,
        /// The last console lines.
        tail: String,
    },
    /// A systemd unit entered the `failed` state.
    #[error(
        "unit {unit} failed (ActiveState={state}){}",
        section("systemctl status", status)
    )]
    UnitFailed {
        /// The unit.
        unit: String,
        /// Its state.
        state: String,
        /// `systemctl status` output.
        status: String,
    },
    /// A wait condition never became true.
    #[error("timed out after {}s waiting for {what}{}", waited.as_secs(), section("last attempt", last))]
    WaitTimeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The last attempt's output.
        last: String,
    },
    /// The guest could not do what bootrig asked of it (mount a share,
    /// reboot) for a reason the message gives.
    #[error("{doing}: {message}{}", section("console tail", tail))]
    Guest {
        /// What was being done (`mounting share /srv/x at /mnt/x`).
        doing: String,
        /// Why it failed.
        message: String,
        /// The last console lines.
        tail: String,
    },
    /// A console operation failed (timeout, QEMU gone, kernel crash).
    #[error("{doing}: {source}")]
    Console {
        /// What was being done.
        doing: String,
        /// The console error.
        #[source]
        source: ExpectError,
    },
    /// The kernel crashed.
    #[error("kernel crash: {}\n{}", .0.title, .0.excerpt)]
    KernelCrash(CrashReport),
    /// Building or finding a guest image failed.
    #[error("image {name}: {message}")]
    Image {
        /// The image.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A scenario file is invalid.
    #[error("{location}: {message}")]
    Scenario {
        /// `file:line:column`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The run was interrupted (Ctrl-C, SIGTERM) while the test ran.
    #[error("interrupted by {}", signal_name(*.0))]
    Interrupted(i32),
    /// A Rust test panicked (e.g. a failed `assert!`) in its own code: the
    /// test's failure. The message ends with where it panicked.
    #[error("test panicked: {0}")]
    Panic(String),
    /// bootrig itself panicked while running a test (in its own code, or
    /// anywhere under a declarative scenario test): a harness bug, not the
    /// test's failure.
    #[error("bootrig panicked (a bug in bootrig, not a test failure) at {location}: {message}")]
    HarnessPanic {
        /// What it said.
        message: String,
        /// `file:line:column`, or `unknown`.
        location: String,
    },
    /// A check in a Rust test failed.
    #[error("check failed: {0}")]
    Check(String),
    /// The test exceeded its deadline.
    #[error("test exceeded its deadline of {}s", .0.as_secs())]
    TestTimeout(Duration),
    /// The test decided at run time not to run (e.g. fstests' `notrun`):
    /// it ends skipped with this reason, not failed.
    #[error("skipped: {0}")]
    Skip(String),
}

/// The name of a signal number, for messages.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

fn section(title: &str, body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- {title} ---\n{}\n---", body.trim_end())
    }
}

/// `?` on a host I/O error in a Rust test: the error says it happened on
/// the host, in the test's own code. Prefer [`Error::io`] to say what was
/// being done.
impl From<io::Error> for Error {
    fn from(source: io::Error) -> Error {
        Error::io("host I/O in the test", source)
    }
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A console error with what was being done; a kernel crash becomes
    /// [`Error::KernelCrash`] so it is never mistaken for a timeout.
    pub fn console(doing: impl Into<String>, source: ExpectError) -> Error {
        match source {
            ExpectError::Fault(report) => Error::KernelCrash(report),
            source => Error::Console {
                doing: doing.into(),
                source,
            },
        }
    }

    /// The failure kind recorded in `metadata.json`. A failed check or a
    /// panic in a Rust test's own code is a `check` failure (the test's own
    /// expectation was not met); a panic of bootrig's is a
    /// `harness-error`; a command or wait that ran out of time, or input
    /// the guest did not take in time, is a `timeout`; QEMU failing to
    /// start is `qemu-start`; host I/O that ran out of space, memory or
    /// descriptors is `host-resources`; a failed image build is
    /// `image-build`. (QEMU killed from outside is decided
    /// by the postmortem, which sees how QEMU ended.)
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Error::BootTimeout { .. } => FailureKind::BootTimeout,
            Error::Login { .. } => FailureKind::Login,
            Error::Escalation { .. } => FailureKind::Escalation,
            Error::Command { .. } => FailureKind::Command,
            Error::Check(_) | Error::Panic(_) => FailureKind::Check,
            Error::CommandTimeout { .. } => FailureKind::Timeout,
            Error::UnitFailed { .. } => FailureKind::UnitFailed,
            Error::KernelCrash(_) => FailureKind::KernelCrash,
            Error::Qemu { .. } => FailureKind::QemuStart,
            Error::Console { source, .. } => match source {
                ExpectError::Closed { .. } => FailureKind::QemuExit,
                ExpectError::Fault(_) => FailureKind::KernelCrash,
                ExpectError::Timeout { .. } => FailureKind::Timeout,
                // A send the guest did not take in time (the console's
                // write timeout): the guest stopped reading, it hangs.
                ExpectError::Io(e) if e.kind() == io::ErrorKind::TimedOut => FailureKind::Timeout,
                _ => FailureKind::HarnessError,
            },
            Error::WaitTimeout { .. } | Error::TestTimeout(_) => FailureKind::Timeout,
            Error::Io { source, .. } if is_out_of_resources(source) => FailureKind::HostResources,
            Error::Image { .. } => FailureKind::ImageBuild,
            Error::Interrupted(_)
            | Error::Guest { .. }
            | Error::HarnessPanic { .. }
            | Error::Config { .. }
            | Error::MissingTool { .. }
            | Error::Io { .. }
            | Error::Scenario { .. }
            | Error::Skip(_) => FailureKind::HarnessError,
        }
    }

    /// The crash report, if this is a kernel crash.
    pub fn crash(&self) -> Option<&CrashReport> {
        match self {
            Error::KernelCrash(r) => Some(r),
            Error::Console {
                source: ExpectError::Fault(r),
                ..
            } => Some(r),
            _ => None,
        }
    }
}

/// Whether `e` says the host ran out of something (disk space, quota,
/// memory, file descriptors) rather than that bootrig did something wrong.
pub fn is_out_of_resources(e: &io::Error) -> bool {
    bootrig_diagnostics::reserve::is_disk_full(e)
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOMEM | libc::EMFILE | libc::ENFILE)
        )
        || e.kind() == io::ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_that_takes_no_input_is_a_timeout_and_other_io_is_bootrigs() {
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "the guest stopped reading");
        let e = Error::console("sending a command", ExpectError::Io(timed_out));
        assert_eq!(e.failure_kind(), FailureKind::Timeout);
        let broken = io::Error::from(io::ErrorKind::BrokenPipe);
        let e = Error::console("sending a command", ExpectError::Io(broken));
        assert_eq!(e.failure_kind(), FailureKind::HarnessError);
    }
}
