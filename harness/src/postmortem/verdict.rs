//! The verdict stage: the test's outcome and failure, from how its body
//! ended, whether it was expected to fail, and the step it was in.

use bootrig_diagnostics::metadata::{Failure, FailureKind, Outcome};

use crate::errors::Error;

/// How the test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Its outcome.
    pub(crate) outcome: Outcome,
    /// The failure recorded in `metadata.json` (also for `xfail`).
    pub(crate) failure: Option<Failure>,
    /// The failure the message reports: a failure, or an unexpected pass.
    pub(crate) reported: Option<Failure>,
}

impl Verdict {
    /// The verdict of a body that ended with `err` (if it failed), marked
    /// `xfail` or not, failing in `step` (index, description) if in one.
    /// `killed`: a VM whose QEMU a signal bootrig did not send ended (its
    /// name and the signal); a failure then is the infrastructure's
    /// (`qemu-killed`), whatever the test saw of it.
    pub(crate) fn of(
        err: Option<&Error>,
        xfail: Option<&str>,
        step: Option<&(usize, String)>,
        killed: Option<(&str, i32)>,
    ) -> Verdict {
        if let Some(Error::Skip(_)) = err {
            return Verdict {
                outcome: Outcome::Skipped,
                failure: None,
                reported: None,
            };
        }
        let failure = err.map(|e| {
            let message = match e.crash() {
                Some(c) => format!("kernel crash: {}", c.title),
                None => e.to_string(),
            };
            let mut f = match killed {
                Some((vm, signal)) => Failure::new(
                    FailureKind::QemuKilled,
                    format!(
                        "QEMU of VM {vm} was killed by {} (not sent by bootrig: another \
                         process, the OOM killer, or QEMU crashed): {message}",
                        crate::errors::signal_name(signal)
                    ),
                ),
                None => Failure::new(e.failure_kind(), message),
            };
            if let Some((i, what)) = step {
                f = f.with_step(*i, what.clone());
            }
            if let Some(c) = e.crash() {
                f = f.with_crash(c);
            }
            f
        });
        let outcome = match (err.is_some(), xfail.is_some()) {
            (false, false) => Outcome::Passed,
            (true, false) => Outcome::Failed,
            (true, true) => Outcome::Xfail,
            (false, true) => Outcome::Xpass,
        };
        let reported = match outcome {
            Outcome::Failed => failure.clone(),
            Outcome::Xpass => Some(Failure::new(
                FailureKind::HarnessError,
                format!(
                    "UNEXPECTED PASS: marked xfail ({}) but passed",
                    xfail.unwrap_or("")
                ),
            )),
            _ => None,
        };
        Verdict {
            outcome,
            failure,
            reported,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        let err = Error::Check("x is 2".into());
        let step = (1, "run: true".to_string());
        let v = Verdict::of(Some(&err), None, Some(&step), None);
        assert_eq!(v.outcome, Outcome::Failed);
        let f = v.reported.unwrap();
        assert_eq!(f.step.unwrap().index, 1);
        assert!(f.message.contains("x is 2"));

        let v = Verdict::of(Some(&err), Some("known"), None, None);
        assert_eq!(v.outcome, Outcome::Xfail);
        assert!(v.failure.is_some() && v.reported.is_none());

        let v = Verdict::of(None, Some("known"), None, None);
        assert_eq!(v.outcome, Outcome::Xpass);
        assert!(v.reported.unwrap().message.starts_with("UNEXPECTED PASS"));

        assert_eq!(Verdict::of(None, None, None, None).outcome, Outcome::Passed);

        let skip = Error::Skip("not supported".into());
        let v = Verdict::of(Some(&skip), Some("known"), None, None);
        assert_eq!(v.outcome, Outcome::Skipped);
        assert!(v.failure.is_none() && v.reported.is_none());
    }

    #[test]
    fn a_qemu_killed_from_outside_is_the_infrastructures_failure() {
        let err = Error::Command {
            command: "true".into(),
            expected: "was expected to succeed".into(),
            exit: 1,
            output: String::new(),
        };
        let v = Verdict::of(Some(&err), None, None, Some(("vm1", libc::SIGKILL)));
        let f = v.reported.unwrap();
        assert_eq!(f.kind, FailureKind::QemuKilled);
        assert_eq!(f.class, bootrig_diagnostics::metadata::FailureClass::Infra);
        assert!(
            f.message.contains("SIGKILL") && f.message.contains("vm1"),
            "{}",
            f.message
        );
        // No failure, no blame.
        let v = Verdict::of(None, None, None, Some(("vm1", libc::SIGKILL)));
        assert_eq!(v.outcome, Outcome::Passed);
    }
}
