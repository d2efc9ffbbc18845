//! Selecting tests by their markers, as pytest's `-m EXPR`: a boolean
//! expression over marker names (`slow`, `not slow`, `net and not slow`,
//! `(a or b) and not c`), and the one selection step that `bootrig run`
//! and [`crate::Suite`] (`BOOTRIG_MARKS`) share.
//!
//! Grammar (`not` binds tightest, then `and`, then `or`):
//!
//! ```text
//! expr := and ("or" and)*     and := not ("and" not)*
//! not  := "not" not | atom    atom := NAME | "(" expr ")"
//! NAME := [A-Za-z_][A-Za-z0-9_-]*
//! ```
//!
//! A name no test carries matches nothing; [`select`] reports such names
//! (a warning, or an error with `strict`), as pytest does with
//! `--strict-markers`.

use std::collections::BTreeSet;
use std::fmt;

use crate::run::engine::Test;

/// Markers every test may carry without declaring them: `slow`
/// ([`crate::Marks::slow`]) and `xfail` ([`crate::Marks::xfail`]).
pub const BUILTIN_MARKS: [&str; 2] = ["slow", "xfail"];

/// A parsed marker expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkExpr {
    /// The test carries this marker.
    Name(String),
    /// Negation.
    Not(Box<MarkExpr>),
    /// Both hold.
    And(Box<MarkExpr>, Box<MarkExpr>),
    /// Either holds.
    Or(Box<MarkExpr>, Box<MarkExpr>),
}

/// A marker expression that does not parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkExprError {
    /// The expression as given.
    pub expr: String,
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for MarkExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid marker expression at column {}: {}\n  {}\n  {}^",
            self.column,
            self.message,
            self.expr,
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

impl std::error::Error for MarkExprError {}

/// Whether `name` is a valid marker name (`[A-Za-z_][A-Za-z0-9_-]*`, not
/// one of the words `and`, `or`, `not`).
pub fn valid_mark_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !matches!(name, "and" | "or" | "not")
}

/// A list of marker names in a scenario file (`"marks": ["slow", "net"]`),
/// each checked at parse time.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct MarkNames(pub Vec<String>);

impl TryFrom<Vec<String>> for MarkNames {
    type Error = String;
    fn try_from(names: Vec<String>) -> Result<Self, String> {
        match names.iter().find(|n| !valid_mark_name(n)) {
            Some(bad) => Err(format!(
                "invalid marker name {bad:?}: a marker is a word of letters, digits, `_` and `-` \
                 (not starting with a digit or `-`, and not `and`, `or`, `not`)"
            )),
            None => Ok(MarkNames(names)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Name(String),
    Open,
    Close,
}

impl MarkExpr {
    /// Parses `text`; an error names the column.
    pub fn parse(text: &str) -> Result<MarkExpr, MarkExprError> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            text,
            tokens,
            pos: 0,
        };
        if p.tokens.is_empty() {
            return Err(p.error(1, "the expression is empty"));
        }
        let e = p.or()?;
        match p.tokens.get(p.pos) {
            None => Ok(e),
            Some((col, Token::Close)) => Err(p.error(*col, "`)` without a matching `(`")),
            Some((col, _)) => Err(p.error(*col, "expected `and`, `or` or the end")),
        }
    }

    /// Whether a test carrying the markers for which `has` is true is
    /// selected.
    pub fn matches(&self, has: &dyn Fn(&str) -> bool) -> bool {
        match self {
            MarkExpr::Name(n) => has(n),
            MarkExpr::Not(e) => !e.matches(has),
            MarkExpr::And(a, b) => a.matches(has) && b.matches(has),
            MarkExpr::Or(a, b) => a.matches(has) || b.matches(has),
        }
    }

    /// The marker names the expression mentions.
    pub fn names(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            MarkExpr::Name(n) => {
                out.insert(n);
            }
            MarkExpr::Not(e) => e.collect(out),
            MarkExpr::And(a, b) | MarkExpr::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

/// Splits `text` into tokens with their 1-based columns.
fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, MarkExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push((col, if c == '(' { Token::Open } else { Token::Close }));
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
            {
                i += 1;
            }
            out.push((col, Token::Name(chars[start..i].iter().collect())));
        } else {
            return Err(MarkExprError {
                expr: text.to_string(),
                column: col,
                message: format!(
                    "unexpected {c:?} (markers are words; use `and`, `or`, `not` and parentheses)"
                ),
            });
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, column: usize, message: &str) -> MarkExprError {
        MarkExprError {
            expr: self.text.to_string(),
            column,
            message: message.to_string(),
        }
    }

    /// The column just past the end, for "expected … at the end" errors.
    fn end_column(&self) -> usize {
        self.text.chars().count() + 1
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.tokens.get(self.pos), Some((_, Token::Name(n))) if n == word) {
            self.pos += 1;
            return true;
        }
        false
    }

