//! Inline SVG charts for the HTML pages: a boot timeline, before/after
//! bars and a trend chart. Labels go through [`html`] like all text.

use std::fmt::Write as _;

use crate::metadata::Phase;

use super::escape::html;

const WIDTH: f64 = 900.0;
const LABEL: f64 = 260.0;
const ROW: f64 = 18.0;

/// The fill colour of a phase: boot phases blue, steps green, the failed
/// step red, other phases grey.
fn phase_color(name: &str, failed: bool) -> &'static str {
    if failed {
        "#d9534f"
    } else if name.starts_with("step ") {
        "#5cb85c"
    } else if super::timings::BOOT_PHASES.contains(&name) || name == Phase::SHELL_READY {
        "#337ab7"
    } else {
        "#999999"
    }
}

/// A Gantt chart of `phases` (a row each) over `total_ms`; the phase
/// called `failed` is drawn red.
pub(crate) fn timeline(phases: &[Phase], total_ms: u64, failed: Option<&str>) -> String {
    let total = phases
        .iter()
        .map(|p| p.start_ms + p.duration_ms.unwrap_or(0))
        .max()
        .unwrap_or(0)
        .max(total_ms)
        .max(1) as f64;
    let scale = (WIDTH - LABEL - 10.0) / total;
    let height = ROW * phases.len() as f64 + 22.0;
    let mut o = format!(
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img"><title>boot timeline</title>"#
    );
    for (i, p) in phases.iter().enumerate() {
        let y = ROW * i as f64;
        let d = p.duration_ms.unwrap_or(0);
        let x = LABEL + p.start_ms as f64 * scale;
        let w = (d as f64 * scale).max(1.0);
        let is_failed = failed == Some(p.name.as_str());
        let name = html(&p.name);
        // The duration right of the bar; near the edge inside its end
        // (white), or left of a short bar.
        let (label_x, anchor, ink) = if x + w + 60.0 < WIDTH {
            (x + w + 3.0, "start", "#222")
        } else if w > 60.0 {
            (x + w - 3.0, "end", "#fff")
        } else {
            (x - 3.0, "end", "#222")
        };
        let _ = write!(
            o,
            r#"<g class="phase{}"><title>{name}: {d} ms, from {} ms</title><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><rect x="{x:.1}" y="{}" width="{w:.1}" height="{}" fill="{}"/><text x="{label_x:.1}" y="{}" font-size="10" text-anchor="{anchor}" fill="{ink}">{d} ms</text></g>"#,
            if is_failed { " failed" } else { "" },
            p.start_ms,
            LABEL - 6.0,
            y + 13.0,
            html(&truncate(&p.name, 40)),
            y + 3.0,
            ROW - 5.0,
            phase_color(&p.name, is_failed),
            y + 13.0,
        );
    }
    let axis_y = ROW * phases.len() as f64 + 14.0;
    let _ = write!(
        o,
        r#"<text x="{LABEL}" y="{axis_y}" font-size="10">0</text><text x="{}" y="{axis_y}" font-size="10" text-anchor="end">{:.1} s</text></svg>"#,
        WIDTH - 10.0,
        total / 1000.0
    );
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One row of a before/after chart.
pub(crate) struct BarRow {
    pub(crate) label: String,
    pub(crate) old: Option<f64>,
    pub(crate) new: Option<f64>,
    pub(crate) slower: bool,
}

/// Before (grey) and after (blue, red when slower) bars per row.
pub(crate) fn bars(rows: &[BarRow]) -> String {
    let max = rows
        .iter()
        .flat_map(|r| [r.old, r.new])
        .flatten()
        .fold(1.0_f64, f64::max);
    let scale = (WIDTH - LABEL - 90.0) / max;
    let rh = 2.0 * ROW;
    let height = rh * rows.len() as f64 + 24.0;
    let mut o = format!(
        r#"<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img"><title>before and after</title>"#
    );
    for (i, r) in rows.iter().enumerate() {
        let y = rh * i as f64;
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            LABEL - 6.0,
            y + 17.0,
            html(&r.label)
        );
        for (j, (v, color, who)) in [
            (r.old, "#aaaaaa", "before"),
            (r.new, if r.slower { "#d9534f" } else { "#337ab7" }, "after"),
        ]
        .into_iter()
        .enumerate()
        {
            let yy = y + 2.0 + j as f64 * (ROW - 2.0);
            if let Some(v) = v {
                let w = (v * scale).max(1.0);
                let _ = write!(
                    o,
                    r#"<rect class="{who}" x="{LABEL}" y="{yy}" width="{w:.1}" height="{}" fill="{color}"><title>{who}: {v:.0} ms</title></rect><text x="{:.1}" y="{}" font-size="10">{who} {v:.0} ms</text>"#,
                    ROW - 5.0,
                    LABEL + w + 4.0,
                    yy + 10.0
                );
            }
        }
    }
    let _ = write!(
        o,
        r##"<g font-size="10"><rect x="{LABEL}" y="{}" width="10" height="10" fill="#aaaaaa"/><text x="{}" y="{}">before</text><rect x="{}" y="{}" width="10" height="10" fill="#337ab7"/><text x="{}" y="{}">after</text><rect x="{}" y="{}" width="10" height="10" fill="#d9534f"/><text x="{}" y="{}">after, slower</text></g></svg>"##,
        height - 14.0,
        LABEL + 14.0,
        height - 5.0,
        LABEL + 70.0,
        height - 14.0,
        LABEL + 84.0,
        height - 5.0,
        LABEL + 130.0,
        height - 14.0,
        LABEL + 144.0,
        height - 5.0
    );
    o
}

