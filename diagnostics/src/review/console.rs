//! A test's serial console for review: the raw `serial.log` with its SGR
//! colours kept as styled spans (every other terminal sequence removed by
//! [`crate::ansi::AnsiStripper`], so the lines are exactly those of
//! `serial.txt`), and the line where the failure shows.

use crate::ansi::AnsiStripper;
use crate::layout;
use crate::metadata::{Failure, FailureKind};
use regex::Regex;

use super::RunTest;

/// A colour of the 256-colour palette or a 24-bit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// Palette index: 0-7 normal, 8-15 bright, 16-255 the xterm cube and greys.
    Indexed(u8),
    /// Red, green, blue.
    Rgb(u8, u8, u8),
}

impl Color {
    /// The CSS colour (`#rrggbb`).
    pub fn css(self) -> String {
        let (r, g, b) = match self {
            Color::Rgb(r, g, b) => (r, g, b),
            Color::Indexed(i) => palette(i),
        };
        format!("#{r:02x}{g:02x}{b:02x}")
    }
}

/// The xterm palette.
fn palette(i: u8) -> (u8, u8, u8) {
    const BASE: [(u8, u8, u8); 16] = [
        (0x00, 0x00, 0x00),
        (0xcd, 0x31, 0x31),
        (0x0d, 0xbc, 0x79),
        (0xe5, 0xe5, 0x10),
        (0x24, 0x72, 0xc8),
        (0xbc, 0x3f, 0xbc),
        (0x11, 0xa8, 0xcd),
        (0xe5, 0xe5, 0xe5),
        (0x66, 0x66, 0x66),
        (0xf1, 0x4c, 0x4c),
        (0x23, 0xd1, 0x8b),
        (0xf5, 0xf5, 0x43),
        (0x3b, 0x8e, 0xea),
        (0xd6, 0x70, 0xd6),
        (0x29, 0xb8, 0xdb),
        (0xff, 0xff, 0xff),
    ];
    match i {
        0..=15 => BASE[i as usize],
        16..=231 => {
            let n = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + v * 40 };
            (level(n / 36), level((n / 6) % 6), level(n % 6))
        }
        _ => {
            let g = 8 + (i - 232) * 10;
            (g, g, g)
        }
    }
}

/// The SGR attributes in effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Foreground colour.
    pub fg: Option<Color>,
    /// Background colour.
    pub bg: Option<Color>,
    /// Bold.
    pub bold: bool,
    /// Faint.
    pub dim: bool,
    /// Italic.
    pub italic: bool,
    /// Underlined.
    pub underline: bool,
    /// Foreground and background swapped.
    pub inverse: bool,
}

impl Style {
    /// Whether it is the terminal's default.
    pub fn is_plain(&self) -> bool {
        *self == Style::default()
    }

    /// The CSS declarations for it (empty for the default style).
    pub fn css(&self) -> String {
        let (fg, bg) = if self.inverse {
            (
                Some(self.bg.unwrap_or(Color::Indexed(0))),
                Some(self.fg.unwrap_or(Color::Indexed(7))),
            )
        } else {
            (self.fg, self.bg)
        };
        let mut o = String::new();
        if let Some(c) = fg {
            o.push_str(&format!("color:{};", c.css()));
        }
        if let Some(c) = bg {
            o.push_str(&format!("background:{};", c.css()));
        }
        if self.bold {
            o.push_str("font-weight:bold;");
        }
        if self.dim {
            o.push_str("opacity:.7;");
        }
        if self.italic {
            o.push_str("font-style:italic;");
        }
        if self.underline {
            o.push_str("text-decoration:underline;");
        }
        o
    }

