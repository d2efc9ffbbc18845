//! Where in a scenario's text a problem is: `file:line:column` of a key,
//! of a key inside another, of a test.

use std::path::Path;

/// `file:line:column` of the first `"key"` in `text` (or `file` alone).
pub(crate) fn locate(text: &str, path: &Path, key: &str) -> String {
    locate_path(text, path, &[key])
}

/// `file:line:column` of the last of `keys`, each searched after the one
/// before (`["timeouts", "test"]`: the `"test"` inside `timeouts`).
pub(crate) fn locate_path(text: &str, path: &Path, keys: &[&str]) -> String {
    let mut at = None;
    for key in keys {
        let from = at.unwrap_or(0);
        match text[from..].find(&format!("\"{key}\"")) {
            Some(off) => at = Some(from + off),
            None => break,
        }
    }
    match at {
        Some(off) => {
            let (line, col) = line_col(text.as_bytes(), off);
            format!("{}:{line}:{col}", path.display())
        }
        None => path.display().to_string(),
    }
}

/// `file:line:column` of test number `index`'s `"name"` (counted among
/// the `"name"` keys after `"tests"`), or of `"tests"`.
pub(crate) fn locate_test(text: &str, path: &Path, index: usize) -> String {
    let Some(tests) = text.find("\"tests\"") else {
        return path.display().to_string();
    };
    let names: Vec<usize> = text[tests..]
        .match_indices("\"name\"")
        .map(|(off, _)| tests + off)
        .collect();
    let off = names.get(index).copied().unwrap_or(tests);
    let (line, col) = line_col(text.as_bytes(), off);
    format!("{}:{line}:{col}", path.display())
}

/// 1-based line and column (in bytes) of byte offset `off`.
pub(crate) fn line_col(bytes: &[u8], off: usize) -> (usize, usize) {
    let before = &bytes[..off.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = off
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0)
        + 1;
    (line, col)
}
