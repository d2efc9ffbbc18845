//! The console observer of a test's VMs: kernel crash reports and boot
//! milestones, as lines arrive.
//!
//! Two rules keep its verdicts honest:
//!
//! - The end of a test judges what the detector still holds: a report
//!   whose end marker has not come yet, or that is still inside the quiet
//!   window, is flushed through [`CrashWatch::flush_held`] (the postmortem
//!   keeps a handle for that) instead of being dropped with the VM.
//! - A command's own output is not a kernel report. Once the kernel has
//!   shown that it timestamps its lines (`[   1.234567] `), a line without
//!   a timestamp between a session's begin and end markers was written by
//!   the command (fstests prints `BUG:` on purpose), and is not fed to the
//!   detector. A kernel without timestamps, or a line outside a command,
//!   is judged as before: without a second channel (issue 11) bootrig
//!   cannot tell who wrote it.
//!
//! The observer runs on the console's reader thread: a panic in it would
//! stop console reading and turn into a boot timeout. Each line is
//! therefore handled under `catch_unwind`; a panic turns crash detection
//! off for that console (said once on stderr) and reading goes on.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bootrig_diagnostics::crash::{has_kernel_timestamp, CrashConfig, CrashDetector, CrashReport};
use bootrig_diagnostics::markers::{self, Marker};

use crate::console::ConsoleObserver;
use crate::postmortem::timeline::Timeline;

/// Watches console lines for kernel crash reports and boot milestones.
///
/// Clones share one detector: the console's reader thread feeds it, the
/// postmortem flushes it when the test ends.
#[derive(Debug, Clone)]
pub struct CrashWatch {
    state: Arc<Mutex<WatchState>>,
    timeline: Arc<Mutex<Timeline>>,
}

#[derive(Debug)]
struct WatchState {
    detector: CrashDetector,
    /// First lines (with their kernel timestamps) of the reports seen, so
    /// a replay of the kernel log (`dmesg` in a test or a collector) does
    /// not report the same crash twice.
    seen: HashSet<String>,
    /// Between a session's begin and end markers.
    in_command: bool,
    /// The kernel has printed timestamped lines on this console.
    kernel_timestamps: bool,
    /// Why detection stopped (a panic in the detector), if it did.
    broken: Option<String>,
}

impl CrashWatch {
    pub(crate) fn new(config: CrashConfig, timeline: Arc<Mutex<Timeline>>) -> CrashWatch {
        CrashWatch {
            state: Arc::new(Mutex::new(WatchState {
                detector: CrashDetector::new(config),
                seen: HashSet::new(),
                in_command: false,
                kernel_timestamps: false,
                broken: None,
            })),
            timeline,
        }
    }