    /// Applies the SGR parameters `params` (the bytes between `ESC [` and
    /// `m`; empty means reset).
    pub fn apply(&mut self, params: &str) {
        let codes: Vec<u32> = params
            .split([';', ':'])
            .map(|p| p.parse().unwrap_or(0))
            .collect();
        let mut i = 0;
        while i < codes.len() {
            match codes[i] {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                7 => self.inverse = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                27 => self.inverse = false,
                c @ 30..=37 => self.fg = Some(Color::Indexed((c - 30) as u8)),
                39 => self.fg = None,
                c @ 40..=47 => self.bg = Some(Color::Indexed((c - 40) as u8)),
                49 => self.bg = None,
                c @ 90..=97 => self.fg = Some(Color::Indexed((c - 90 + 8) as u8)),
                c @ 100..=107 => self.bg = Some(Color::Indexed((c - 100 + 8) as u8)),
                c @ (38 | 48) => {
                    let (color, used) = match codes.get(i + 1) {
                        Some(5) => (codes.get(i + 2).map(|&n| Color::Indexed(n as u8)), 2),
                        Some(2) => match (codes.get(i + 2), codes.get(i + 3), codes.get(i + 4)) {
                            (Some(&r), Some(&g), Some(&b)) => {
                                (Some(Color::Rgb(r as u8, g as u8, b as u8)), 4)
                            }
                            _ => (None, codes.len()),
                        },
                        _ => (None, codes.len()),
                    };
                    if c == 38 {
                        self.fg = color.or(self.fg);
                    } else {
                        self.bg = color.or(self.bg);
                    }
                    i += used;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Its style.
    pub style: Style,
    /// The text (no control characters).
    pub text: String,
}

/// One console line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    /// Its styled pieces.
    pub spans: Vec<Span>,
}

impl Line {
    /// The plain text.
    pub fn text(&self) -> String {
        self.spans.iter().map(|s| s.text.as_str()).collect()
    }

    fn push(&mut self, style: Style, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.spans.last_mut() {
            Some(last) if last.style == style => last.text.push_str(text),
            _ => self.spans.push(Span {
                style,
                text: text.to_string(),
            }),
        }
    }
}

/// Splits raw console bytes into lines of styled spans. SGR sequences
/// (`ESC [ … m`) set the style; everything else goes through the
/// project's [`AnsiStripper`], so line breaks (`\r\n`, lone `\r`) and the
/// dropped sequences are exactly as in `serial.txt`.
pub fn parse(raw: &[u8]) -> Vec<Line> {
    let mut stripper = AnsiStripper::new();
    let mut style = Style::default();
    let mut lines = vec![Line::default()];
    let mut out = Vec::new();
    let mut flush =
        |bytes: &[u8], style: Style, stripper: &mut AnsiStripper, lines: &mut Vec<Line>| {
            out.clear();
            stripper.feed(bytes, &mut out);
            let text = String::from_utf8_lossy(&out);
            let mut pieces = text.split('\n');
            if let Some(first) = pieces.next() {
                lines.last_mut().expect("never empty").push(style, first);
            }
            for p in pieces {
                let mut l = Line::default();
                l.push(style, p);
                lines.push(l);
            }
        };
    let mut start = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == 0x1b && raw.get(i + 1) == Some(&b'[') {
            flush(&raw[start..i], style, &mut stripper, &mut lines);
            start = i;
            let mut j = i + 2;
            while j < raw.len() && (0x30..=0x3f).contains(&raw[j]) {
                j += 1;
            }
            if !stripper.in_sequence() && raw.get(j) == Some(&b'm') {
                style.apply(&String::from_utf8_lossy(&raw[i + 2..j]));
                i = j + 1;
                start = i;
                continue;
            }
        }
        i += 1;
    }
    flush(&raw[start..], style, &mut stripper, &mut lines);
    if lines.len() > 1 && lines.last().is_some_and(|l| l.spans.is_empty()) {
        lines.pop();
    }
    lines
}

/// A test's console, ready to show.
#[derive(Debug, Clone)]
pub struct Console {
    /// Its lines.
    pub lines: Vec<Line>,
    /// The file it was read from, relative to the run folder.
    pub source: String,
}

impl Console {
    /// The console of `test`'s first VM: `serial.log` (colours kept), else
    /// `serial.txt`; `None` when neither is there.
    pub fn load(test: &RunTest) -> Option<Console> {
        for spec in [layout::SERIAL_LOG, layout::SERIAL_TXT] {
            if let Ok(raw) = std::fs::read(test.dir.join(spec.path)) {
                return Some(Console {
                    lines: parse(&raw),
                    source: test.run_relative(spec.path),
                });
            }
        }
        None
    }

    /// The plain text of every line.
    pub fn texts(&self) -> Vec<String> {
        self.lines.iter().map(Line::text).collect()
    }
}

/// The index of the console line where the failure of `test` shows (see
/// [`failure_line`]; its transcript, `transcript.log`, numbers the
/// session's commands). `None` when it did not fail.
pub fn locate_failure(test: &RunTest, lines: &[String]) -> Option<usize> {
    let failure = test.metadata.as_ref()?.failure.as_ref()?;
    let transcript = std::fs::read(test.dir.join(layout::TRANSCRIPT.path))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    failure_line(lines, failure, transcript.as_deref())
}

/// Shows the session's console markers readably: `__BRB<token>_3__`
/// becomes `[bootrig #3] $ <command>` (the command from the transcript),
/// `__BRE<token>_3_1_<nonce>__` becomes `[bootrig #3] exit 1`, the private
/// prompt `__BRP<token>__ ` becomes `[bootrig] $ `, the `EXIT` trap's
/// `__BRX<token>_3_0__` `[bootrig #3] the shell exited (0)` and a resync
/// answer `__BRS…__` `[bootrig] shell answered`. The CAN byte the
/// session prints before a marker goes with it.
#[derive(Debug, Clone, Default)]
pub struct Markers {
    commands: Vec<String>,
}

impl Markers {
    /// With the commands of `test`'s `transcript.log` (numbers only
    /// without it).
    pub fn of(test: &RunTest) -> Markers {
        let transcript = std::fs::read(test.dir.join(layout::TRANSCRIPT.path))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Markers {
            commands: transcript_commands(&transcript)
                .into_iter()
                .map(str::to_string)
                .collect(),
        }
    }

    /// `text` with its markers made readable (see
    /// [`crate::markers::readable`]).
    pub fn readable(&self, text: &str) -> String {
        crate::markers::readable(text, |n| {
            let i = usize::try_from(n).ok()?.checked_sub(1)?;
            self.commands.get(i).cloned()
        })
    }
}

/// The commands of a session transcript, in the order they ran: the
/// session numbers them from 1 in its console markers.
fn transcript_commands(transcript: &str) -> Vec<&str> {
    let header = Regex::new(r"^\[\s*[0-9.]+\] \$ (.*)$").expect("valid regex");
    transcript
        .lines()
        .filter_map(|l| {
            header
                .captures(l)
                .and_then(|c| c.get(1))
                .map(|m| m.as_str())
        })
        .collect()
}

/// The index of the console line where `failure` shows:
/// - the first line of its kernel crash report;
/// - for a command that failed (or timed out) in a step: the session's
///   end marker of that command, `__BRE<token>_<n>_<exit>_<nonce>__`, printed
///   right after its output (or its begin marker, `__BRB<token>_<n>__`,
///   for a command that never ended). `n` is the command's number, found
///   in `transcript` (the session turns terminal echo off, so the command
///   itself is not on the console, and the postmortem's own commands
///   follow it);
/// - else the last line containing the failing step's command or
///   `expect` pattern;
/// - else the last non-empty line (a boot timeout, a dead QEMU).
pub fn failure_line(
    lines: &[String],
    failure: &Failure,
    transcript: Option<&str>,
) -> Option<usize> {
    let last_containing = |needle: &str| {
        let needle = needle.trim();
        if needle.len() < 2 {
            return None;
        }
        lines.iter().rposition(|l| l.contains(needle))
    };
    if let Some(c) = &failure.crash {
        // The line that says what happened (`Kernel panic - not syncing:
        // sysrq triggered crash` for the title `kernel panic: sysrq
        // triggered crash`), else the report's first line.
        let what = c.title.split_once(": ").map_or("", |(_, what)| what);
        if what.len() >= 8 {
            if let Some(i) = c
                .excerpt
                .lines()
                .find(|l| l.contains(what))
                .and_then(last_containing)
            {
                return Some(i);
            }
        }
        let first = c.excerpt.lines().find(|l| !l.trim().is_empty());
        if let Some(i) = first.and_then(last_containing) {
            return Some(i);
        }
        if let Some(i) = last_containing(&c.title) {
            return Some(i);
        }
    }
    let step = failure.step.as_ref().map(|step| {
        step.description
            .split_once(": ")
            .map_or(step.description.as_str(), |(_, rest)| rest)
    });
    let marker = match failure.kind {
        FailureKind::Command => Some("E"),
        FailureKind::Timeout => Some("B"),
        _ => None,
    };
    if let (Some(marker), Some(cmd), Some(t)) = (marker, step, transcript) {
        let first = cmd.lines().next().unwrap_or(cmd);
        if let Some(k) = transcript_commands(t).iter().rposition(|c| *c == first) {
            let re = Regex::new(&format!(
                r"__BR{marker}[0-9A-Za-z]+_{}(_\d+[qcx]?(_[0-9a-f]+)?)?__",
                k + 1
            ))
            .expect("valid regex");
            if let Some(i) = lines.iter().rposition(|l| re.is_match(l)) {
                return Some(i);
            }
        }
    }
    if let Some(what) = step {
        // A long command is echoed across lines: its first line is enough.
        if let Some(i) = last_containing(what.lines().next().unwrap_or(what)) {
            return Some(i);
        }
    }
    lines.iter().rposition(|l| !l.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgr_becomes_spans_and_other_sequences_go() {
        let lines = parse(b"\x1b[1;32mbusybox\x1b[0m:/# ls\r\n\x1b[?2004h\x1b[31mred \x1b[38;5;208morange\x1b[39m plain\r\nlast");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].text(), "busybox:/# ls");
        assert_eq!(lines[0].spans[0].style.fg, Some(Color::Indexed(2)));
        assert!(lines[0].spans[0].style.bold);
        assert!(lines[0].spans[1].style.is_plain());
        assert_eq!(lines[1].text(), "red orange plain");
        assert_eq!(lines[1].spans[1].style.fg, Some(Color::Indexed(208)));
        assert_eq!(lines[1].spans[2].style.fg, None);
        assert_eq!(lines[2].text(), "last");
        assert_eq!(Color::Indexed(1).css(), "#cd3131");
        assert_eq!(Color::Rgb(1, 2, 255).css(), "#0102ff");
    }

    #[test]
    fn lines_match_the_stripped_text() {
        let raw = b"a\r\r\nb\rc\x1b[1mX\x1b[0m\r\n\x1b]0;title\x07d\x1b[Ke\n";
        let stripped = String::from_utf8(crate::ansi::strip(raw)).unwrap();
        let texts: Vec<String> = parse(raw).iter().map(Line::text).collect();
        assert_eq!(texts, stripped.lines().collect::<Vec<_>>());
    }

    #[test]
    fn failure_lines() {
        let lines: Vec<String> = [
            "boot",
            "# echo hi",
            "hi",
            "# false",
            "[ 1.0] Kernel panic - x",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let f = Failure::new(FailureKind::Command, "exit 1").with_step(1, "succeed: false");
        assert_eq!(failure_line(&lines, &f, None), Some(3));
        let crash = crate::crash::CrashReport {
            title: "kernel panic".into(),
            excerpt: "[ 1.0] Kernel panic - x\nmore".into(),
            fatal: true,
        };
        assert_eq!(failure_line(&lines, &f.with_crash(&crash), None), Some(4));
        let f = Failure::new(FailureKind::BootTimeout, "no prompt");
        assert_eq!(failure_line(&lines, &f, None), Some(4));

        // Session markers: the failing command's number is in the transcript.
        let lines: Vec<String> = [
            "__BRBab12_1__",
            "ok",
            "__BREab12_1_0__",
            "__BRP__ ",
            "__BRBab12_2__",
            "err",
            "__BREab12_2_1__",
            "__BRBab12_3__",
            "__BREab12_3_0__",
            "tail",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let transcript = "[    0.1] --- attach ---\n[    8.1] $ id -u\n              | 0\n            exit 0 (0.03s)\n[    8.2] $ test -e /x\n            exit 1 (0.02s)\n[    8.3] $ dmesg | tail\n            exit 0\n";
        let f = Failure::new(FailureKind::Command, "exit 1").with_step(1, "succeed: test -e /x");
        assert_eq!(failure_line(&lines, &f, Some(transcript)), Some(6));
        let f =
            Failure::new(FailureKind::Timeout, "did not end").with_step(1, "succeed: test -e /x");
        assert_eq!(failure_line(&lines, &f, Some(transcript)), Some(4));
        let m = Markers {
            commands: vec!["id -u".into(), "test -e /x".into()],
        };
        assert_eq!(m.readable("__BRBab12_2__"), "[bootrig #2] $ test -e /x");
        assert_eq!(m.readable("__BRBab12_9__"), "[bootrig #9] begin");
        assert_eq!(m.readable("__BREab12_2_1__"), "[bootrig #2] exit 1");
        // Today's markers: a CAN byte before, the mode and a nonce after.
        assert_eq!(
            m.readable("\x18__BREab12_2_1q_0a1b2c3d4e__"),
            "[bootrig #2] exit 1"
        );
        assert_eq!(
            m.readable("__BRXab12_3_0__"),
            "[bootrig #3] the shell exited (0)"
        );
        assert_eq!(m.readable("__BRSab12_1_tok__"), "[bootrig] shell answered");
        assert_eq!(
            m.readable("__BRPab12__ [ 5.1] sysrq"),
            "[bootrig] $ [ 5.1] sysrq"
        );
        assert_eq!(m.readable("plain __BR"), "plain __BR");
        // Without a transcript: the last non-empty line.
        assert_eq!(failure_line(&lines, &f, None), Some(9));
    }
}
