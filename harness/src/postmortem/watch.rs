//! The console observer of a test's VMs: kernel crash reports and boot
//! milestones, as lines arrive.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bootrig_diagnostics::crash::{CrashConfig, CrashDetector, CrashReport};

use crate::console::ConsoleObserver;
use crate::postmortem::timeline::Timeline;

/// Watches console lines for kernel crash reports and boot milestones.
#[derive(Debug)]
pub struct CrashWatch {
    detector: CrashDetector,
    timeline: Arc<Mutex<Timeline>>,
    /// First lines (with their kernel timestamps) of the reports seen, so
    /// a replay of the kernel log (`dmesg` in a test or a collector) does
    /// not report the same crash twice.
    seen: HashSet<String>,
}

impl CrashWatch {
    pub(crate) fn new(config: CrashConfig, timeline: Arc<Mutex<Timeline>>) -> CrashWatch {
        CrashWatch {
            detector: CrashDetector::new(config),
            timeline,
            seen: HashSet::new(),
        }
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
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .line(&text, now);
        let report = self.detector.feed_line(&text, now);
        self.first_time(report)
    }

    fn on_tick(&mut self, now: Instant) -> Option<CrashReport> {
        let report = self.detector.poll(now);
        self.first_time(report)
    }

    fn on_close(&mut self) -> Option<CrashReport> {
        let report = self.detector.flush();
        self.first_time(report)
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
}
