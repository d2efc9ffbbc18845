//! Safe file names for test names, and joining relative paths without
//! leaving a folder.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::errors::{Error, ErrorKind, Result};

/// The longest name [`safe_name`] returns, in bytes (well below the usual
/// 255-byte limit, leaving room for suffixes such as `.2`).
pub const MAX_NAME_LEN: usize = 120;

/// Length of the hash suffix `-xxxxxxxx` added to lossy names.
const SUFFIX_LEN: usize = 9;

/// Maps any test name to a safe, readable, single path component.
///
/// * `::` becomes `.` (`boot::debian::smoke` → `boot.debian.smoke`);
///   ASCII letters, digits, `_` and `-` are kept; every other character
///   (including `/`, `\`, a lone `:`, spaces, NUL, non-ASCII) becomes `_`,
///   and a literal `.` is kept.
/// * The result is never empty, `.` or `..`, never starts with `.` or `-`,
///   and is at most [`MAX_NAME_LEN`] bytes of `[A-Za-z0-9._-]`.
/// * Whenever the mapping is not trivially reversible (a character was
///   replaced, a literal `.` was present, a `::` segment was empty, a prefix
///   was added, or the name was truncated), `-` and the first 8 hex digits of
///   the name's sha256 are appended. Names that need no suffix are exactly
///   the `::`-separated paths of `[A-Za-z0-9_-]` identifiers, whose result
///   never contains `..` and never ends in `-` + 8 hex digits (such a name
///   gets a suffix too), so two different names map to the same component
///   only if their hashes collide.
///
/// Deterministic: the same name always gives the same component.
pub fn safe_name(test_name: &str) -> String {
    let mut out = String::with_capacity(test_name.len().min(MAX_NAME_LEN));
    let mut lossy = test_name.is_empty();
    let mut rest = test_name;
    let mut segment_empty = true; // the current `::`-separated segment is empty so far
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            if segment_empty {
                lossy = true; // leading or doubled `::`
            }
            out.push('.');
            segment_empty = true;
            rest = after;
            continue;
        }
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-' => out.push(c),
            '.' => {
                lossy = true;
                out.push('.');
            }
            _ => {
                lossy = true;
                out.push('_');
            }
        }
        segment_empty = false;
        rest = &rest[c.len_utf8()..];
    }
    if segment_empty && !test_name.is_empty() {
        lossy = true; // trailing `::`
    }
    if out.is_empty() || out.starts_with('.') || out.starts_with('-') {
        lossy = true;
        out.insert(0, '_');
    }
    if out.len() > MAX_NAME_LEN {
        lossy = true;
    }
    if !lossy && looks_suffixed(&out) {
        lossy = true;
    }
    if !lossy {
        return out;
    }
    // All characters are ASCII here, so any byte index is a char boundary.
    out.truncate(MAX_NAME_LEN - SUFFIX_LEN);
    let hash = Sha256::digest(test_name.as_bytes());
    out.push('-');
    for b in &hash[..4] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `s` ends like a hash suffix: `-` and 8 lowercase hex digits.
