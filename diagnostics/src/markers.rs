//! The console markers a bootrig session prints, one grammar for every
//! reader: the session making its console excerpts readable, the crash
//! watch telling the session's lines from the guest's, and the offline
//! review showing a console log.
//!
//! A marker is `__BR`, a kind letter, the session's token (letters and
//! digits), `_`-separated fields, and `__`; the session prints a CAN byte
//! (`\x18`) before it, which ends any escape string a command left open:
//!
//! | marker | meaning |
//! |---|---|
//! | `__BRP<token>__ ` | the session's private prompt |
//! | `__BRB<token>_<n>__` | command `n` begins |
//! | `__BRE<token>_<n>_<status>[qcx]_<nonce>__` | command `n` ended with `status` (the nonce was absent in older sessions) |
//! | `__BRX<token>_<n>_<status>__` | command `n` ended the shell |
//! | `__BRS<token>_<k>_<token or empty>__` | the shell answered sync line `k` |
//!
//! The session (`bootrig::guest::protocol`) writes them and waits for them
//! with patterns of its own token; everything that only reads them uses
//! this module.

use std::ops::Range;
use std::sync::OnceLock;

use regex::Regex;

/// What a marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// The session's prompt.
    Prompt,
    /// Command `n` begins.
    Begin(u64),
    /// Command `n` ended with a status.
    End(u64, u32),
    /// Command `n` ended the shell with a status.
    Exit(u64, u32),
    /// The shell answered a sync line after a timeout.
    Sync,
}

/// A marker found in some text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it is, with the CAN byte and line break the session prints
    /// before it and a prompt's trailing space.
    pub range: Range<usize>,
    /// The session's token.
    pub token: String,
    /// What it says.
    pub marker: Marker,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"(?:\x18(?:\r?\n)?)?__BR(?:",
            r"P([0-9A-Za-z]+)__ ?",
            r"|B([0-9A-Za-z]+)_(\d+)__",
            r"|E([0-9A-Za-z]+)_(\d+)_(\d+)[qcx]?(?:_[0-9a-f]+)?__",
            r"|X([0-9A-Za-z]+)_(\d+)_(\d+)__",
            r"|S([0-9A-Za-z]+)_\d+_[0-9A-Za-z]*__",
            r")"
        ))
        .expect("the marker grammar is a valid regex")
    })
}

fn number<T: std::str::FromStr + Default>(c: &regex::Captures<'_>, i: usize) -> T {
    c.get(i)
        .and_then(|m| m.as_str().parse().ok())
        .unwrap_or_default()
}

fn found(c: &regex::Captures<'_>) -> Found {
    let whole = c.get(0).expect("group 0 always matches");
    let token = |i: usize| c.get(i).map(|m| m.as_str().to_string());
    let (token, marker) = if let Some(t) = token(1) {
        (t, Marker::Prompt)
    } else if let Some(t) = token(2) {
        (t, Marker::Begin(number(c, 3)))
    } else if let Some(t) = token(4) {
        (t, Marker::End(number(c, 5), number(c, 6)))
    } else if let Some(t) = token(7) {
        (t, Marker::Exit(number(c, 8), number(c, 9)))
    } else {
        (token(10).unwrap_or_default(), Marker::Sync)
    };
    Found {
        range: whole.range(),
        token,
        marker,
    }
}

/// Every marker in `text`, in order.
pub fn find(text: &str) -> Vec<Found> {
    if !text.contains("__BR") {
        return Vec::new();
    }
    pattern().captures_iter(text).map(|c| found(&c)).collect()
}

/// The marker `line` is, if the whole line (trailing white space aside)
/// is one.
pub fn line(line: &str) -> Option<Found> {
    let line = line.trim_end();
    let c = pattern().captures(line)?;
    (c.get(0)?.range() == (0..line.len())).then(|| found(&c))
}

/// `text` with its markers made readable: `[bootrig #3] $ <command>`
/// where command 3 began (`[bootrig #3] begin` when `command` does not
/// know it), `[bootrig #3] exit 1` where it ended, `[bootrig] $ ` for the
/// prompt, `[bootrig #3] the shell exited (0)`, `[bootrig] shell answered`.
pub fn readable(text: &str, command: impl Fn(u64) -> Option<String>) -> String {
    let found = find(text);
    if found.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for f in found {
        out.push_str(&text[at..f.range.start]);
        match f.marker {
            Marker::Prompt => out.push_str("[bootrig] $ "),
            Marker::Begin(n) => match command(n) {
                Some(cmd) => out.push_str(&format!("[bootrig #{n}] $ {cmd}")),
                None => out.push_str(&format!("[bootrig #{n}] begin")),
            },
            Marker::End(n, status) => out.push_str(&format!("[bootrig #{n}] exit {status}")),
            Marker::Exit(n, status) => {
                out.push_str(&format!("[bootrig #{n}] the shell exited ({status})"))
            }
            Marker::Sync => out.push_str("[bootrig] shell answered"),
        }
        at = f.range.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_and_read() {
        let raw = "__BRPtok__ \n\x18\n__BRBtok_7__\n6.1.0\n\x18\n__BREtok_7_0q_0a1b2c3d4e__\n\
                   __BRPtok__ \n__BREold_8_2__\n__BRXtok_9_3__\n__BRStok_1_tok__\n__BRStok_2___";
        let kinds: Vec<(String, Marker)> =
            find(raw).into_iter().map(|f| (f.token, f.marker)).collect();
        let t = |s: &str| s.to_string();
        assert_eq!(
            kinds,
            [
                (t("tok"), Marker::Prompt),
                (t("tok"), Marker::Begin(7)),
                (t("tok"), Marker::End(7, 0)),
                (t("tok"), Marker::Prompt),
                (t("old"), Marker::End(8, 2)),
                (t("tok"), Marker::Exit(9, 3)),
                (t("tok"), Marker::Sync),
                (t("tok"), Marker::Sync),
            ]
        );
        let shown = readable(raw, |n| (n == 7).then(|| "uname -r".to_string()));
        assert_eq!(
            shown,
            "[bootrig] $ \n[bootrig #7] $ uname -r\n6.1.0\n[bootrig #7] exit 0\n\
             [bootrig] $ \n[bootrig #8] exit 2\n[bootrig #9] the shell exited (3)\n\
             [bootrig] shell answered\n[bootrig] shell answered"
        );
    }

    #[test]
    fn a_line_is_a_marker_only_whole() {
        assert_eq!(
            line("\x18__BREab12_3_1_ff00__  ").map(|f| f.marker),
            Some(Marker::End(3, 1))
        );
        assert_eq!(
            line("__BRBab12_4__").map(|f| f.marker),
            Some(Marker::Begin(4))
        );
        assert!(line("echo __BRBab12_4__").is_none());
        assert!(line("__BRBab12_4__ and more").is_none());
        assert!(line("__BRB_4__").is_none());
        assert!(line("__BREab12_x_1__").is_none());
        assert_eq!(readable("no markers", |_| None), "no markers");
    }
}
