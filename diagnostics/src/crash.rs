//! Kernel crash detection on console text.
//!
//! [`CrashDetector`] is fed console lines as they arrive. When a line starts
//! a kernel report (panic, BUG, Oops, KASAN, WARNING, lockup, ...; see the
//! single table `PATTERNS`), it collects the following lines until the
//! report's end marker (`---[ end trace ... ]---`, `---[ end Kernel panic
//! ... ]---`, the `=====` line closing a KASAN/UBSAN/KFENCE block, or
//! `</TASK>` for reports that have no end marker), and returns a
//! [`CrashReport`] with a syzkaller-style title (`<kind> in <function>`).
//! A report whose end never arrives is finalised by [`CrashDetector::poll`]
//! once the console has been quiet for [`CrashConfig::quiet`], and at the
//! latest [`CrashConfig::max_wait`] after its first line.
//!
//! Patterns match at the start of the kernel message, after an optional
//! `[   12.345678] ` timestamp and `[    T1] ` / `[  C0] ` caller id, so
//! ordinary output that merely contains `BUG` or `panic` does not trigger.
//! A userspace program printing a line that *starts* exactly like a kernel
//! report (`Kernel panic - not syncing: ...`) cannot be told apart here;
//! the harness's console watch skips such lines inside a command's output
//! once the kernel has shown it timestamps its own lines
//! ([`has_kernel_timestamp`]).

use std::time::{Duration, Instant};

use regex::{Regex, RegexSet};

mod prefilter;

/// A kernel crash report cut out of the console stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// One-line title in the style of syzkaller, e.g. `BUG: unable to handle page fault in ext4_map_blocks`.
    pub title: String,
    /// The report text, from its first line to its end marker.
    pub excerpt: String,
    /// Whether this report fails the test (a WARNING may be configured to only be recorded).
    pub fatal: bool,
}

/// Crash detection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashConfig {
    /// Make non-fatal reports (WARNINGs, lockdep, KCSAN) fatal too;
    /// otherwise they are returned with `fatal: false`, to be recorded only.
    pub warnings_fatal: bool,
    /// Finalise a report without its end marker after this long without a
    /// new console line.
    pub quiet: Duration,
    /// Finalise a report without its end marker at the latest this long
    /// after its first line.
    pub max_wait: Duration,
    /// Finalise (and mark truncated) a report longer than this many lines.
    pub max_lines: usize,
}

impl Default for CrashConfig {
    fn default() -> CrashConfig {
        CrashConfig {
            warnings_fatal: false,
            quiet: Duration::from_millis(500),
            max_wait: Duration::from_millis(1500),
            max_lines: 400,
        }
    }
}

/// Where a title's function name comes from.
#[derive(Debug, Clone, Copy)]
enum Func {
    /// A capture group of the start line.
    Capture(usize),
    /// The kernel-mode `RIP: 0010:func+0x../0x..` line (or `IP:`, arm64 `pc :`).
    Rip,
    /// The first meaningful frame of the first `Call Trace:`.
    Trace,
}

/// Which frames are not meaningful for the title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Reporting machinery (dump_stack, panic, __warn, kasan_*, ...).
    Common,
    /// The same plus scheduler, sleeping and locking primitives (for
    /// hung tasks, stalls and lockups).
    Sched,
}

/// What ends a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `---[ end trace ... ]---` or `---[ end Kernel panic ... ]---`. Lines
    /// that look like the start of another report are part of this one
    /// (an `Oops:` after `BUG: unable to handle ...`, a panic inside a
    /// WARNING with panic_on_warn).
    Trace,
    /// A line of `=====` (KASAN, UBSAN, KFENCE, KCSAN), or as for `Trace`.
    Separator,
    /// `</TASK>` closing the first stack trace, or as for `Trace`; the start
    /// of another report ends this one.
    Task,
    /// Only the timeouts (or `---[ end trace`); the start of another report
    /// ends this one.
    Quiet,
}