    fn state(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finalises the report the detector is still collecting, if any: the
    /// end of a test judges it instead of dropping it.
    pub(crate) fn flush_held(&self) -> Option<CrashReport> {
        self.state().guarded(|st| {
            let report = st.detector.flush();
            st.first_time(report)
        })
    }
}

/// `__BRB<token>_<n>__`: a session's command begins.
fn is_begin_marker(line: &str) -> bool {
    markers::line(line).is_some_and(|f| matches!(f.marker, Marker::Begin(_)))
}

/// `__BRE<token>_<n>_<status>[mode]_<nonce>__`: a session's command ended.
fn is_end_marker(line: &str) -> bool {
    markers::line(line).is_some_and(|f| matches!(f.marker, Marker::End(..)))
}

/// The line from a kernel timestamp in its middle (`[    4.702243] `) on,
/// or the whole line. The kernel does not start a new line when the
/// console's last output did not end one: a report that begins while the
/// shell shows its prompt arrives as `<prompt>[    4.702243] Kernel panic
/// ...`, and must still be seen as starting a report.
fn kernel_part(line: &str) -> &str {
    if has_kernel_timestamp(line) {
        return line;
    }
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(i) = line[from..].find('[').map(|i| from + i) {
        if i > 0 && is_printk_time(&bytes[i..]) {
            return &line[i..];
        }
        from = i + 1;
    }
    line
}

/// Whether `b` starts with printk's own time format: `[`, spaces, digits,
/// `.`, six digits, `] `.
fn is_printk_time(b: &[u8]) -> bool {
    let mut i = 1;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    let digits = b[i.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    i += digits;
    digits > 0
        && b.get(i) == Some(&b'.')
        && b.len() >= i + 9
        && b[i + 1..i + 7].iter().all(u8::is_ascii_digit)
        && &b[i + 7..i + 9] == b"] "
}

impl WatchState {
    /// Runs `f` unless detection is off; a panic in it turns detection
    /// off instead of killing the reader thread.
    fn guarded(
        &mut self,
        f: impl FnOnce(&mut WatchState) -> Option<CrashReport>,
    ) -> Option<CrashReport> {
        if self.broken.is_some() {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(report) => report,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                eprintln!(
                    "bootrig: kernel crash detection failed ({why}); it is off for this console, \
                     which is still read"
                );
                self.broken = Some(why);
                None
            }
        }
    }

    fn line(&mut self, text: &str, now: Instant) -> Option<CrashReport> {
        let text = kernel_part(text);
        let stamped = has_kernel_timestamp(text);
        self.kernel_timestamps |= stamped;
        if is_begin_marker(text) {
            self.in_command = true;
        } else if is_end_marker(text) {
            self.in_command = false;
        }
        let report = if self.in_command && self.kernel_timestamps && !stamped {
            // The command's own output: only time passes for the detector.
            self.detector.poll(now)
        } else {
            self.detector.feed_line(text, now)
        };
        self.first_time(report)
    }

    /// Passes a report on unless the same report (same first line, kernel
    /// timestamp included) was already seen: `dmesg` prints old reports
    /// again, with their original timestamps.
    fn first_time(&mut self, report: Option<CrashReport>) -> Option<CrashReport> {
        let report = report?;
        let key = report
            .excerpt
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        self.seen.insert(key).then_some(report)
    }
}

impl ConsoleObserver for CrashWatch {
    fn on_line(&mut self, line: &[u8], now: Instant) -> Option<CrashReport> {
        let text = String::from_utf8_lossy(line);
        {
            let mut timeline = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
            // A timeline that cannot take a line loses a milestone, not
            // the console.
            let _ = catch_unwind(AssertUnwindSafe(|| timeline.line(&text, now)));
        }
        self.state().guarded(|st| st.line(&text, now))
    }

    fn on_tick(&mut self, now: Instant) -> Option<CrashReport> {
        self.state().guarded(|st| {
            let report = st.detector.poll(now);
            st.first_time(report)
        })
    }

