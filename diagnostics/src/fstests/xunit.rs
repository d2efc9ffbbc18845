//! fstests' `result.xml` (`./check -R xunit`), read leniently.
//!
//! fstests writes this file with `echo`, not an XML library, so real files
//! break the rules in known ways, all accepted here:
//!
//! - `<failure message="...">` is not XML-escaped (`_err_msg` goes in as
//!   is): a raw `<`, `&` or `"` inside an attribute value. A pre-pass
//!   ([`repair`]) escapes them before quick-xml reads the text; a value
//!   ends at the quote that is followed by another attribute or the end of
//!   the tag.
//! - older files put the testsuite in a default namespace
//!   (`xmlns="https://git.kernel.org/..."`); elements are matched by their
//!   local name.
//! - a run that crashed leaves the file check rewrites before each test:
//!   the testsuite's `time=""` (the run is incomplete), and maybe a file cut
//!   short; the testcases read so far are kept.
//! - expunged tests have no testcase; the `tests=` counts are not trusted.
//! - `-L` reruns (and `-i` iterations) repeat a testcase name: each is kept
//!   as its own [`XunitCase`], in order.
//! - `<kernel-log>` (the test's `.dmesg`) is not standard JUnit; it is kept.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// What one `<testcase>` says about its test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseStatus {
    /// No `<failure>`, `<error>` or `<skipped>`.
    Passed,
    /// `<failure message="...">` (or `<error>`): the message.
    Failed(Option<String>),
    /// `<skipped message="...">`: fstests' notrun reason, when given.
    Skipped(Option<String>),
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XunitCase {
    /// The test, `generic/001`.
    pub name: String,
    /// `xfstests.<section>` (`xfstests.global` without sections).
    pub classname: Option<String>,
    /// `time=` in seconds; `None` when empty or absent.
    pub time: Option<Duration>,
    /// Passed, failed or skipped, with the message.
    pub status: CaseStatus,
    /// `<system-out>`: the test's `.full` (only for failures).
    pub system_out: Option<String>,
    /// `<system-err>`: the diff of the golden output against `.out.bad`.
    pub system_err: Option<String>,
    /// `<kernel-log>`: the test's `.dmesg`.
    pub kernel_log: Option<String>,
}

/// The contents of one `result.xml` (one section).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XunitReport {
    /// The testsuite's `time=` in seconds; `None` when empty (a run that
    /// did not finish: check rewrites the file before each test with an
    /// empty time).
    pub time: Option<u64>,
    /// `<property name= value=>` pairs (`SECTION`, `FSTYP`, `KERNEL`, ...).
    pub properties: BTreeMap<String, String>,
    /// Every testcase, in file order (a name repeats for reruns).
    pub cases: Vec<XunitCase>,
    /// The file ended before `</testsuite>` (cut short by a crash); what
    /// was read before is kept.
    pub truncated: bool,
    /// The testsuite's `start_timestamp=`: when `check` started (the same
    /// for every section of a run), when it is a valid RFC 3339 time.
    pub start_timestamp: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// The testsuite's `timestamp=`: when the section's last test started.
    pub timestamp: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl XunitReport {
    /// The run finished: the testsuite has a time and the file is whole.
    pub fn complete(&self) -> bool {
        self.time.is_some() && !self.truncated
    }

    /// The section, from the `SECTION` property (`None` for fstests'
    /// `-no-sections-`), else from the classname (`xfstests.<section>`,
    /// `global` meaning none).
    pub fn section(&self) -> Option<String> {
        let from_class = || {
            self.cases
                .iter()
                .find_map(|c| c.classname.as_deref()?.strip_prefix("xfstests."))
                .map(str::to_string)
        };
        let name = self
            .properties
            .get("SECTION")
            .cloned()
            .or_else(from_class)?;
        (name != "-no-sections-" && name != "global" && !name.is_empty()).then_some(name)
    }
}