const SERIES_COLORS: [&str; 8] = [
    "#337ab7", "#d9534f", "#5cb85c", "#f0ad4e", "#9b59b6", "#1abc9c", "#34495e", "#e67e22",
];

/// A line chart: x = run (`labels`), y = ms, one line per series.
pub(crate) fn trend(
    title: &str,
    labels: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> String {
    let (w, h, left, bottom, top) = (WIDTH, 320.0, 60.0, 40.0, 20.0);
    let max = series
        .iter()
        .flat_map(|s| s.1.iter().flatten().copied())
        .fold(1.0_f64, f64::max)
        * 1.1;
    let n = labels.len().max(2) as f64 - 1.0;
    let plot_w = w - left - 170.0;
    let plot_h = h - bottom - top;
    let x = |i: usize| left + plot_w * i as f64 / n;
    let y = |v: f64| top + plot_h * (1.0 - v / max);
    let mut o = format!(
        r#"<svg class="trend" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{}</title>"#,
        html(title)
    );
    let _ = write!(
        o,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#666"/><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#666"/><text x="{}" y="{}" font-size="10" text-anchor="end">{:.0} ms</text><text x="{}" y="{}" font-size="10" text-anchor="end">0</text>"##,
        top + plot_h,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        left - 4.0,
        top + 4.0,
        max,
        left - 4.0,
        top + plot_h
    );
    for (i, l) in labels.iter().enumerate() {
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{}</text>"#,
            x(i),
            top + plot_h + 14.0,
            html(&truncate(l, 16))
        );
    }
    for (k, (name, values)) in series.iter().enumerate() {
        let color = SERIES_COLORS[k % SERIES_COLORS.len()];
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let _ = write!(
            o,
            r#"<polyline class="series" fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            pts.join(" "),
            html(name)
        );
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    o,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{}: {v:.0} ms</title></circle>"#,
                    x(i),
                    y(*v),
                    html(name)
                );
            }
        }
        let ly = top + 14.0 * k as f64;
        let _ = write!(
            o,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{color}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            left + plot_w + 15.0,
            ly,
            left + plot_w + 29.0,
            ly + 9.0,
            html(name)
        );
    }
    o.push_str("</svg>");
    o
}