    fn or(&mut self) -> Result<MarkExpr, MarkExprError> {
        let mut e = self.and()?;
        while self.keyword("or") {
            e = MarkExpr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<MarkExpr, MarkExprError> {
        let mut e = self.not()?;
        while self.keyword("and") {
            e = MarkExpr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<MarkExpr, MarkExprError> {
        if self.keyword("not") {
            return Ok(MarkExpr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<MarkExpr, MarkExprError> {
        let Some((col, tok)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.error(self.end_column(), "expected a marker name or `(`"));
        };
        self.pos += 1;
        match tok {
            Token::Name(n) if matches!(n.as_str(), "and" | "or" | "not") => {
                Err(self.error(col, &format!("expected a marker name or `(`, found `{n}`")))
            }
            Token::Name(n) => Ok(MarkExpr::Name(n)),
            Token::Open => {
                let e = self.or()?;
                match self.tokens.get(self.pos) {
                    Some((_, Token::Close)) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    Some((c, _)) => Err(self.error(*c, "expected `)`")),
                    None => Err(self.error(col, "this `(` is never closed")),
                }
            }
            Token::Close => Err(self.error(col, "expected a marker name or `(`, found `)`")),
        }
    }
}

/// Why [`select`] refused an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The expression does not parse.
    Invalid(MarkExprError),
    /// Under `strict`, the expression names markers no test carries.
    Unknown(Vec<String>),
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Invalid(e) => e.fmt(f),
            SelectError::Unknown(names) => write!(
                f,
                "unknown marker(s) {} in the marker expression: no test carries them \
                 (markers are declared with \"marks\" in scenarios or Marks::mark in Rust; \
                 built in: {})",
                names.join(", "),
                BUILTIN_MARKS.join(", ")
            ),
        }
    }
}

/// Keeps the tests whose markers match `expr`. Returns the names the
/// expression mentions that no test carries (without `strict` they only
/// match nothing; with it they are an error).
pub fn select(tests: &mut Vec<Test>, expr: &str, strict: bool) -> Result<Vec<String>, SelectError> {
    let e = MarkExpr::parse(expr).map_err(SelectError::Invalid)?;
    let known: BTreeSet<&str> = tests
        .iter()
        .flat_map(|t| t.marks.names())
        .chain(BUILTIN_MARKS)
        .collect();
    let unknown: Vec<String> = e
        .names()
        .into_iter()
        .filter(|n| !known.contains(n))
        .map(str::to_string)
        .collect();
    if strict && !unknown.is_empty() {
        return Err(SelectError::Unknown(unknown));
    }
    tests.retain(|t| e.matches(&|n| t.marks.has(n)));
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(expr: &str, marks: &[&str]) -> bool {
        MarkExpr::parse(expr)
            .unwrap()
            .matches(&|n| marks.contains(&n))
    }

    #[test]
    fn precedence_and_parentheses() {
        assert!(eval("slow", &["slow"]));
        assert!(!eval("not slow", &["slow"]));
        assert!(eval("net and not slow", &["net"]));
        assert!(!eval("net and not slow", &["net", "slow"]));
        // `not` binds tighter than `and`, `and` tighter than `or`.
        assert!(eval("a or b and c", &["a"]));
        assert!(!eval("(a or b) and c", &["a"]));
        assert!(eval("not not a", &["a"]));
        assert!(eval("not (a and b)", &["a"]));
        assert!(eval("x-y_1", &["x-y_1"]));
    }

    #[test]
    fn errors_name_the_column() {
        let err = |e: &str| MarkExpr::parse(e).unwrap_err();
        assert_eq!(err("").column, 1);
        assert_eq!(err("slow and").column, 9);
        assert_eq!(err("slow slow").column, 6);
        assert_eq!(err("(slow").column, 1);
        assert_eq!(err("slow)").column, 5);
        assert_eq!(err("a & b").column, 3);
        assert_eq!(err("not and").column, 5);
        assert_eq!(err("()").column, 2);
        let shown = err("net and (slow or)").to_string();
        assert!(shown.contains("column 17"), "{shown}");
        assert!(
            shown.ends_with("\n  net and (slow or)\n                  ^"),
            "{shown}"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_mark_name("slow") && valid_mark_name("_x-1"));
        for bad in ["", "1x", "-x", "a b", "not", "a.b"] {
            assert!(!valid_mark_name(bad), "{bad}");
        }
        assert!(MarkNames::try_from(vec!["ok".into(), "no way".into()]).is_err());
    }

    #[test]
    fn selection_keeps_matches_and_reports_unknown_names() {
        use crate::run::marks::Marks;
        let t = |name: &str, marks: Marks| Test::new(name, marks, |_| Ok(()));
        let all = || {
            vec![
                t("a", Marks::new().mark("net")),
                t("b", Marks::new().mark("net").slow()),
                t("c", Marks::new()),
            ]
        };
        let names = |v: &[Test]| v.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        let mut tests = all();
        assert!(select(&mut tests, "net and not slow", false)
            .unwrap()
            .is_empty());
        assert_eq!(names(&tests), ["a"]);
        let mut tests = all();
        assert_eq!(
            select(&mut tests, "not nett", false).unwrap(),
            ["nett".to_string()]
        );
        assert_eq!(names(&tests), ["a", "b", "c"]);
        let mut tests = all();
        assert_eq!(
            select(&mut tests, "not nett", true),
            Err(SelectError::Unknown(vec!["nett".into()]))
        );
        assert!(matches!(
            select(&mut all(), "net and", false),
            Err(SelectError::Invalid(_))
        ));
    }
}