/// Parses the text of a `result.xml` leniently (see the module doc).
///
/// Fails only when nothing can be read: not XML at all, or no
/// `<testsuite>`. The error says where (line and column of the repaired
/// text, which keeps the original's lines).
pub fn parse_xunit(text: &str) -> Result<XunitReport, String> {
    let repaired = repair(text);
    let mut reader = Reader::from_str(&repaired);
    {
        let config = reader.config_mut();
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.trim_text(false);
    }
    let mut report = XunitReport::default();
    let mut seen_suite = false;
    let mut closed_suite = false;
    let mut case: Option<XunitCase> = None;
    // The element whose text is being collected (system-out, ...) and it.
    let mut capture: Option<(Vec<u8>, String)> = None;
    loop {
        let event = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                if seen_suite {
                    report.truncated = true;
                    break;
                }
                let at = line_col(&repaired, reader.error_position() as usize);
                return Err(format!("not readable as XML at {at}: {e}"));
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let local = e.local_name().as_ref().to_vec();
                match local.as_slice() {
                    b"testsuite" => {
                        seen_suite = true;
                        report.time = attr(e, "time")
                            .and_then(|t| parse_secs(&t))
                            .map(|d| d.as_secs());
                        let time = |name| {
                            attr(e, name)
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                        };
                        report.start_timestamp = time("start_timestamp");
                        report.timestamp = time("timestamp");
                    }
                    b"property" => {
                        if let (Some(n), Some(v)) = (attr(e, "name"), attr(e, "value")) {
                            report.properties.insert(n, v);
                        }
                    }
                    b"testcase" => {
                        if let Some(c) = case.take() {
                            report.cases.push(c);
                        }
                        let c = XunitCase {
                            name: attr(e, "name").unwrap_or_default(),
                            classname: attr(e, "classname"),
                            time: attr(e, "time").and_then(|t| parse_secs(&t)),
                            status: CaseStatus::Passed,
                            system_out: None,
                            system_err: None,
                            kernel_log: None,
                        };
                        if empty {
                            report.cases.push(c);
                        } else {
                            case = Some(c);
                        }
                    }
                    b"failure" | b"error" => {
                        if let Some(c) = case.as_mut() {
                            c.status = CaseStatus::Failed(attr(e, "message"));
                        }
                    }
                    b"skipped" => {
                        if let Some(c) = case.as_mut() {
                            if !matches!(c.status, CaseStatus::Failed(_)) {
                                c.status = CaseStatus::Skipped(attr(e, "message"));
                            }
                        }
                    }
                    b"system-out" | b"system-err" | b"kernel-log" if !empty => {
                        capture = Some((local, String::new()));
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((_, buf)) = capture.as_mut() {
                    buf.push_str(&t.decode().unwrap_or(Cow::Borrowed("")));
                }
            }
            Event::CData(t) => {
                if let Some((_, buf)) = capture.as_mut() {
                    buf.push_str(&t.decode().unwrap_or(Cow::Borrowed("")));
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, buf)) = capture.as_mut() {
                    match r.resolve_char_ref() {
                        Ok(Some(ch)) => buf.push(ch),
                        _ => {
                            let name = r.decode().unwrap_or(Cow::Borrowed(""));
                            match quick_xml::escape::resolve_predefined_entity(&name) {
                                Some(s) => buf.push_str(s),
                                None => {
                                    buf.push('&');
                                    buf.push_str(&name);
                                    buf.push(';');
                                }
                            }
                        }
                    }
                }
            }
            Event::End(e) => {
                let local = e.local_name().as_ref().to_vec();
                if let Some((name, text)) = capture.take() {
                    if name == local {
                        if let Some(c) = case.as_mut() {
                            let text = trim_block(&text);
                            match name.as_slice() {
                                b"system-out" => c.system_out = Some(text),
                                b"system-err" => c.system_err = Some(text),
                                _ => c.kernel_log = Some(text),
                            }
                        }
                    } else {
                        capture = Some((name, text));
                    }
                }
                match local.as_slice() {
                    b"testcase" => {
                        if let Some(c) = case.take() {
                            report.cases.push(c);
                        }
                    }
                    b"testsuite" => closed_suite = true,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(c) = case.take() {
        report.cases.push(c);
        report.truncated = true;
    }
    if !seen_suite {
        return Err("no <testsuite> element".to_string());
    }
    if !closed_suite {
        report.truncated = true;
    }
    report.cases.retain(|c| !c.name.is_empty());
    Ok(report)
}

/// The unescaped value of attribute `name` (matched by local name).
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        if a.key.local_name().as_ref() != name.as_bytes() {
            return None;
        }
        Some(match a.unescape_value() {
            Ok(v) => v.into_owned(),
            Err(_) => String::from_utf8_lossy(&a.value).into_owned(),
        })
    })
}

