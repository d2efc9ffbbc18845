//! The literal prefilter in front of the start patterns: almost every
//! console line starts no report, and is rejected here by a byte table and
//! one anchored Aho-Corasick pass instead of the regex set.
//!
//! The literals are not written by hand: regex-syntax's extractor derives
//! them from the patterns, so the filter cannot drift from the table. Every
//! start pattern is anchored (`^`), so a line it matches begins with one of
//! its prefix literals; a line that begins with none cannot match.

use aho_corasick::{AhoCorasick, Anchored, Input, MatchKind, StartKind};
use regex_syntax::hir::literal::Extractor;

/// Rejects lines that no start pattern can match.
#[derive(Debug)]
pub(super) struct StartFilter {
    /// Bytes some prefix literal begins with.
    first: [bool; 256],
    /// The prefix literals, searched anchored at the start of the line.
    literals: AhoCorasick,
}

impl StartFilter {
    /// The filter for `patterns`, or `None` when some pattern has no finite
    /// set of non-empty prefix literals (then every line must go to the
    /// regexes).
    pub(super) fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Option<StartFilter> {
        let literals = prefix_literals(patterns)?;
        let mut first = [false; 256];
        for l in &literals {
            first[usize::from(l[0])] = true;
        }
        let literals = AhoCorasick::builder()
            .start_kind(StartKind::Anchored)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&literals)
            .ok()?;
        Some(StartFilter { first, literals })
    }

    /// Whether `msg` may start a report (begins with a prefix literal).
    pub(super) fn may_match(&self, msg: &str) -> bool {
        match msg.as_bytes().first() {
            Some(&b) if self.first[usize::from(b)] => self
                .literals
                .is_match(Input::new(msg).anchored(Anchored::Yes)),
            _ => false,
        }
    }
}

/// Every prefix literal of every pattern: each match of a pattern begins
/// with one of its literals. `None` if a pattern is not anchored at the
/// start or its prefixes are not a finite set of non-empty literals.
pub(super) fn prefix_literals<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<Vec<u8>>> {
    let mut all = Vec::new();
    for pattern in patterns {
        if !pattern.starts_with('^') {
            return None;
        }
        let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
        let seq = Extractor::new().extract(&hir);
        for l in seq.literals()? {
            if l.as_bytes().is_empty() {
                return None;
            }
            all.push(l.as_bytes().to_vec());
        }
    }
    all.sort();
    all.dedup();
    Some(all)
}
