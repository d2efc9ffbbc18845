//! The crate's error type: every error says what was being done, to which
//! file, and why (the [`ErrorKind`], also available as the `source`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An operation on a file or folder failed.
///
/// Displays as `<action> <path>: <kind>`, e.g.
/// `loading metadata /runs/r1/boot.smoke/metadata.json: invalid value at
/// line 7 column 21 (field `failure.kind`): unknown variant ...`.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {kind}", path.display())]
pub struct Error {
    /// What was being done (`writing`, `hashing`, `loading metadata`, ...).
    pub action: String,
    /// The file or folder it was being done to.
    pub path: PathBuf,
    /// Why it failed.
    #[source]
    pub kind: ErrorKind,
}

impl Error {
    /// An error while `action` on `path`.
    pub fn new(action: impl Into<String>, path: impl AsRef<Path>, kind: ErrorKind) -> Error {
        Error {
            action: action.into(),
            path: path.as_ref().to_path_buf(),
            kind,
        }
    }

    /// An I/O error while `action` on `path`.
    pub fn io(action: impl Into<String>, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::new(action, path, ErrorKind::Io(source))
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system refused.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A JSON file is malformed or does not match the expected types.
    #[error("{0}")]
    Json(JsonProblem),
    /// A JSON value could not be serialised.
    #[error("cannot serialise: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A file was written by a newer, incompatible bootrig.
    #[error("schema_version {found} is newer than the supported version {supported}")]
    UnsupportedSchema {
        /// The `schema_version` in the file.
        found: u64,
        /// The newest version this crate reads.
        supported: u64,
    },
    /// A relative path would leave the folder it must stay inside.
    #[error("{relative:?} is not a relative path inside the folder ({reason})")]
    Escape {
        /// The offending relative path.
        relative: PathBuf,
        /// Why it is refused (`absolute path`, `contains ..`, `empty`).
        reason: &'static str,
    },
    /// A file's contents are not in the format expected (an fstests
    /// `result.xml` that cannot be read, a baseline line that names no
    /// test, ...): says where and what.
    #[error("{0}")]
    Format(String),
}

/// Where and why a JSON document failed to parse or to match its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonProblem {
    /// 1-based line of the problem (0 when unknown).
    pub line: usize,
    /// 1-based column of the problem (0 when unknown).
    pub column: usize,
    /// The field's path from the document's root, like `failure.step.index`
    /// or `phases[3].duration_ms`; empty for the root object.
    pub field: String,
    /// serde_json's message, without its own position.
    pub message: String,
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, " (field `{}`)", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl JsonProblem {
    /// Describes `err`, raised while reading `text`, naming the field at its
    /// position.
    pub fn from_serde(text: &str, err: &serde_json::Error) -> JsonProblem {
        let full = err.to_string();
        // serde_json appends " at line L column C"; keep the message alone.
        let message = match full.rfind(" at line ") {
            Some(i) if err.line() > 0 => full[..i].to_string(),
            _ => full,
        };
        JsonProblem {
            line: err.line(),
            column: err.column(),
            field: json_path_at(text, err.line(), err.column()),
            message,
        }
    }
}

/// The path (`a.b[2].c`) of the value being read at `line`:`column`
/// (1-based, as serde_json reports them) in the JSON `text`.
///
/// A small scanner tracks the stack of open objects and arrays up to that
/// position; it is only used to make error messages precise.
pub(crate) fn json_path_at(text: &str, line: usize, column: usize) -> String {
    enum Frame {
        Object { key: Option<String>, want_key: bool },
        Array { index: usize },
    }
    // Byte offset of the position.
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            offset += column.min(l.len());
            break;
        }
        offset += l.len();
    }
    let bytes = text.as_bytes();
    let end = offset.min(bytes.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if let Some(Frame::Object { key, want_key }) = stack.last_mut() {
                    if *want_key {
                        let raw = &text[start..i.min(text.len())];
                        *key = Some(
                            serde_json::from_str(&format!("\"{raw}\""))
                                .unwrap_or_else(|_| raw.to_string()),
                        );
                        *want_key = false;
                    }
                }
            }
            b'{' => stack.push(Frame::Object {
                key: None,
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, want_key }) => {
                    *key = None;
                    *want_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_at_nested_positions() {
        let text = "{\n  \"a\": 1,\n  \"b\": {\"c\": [1, 2, {\"d\": true}]}\n}\n";
        // Inside `"d": true` (line 3).
        let col = text.lines().nth(2).unwrap().find("true").unwrap() + 1;
        assert_eq!(json_path_at(text, 3, col), "b.c[2].d");
        let col = text.lines().nth(1).unwrap().find('1').unwrap() + 1;
        assert_eq!(json_path_at(text, 2, col), "a");
        assert_eq!(json_path_at(text, 4, 1), "");
    }

    #[test]
    fn problem_names_field_and_position() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            n: u32,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Inner>,
        }
        let text = "{\"items\": [{\"n\": 1}, {\"n\": \"x\"}]}";
        let err = serde_json::from_str::<Outer>(text).unwrap_err();
        let p = JsonProblem::from_serde(text, &err);
        assert_eq!(p.field, "items[1].n");
        assert_eq!(p.line, 1);
        assert!(p.message.contains("invalid type"), "{p}");
        assert!(!p.message.contains("at line"), "{p}");
        let e = Error::new("loading", "/x/m.json", ErrorKind::Json(p));
        let s = e.to_string();
        assert!(s.starts_with("loading /x/m.json: line 1 column "), "{s}");
        assert!(s.contains("(field `items[1].n`)"), "{s}");
    }
}