/// Seconds as fstests writes them (`3`, `0.5`); `None` for `""` or junk.
fn parse_secs(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A CDATA block as fstests writes it: a newline after `<![CDATA[` and
/// indentation before the closing tag. Keeps the content's own lines.
fn trim_block(text: &str) -> String {
    let t = text.trim_end();
    let t = t.trim_start_matches(['\n', '\r']);
    // Whitespace-only lines before the content (the tag's indentation).
    t.trim_start_matches([' ', '\t'])
        .trim_start_matches(['\n', '\r'])
        .to_string()
}

/// `line L column C` of byte `offset` in `text` (1-based).
fn line_col(text: &str, offset: usize) -> String {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.len()
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    format!("line {line} column {column}")
}

/// Escapes what fstests leaves unescaped, so that an XML parser reads the
/// file: inside attribute values a raw `<`, a `&` that starts no entity,
/// and a `"` that does not end the value (the closing quote is the one
/// followed by another `name=` or the end of the tag); in text, a `<` that
/// starts no tag and a lone `&`. CDATA sections, comments and processing
/// instructions are copied unchanged. Returns the text borrowed when there
/// was nothing to repair. Lines are preserved, so positions in errors still
/// point at the original line.
pub fn repair(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 64);
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0; // bytes of `text` already in `out`
    while i < b.len() {
        match b[i] {
            b'<' => {
                let rest = &text[i..];
                let skip_to = |end: &str| rest.find(end).map_or(b.len(), |p| i + p + end.len());
                if rest.starts_with("<![CDATA[") {
                    i = skip_to("]]>");
                } else if rest.starts_with("<!--") {
                    i = skip_to("-->");
                } else if rest.starts_with("<?") || rest.starts_with("<!") || rest.starts_with("</")
                {
                    i = skip_to(">");
                } else if b.get(i + 1).is_some_and(|c| is_name_start(*c)) {
                    let end = scan_tag(text, i, &mut out, &mut copied, &mut changed);
                    i = end;
                } else {
                    out.push_str(&text[copied..i]);
                    out.push_str("&lt;");
                    copied = i + 1;
                    changed = true;
                    i += 1;
                }
            }
            b'&' => {
                if !starts_entity(&text[i..]) {
                    out.push_str(&text[copied..i]);
                    out.push_str("&amp;");
                    copied = i + 1;
                    changed = true;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Scans the start tag at `start` (`<name attr="v" ...>`), repairing its
/// attribute values into `out`; returns the offset after the tag.
fn scan_tag(
    text: &str,
    start: usize,
    out: &mut String,
    copied: &mut usize,
    changed: &mut bool,
) -> usize {
    let b = text.as_bytes();
    let mut i = start + 1;
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return i;
        }
        match b[i] {
            b'>' => return i + 1,
            b'/' if b.get(i + 1) == Some(&b'>') => return i + 2,
            c if is_name_start(c) => {
                while i < b.len() && is_name_char(b[i]) {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if b.get(i) != Some(&b'=') {
                    continue;
                }
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                let Some(&quote) = b.get(i).filter(|q| **q == b'"' || **q == b'\'') else {
                    continue;
                };
                let value_start = i + 1;
                let value_end = closing_quote(text, value_start, quote);
                let value = &text[value_start..value_end];
                let fixed = escape_value(value, quote);
                if fixed != value {
                    out.push_str(&text[*copied..value_start]);
                    out.push_str(&fixed);
                    *copied = value_end;
                    *changed = true;
                }
                i = (value_end + 1).min(b.len());
            }
            _ => i += 1, // junk inside a tag: let the parser judge it
        }
    }
}

/// The offset of the quote that closes a value starting at `from`.
///
/// fstests writes each tag's attributes on one line, and an unescaped
/// message may hold quotes and `>`. The closing quote is the first one
/// followed by another attribute (`" name="`) or by the end of the tag
/// (`">`, `"/>`), except that a quote followed by `>` is passed over when
/// a quote followed by an attribute or by the tag's end at the end of the
/// line comes later on the line with no tag start (`<name`) in between
/// (`message="a">b" type="TestFail" />`). A value spanning lines ends at
/// the first such quote further on; failing all that, at the line's last
/// quote.
fn closing_quote(text: &str, from: usize, quote: u8) -> usize {
    let b = text.as_bytes();
    let line_end = text[from..].find('\n').map_or(b.len(), |p| from + p);
    let strong = |i: usize| attribute_follows(&text[i + 1..]) || tag_ends_line(&text[i + 1..]);
    let weak = |i: usize| tag_ends(&text[i + 1..]);
    let quotes: Vec<usize> = (from..line_end).filter(|&i| b[i] == quote).collect();
    for (n, &q) in quotes.iter().enumerate() {
        if strong(q) {
            return q;
        }
        if weak(q) {
            let later = quotes[n + 1..].iter().find(|&&l| strong(l));
            match later {
                Some(&l) if !starts_tag_between(&b[q + 1..l]) => return l,
                _ => return q,
            }
        }
    }
    (line_end..b.len())
        .find(|&i| b[i] == quote && (strong(i) || weak(i)))
        .or(quotes.last().copied())
        .unwrap_or(b.len())
}

/// Whether `bytes` hold a tag start: `<` then a name's first character.
fn starts_tag_between(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .any(|w| w[0] == b'<' && (is_name_start(w[1]) || w[1] == b'/'))
}

/// `rest` (after a quote) starts with whitespace, a name, `=` and a quote.
fn attribute_follows(rest: &str) -> bool {
    let trimmed = rest.trim_start();
    if trimmed.len() == rest.len() {
        return false; // `"x"y`: no whitespace before the next attribute
    }
    let name_len = trimmed.bytes().take_while(|c| is_name_char(*c)).count();
    if name_len == 0 || !is_name_start(trimmed.as_bytes()[0]) {
        return false;
    }
    let after = trimmed[name_len..].trim_start();
    after
        .strip_prefix('=')
        .is_some_and(|v| v.trim_start().starts_with(['"', '\'']))
}

/// `rest` (after a quote) is `>` or `/>`, maybe after blanks.
fn tag_ends(rest: &str) -> bool {
    let t = rest.trim_start();
    t.is_empty() || t.starts_with('>') || t.starts_with("/>")
}

/// `rest` (after a quote) is `>` or `/>` and the end of the line.
fn tag_ends_line(rest: &str) -> bool {
    let line = rest.split('\n').next().unwrap_or("");
    let t = line.trim();
    t == ">" || t == "/>"
}

fn escape_value(value: &str, quote: u8) -> Cow<'_, str> {
    let needs = value.char_indices().any(|(i, c)| {
        c == '<' || c as u32 == quote as u32 || (c == '&' && !starts_entity(&value[i..]))
    });
    if !needs {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    for (i, c) in value.char_indices() {
        match c {
            '<' => out.push_str("&lt;"),
            '&' if !starts_entity(&value[i..]) => out.push_str("&amp;"),
            '"' if quote == b'"' => out.push_str("&quot;"),
            '\'' if quote == b'\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `s` (starting with `&`) starts a predefined or numeric entity.
fn starts_entity(s: &str) -> bool {
    let Some(end) = s[1..].find(';').filter(|e| *e <= 10) else {
        return false;
    };
    let name = &s[1..1 + end];
    match name.strip_prefix('#') {
        Some(num) => match num.strip_prefix(['x', 'X']) {
            Some(hex) => !hex.is_empty() && hex.bytes().all(|c| c.is_ascii_hexdigit()),
            None => !num.is_empty() && num.bytes().all(|c| c.is_ascii_digit()),
        },
        None => matches!(name, "lt" | "gt" | "amp" | "quot" | "apos"),
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result.xml in fstests' own shape, with `cases` between the
    /// properties and the end.
    pub(crate) fn suite(attrs: &str, cases: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite\n xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n name=\"xfstests\" {attrs}\n  start_timestamp=\"2026-11-24T01:50:33+00:00\"\n>\n\t<properties>\n\t\t<property name=\"SECTION\" value=\"ext4_4k\"/>\n\t\t<property name=\"FSTYP\" value=\"ext4\"/>\n\t</properties>\n{cases}</testsuite>\n"
        )
    }

    const FAILED: &str = "\t<testcase classname=\"xfstests.ext4_4k\" name=\"generic/001\" time=\"3\">\n\t\t<failure message=\"- output mismatch (see /r/generic/001.out.bad)\" type=\"TestFail\" />\n\t\t<system-out>\n<![CDATA[\nfull text\n]]>\n\t\t</system-out>\n\t\t<kernel-log>\n<![CDATA[\n[ 1.0] WARNING: x\n]]>\n\t\t</kernel-log>\n\t\t<system-err>\n<![CDATA[\n--- a\n+++ b\n-x\n+y\n]]>\n\t\t</system-err>\n\t</testcase>\n";

    #[test]
    fn reads_cases_properties_and_texts() {
        let text = suite(
            "failures=\"1\" skipped=\"1\" tests=\"3\" time=\"30\"",
            &format!("{FAILED}\t<testcase classname=\"xfstests.ext4_4k\" name=\"generic/002\" time=\"4\">\n\t</testcase>\n\t<testcase classname=\"xfstests.ext4_4k\" name=\"generic/110\" time=\"2\">\n\t\t<skipped message=\"Reflink not supported by test filesystem type: ext4\" />\n\t</testcase>\n"),
        );
        let r = parse_xunit(&text).unwrap();
        assert_eq!(r.time, Some(30));
        assert_eq!(
            r.start_timestamp.unwrap().to_rfc3339(),
            "2026-11-24T01:50:33+00:00"
        );
        assert!(r.complete());
        assert_eq!(r.section().as_deref(), Some("ext4_4k"));
        assert_eq!(r.properties["FSTYP"], "ext4");
        assert_eq!(r.cases.len(), 3);
        let f = &r.cases[0];
        assert_eq!(f.name, "generic/001");
        assert_eq!(f.time, Some(Duration::from_secs(3)));
        assert_eq!(
            f.status,
            CaseStatus::Failed(Some(
                "- output mismatch (see /r/generic/001.out.bad)".into()
            ))
        );
        assert_eq!(f.system_out.as_deref(), Some("full text"));
        assert_eq!(f.kernel_log.as_deref(), Some("[ 1.0] WARNING: x"));
        assert_eq!(f.system_err.as_deref(), Some("--- a\n+++ b\n-x\n+y"));
        assert_eq!(r.cases[1].status, CaseStatus::Passed);
        assert_eq!(
            r.cases[2].status,
            CaseStatus::Skipped(Some(
                "Reflink not supported by test filesystem type: ext4".into()
            ))
        );
    }

    #[test]
    fn unescaped_failure_messages_are_repaired() {
        for (raw, want) in [
            ("a < b & c", "a < b & c"),
            ("fsck said \"bad\" (see x)", "fsck said \"bad\" (see x)"),
            ("x=\"1\" <y> && z", "x=\"1\" <y> && z"),
            ("already &amp; escaped &lt;", "already & escaped <"),
            ("a\">b (see x)", "a\">b (see x)"),
            ("quoted \"x\" />", "quoted \"x\" />"),
        ] {
            let case = format!(
                "\t<testcase classname=\"xfstests.s\" name=\"generic/009\" time=\"1\">\n\t\t<failure message=\"{raw}\" type=\"TestFail\" />\n\t</testcase>\n"
            );
            let r = parse_xunit(&suite("time=\"1\"", &case)).unwrap();
            assert_eq!(r.cases.len(), 1, "{raw}");
            assert_eq!(
                r.cases[0].status,
                CaseStatus::Failed(Some(want.into())),
                "{raw}"
            );
        }
        // The well-formed fixture text is left alone.
        let ok = suite("time=\"1\"", FAILED);
        assert!(matches!(repair(&ok), Cow::Borrowed(_)));
    }

    /// fstests' `encode_xml` (what it applies to notrun messages and
    /// properties, but not to failure messages).
    fn encode_xml(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('>', "&gt;")
            .replace('<', "&lt;")
            .replace('\'', "&apos;")
            .replace('"', "&quot;")
    }

    #[test]
    fn generated_messages_read_back_exactly() {
        // Messages mixing every character that matters, raw in <failure>
        // (as fstests writes them) and encoded in <skipped>.
        let chars: Vec<char> = "ab <>&\"'=/;#x:".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Raw texts that cannot be told apart from the tag's own syntax.
        let ambiguous = regex::Regex::new(r#""\s+[A-Za-z_:][\w:.-]*\s*=\s*["']|"\s*/?>\s*$|"\s*/?>.*<[A-Za-z_:/]|&(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);"#).unwrap();
        let mut checked = 0;
        for _ in 0..3000 {
            let len = (next() % 24) as usize;
            let msg: String = (0..len)
                .map(|_| chars[(next() % chars.len() as u64) as usize])
                .collect();
            let cases = format!(
                "\t<testcase classname=\"xfstests.s\" name=\"generic/001\" time=\"1\">\n\t\t<skipped message=\"{}\" />\n\t</testcase>\n",
                encode_xml(&msg)
            );
            let r = parse_xunit(&suite("time=\"1\"", &cases)).unwrap();
            assert_eq!(
                r.cases[0].status,
                CaseStatus::Skipped(Some(msg.clone())),
                "encoded {msg:?}"
            );
            if ambiguous.is_match(&msg) {
                continue;
            }
            let cases = format!(
                "\t<testcase classname=\"xfstests.s\" name=\"generic/001\" time=\"1\">\n\t\t<failure message=\"{msg}\" type=\"TestFail\" />\n\t</testcase>\n\t<testcase classname=\"xfstests.s\" name=\"generic/002\" time=\"2\">\n\t</testcase>\n"
            );
            let r = parse_xunit(&suite("time=\"1\"", &cases))
                .unwrap_or_else(|e| panic!("raw {msg:?}: {e}"));
            assert_eq!(r.cases.len(), 2, "raw {msg:?}");
            assert_eq!(
                r.cases[0].status,
                CaseStatus::Failed(Some(msg.clone())),
                "raw {msg:?}"
            );
            assert_eq!(r.cases[1].time, Some(Duration::from_secs(2)), "raw {msg:?}");
            checked += 1;
        }
        assert!(checked > 1000, "only {checked} raw messages checked");
    }

    #[test]
    fn default_namespace_of_older_files() {
        let text = "<?xml version=\"1.0\"?>\n<testsuite xmlns=\"https://git.kernel.org/pub/scm/fs/xfs/xfstests-dev.git\" name=\"xfstests\" time=\"9\">\n<properties><property name=\"SECTION\" value=\"-no-sections-\"/></properties>\n<testcase classname=\"xfstests.global\" name=\"xfs/050\" time=\"9\"><failure message=\"m\" type=\"TestFail\"/></testcase>\n</testsuite>\n";
        let r = parse_xunit(text).unwrap();
        assert_eq!(r.section(), None);
        assert_eq!(r.cases.len(), 1);
        assert_eq!(r.cases[0].status, CaseStatus::Failed(Some("m".into())));
        // A prefixed namespace reads the same.
        let text = text
            .replace("<testsuite xmlns=", "<x:testsuite xmlns:x=")
            .replace("</testsuite>", "</x:testsuite>")
            .replace("<testcase", "<x:testcase")
            .replace("</testcase>", "</x:testcase>");
        assert_eq!(parse_xunit(&text).unwrap().cases.len(), 1);
    }

    #[test]
    fn crashed_run_empty_times_and_cut_file() {
        // check rewrites the file before each test with time="".
        let case =
            "\t<testcase classname=\"xfstests.s\" name=\"generic/001\" time=\"\">\n\t</testcase>\n";
        let r = parse_xunit(&suite("failures=\"0\" time=\"\"", case)).unwrap();
        assert_eq!(r.time, None);
        assert!(!r.complete());
        assert_eq!(r.cases[0].time, None);
        // Cut in the middle of the second testcase's failure element.
        let whole = suite(
            "time=\"5\"",
            &format!("{FAILED}{}", FAILED.replace("generic/001", "generic/002")),
        );
        let cut = &whole[..whole.rfind("type=\"TestFail\"").unwrap()];
        let r = parse_xunit(cut).unwrap();
        assert!(r.truncated);
        assert!(!r.complete());
        assert_eq!(r.cases[0].name, "generic/001");
        assert!(r.cases.len() <= 2);
        // Cut after a whole testcase.
        let cut = &whole[..whole
            .find("\t<testcase classname=\"xfstests.ext4_4k\" name=\"generic/002\"")
            .unwrap()];
        let r = parse_xunit(cut).unwrap();
        assert!(r.truncated);
        assert_eq!(r.cases.len(), 1);
        assert_eq!(
            r.cases[0].system_err.as_deref(),
            Some("--- a\n+++ b\n-x\n+y")
        );
    }

    #[test]
    fn reruns_repeat_a_name_and_are_all_kept() {
        let cases = format!(
            "{FAILED}\t<testcase classname=\"xfstests.ext4_4k\" name=\"generic/001\" time=\"2\">\n\t</testcase>\n{FAILED}"
        );
        let r = parse_xunit(&suite("time=\"9\"", &cases)).unwrap();
        let names: Vec<_> = r.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["generic/001"; 3]);
        assert_eq!(r.cases[1].status, CaseStatus::Passed);
    }

    #[test]
    fn garbage_is_an_error_with_a_position() {
        assert!(parse_xunit("not xml at all")
            .unwrap_err()
            .contains("testsuite"));
        let e = parse_xunit("<?xml version=\"1.0\"?>\n<a><b></c>\n<testsuite").unwrap_err();
        assert!(e.contains("line") || e.contains("testsuite"), "{e}");
    }

    #[test]
    fn stray_text_characters_are_escaped() {
        let text = suite("time=\"1\"", "\t<testcase name=\"generic/001\" time=\"1\">\n<system-out>a < b && c</system-out><failure message=\"x\"/></testcase>\n");
        let r = parse_xunit(&text).unwrap();
        assert_eq!(r.cases[0].system_out.as_deref(), Some("a < b && c"));
    }
}
