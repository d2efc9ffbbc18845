//! The terminal report of a run: the summary, every test on one line,
//! then each failure with its step, console lines around the failure, key
//! diagnostics and artifact paths.

use std::fmt::Write as _;

use crate::layout;
use crate::metadata::Outcome;

use super::console::{locate_failure, Console, Markers};
use super::{Run, RunTest};

/// Console lines shown before the failure line.
pub const CONSOLE_BEFORE: usize = 12;
/// Console lines shown after the failure line.
pub const CONSOLE_AFTER: usize = 8;
/// Last lines shown of each diagnostic.
pub const DIAGNOSTIC_LINES: usize = 6;

/// `1.5s`, `2m03s`, or `-` when unknown.
pub fn duration(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        Some(ms) if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        Some(ms) => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// The summary line: `3 passed, 1 failed, 0 skipped, 0 xfail, 0 xpass, 0 flaky`.
pub fn summary_line(run: &Run) -> String {
    format!("{}, {} flaky", run.totals(), run.flaky())
}

/// The whole terminal report of `run`.
pub fn render(run: &Run) -> String {
    let mut o = String::new();
    let s = &run.summary;
    let _ = writeln!(
        o,
        "bootrig report: run {} in {}",
        run.id(),
        run.dir.display()
    );
    let _ = writeln!(
        o,
        "started {}, {}",
        s.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        match s.ended_at {
            Some(_) => format!("took {}", duration(run.duration_ms())),
            None => "did not end".into(),
        }
    );
    let _ = writeln!(o, "{} ({} tests)", summary_line(run), run.tests.len());
    let total_test_ms: u64 = run.tests.iter().filter_map(RunTest::duration_ms).sum();
    let _ = writeln!(o, "time in tests: {}", duration(Some(total_test_ms)));
    o.push('\n');
    for t in &run.tests {
        let mut line = format!(
            "{} {} ({})",
            t.outcome().tag(),
            t.name(),
            duration(t.duration_ms())
        );
        if t.flaky() {
            line.push_str("  [flaky]");
        }
        if t.outcome() != Outcome::Passed {
            if let Some(h) = t.headline() {
                line.push_str(&format!("  {h}"));
            }
        }
        let _ = writeln!(o, "{line}");
    }
    let failures: Vec<&RunTest> = run.failures().collect();
    if failures.is_empty() {
        let _ = writeln!(o, "\nno failures");
        return o;
    }
    let _ = writeln!(o, "\n{} failure(s):", failures.len());
    for t in failures {
        o.push('\n');
        o.push_str(&failure(t));
    }
    o
}

/// The report of one failed test.
pub fn failure(t: &RunTest) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "==== {} {} ====", t.outcome().tag().trim(), t.name());
    let Some(m) = &t.metadata else {
        let _ = writeln!(
            o,
            "metadata.json unreadable: {}",
            t.problem.as_deref().unwrap_or("?")
        );
        return o;
    };
    match &m.failure {
        Some(f) => {
            let _ = writeln!(o, "kind: {}", f.kind);
            let _ = writeln!(o, "title: {}", t.headline().unwrap_or_default());
            if let Some(s) = &f.step {
                let _ = writeln!(o, "failing step: step {}: {}", s.index + 1, s.description);
            }
            let _ = writeln!(o, "message:");
            for l in f.message.lines() {
                let _ = writeln!(o, "  {l}");
            }
            if let Some(c) = &f.crash {
                let _ = writeln!(o, "kernel crash: {}", c.title);
            }
        }
        None if m.outcome == Outcome::Running => {
            let _ = writeln!(o, "kind: did not finish (the harness stopped mid-test)");
        }
        None => {
            let _ = writeln!(
                o,
                "kind: {}",
                t.entry.summary.as_deref().unwrap_or("unexpected pass")
            );
        }
    }

    match Console::load(t) {
        Some(console) => {
            let texts = console.texts();
            let at = locate_failure(t, &texts)
                .or_else(|| texts.iter().rposition(|l| !l.trim().is_empty()));
            if let Some(at) = at {
                let from = at.saturating_sub(CONSOLE_BEFORE);
                let to = (at + CONSOLE_AFTER + 1).min(texts.len());
                let _ = writeln!(
                    o,
                    "console ({}, lines {}-{} of {}, failure at line {}):",
                    console.source,
                    from + 1,
                    to,
                    texts.len(),
                    at + 1
                );
                let markers = Markers::of(t);
                for (i, l) in texts[from..to].iter().enumerate() {
                    let n = from + i;
                    let mark = if n == at { '>' } else { ' ' };
                    let _ = writeln!(o, " {mark}{:>6} | {}", n + 1, markers.readable(l));
                }
            } else {
                let _ = writeln!(o, "console ({}): empty", console.source);
            }
        }
        None => {
            let _ = writeln!(o, "console: no serial.log or serial.txt");
        }
    }

    // Key diagnostics: kernel reports and the collectors' outputs.
    let diags: Vec<_> = m
        .artifacts
        .iter()
        .filter(|a| {
            a.path == layout::KERNEL_REPORTS.path
                || a.path.split('/').any(|c| c == layout::DIAGNOSTICS_DIR)
        })
        .collect();
    let mut empty = Vec::new();
    if !diags.is_empty() {
        let _ = writeln!(o, "diagnostics:");
    }
    for a in diags {
        let text = std::fs::read(t.dir.join(&a.path))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            empty.push(match &a.note {
                Some(n) => format!("{} ({n})", a.name),
                None => a.name.clone(),
            });
            continue;
        }
        let shown = &lines[lines.len().saturating_sub(DIAGNOSTIC_LINES)..];
        let note = a
            .note
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  -- {} [{}]{note}: last {} of {} lines",
            a.name,
            t.run_relative(&a.path),
            shown.len(),
            lines.len()
        );
        for l in shown {
            let _ = writeln!(o, "     {l}");
        }
    }
    if !empty.is_empty() {
        let _ = writeln!(o, "  empty: {}", empty.join(", "));
    }
    let _ = writeln!(o, "artifacts (relative to the run folder):");
    let _ = writeln!(o, "  {}", t.run_relative(layout::METADATA.path));
    for a in &m.artifacts {
        let _ = writeln!(o, "  {} ({} bytes)", t.run_relative(&a.path), a.bytes);
    }
    o
}
