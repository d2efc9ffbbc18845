//! The code's shape, checked: no import cycles between the modules of
//! either crate, and no harness module over ~600 lines unless it is listed
//! below with the one job that makes it long.
//!
//! Dependencies are read from the source: every `crate::a::b` path outside
//! comments and `#[cfg(test)]` modules is an edge from the file that writes
//! it to the file that defines `a::b` (the longest module prefix that is a
//! file). A path through a re-export (`crate::Error`, `crate::run::Event`)
//! is followed to the file the item comes from, so a folder's `mod.rs` or
//! the crate root never hides a cycle. The harness's folders are checked
//! as units as well.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Harness files allowed over the line limit, and the one job each does.
const LONG_BUT_ONE_JOB: &[(&str, &str)] = &[(
    "run/steps.rs",
    "the step kinds: each kind's fields, parse, description, shell need and \
     execution in one table, so that a new kind touches this file only",
)];

/// Lines (without the `#[cfg(test)]` module) a harness file may have.
const MAX_LINES: usize = 600;

struct Crate {
    /// Module path (`run::engine`) → source without tests and comments.
    modules: BTreeMap<String, String>,
    /// (module, re-exported name) → the module path it re-exports.
    reexports: BTreeMap<(String, String), String>,
}

fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without `//` comments and without the `#[cfg(test)] mod`
/// block at the end of the file.
fn code_of(text: &str) -> String {
    let cut = text
        .find("#[cfg(test)]\nmod ")
        .or_else(|| text.find("#[cfg(test)]\npub mod "))
        .unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn load(src: &Path) -> Crate {
    let mut files = Vec::new();
    rs_files(src, &mut files);
    let mut modules = BTreeMap::new();
    for f in &files {
        if f.file_name().is_some_and(|n| n == "main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        modules.insert(module_path(src, f), code_of(&text));
    }
    // `pub use a::b::{C, D};` / `pub use self::a::C;` / `pub use crate::a::C;`
    // in any module: names re-exported there point at the source module.
    let re = regex::Regex::new(r"pub use (?:crate::|self::)?([a-z_:]+?)::(?:\{([^}]*)\}|([A-Za-z_]+))(?: as ([A-Za-z_]+))?;").unwrap();
    let mut reexports = BTreeMap::new();
    for (m, code) in &modules {
        for c in re.captures_iter(code) {
            let path = &c[1];
            if path.starts_with("bootrig") || path.starts_with("std") {
                continue;
            }
            let base = if m.is_empty() || c[0].contains("crate::") {
                path.to_string()
            } else {
                format!("{m}::{path}")
            };
            let names: Vec<String> = match (c.get(2), c.get(3)) {
                (Some(list), _) => list
                    .as_str()
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .split(" as ")
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_string()
                    })
                    .filter(|n| !n.is_empty())
                    .collect(),
                (None, Some(one)) => {
                    vec![c.get(4).map_or(one.as_str(), |a| a.as_str()).to_string()]
                }
                _ => vec![],
            };
            for n in names {
                reexports.insert((m.clone(), n), base.clone());
            }
        }
    }
    Crate { modules, reexports }
}

impl Crate {
    /// The module a `crate::...` path lands in.
    fn resolve(&self, segments: &[&str]) -> Option<String> {
        let mut best: Option<String> = None;
        for i in (0..=segments.len()).rev() {
            let m = segments[..i].join("::");
            if self.modules.contains_key(&m) {
                best = Some(m);
                break;
            }
        }
        let m = best?;
        let depth = if m.is_empty() {
            0
        } else {
            m.split("::").count()
        };
        // Through a re-export: `crate::run::Event` → run::events.
        if let Some(next) = segments.get(depth) {
            if let Some(target) = self.reexports.get(&(m.clone(), next.to_string())) {
                if target != &m {
                    let mut segs: Vec<&str> = target.split("::").collect();
                    segs.extend_from_slice(&segments[depth + 1..]);
                    segs.push(next);
                    return self.resolve(&segs);
                }
            }
        }
        Some(m)
    }

    fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let path = regex::Regex::new(r"\bcrate((?:::[A-Za-z_][A-Za-z0-9_]*)+)").unwrap();
        let group = regex::Regex::new(r"\bcrate::\{([^}]*)\}").unwrap();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (m, code) in &self.modules {
            let mut targets = BTreeSet::new();
            for c in path.captures_iter(code) {
                let segs: Vec<&str> = c[1].trim_start_matches("::").split("::").collect();
                if let Some(t) = self.resolve(&segs) {
                    targets.insert(t);
                }
            }
            for c in group.captures_iter(code) {
                for item in c[1].split(',') {
                    let segs: Vec<&str> = item.trim().split("::").collect();
                    if let Some(t) = self.resolve(&segs) {
                        targets.insert(t);
                    }
                }
            }
            // A folder module declaring its children is not a use of them.
            targets.retain(|t| t != m && !m.is_empty());
            out.insert(m.clone(), targets);
        }
        out
    }
}

/// Every cycle's members, found with Tarjan's strongly connected components.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct St<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = St {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src")
}

fn assert_no_cycles(krate: &str) {
    let c = load(&src(krate));
    let found = cycles(&c.edges());
    assert!(
        found.is_empty(),
        "import cycles in {krate}: {found:?}\n(each group of modules uses each other)"
    );
}

#[test]
fn harness_has_no_import_cycles() {
    assert_no_cycles("harness");
}

/// The folders (and top-level files) of the harness read one way too:
/// console ← vm ← guest ← postmortem ← run ← cli.
#[test]
fn harness_folders_have_no_import_cycles() {
    let c = load(&src("harness"));
    let top = |m: &str| m.split("::").next().unwrap_or("").to_string();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, targets) in c.edges() {
        let entry = folders.entry(top(&m)).or_default();
        entry.extend(targets.iter().map(|t| top(t)).filter(|t| *t != top(&m)));
    }
    let found = cycles(&folders);
    assert!(
        found.is_empty(),
        "folder-level import cycles in harness: {found:?}"
    );
}

#[test]
fn diagnostics_has_no_import_cycles() {
    assert_no_cycles("diagnostics");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut e: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    e.insert("a".into(), ["b".to_string()].into());
    e.insert("b".into(), ["c".to_string()].into());
    e.insert("c".into(), ["a".to_string()].into());
    e.insert("d".into(), ["a".to_string()].into());
    assert_eq!(cycles(&e), vec![vec!["a", "b", "c"]]);
    e.get_mut("c").unwrap().clear();
    assert!(cycles(&e).is_empty());
}

#[test]
fn re_exports_are_followed_to_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    std::fs::create_dir_all(s.join("run")).unwrap();
    std::fs::write(
        s.join("lib.rs"),
        "pub mod run;\npub mod errors;\npub use errors::Error;\n",
    )
    .unwrap();
    std::fs::write(
        s.join("run/mod.rs"),
        "pub mod events;\npub use events::{Event, Reporter};\n",
    )
    .unwrap();
    std::fs::write(
        s.join("run/events.rs"),
        "use crate::Error;\npub struct Event;\n",
    )
    .unwrap();
    std::fs::write(
        s.join("errors.rs"),
        "pub struct Error(crate::run::Event);\n",
    )
    .unwrap();
    let c = load(s);
    let e = c.edges();
    assert_eq!(e["errors"], ["run::events".to_string()].into());
    assert_eq!(e["run::events"], ["errors".to_string()].into());
    assert_eq!(cycles(&e).len(), 1);
}

#[test]
fn harness_modules_are_short_or_do_one_job() {
    let root = src("harness");
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    let mut long = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines = code_of(&text).lines().count();
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        if lines > MAX_LINES && !LONG_BUT_ONE_JOB.iter().any(|(p, _)| *p == rel) {
            long.push(format!("{rel}: {lines} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "harness modules over {MAX_LINES} lines (split them, or list the one job in LONG_BUT_ONE_JOB): {long:?}"
    );
}