/// One kind of kernel report.
#[derive(Debug)]
struct Pattern {
    /// Short identifier.
    name: &'static str,
    /// Regex on the kernel message (timestamp and caller id removed).
    start: &'static str,
    /// Title template: `{1}`.. are capture groups of `start`, `{access}` is
    /// ` Read`/` Write` from a KASAN access line, `{func}` the function.
    title: &'static str,
    /// Title when `{func}` cannot be determined.
    bare: &'static str,
    /// Where `{func}` comes from, in order of preference.
    func: &'static [Func],
    /// Frames to skip when taking `{func}` from the call trace.
    skip: Skip,
    /// Whether the report fails the test by default (others only when
    /// [`CrashConfig::warnings_fatal`]).
    fatal: bool,
    /// What ends it.
    end: End,
}

const SYM: &str = r"[A-Za-z_][A-Za-z0-9_.]*";

/// Every report bootrig recognises. Order matters: the first match wins.
const PATTERNS: &[Pattern] = &[
    Pattern {
        name: "kernel-panic",
        start: r"^Kernel panic - not syncing: ?(.*?)\s*$",
        title: "kernel panic: {1}",
        bare: "kernel panic: {1}",
        func: &[],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        name: "kasan",
        start: r"^BUG: KASAN: ([A-Za-z0-9_-]+) in ([A-Za-z_][A-Za-z0-9_.]*)",
        title: "KASAN: {1}{access} in {func}",
        bare: "KASAN: {1}{access}",
        func: &[Func::Capture(2)],
        skip: Skip::Common,
        fatal: true,
        end: End::Separator,
    },
    Pattern {
        name: "kfence",
        start: r"^BUG: KFENCE: ([a-z-]+(?: [a-z-]+)?) in ([A-Za-z_][A-Za-z0-9_.]*)",
        title: "KFENCE: {1} in {func}",
        bare: "KFENCE: {1}",
        func: &[Func::Capture(2)],
        skip: Skip::Common,
        fatal: true,
        end: End::Separator,
    },
    Pattern {
        name: "kcsan",
        start: r"^BUG: KCSAN: ([a-z-]+) in (.+?)\s*$",
        title: "KCSAN: {1} in {2}",
        bare: "KCSAN: {1} in {2}",
        func: &[],
        skip: Skip::Common,
        fatal: false,
        end: End::Separator,
    },
    Pattern {
        name: "ubsan",
        start: r"^UBSAN: ([A-Za-z0-9_-]+) in (\S+)",
        title: "UBSAN: {1} in {func}",
        bare: "UBSAN: {1} in {2}",
        func: &[Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Separator,
    },
    Pattern {
        name: "null-pointer-dereference",
        start: r"^BUG: (?:unable to handle )?kernel NULL pointer dereference",
        title: "BUG: kernel NULL pointer dereference in {func}",
        bare: "BUG: kernel NULL pointer dereference",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        name: "page-fault",
        start: r"^BUG: unable to handle (page fault|kernel paging request)",
        title: "BUG: unable to handle {1} in {func}",
        bare: "BUG: unable to handle {1}",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        // arm64 (and arm) kernel faults, followed by `Internal error: Oops`.
        name: "arm64-fault",
        start: r"^Unable to handle kernel (NULL pointer dereference|paging request) at virtual address",
        title: "Unable to handle kernel {1} in {func}",
        bare: "Unable to handle kernel {1}",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        name: "soft-lockup",
        start: r"^(?:(?:NMI )?watchdog: )?BUG: soft lockup - CPU#\d+ stuck for",
        title: "BUG: soft lockup in {func}",
        bare: "BUG: soft lockup",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Sched,
        fatal: true,
        end: End::Task,
    },
    Pattern {
        name: "workqueue-lockup",
        start: r"^BUG: workqueue lockup\b",
        title: "BUG: workqueue lockup",
        bare: "BUG: workqueue lockup",
        func: &[],
        skip: Skip::Common,
        fatal: true,
        end: End::Quiet,
    },
    Pattern {
        name: "bug",
        start: r"^BUG: ([A-Za-z][^:,]*?)(?: at \S+| in process .*)?(?:[:,].*)?$",
        title: "BUG: {1} in {func}",
        bare: "BUG: {1}",
        func: &[Func::Trace],
        skip: Skip::Sched,
        fatal: true,
        end: End::Task,
    },
    Pattern {
        name: "kernel-bug",
        start: r"^kernel BUG at (\S+?)!?$",
        title: "kernel BUG in {func}",
        bare: "kernel BUG at {1}!",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        name: "general-protection-fault",
        start: r"^(?:Oops: )?general protection fault\b",
        title: "general protection fault in {func}",
        bare: "general protection fault",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        name: "invalid-opcode",
        start: r"^(?:Oops: )?invalid opcode: [0-9a-f]+ \[#\d+\]",
        title: "invalid opcode in {func}",
        bare: "invalid opcode",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        name: "oops",
        start: r"^(?:Internal error: )?Oops(?: - BUG)?: (?:Oops: )?[0-9a-fx]+ \[#\d+\]",
        title: "Oops in {func}",
        bare: "Oops",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Common,
        fatal: true,
        end: End::Trace,
    },
    Pattern {
        name: "warning",
        start: r"^WARNING: (?:CPU: \d+ PID: \d+ )?at (\S+)(?: ([A-Za-z_][A-Za-z0-9_.]*)\+0x)?",
        title: "WARNING in {func}",
        bare: "WARNING at {1}",
        func: &[Func::Capture(2), Func::Rip],
        skip: Skip::Common,
        fatal: false,
        end: End::Trace,
    },
    Pattern {
        // Format of Linux 6.17+: `WARNING: fs/x.c:12 at func+0x1/0x2, CPU#0: comm/1`.
        name: "warning-6.17",
        start: r"^WARNING: (\S+:\d+) at ([A-Za-z_][A-Za-z0-9_.]*)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[\S+\])?, CPU#\d+",
        title: "WARNING in {func}",
        bare: "WARNING at {1}",
        func: &[Func::Capture(2), Func::Rip],
        skip: Skip::Common,
        fatal: false,
        end: End::Trace,
    },
    Pattern {
        name: "lockdep",
        start: r"^WARNING: possible (circular|recursive) locking dependency detected",
        title: "possible deadlock in {func}",
        bare: "WARNING: possible {1} locking dependency detected",
        func: &[Func::Trace],
        skip: Skip::Sched,
        fatal: false,
        end: End::Task,
    },
    Pattern {
        name: "hung-task",
        start: r"^INFO: task (.+):(\d+) blocked for more than \d+ seconds",
        title: "INFO: task hung in {func}",
        bare: "INFO: task hung",
        func: &[Func::Trace],
        skip: Skip::Sched,
        fatal: true,
        end: End::Task,
    },
    Pattern {
        name: "rcu-stall",
        start: r"^(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stalls? on",
        title: "INFO: rcu detected stall in {func}",
        bare: "INFO: rcu detected stall",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Sched,
        fatal: true,
        end: End::Task,
    },
    Pattern {
        name: "hard-lockup",
        start: r"^(?:NMI watchdog: )?Watchdog detected hard LOCKUP on cpu \d+",
        title: "BUG: hard lockup in {func}",
        bare: "BUG: hard lockup",
        func: &[Func::Rip, Func::Trace],
        skip: Skip::Sched,
        fatal: true,
        end: End::Task,
    },
];

/// Frames that are reporting machinery, never the culprit (exact names).
const SKIP_EXACT: &[&str] = &[
    "panic",
    "vpanic",
    "nmi_panic",
    "die",
    "__die",
    "oops_end",
    "do_trap",
    "do_error_trap",
    "report_bug",
    "handle_bug",
    "show_stack",
    "show_regs",
    "show_trace_log_lvl",
    "end_report",
    "check_panic_on_warn",
    "might_fault",
    "warn_bogus_irq_restore",
];

/// Frames that are reporting machinery, never the culprit (prefixes).
const SKIP_PREFIX: &[&str] = &[
    "dump_stack",
    "__dump_stack",
    "__warn",
    "warn_slowpath",
    "exc_invalid_op",
    "asm_exc_",
    "asm_sysvec_",
    "asm_common_interrupt",
    "sysvec_",
    "__sysvec_",
    "kasan_",
    "__kasan_",
    "print_report",
    "print_address_description",
    "ubsan_",
    "__ubsan_",
    "kfence_",
    "__kfence_",
    "kcsan_",
    "__kcsan_",
    "__might_resched",
    "__might_sleep",
    "___might_sleep",
    "__might_fault",
    "lockdep_",
    "print_circular",
    "check_noncircular",
    "check_prev_add",
    "check_prevs_add",
    "validate_chain",
    "__lock_acquire",
    "lock_acquire",
    "lock_release",
    "__sanitizer_",
    "__asan_",
    "nmi_cpu_backtrace",
    "nmi_trigger_cpumask_backtrace",
    "arch_trigger_cpumask_backtrace",
    "watchdog_",
    "__hrtimer_run_queues",
    "hrtimer_interrupt",
];

/// Additional frames skipped for hung tasks, stalls and lockups: the
/// scheduler and sleeping/locking primitives.
const SKIP_SCHED_EXACT: &[&str] = &["schedule", "down", "down_interruptible", "down_killable"];

/// Additional prefixes skipped for hung tasks, stalls and lockups.
const SKIP_SCHED_PREFIX: &[&str] = &[
    "__schedule",
    "schedule_",
    "preempt_schedule",
    "io_schedule",
    "__cond_resched",
    "wait_for_completion",
    "__wait_for_common",
    "wait_for_common",
    "do_wait_for_common",
    "__mutex_lock",
    "mutex_lock",
    "rwsem_down_",
    "__down",
    "down_read",
    "down_write",
    "percpu_down",
    "__percpu_down",
    "percpu_rwsem_wait",
    "__wait_on_bit",
    "out_of_line_wait_on_bit",
    "bit_wait",
    "folio_wait",
    "__folio_lock",
    "__lock_page",
    "wait_on_page",
    "__flush_work",
    "flush_work",
    "__cancel_work",
    "cancel_work_sync",
    "cancel_delayed_work_sync",
    "__wait_rcu_gp",
    "synchronize_rcu",
    "rt_mutex",
    "_raw_spin_lock",
    "queued_spin_lock",
    "native_queued_spin_lock",
    "do_raw_spin_lock",
    "rcu_",
];

/// A report being collected.
#[derive(Debug)]
struct Open {
    pattern: usize,
    captures: Vec<Option<String>>,
    lines: Vec<String>,
    started: Instant,
    last: Instant,
    fatal: bool,
    truncated: bool,
}

/// Finds kernel crash reports in console lines. See the [module docs](self).
#[derive(Debug)]
pub struct CrashDetector {
    config: CrashConfig,
    /// Shared by every detector of the process, and so are the regexes'
    /// lazy DFA caches: a clone of a `Regex` starts with cold caches.
    re: &'static Compiled,
    open: Option<Open>,
    /// The previous line, if it can introduce a report (`cut here`, `=====`).
    preamble: Option<String>,
}

/// The longest line kept in an excerpt, in bytes.
const MAX_LINE: usize = 1024;

/// The detector's regular expressions, compiled once.
#[derive(Debug)]
struct Compiled {
    /// Rejects most lines before `starts` (`None`: every line goes to it).
    filter: Option<prefilter::StartFilter>,
    starts: RegexSet,
    start_res: Vec<Regex>,
    rip: Regex,
    frame: Regex,
    access: Regex,
}

impl Compiled {
    fn new() -> Compiled {
        Compiled {
            filter: prefilter::StartFilter::new(PATTERNS.iter().map(|p| p.start)),
            starts: RegexSet::new(PATTERNS.iter().map(|p| p.start)).expect("valid patterns"),
            start_res: PATTERNS
                .iter()
                .map(|p| Regex::new(p.start).expect("valid pattern"))
                .collect(),
            rip: Regex::new(&format!(
                r"^(?:RIP: 0010:|IP: |pc : )(?:\[<[0-9a-f]+>\]\s*)*({SYM})\+0x[0-9a-f]+/0x[0-9a-f]+"
            ))
            .expect("valid regex"),
            frame: Regex::new(&format!(
                r"^\s*(\?\s+)?(?:\[<[0-9a-f]+>\]\s*)?(\?\s+)?({SYM})\+0x[0-9a-f]+/0x[0-9a-f]+"
            ))
            .expect("valid regex"),
            access: Regex::new(r"^(Read|Write) of size \d+ at addr").expect("valid regex"),
        }
    }
}

impl CrashDetector {
    /// A detector with `config`.
    pub fn new(config: CrashConfig) -> CrashDetector {
        // The patterns are compiled once per process: every console (and
        // every offline scan) makes a detector.
        static COMPILED: std::sync::OnceLock<Compiled> = std::sync::OnceLock::new();
        CrashDetector {
            config,
            re: COMPILED.get_or_init(Compiled::new),
            open: None,
            preamble: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CrashConfig {
        &self.config
    }

    /// Whether a report is being collected (its end has not arrived yet).
    pub fn in_report(&self) -> bool {
        self.open.is_some()
    }

    /// Feeds one console line (without or with its line terminator),
    /// received at `now`. Returns a report when this line completes one,
    /// or when it shows that the previous report is over.
    pub fn feed_line(&mut self, line: &str, now: Instant) -> Option<CrashReport> {
        let raw = line.trim_end_matches(['\n', '\r']);
        let msg = kernel_message(raw);
        let mut done = self.poll(now);
        let start = self.match_start(msg);
        if let Some(open) = self.open.as_mut() {
            let end = PATTERNS[open.pattern].end;
            if let Some(p) = start {
                if !matches!(end, End::Trace | End::Separator) {
                    // A new report ends one that has no end marker.
                    done = self.finish();
                    self.begin(p, msg, raw, now);
                    return done;
                }
                // Part of this report (Oops after BUG, panic in a WARNING).
                open.fatal |= PATTERNS[p].fatal;
            }
            push_line(&mut open.lines, raw);
            open.last = now;
            if is_end(end, msg) {
                return self.finish();
            }
            if open.lines.len() >= self.config.max_lines {
                open.truncated = true;
                return self.finish();
            }
            return done;
        }
        if let Some(p) = start {
            self.begin(p, msg, raw, now);
        } else {
            self.preamble = is_preamble(msg).then(|| raw.to_string());
        }
        done
    }

    /// Finalises the report being collected if its end marker is overdue:
    /// no line for [`CrashConfig::quiet`], or [`CrashConfig::max_wait`]
    /// since its first line. Call it regularly (e.g. every 50 ms).
    pub fn poll(&mut self, now: Instant) -> Option<CrashReport> {
        let open = self.open.as_ref()?;
        let due = now.saturating_duration_since(open.last) >= self.config.quiet
            || now.saturating_duration_since(open.started) >= self.config.max_wait;
        if due {
            self.finish()
        } else {
            None
        }
    }

    /// Finalises the report being collected, if any (e.g. when the console
    /// closes).
    pub fn flush(&mut self) -> Option<CrashReport> {
        self.finish()
    }

    /// All reports in `text` (a whole console log, e.g. `serial.log`),
    /// ignoring timing: reports end at their end marker, the next report or
    /// the end of the text.
    pub fn scan(&mut self, text: &str) -> Vec<CrashReport> {
        let now = Instant::now();
        let mut out: Vec<CrashReport> = text
            .lines()
            .filter_map(|l| self.feed_line(l, now))
            .collect();
        out.extend(self.flush());
        out
    }

    fn match_start(&self, msg: &str) -> Option<usize> {
        if self.re.filter.as_ref().is_some_and(|f| !f.may_match(msg)) {
            return None;
        }
        self.re.starts.matches(msg).iter().next()
    }

    fn begin(&mut self, pattern: usize, msg: &str, raw: &str, now: Instant) {
        let caps = self.re.start_res[pattern].captures(msg);
        let captures = caps
            .map(|c| {
                c.iter()
                    .map(|m| m.map(|m| m.as_str().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut lines = Vec::new();
        if let Some(p) = self.preamble.take() {
            lines.push(p);
        }
        push_line(&mut lines, raw);
        self.open = Some(Open {
            pattern,
            captures,
            lines,
            started: now,
            last: now,
            fatal: PATTERNS[pattern].fatal,
            truncated: false,
        });
    }

    fn finish(&mut self) -> Option<CrashReport> {
        let open = self.open.take()?;
        self.preamble = None;
        let p = &PATTERNS[open.pattern];
        let messages: Vec<&str> = open.lines.iter().map(|l| kernel_message(l)).collect();
        let func = p.func.iter().find_map(|f| match *f {
            Func::Capture(i) => open
                .captures
                .get(i)
                .cloned()
                .flatten()
                .map(|s| base_symbol(&s).to_string()),
            Func::Rip => messages
                .iter()
                .find_map(|m| self.re.rip.captures(m))
                .map(|c| base_symbol(&c[1]).to_string()),
            Func::Trace => self.trace_function(&messages, p.skip),
        });
        let access = messages
            .iter()
            .find_map(|m| self.re.access.captures(m))
            .map(|c| format!(" {}", &c[1]))
            .unwrap_or_default();
        let template = if func.is_some() || !p.title.contains("{func}") {
            p.title
        } else {
            p.bare
        };
        let mut title = template
            .replace("{access}", &access)
            .replace("{func}", func.as_deref().unwrap_or(""));
        for (i, c) in open.captures.iter().enumerate().skip(1) {
            title = title.replace(&format!("{{{i}}}"), c.as_deref().unwrap_or(""));
        }
        let mut excerpt = open.lines.join("\n");
        if open.truncated {
            excerpt.push_str("\n[... report truncated by bootrig ...]");
        }
        Some(CrashReport {
            title: title.trim().to_string(),
            excerpt,
            fatal: open.fatal || self.config.warnings_fatal,
        })
    }

    /// The first meaningful frame of the first call trace; frames in
    /// `<IRQ>`/`<NMI>`/`<SOFTIRQ>` sections only if there is no other.
    fn trace_function(&self, messages: &[&str], skip: Skip) -> Option<String> {
        let mut in_trace = false;
        let mut in_irq = false;
        let mut irq_candidate: Option<String> = None;
        for m in messages {
            let t = m.trim();
            if !in_trace {
                in_trace = t.eq_ignore_ascii_case("call trace:");
                continue;
            }
            match t {
                "<IRQ>" | "<NMI>" | "<SOFTIRQ>" => in_irq = true,
                "</IRQ>" | "</NMI>" | "</SOFTIRQ>" | "<TASK>" => in_irq = false,
                "</TASK>" => break,
                _ => {}
            }
            if t.starts_with("RIP: 0033:") {
                break;
            }
            let Some(c) = self.re.frame.captures(m) else {
                continue;
            };
            if c.get(1).is_some() || c.get(2).is_some() {
                continue; // `?` frames are unreliable
            }
            let name = base_symbol(&c[3]);
            if skipped(name, skip) {
                continue;
            }
            if !in_irq {
                return Some(name.to_string());
            }
            irq_candidate.get_or_insert_with(|| name.to_string());
        }
        irq_candidate
    }
}

impl Default for CrashDetector {
    fn default() -> CrashDetector {
        CrashDetector::new(CrashConfig::default())
    }
}

/// Whether `line` starts with a kernel timestamp (`[   12.345678] `), as
/// a kernel built with `CONFIG_PRINTK_TIME` puts on every console line.
pub fn has_kernel_timestamp(line: &str) -> bool {
    bracketed(line, is_timestamp).is_some()
}

/// The kernel timestamp a console line starts with (`[   12.345678] ...`),
/// as the time since boot. `None` when the line has none, or when its
/// number is no possible duration (a guest may print
/// `[99999999999999999999.0]`): [`has_kernel_timestamp`] still says the
/// line looks like the kernel's.
pub fn kernel_timestamp(line: &str) -> Option<std::time::Duration> {
    let rest = line.strip_prefix('[')?;
    let inner = rest[..rest.find(']')?].trim_start();
    if !is_timestamp(inner) {
        return None;
    }
    std::time::Duration::try_from_secs_f64(inner.parse().ok()?).ok()
}

fn is_timestamp(inner: &str) -> bool {
    let (a, b) = inner.split_once('.').unwrap_or(("", ""));
    !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
}

/// The kernel message of a console line: without `[   12.345678]`
/// timestamp and `[    T1]`/`[  C0]` caller id.
fn kernel_message(line: &str) -> &str {
    let mut s = line;
    if let Some(rest) = bracketed(s, is_timestamp) {
        s = rest;
    }
    if let Some(rest) = bracketed(s, |inner| {
        inner.len() >= 2
            && matches!(inner.as_bytes()[0], b'T' | b'C')
            && inner[1..].bytes().all(|c| c.is_ascii_digit())
    }) {
        s = rest;
    }
    s
}

/// `s` without a leading `[ inner]` (and one following space) if `inner`,
/// left-trimmed, passes `ok`.
fn bracketed(s: &str, ok: impl Fn(&str) -> bool) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find(']')?;
    if !ok(rest[..close].trim_start()) {
        return None;
    }
    let after = &rest[close + 1..];
    Some(after.strip_prefix(' ').unwrap_or(after))
}

fn is_preamble(msg: &str) -> bool {
    is_separator(msg) || msg.starts_with("------------[ cut here ]") || msg.starts_with("sysrq: ")
}

fn is_separator(msg: &str) -> bool {
    let t = msg.trim_end();
    t.len() >= 20 && t.bytes().all(|b| b == b'=')
}

fn is_end(end: End, msg: &str) -> bool {
    let t = msg.trim();
    if t.starts_with("---[ end trace") || t.starts_with("---[ end Kernel panic") {
        return true;
    }
    match end {
        End::Separator => is_separator(t),
        End::Task => t == "</TASK>",
        End::Trace | End::Quiet => false,
    }
}

fn push_line(lines: &mut Vec<String>, raw: &str) {
    let mut cut = raw.len().min(MAX_LINE);
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    lines.push(raw[..cut].to_string());
}

/// `func` without compiler suffixes (`.cold`, `.isra.0`, `.constprop.0`).
fn base_symbol(func: &str) -> &str {
    func.split('.').next().unwrap_or(func)
}

fn skipped(name: &str, skip: Skip) -> bool {
    let hit = |exact: &[&str], prefix: &[&str]| {
        exact.contains(&name) || prefix.iter().any(|p| name.starts_with(p))
    };
    hit(SKIP_EXACT, SKIP_PREFIX)
        || (skip == Skip::Sched && hit(SKIP_SCHED_EXACT, SKIP_SCHED_PREFIX))
}

/// Names of the recognised report kinds, in matching order (for docs and
/// diagnostics).
pub fn pattern_names() -> impl Iterator<Item = &'static str> {
    PATTERNS.iter().map(|p| p.name)
}

#[cfg(test)]
#[path = "crash_tests.rs"]
mod tests;
