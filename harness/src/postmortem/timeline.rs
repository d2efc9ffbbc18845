//! Boot milestones seen on the console, turned into the boot phases of
//! `metadata.json` (`firmware`, `kernel`, `userspace`, `login prompt`).

use std::time::Instant;

use bootrig_diagnostics::crash::{has_kernel_timestamp, kernel_timestamp};
use bootrig_diagnostics::metadata::Phase;

/// Boot milestones seen on the console, as instants.
///
/// A quiet kernel (`loglevel=5`) prints few lines, often none before
/// userspace starts. The kernel's start is therefore worked out from the
/// first timestamped kernel line: it arrived at instant `t` carrying the
/// kernel's own clock `ts`, so the kernel started at `t - ts`. Userspace
/// starts with the first line that is not a kernel message and arrived
/// after the kernel started (firmware and boot-loader output arrive
/// before).
#[derive(Debug, Default, Clone)]
pub(crate) struct Timeline {
    pub(crate) first_output: Option<Instant>,
    pub(crate) kernel: Option<Instant>,
    /// Arrival of non-kernel lines (bounded), to find userspace's start.
    other_lines: Vec<Instant>,
    pub(crate) login_prompt: Option<Instant>,
}

/// How many non-kernel line arrivals are kept to find userspace's start.
const TIMELINE_LINES: usize = 256;

/// Whether a console line is a kernel message.
#[cfg(test)]
fn is_kernel_line(line: &str) -> bool {
    has_kernel_timestamp(line) || line.starts_with("Linux version")
}

/// A boot phase worked out from the timeline: its name and when it started
/// and ended.
pub(crate) type BootPhase = (&'static str, Instant, Instant);

impl Timeline {
    /// Notes milestones from one console line that arrived at `now`.
    pub(crate) fn line(&mut self, line: &str, now: Instant) {
        if line.trim().is_empty() {
            return;
        }
        self.first_output.get_or_insert(now);
        if has_kernel_timestamp(line) {
            if self.kernel.is_none() {
                // A timestamp no kernel could have (a guest printing
                // `[99999999999999999999.0]`) is not a duration: the line
                // then only says the kernel has started by now.
                let started = kernel_timestamp(line)
                    .and_then(|d| now.checked_sub(d))
                    .unwrap_or(now);
                self.kernel = Some(started);
            }
        } else if line.starts_with("Linux version") {
            self.kernel.get_or_insert(now);
        } else if self.other_lines.len() < TIMELINE_LINES {
            self.other_lines.push(now);
        }
        if self.login_prompt.is_none() && line.contains("login:") && !line.contains("Last login") {
            self.login_prompt = Some(now);
        }
    }

    /// The first non-kernel line after the kernel started.
    pub(crate) fn userspace(&self) -> Option<Instant> {
        let k = self.kernel?;
        self.other_lines.iter().copied().find(|t| *t > k)
    }

    /// The boot phases of a VM whose QEMU started at `qemu_started` and
    /// whose shell answered at `shell_ready` (milestones after the shell
    /// was ready say nothing about boot), in time order.
    pub(crate) fn boot_phases(
        &self,
        qemu_started: Instant,
        shell_ready: Option<Instant>,
    ) -> Vec<BootPhase> {
        let (mut kernel, mut userspace, mut login) =
            (self.kernel, self.userspace(), self.login_prompt);
        if let Some(ready) = shell_ready {
            for m in [&mut kernel, &mut userspace, &mut login] {
                if m.is_some_and(|t| t > ready) {
                    *m = None;
                }
            }
        }
        let end_of_boot = login.or(shell_ready);
        let mut out = Vec::new();
        let mut mark = |name: &'static str, from: Option<Instant>, to: Option<Instant>| {
            if let (Some(a), Some(b)) = (from, to) {
                out.push((name, a, b.max(a)));
            }
        };
        mark(Phase::FIRMWARE, Some(qemu_started), kernel);
        mark(Phase::KERNEL, kernel, userspace);
        mark(Phase::USERSPACE, userspace, end_of_boot);
        mark(Phase::LOGIN_PROMPT, login, login);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn kernel_lines_are_recognised() {
        assert!(is_kernel_line("[    0.000000] Linux version 6.1"));
        assert!(is_kernel_line("[ 1234.5] x"));
        assert!(!is_kernel_line("[  OK  ] Started foo"));
        assert!(!is_kernel_line("[1] foo"));
        assert!(!is_kernel_line("login:"));
    }

    #[test]
    fn timeline_marks_milestones_in_order() {
        let mut t = Timeline::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        t.line("SeaBIOS (version x)", at(100));
        t.line("GRUB loading", at(200));
        // A quiet kernel: its first printed line says it has run 0.5 s.
        t.line(
            "[    0.500000] mtrr: your CPUs had inconsistent settings",
            at(1300),
        );
        t.line("Loading, please wait...", at(1500));
        t.line("[    2.000000] late kernel line", at(2800));
        t.line("bootrig-guest login: ", at(4000));
        assert_eq!(t.first_output, Some(at(100)));
        assert_eq!(
            t.kernel,
            Some(at(800)),
            "kernel start = arrival - its timestamp"
        );
        assert_eq!(
            t.userspace(),
            Some(at(1500)),
            "firmware and GRUB lines are not userspace"
        );
        assert_eq!(t.login_prompt, Some(at(4000)));
        let phases = t.boot_phases(t0, Some(at(5000)));
        let names: Vec<&str> = phases.iter().map(|p| p.0).collect();
        assert_eq!(names, ["firmware", "kernel", "userspace", "login prompt"]);
        assert_eq!(phases[0], ("firmware", t0, at(800)));
        assert_eq!(phases[2], ("userspace", at(1500), at(4000)));
        // A login prompt seen after the shell was ready is not boot.
        let phases = t.boot_phases(t0, Some(at(3000)));
        assert_eq!(phases.last().unwrap(), &("userspace", at(1500), at(3000)));
    }

    #[test]
    fn absurd_kernel_timestamps_do_not_panic() {
        let t0 = Instant::now();
        for line in [
            "[99999999999999999999.0] forged",
            "[18446744073709551616.5] x",
            "[99999999999.000000] uptime longer than this host's",
        ] {
            let mut t = Timeline::default();
            t.line(line, t0);
            assert!(t.kernel.is_some_and(|k| k <= t0), "{line}");
        }
    }
}