fn looks_suffixed(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= SUFFIX_LEN
        && b[b.len() - SUFFIX_LEN] == b'-'
        && b[b.len() - 8..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// `root` joined with `relative`, refusing anything that could leave `root`:
/// an absolute path, a Windows prefix, any `..` component, or an empty path.
/// `.` components are dropped.
///
/// The check is lexical: it does not follow symbolic links, so it is meant
/// for folders whose contents this crate creates itself.
pub fn join_inside(root: &Path, relative: impl AsRef<Path>) -> Result<PathBuf> {
    let relative = relative.as_ref();
    let refuse = |reason| {
        Error::new(
            "resolving a path inside",
            root,
            ErrorKind::Escape {
                relative: relative.to_path_buf(),
                reason,
            },
        )
    };
    let mut out = root.to_path_buf();
    let mut parts = 0;
    for c in relative.components() {
        match c {
            Component::Normal(p) => {
                out.push(p);
                parts += 1;
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("contains ..")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("absolute path")),
        }
    }
    if parts == 0 {
        return Err(refuse("empty"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tricky_names() -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            ".",
            "..",
            "...",
            "/",
            "//",
            "a/b",
            "a/../b",
            "../../etc/passwd",
            "/etc/passwd",
            "a\\b",
            "a::b",
            "a.b",
            "a__b",
            "a_b",
            "a:b",
            "a: b",
            "a::::b",
            "a:::b",
            "::a",
            "a::",
            "::",
            ":",
            ".hidden",
            "-rf",
            "_-rf",
            "a b",
            "a\tb",
            "a\nb",
            "a\0b",
            "a\u{0}",
            "héllo",
            "hello",
            "h_llo",
            "日本語",
            "👍",
            "💩",
            "CON",
            "x-deadbeef",
            "x",
            "boot::debian::smoke",
            "boot::debian_smoke",
            "boot.debian.smoke",
            "boot::debian::smoke ",
            "  ",
            "*",
            "?",
            "a|b",
            "a\"b",
            "a<b>",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push("a".repeat(500));
        v.push("a".repeat(501));
        v.push(format!("{}::b", "a".repeat(200)));
        v.push(format!("{}::c", "a".repeat(200)));
        v.push("a".repeat(MAX_NAME_LEN));
        v.push("a".repeat(MAX_NAME_LEN + 1));
        v.push("é".repeat(300));
        v.push("/".repeat(300));
        v
    }

    fn check_component(s: &str) {
        assert!(!s.is_empty());
        assert!(s != "." && s != "..");
        assert!(!s.starts_with('.') && !s.starts_with('-'), "{s:?}");
        assert!(s.len() <= MAX_NAME_LEN, "{s:?} is {} bytes", s.len());
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{s:?}"
        );
        let p = Path::new(s);
        let comps: Vec<_> = p.components().collect();
        assert_eq!(comps.len(), 1, "{s:?}");
        assert!(matches!(comps[0], Component::Normal(_)), "{s:?}");
    }

    #[test]
    fn readable_names_are_kept() {
        assert_eq!(safe_name("boot::debian::smoke"), "boot.debian.smoke");
        assert_eq!(safe_name("simple_test-1"), "simple_test-1");
        assert_eq!(safe_name("x"), "x");
    }

    #[test]
    fn lossy_names_get_a_hash_suffix() {
        let s = safe_name("a b");
        assert!(s.starts_with("a_b-") && s.len() == 3 + SUFFIX_LEN, "{s}");
        let s = safe_name("../../etc/passwd");
        assert!(s.starts_with("_.._.._etc_passwd-"), "{s}");
        let s = safe_name("");
        assert!(s.starts_with("_-") && s.len() == 1 + SUFFIX_LEN, "{s}");
        assert!(safe_name(".hidden").starts_with("_.hidden-"));
        assert!(safe_name("-rf").starts_with("_-rf-"));
        assert_ne!(safe_name("x-deadbeef"), "x-deadbeef");
        assert_ne!(safe_name("a.b"), safe_name("a::b"));
    }

    #[test]
    fn deterministic() {
        for n in tricky_names() {
            assert_eq!(safe_name(&n), safe_name(&n));
        }
    }

    #[test]
    fn tricky_names_are_safe_and_do_not_collide() {
        let mut seen: HashMap<String, String> = HashMap::new();
        for n in tricky_names() {
            let s = safe_name(&n);
            check_component(&s);
            if let Some(prev) = seen.insert(s.clone(), n.clone()) {
                panic!("{prev:?} and {n:?} both map to {s:?}");
            }
        }
    }

    #[test]
    fn generated_names_do_not_collide() {
        // Every string of length <= 3 over an alphabet of awkward characters.
        let alphabet = ['a', ':', '.', '/', ' ', '-', '_', 'é', '\0'];
        let mut names = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for p in &frontier {
                for c in alphabet {
                    let mut s = p.clone();
                    s.push(c);
                    next.push(s);
                }
            }
            names.extend(next.iter().cloned());
            frontier = next;
        }
        let mut seen: HashMap<String, String> = HashMap::new();
        for n in names {
            let s = safe_name(&n);
            check_component(&s);
            if let Some(prev) = seen.insert(s.clone(), n.clone()) {
                panic!("{prev:?} and {n:?} both map to {s:?}");
            }
        }
    }

    #[test]
    fn join_inside_refuses_escapes() {
        let root = Path::new("/runs/r1/t");
        assert_eq!(
            join_inside(root, "logs/serial.log").unwrap(),
            root.join("logs/serial.log")
        );
        assert_eq!(join_inside(root, "./a").unwrap(), root.join("a"));
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/../../x",
            "a/..",
            "/etc/passwd",
            "/",
        ] {
            let e = join_inside(root, bad).unwrap_err();
            assert!(matches!(e.kind, ErrorKind::Escape { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("/runs/r1/t"), "{e}");
        }
    }

    #[test]
    fn join_inside_stays_inside_for_safe_names() {
        let root = Path::new("/runs/r1");
        for n in tricky_names() {
            let p = join_inside(root, safe_name(&n)).unwrap();
            assert_eq!(p.parent(), Some(root));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any name maps to one safe component, the same each time.
        #[test]
        fn any_name_is_a_safe_component(name in ".{0,300}") {
            let s = safe_name(&name);
            check_component(&s);
            proptest::prop_assert_eq!(s, safe_name(&name));
        }

        /// Two different names never share a component (short of a
        /// sha256 prefix collision), also for names built from the
        /// characters the mapping merges.
        #[test]
        fn different_names_differ(a in "[a:./ _é-]{0,12}", b in "[a:./ _é-]{0,12}") {
            if a != b {
                proptest::prop_assert_ne!(safe_name(&a), safe_name(&b));
            }
        }
    }
}
