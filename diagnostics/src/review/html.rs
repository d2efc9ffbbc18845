//! Self-contained HTML pages (no network, no external assets): the run
//! report, the comparison and the history. All guest text goes through
//! [`escape::html`](super::escape), so a console that prints `<script>`
//! shows it as text.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::layout;
use crate::metadata::{Metadata, Outcome};

use super::compare::Comparison;
use super::console::{locate_failure, Console, Line, Markers};
use super::escape::html;
use super::history::History;
use super::svg::{self, BarRow};
use super::text::{duration, summary_line};
use super::{Run, RunTest};

/// Console lines shown per test at most (around the failure, else the last).
pub const MAX_CONSOLE_LINES: usize = 20_000;
/// Bytes of each text artifact shown at most (its end).
pub const MAX_ARTIFACT_BYTES: usize = 256 * 1024;

const CSS: &str = r#"
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.5em} h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}
.o-passed{color:#2a7a2a}.o-failed,.o-xpass,.o-running{color:#b52a2a;font-weight:bold}.o-skipped,.o-xfail{color:#8a6d3b}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:12px}
pre.console{background:#1e1e1e;color:#ddd;max-height:40em;overflow:auto}
pre.console .line{display:block;white-space:pre-wrap}
pre.console .ln{color:#777;display:inline-block;width:5em;text-decoration:none;user-select:none}
pre.console .line.fail{background:#7a1f1f;outline:2px solid #ff5555}
pre.console .line:target{background:#3a3a60}
pre.diff .add{color:#2a7a2a} pre.diff .del{color:#b52a2a} pre.diff .hunk{color:#2472c8}
.failure{border-left:4px solid #d9534f;padding-left:.8em;background:#fff6f6}
.slower{color:#b52a2a;font-weight:bold}
details{margin:.3em 0} summary{cursor:pointer}
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"generator\" content=\"bootrig\"><title>{}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n",
        html(title)
    )
}

fn test_id(i: usize) -> String {
    format!("t{i}")
}

/// The HTML report of `run`.
pub fn report(run: &Run) -> String {
    let mut b = String::new();
    let _ = write!(b, "<h1>bootrig report: run {}</h1>", html(run.id()));
    let t = run.totals();
    let _ = write!(
        b,
        r#"<section id="summary"><h2>Summary</h2><p>{}</p><table class="summary"><tr><th>passed</th><th>failed</th><th>skipped</th><th>xfail</th><th>xpass</th><th>flaky</th><th>did not finish</th><th>total</th><th>started</th><th>duration</th></tr><tr><td class="o-passed">{}</td><td class="o-failed">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>"#,
        html(&summary_line(run)),
        t.passed,
        t.failed,
        t.skipped,
        t.xfail,
        t.xpass,
        run.flaky(),
        t.running,
        t.total(),
        run.summary.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        duration(run.duration_ms()),
    );
    b.push_str(r#"<table class="tests"><tr><th>outcome</th><th>test</th><th>duration</th><th>why</th></tr>"#);
    for (i, t) in run.tests.iter().enumerate() {
        let o = t.outcome();
        let _ = write!(
            b,
            r##"<tr><td class="o-{o}">{}</td><td><a href="#{}">{}</a></td><td>{}</td><td>{}</td></tr>"##,
            o.tag().trim(),
            test_id(i),
            html(t.name()),
            duration(t.duration_ms()),
            if o == Outcome::Passed {
                String::new()
            } else {
                html(&t.headline().unwrap_or_default())
            }
        );
    }
    b.push_str("</table></section>\n");
    b.push_str(&failures_overview(run));
    for (i, t) in run.tests.iter().enumerate() {
        b.push_str(&test_section(i, t));
    }
    page(&format!("bootrig report: {}", run.id()), &b)
}

/// Lines of console shown around each failure in the overview.
const EXCERPT_BEFORE: usize = 6;
const EXCERPT_AFTER: usize = 3;
/// Lines of a diff (an fstests failure) shown in the overview.
const EXCERPT_DIFF_LINES: usize = 12;

/// Each failure at the top of the page: kind, headline, and the console
/// lines around the failure line (highlighted, linked to the full log).
fn failures_overview(run: &Run) -> String {
    let failed: Vec<(usize, &RunTest)> = run
        .tests
        .iter()
        .enumerate()
        .filter(|(_, t)| t.failed())
        .collect();
    if failed.is_empty() {
        return String::new();
    }
    let mut b = format!(
        "<section id=\"failures\"><h2>Failures ({})</h2>",
        failed.len()
    );
    for (i, t) in failed {
        let id = test_id(i);
        let kind = t
            .metadata
            .as_ref()
            .and_then(|m| m.failure.as_ref())
            .map_or(t.outcome().as_str(), |f| f.kind.as_str());
        let _ = write!(
            b,
            r##"<div class="failure"><h3><a href="#{id}">{}</a> — {}</h3><p>{}</p>"##,
            html(t.name()),
            html(kind),
            html(&t.headline().unwrap_or_default())
        );
        let message = t
            .metadata
            .as_ref()
            .and_then(|m| m.failure.as_ref())
            .map(|f| f.message.as_str())
            .filter(|m| looks_like_diff(m));
        if let Some(diff) = message {
            let head: Vec<&str> = diff.lines().take(EXCERPT_DIFF_LINES).collect();
            b.push_str(&diff_block(&head.join("\n")));
        } else if let Some(c) = Console::load(t) {
            let texts = c.texts();
            if let Some(at) = locate_failure(t, &texts) {
                let markers = Markers::of(t);
                let from = at.saturating_sub(EXCERPT_BEFORE);
                let to = (at + EXCERPT_AFTER + 1).min(c.lines.len());
                b.push_str("<pre class=\"console excerpt\">");
                for n in from..to {
                    let _ = write!(
                        b,
                        r##"<span class="line{}"><a class="ln" href="#{id}-L{}">{}</a>{}</span>"##,
                        if n == at { " fail" } else { "" },
                        n + 1,
                        n + 1,
                        line_html(&c.lines[n], &markers)
                    );
                }
                b.push_str("</pre>");
            }
        }
        b.push_str("</div>");
    }
    b.push_str("</section>\n");
    b
}

fn test_section(i: usize, t: &RunTest) -> String {
    let id = test_id(i);
    let o = t.outcome();
    let mut b = format!(
        r#"<section class="test" data-outcome="{o}" id="{id}"><h2><span class="o-{o}">{}</span> {} <small>({})</small></h2>"#,
        o.tag().trim(),
        html(t.name()),
        duration(t.duration_ms())
    );
    let Some(m) = &t.metadata else {
        let _ = write!(
            b,
            "<p class=\"failure\">metadata.json unreadable: {}</p></section>",
            html(t.problem.as_deref().unwrap_or(""))
        );
        return b;
    };
    let console = Console::load(t);
    let texts = console.as_ref().map(Console::texts).unwrap_or_default();
    let fail_at = locate_failure(t, &texts);
    let line_id = |n: usize| format!("{id}-L{}", n + 1);

    if let Some(f) = &m.failure {
        let _ = write!(
            b,
            r#"<div class="failure"><p><b>kind:</b> {}</p>"#,
            html(f.kind.as_str())
        );
        if let Some(s) = &f.step {
            let _ = write!(
                b,
                "<p><b>failing step:</b> step {}: {}</p>",
                s.index + 1,
                html(&s.description)
            );
        }
        if let Some(n) = fail_at {
            let _ = write!(
                b,
                r##"<p><b>failure on the console:</b> <a class="failure-link" href="#{}">line {}</a></p>"##,
                line_id(n),
                n + 1
            );
        }
        let message_is_diff = looks_like_diff(&f.message);
        if message_is_diff {
            let title = if t.name().starts_with("fstests") {
                "fstests diff"
            } else {
                "diff"
            };
            let _ = write!(b, "<p><b>{title}:</b></p>{}", diff_block(&f.message));
        } else {
            let _ = write!(b, "<pre class=\"message\">{}</pre>", html(&f.message));
        }
        if let Some(c) = &f.crash {
            let _ = write!(
                b,
                "<p><b>kernel crash:</b> {}</p><details><summary>crash report</summary><pre>{}</pre></details>",
                html(&c.title),
                html(&c.excerpt)
            );
        }
        b.push_str("</div>");
    }

    let failed_step = m
        .failure
        .as_ref()
        .and_then(|f| f.step.as_ref())
        .map(|s| crate::metadata::Phase::step_name(s.index, &s.description));
    let _ = write!(
        b,
        "<h3>timeline</h3>{}",
        svg::timeline(
            &m.phases,
            m.duration_ms().unwrap_or(0),
            failed_step.as_deref()
        )
    );

    match &console {
        Some(c) => b.push_str(&console_block(c, fail_at, &id, t.failed(), &Markers::of(t))),
        None => b.push_str("<p>no serial console log</p>"),
    }
    b.push_str(&artifacts_block(t, m));
    b.push_str(&metadata_block(t, m));
    b.push_str("</section>\n");
    b
}

fn looks_like_diff(s: &str) -> bool {
    s.lines().any(|l| l.starts_with("@@ ")) || (s.contains("\n--- ") && s.contains("\n+++ "))
}

fn diff_block(s: &str) -> String {
    let mut o = String::from("<pre class=\"diff\">");
    for l in s.lines() {
        let class = if l.starts_with("+++") || l.starts_with("---") {
            "hdr"
        } else if l.starts_with('+') {
            "add"
        } else if l.starts_with('-') {
            "del"
        } else if l.starts_with("@@") {
            "hunk"
        } else {
            "ctx"
        };
        let _ = writeln!(o, "<span class=\"{class}\">{}</span>", html(l));
    }
    o.push_str("</pre>");
    o
}

fn line_html(line: &Line, markers: &Markers) -> String {
    let mut o = String::new();
    for s in &line.spans {
        let text = markers.readable(&s.text);
        if s.style.is_plain() {
            o.push_str(&html(&text));
        } else {
            let _ = write!(
                o,
                "<span style=\"{}\">{}</span>",
                s.style.css(),
                html(&text)
            );
        }
    }
    o
}

fn console_block(
    c: &Console,
    fail_at: Option<usize>,
    id: &str,
    open: bool,
    markers: &Markers,
) -> String {
    let n = c.lines.len();
    let (from, to) = if n <= MAX_CONSOLE_LINES {
        (0, n)
    } else {
        let end = fail_at.map_or(n, |f| (f + MAX_CONSOLE_LINES / 2).min(n));
        (end.saturating_sub(MAX_CONSOLE_LINES), end)
    };
    let mut o = format!(
        "<details class=\"console\"{}><summary>serial console: {} ({} lines{})</summary><pre class=\"console\">",
        if open { " open" } else { "" },
        html(&c.source),
        n,
        if to - from < n { format!(", lines {}-{} shown", from + 1, to) } else { String::new() }
    );
    for (k, line) in c.lines[from..to].iter().enumerate() {
        let i = from + k;
        let anchor = format!("{id}-L{}", i + 1);
        let _ = write!(
            o,
            r##"<span class="line{}" id="{anchor}"><a class="ln" href="#{anchor}">{}</a>{}</span>"##,
            if Some(i) == fail_at { " fail" } else { "" },
            i + 1,
            line_html(line, markers)
        );
    }
    o.push_str("</pre></details>");
    o
}

fn artifacts_block(t: &RunTest, m: &Metadata) -> String {
    let mut o = format!("<h3>artifacts ({})</h3>", m.artifacts.len());
    for a in &m.artifacts {
        if a.path == layout::SERIAL_LOG.path || a.path == layout::SERIAL_TXT.path {
            let _ = write!(
                o,
                "<p>{} — {} bytes (shown above)</p>",
                html(&t.run_relative(&a.path)),
                a.bytes
            );
            continue;
        }
        let note = a
            .note
            .as_ref()
            .map(|n| format!(" — {}", html(n)))
            .unwrap_or_default();
        let _ = write!(
            o,
            "<details class=\"artifact\"><summary>{} — {} ({} bytes, {}: {}){note}</summary>",
            html(&a.name),
            html(&t.run_relative(&a.path)),
            a.bytes,
            html(&format!("{:?}", a.produced_by.kind).to_lowercase()),
            html(&a.produced_by.source),
        );
        match std::fs::read(t.dir.join(&a.path)) {
            Err(e) => {
                let _ = write!(o, "<p>cannot read: {}</p>", html(&e.to_string()));
            }
            Ok(bytes) if a.path.ends_with(".png") => {
                let _ = write!(
                    o,
                    "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                    html(&a.name),
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                );
            }
            Ok(bytes) => {
                let start = bytes.len().saturating_sub(MAX_ARTIFACT_BYTES);
                let text = crate::report::strip_ansi(&String::from_utf8_lossy(&bytes[start..]));
                if start > 0 {
                    let _ = write!(
                        o,
                        "<p>last {MAX_ARTIFACT_BYTES} bytes of {}</p>",
                        bytes.len()
                    );
                }
                let _ = write!(o, "<pre>{}</pre>", html(&text));
            }
        }
        o.push_str("</details>");
    }
    o
}

fn metadata_block(t: &RunTest, m: &Metadata) -> String {
    let mut o = String::from("<details class=\"metadata\"><summary>metadata</summary><table>");
    let mut row = |k: &str, v: String| {
        let _ = write!(o, "<tr><th>{}</th><td>{v}</td></tr>", html(k));
    };
    row("test", html(&m.test));
    if let Some(s) = &m.scenario {
        row("scenario", html(s));
    }
    row("started", html(&m.started_at.to_rfc3339()));
    for b in &m.boot_sources {
        row(
            &format!("boot source ({})", format!("{:?}", b.role).to_lowercase()),
            format!(
                "{}<br>{} bytes, sha256 <code>{}</code>",
                html(&b.path.display().to_string()),
                b.size,
                html(&b.sha256)
            ),
        );
    }
    if let Some(q) = &m.qemu {
        row("QEMU", html(q.version.as_deref().unwrap_or(&q.binary)));
        row("accelerator", html(q.accel.as_deref().unwrap_or("?")));
        row(
            "QEMU argv",
            format!("<pre>{}</pre>", html(&q.argv.join(" \\\n  "))),
        );
    }
    if let Some(h) = &m.host {
        row(
            "host",
            html(&format!(
                "{} (kernel {}, {} CPUs)",
                h.hostname, h.kernel_release, h.cpus
            )),
        );
    }
    if let Some(g) = &m.guest {
        row(
            "guest kernel",
            html(g.kernel_release.as_deref().unwrap_or("?")),
        );
        if let Some(p) = g.os_release.get("PRETTY_NAME") {
            row("guest OS", html(p));
        }
    }
    row("folder", html(&t.entry.folder));
    o.push_str("</table>");
    let _ = write!(
        o,
        "<details><summary>metadata.json</summary><pre>{}</pre></details></details>",
        html(&m.to_json())
    );
    o
}

/// The HTML page of a comparison, with before/after bars per image.
pub fn compare(c: &Comparison) -> String {
    let mut b = format!(
        "<h1>bootrig compare: {} → {}</h1><p>old: {}<br>new: {}</p>",
        html(&c.old.0),
        html(&c.new.0),
        html(&c.old.1.display().to_string()),
        html(&c.new.1.display().to_string())
    );
    let regressions = c.regressions().count();
    let slower = c.slower().count();
    let _ = write!(
        b,
        "<p id=\"verdict\" class=\"{}\">{regressions} test regression(s), {slower} slower phase(s)</p>",
        if c.failed() { "o-failed" } else { "o-passed" }
    );
    b.push_str("<h2>tests</h2><table class=\"changes\"><tr><th>change</th><th>test</th><th>old</th><th>new</th><th>why</th></tr>");
    let show = |x: Option<Outcome>| x.map_or("-".to_string(), |o| o.to_string());
    for t in &c.tests {
        let kind = if t.is_regression() {
            "regression"
        } else if t.is_fix() {
            "fix"
        } else if t.is_new_skip() {
            "new skip"
        } else if t.is_added() {
            "added"
        } else if t.is_removed() {
            "removed"
        } else {
            "changed"
        };
        let _ = write!(
            b,
            "<tr class=\"{}\"><td>{kind}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if t.is_regression() { "o-failed" } else { "" },
            html(&t.test),
            show(t.old),
            show(t.new),
            html(t.headline.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</table>");
    let _ = write!(
        b,
        "<h2>boot timings</h2><p>median per phase; slower when above the old median by more than {:.0} % and {} ms</p>",
        c.options.threshold * 100.0,
        c.options.min_delta_ms
    );
    let mut images: Vec<&str> = c.timings.iter().map(|t| t.image.as_str()).collect();
    images.dedup();
    for image in images {
        let rows: Vec<BarRow> = c
            .timings
            .iter()
            .filter(|t| t.image == image)
            .map(|t| BarRow {
                label: format!(
                    "{}{}",
                    t.phase,
                    t.change()
                        .map_or(String::new(), |x| format!(" ({:+.0}%)", x * 100.0))
                ),
                old: t.old_median(),
                new: t.new_median(),
                slower: t.slower,
            })
            .collect();
        let _ = write!(b, "<h3>{}</h3>{}", html(image), svg::bars(&rows));
        b.push_str("<table><tr><th>phase</th><th>old median</th><th>new median</th><th>change</th><th>samples</th></tr>");
        for t in c.timings.iter().filter(|t| t.image == image) {
            let ms = |m: Option<f64>| m.map_or("-".to_string(), |v| format!("{v:.0} ms"));
            let _ = write!(
                b,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td></tr>",
                if t.slower { "slower" } else { "" },
                html(&t.phase),
                ms(t.old_median()),
                ms(t.new_median()),
                t.change()
                    .map_or("-".into(), |x| format!("{:+.0}%", x * 100.0)),
                t.old.len(),
                t.new.len()
            );
        }
        b.push_str("</table>");
    }
    page(&format!("bootrig compare {} {}", c.old.0, c.new.0), &b)
}

/// The HTML page of a history: a trend chart and a table per image.
pub fn history(h: &History) -> String {
    let mut b = format!("<h1>bootrig history: {} run(s)</h1>", h.runs.len());
    let labels: Vec<String> = h.runs.iter().map(|r| r.id.clone()).collect();
    for image in h.images() {
        let phases = h.phases(&image);
        let series: Vec<(String, Vec<Option<f64>>)> = phases
            .iter()
            .map(|p| (p.clone(), h.series(&image, p)))
            .collect();
        let _ = write!(
            b,
            "<h2>{}</h2>{}",
            html(&image),
            svg::trend(&format!("boot phases of {image}"), &labels, &series)
        );
        b.push_str("<table><tr><th>run</th><th>started</th>");
        for p in &phases {
            let _ = write!(b, "<th>{}</th>", html(p));
        }
        b.push_str("</tr>");
        for (i, r) in h.runs.iter().enumerate() {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td>",
                html(&r.id),
                r.started_at.format("%Y-%m-%d %H:%M")
            );
            for s in &series {
                let _ = write!(
                    b,
                    "<td>{}</td>",
                    s.1[i].map_or("-".into(), |v| format!("{v:.0}"))
                );
            }
            b.push_str("</tr>");
        }
        b.push_str("</table>");
    }
    page("bootrig history", &b)
}