    fn on_close(&mut self) -> Option<CrashReport> {
        self.flush_held()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_report_is_not_reported_again() {
        let mut w = CrashWatch::new(CrashConfig::default(), Arc::default());
        let report = [
            "[   12.000001] WARNING: CPU: 0 PID: 1 at fs/ext4/inode.c:100 ext4_foo+0x1/0x2",
            "[   12.000002] Call Trace:",
            "[   12.000003]  <TASK>",
            "[   12.000004]  ext4_foo+0x1/0x2",
            "[   12.000005]  </TASK>",
            "[   12.000006] ---[ end trace 0000000000000000 ]---",
        ];
        let t0 = Instant::now();
        let feed = |w: &mut CrashWatch| -> Vec<CrashReport> {
            let mut out: Vec<CrashReport> = report
                .iter()
                .filter_map(|l| w.on_line(l.as_bytes(), t0))
                .collect();
            out.extend(w.on_close());
            out
        };
        let first = feed(&mut w);
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(first[0].title.contains("ext4_foo"), "{}", first[0].title);
        // `dmesg` prints the same lines again: no second report.
        assert!(feed(&mut w).is_empty());
    }

    fn lines(w: &mut CrashWatch, lines: &[&str], t: Instant) -> Vec<CrashReport> {
        lines
            .iter()
            .filter_map(|l| w.on_line(l.as_bytes(), t))
            .collect()
    }

    #[test]
    fn the_end_of_a_test_flushes_a_held_report() {
        let mut w = CrashWatch::new(CrashConfig::default(), Arc::default());
        let t0 = Instant::now();
        // A WARNING whose end marker has not come, inside the quiet window.
        let got = lines(
            &mut w,
            &[
                "[   12.000001] WARNING: CPU: 0 PID: 1 at fs/x.c:1 late_warning+0x1/0x2",
                "[   12.000002] Modules linked in:",
            ],
            t0,
        );
        assert!(got.is_empty());
        assert!(w.on_tick(t0).is_none(), "still within the quiet window");
        let held = w.flush_held().expect("the held report");
        assert!(held.title.contains("late_warning"), "{}", held.title);
        assert!(w.flush_held().is_none(), "flushed once");
        assert!(w.on_close().is_none());
    }

    #[test]
    fn command_output_is_not_a_kernel_report_once_the_kernel_timestamps() {
        let t0 = Instant::now();
        let userspace = [
            "__BRBa1b2c3_4__",
            "Kernel panic - not syncing: printed by a test on purpose",
            "BUG: also printed by the test",
            "__BREa1b2c3_4_0__",
        ];
        // The kernel has shown timestamps: the command's lines are output.
        let mut w = CrashWatch::new(CrashConfig::default(), Arc::default());
        lines(&mut w, &["[    0.000000] Linux version 6.1"], t0);
        let mut got = lines(&mut w, &userspace, t0);
        got.extend(w.flush_held());
        assert!(got.is_empty(), "{got:?}");
        // A real panic during a command carries a timestamp: still caught.
        let got = lines(
            &mut w,
            &[
                "__BRBa1b2c3_5__",
                "[   30.000000] Kernel panic - not syncing: sysrq triggered crash",
                "[   30.000001] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---",
            ],
            t0,
        );
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].fatal);
        // The same text outside a command cannot be attributed: reported.
        let mut got = lines(&mut w, &["__BREa1b2c3_5_0__", userspace[1]], t0);
        got.extend(w.flush_held());
        assert_eq!(got.len(), 1, "{got:?}");
        // A kernel that never timestamps: nothing can be attributed.
        let mut w = CrashWatch::new(CrashConfig::default(), Arc::default());
        let mut got = lines(&mut w, &userspace, t0);
        got.extend(w.flush_held());
        assert!(!got.is_empty());
    }

    #[test]
    fn a_report_that_starts_after_the_prompt_is_seen() {
        let mut w = CrashWatch::new(CrashConfig::default(), Arc::default());
        let t0 = Instant::now();
        let got = lines(
            &mut w,
            &["__BRPf9b69c312201__ [    4.702243] Kernel panic - not syncing: late"],
            t0,
        );
        let mut got: Vec<CrashReport> = got.into_iter().chain(w.flush_held()).collect();
        assert_eq!(got.len(), 1, "{got:?}");
        let r = got.remove(0);
        assert!(r.fatal && r.title.contains("late"), "{r:?}");
        assert_eq!(kernel_part("x [1.5] BUG: y"), "x [1.5] BUG: y");
        assert_eq!(kernel_part("[ 1.000000] a"), "[ 1.000000] a");
        assert_eq!(kernel_part("ab[   12.345678] c"), "[   12.345678] c");
    }

    #[test]
    fn markers_are_recognised_exactly() {
        assert!(is_begin_marker("__BRBa1b2c3_4__"));
        assert!(is_end_marker("__BREa1b2c3_4_127__"));
        assert!(is_end_marker("\x18__BREa1b2c3_4_0q_0a1b2c3d4e__"));
        assert!(is_begin_marker("\x18__BRBa1b2c3_4__"));
        assert!(!is_begin_marker("__BREa1b2c3_4_0__"));
        assert!(!is_end_marker("__BRBa1b2c3_4__"));
        assert!(!is_begin_marker("x __BRBa1b2c3_4__"));
        assert!(!is_begin_marker("__BRB a_4__"));
    }
}
