//! Baselines of known failures: fstests expunge files (`-E`) and the
//! kdevops `expunges/<kernel>/<fs>/...` layout. A failure listed here is
//! expected (an xfail), not a regression.

use std::path::{Path, PathBuf};

use crate::errors::{Error, ErrorKind, Result};

/// One known failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineEntry {
    /// The section it applies to; `None` for every section.
    pub section: Option<String>,
    /// The test, `generic/001`.
    pub test: String,
    /// The line's `# comment`, else `listed in <file>:<line>`.
    pub reason: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Its 1-based line.
    pub line: usize,
}

/// A set of known failures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Baseline {
    /// Every entry, in file order.
    pub entries: Vec<BaselineEntry>,
}

impl Baseline {
    /// Loads an expunge / known-failures file, or a folder of them.
    ///
    /// A file has one test per line (`generic/001`, or `generic/001 #
    /// reason`); `#` lines and blank lines are comments; a `[section]`
    /// line scopes the lines after it to that section (`[all]` or `[]`
    /// back to every section). A folder is read recursively: each file
    /// applies to the section named by its stem (`xfs_reflink.txt`),
    /// except `all.txt` / `all`, which applies to every section (the
    /// kdevops layout).
    pub fn load(path: &Path) -> Result<Baseline> {
        let mut b = Baseline::default();
        if path.is_dir() {
            b.load_dir(path)?;
        } else {
            let text = read(path)?;
            b.entries
                .extend(Baseline::parse(&text, None, path)?.entries);
        }
        Ok(b)
    }

    /// Loads kdevops' expunge lists for `kernel` and `fs`:
    /// `root/expunges/<kernel>/<fs>/` (or `root/<kernel>/<fs>/` when `root`
    /// is the `expunges` folder itself), with one file per section,
    /// possibly under `unassigned/` or `assigned/`.
    pub fn load_kdevops(root: &Path, kernel: &str, fs: &str) -> Result<Baseline> {
        let candidates = [
            root.join("expunges").join(kernel).join(fs),
            root.join(kernel).join(fs),
        ];
        match candidates.iter().find(|p| p.is_dir()) {
            Some(dir) => {
                let mut b = Baseline::default();
                b.load_dir(dir)?;
                Ok(b)
            }
            None => Err(Error::new(
                "loading the kdevops baseline",
                &candidates[0],
                ErrorKind::Format(format!(
                    "no expunge folder for kernel {kernel:?} and filesystem {fs:?} (also tried {})",
                    candidates[1].display()
                )),
            )),
        }
    }

    /// Parses the text of one baseline file (`file` is named in entries
    /// and errors); its entries apply to `section` unless a `[section]`
    /// line says otherwise. A line whose first word is not `group/name`
    /// is an error naming the file and line.
    pub fn parse(text: &str, section: Option<&str>, file: &Path) -> Result<Baseline> {
        let mut entries = Vec::new();
        let mut current = section.map(str::to_string);
        for (i, raw) in text.lines().enumerate() {
            let (body, comment) = match raw.find('#') {
                Some(p) => (&raw[..p], Some(raw[p + 1..].trim())),
                None => (raw, None),
            };
            let body = body.trim();
            if body.is_empty() {
                continue;
            }
            if let Some(name) = body.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                let name = name.trim();
                current = (!name.is_empty() && name != "all").then(|| name.to_string());
                continue;
            }
            let test = body.split_whitespace().next().unwrap_or(body);
            let valid = test
                .split_once('/')
                .is_some_and(|(g, n)| !g.is_empty() && !n.is_empty() && !n.contains('/'));
            if !valid {
                return Err(Error::new(
                    "reading the baseline",
                    file,
                    ErrorKind::Format(format!(
                        "line {}: {test:?} is not a test name like generic/001",
                        i + 1
                    )),
                ));
            }
            let reason = comment
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| format!("listed in {}:{}", file.display(), i + 1));
            entries.push(BaselineEntry {
                section: current.clone(),
                test: test.to_string(),
                reason,
                file: file.to_path_buf(),
                line: i + 1,
            });
        }
        Ok(Baseline { entries })
    }

    /// Why `test` of `section` is a known failure (`None` when it is not
    /// listed). An entry for a section matches only that section; an entry
    /// for every section matches any.
    pub fn known_failure(&self, section: Option<&str>, test: &str) -> Option<&str> {
        let matches = |e: &&BaselineEntry| e.test == test;
        self.entries
            .iter()
            .filter(matches)
            .find(|e| e.section.is_some() && e.section.as_deref() == section)
            .or_else(|| {
                self.entries
                    .iter()
                    .filter(matches)
                    .find(|e| e.section.is_none())
            })
            .map(|e| e.reason.as_str())
    }

    /// Adds the entries of every file under `dir` (sorted), each for the
    /// section named by its stem.
    fn load_dir(&mut self, dir: &Path) -> Result<()> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("reading the baseline folder", dir, e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                self.load_dir(&p)?;
                continue;
            }
            let stem = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .map(|n| n.strip_suffix(".txt").unwrap_or(&n).to_string())
                .unwrap_or_default();
            if stem.starts_with('.') || stem.ends_with('~') {
                continue;
            }
            let section = (stem != "all").then_some(stem.as_str());
            let text = read(&p)?;
            self.entries
                .extend(Baseline::parse(&text, section, &p)?.entries);
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading the baseline", path, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_with_comments_and_sections() {
        let text = "# known failures of 6.1\n\ngeneric/001   # bz#1234: slow\nxfs/050\n[xfs_1k]\ngeneric/475 # flaky on 1k\n[all]\next4/032\n";
        let b = Baseline::parse(text, None, Path::new("/b/known.txt")).unwrap();
        assert_eq!(b.entries.len(), 4);
        assert_eq!(
            b.known_failure(Some("ext4_4k"), "generic/001"),
            Some("bz#1234: slow")
        );
        assert_eq!(
            b.known_failure(None, "xfs/050"),
            Some("listed in /b/known.txt:4")
        );
        assert_eq!(
            b.known_failure(Some("xfs_1k"), "generic/475"),
            Some("flaky on 1k")
        );
        assert_eq!(b.known_failure(Some("ext4_4k"), "generic/475"), None);
        assert!(b.known_failure(Some("ext4_4k"), "ext4/032").is_some());
        assert_eq!(b.known_failure(None, "generic/002"), None);
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let e = Baseline::parse("generic/001\nnot-a-test # x\n", None, Path::new("/b/x.txt"))
            .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("/b/x.txt") && s.contains("line 2") && s.contains("not-a-test"),
            "{s}"
        );
    }

    #[test]
    fn kdevops_layout() {
        let root = tempfile::tempdir().unwrap();
        let fs = root.path().join("expunges/6.1.0-56-cloud-amd64/xfs");
        std::fs::create_dir_all(fs.join("unassigned")).unwrap();
        std::fs::write(fs.join("all.txt"), "generic/475 # all sections\n").unwrap();
        std::fs::write(fs.join("unassigned/xfs_reflink.txt"), "xfs/050 # quota\n").unwrap();
        let b = Baseline::load_kdevops(root.path(), "6.1.0-56-cloud-amd64", "xfs").unwrap();
        assert_eq!(
            b.known_failure(Some("xfs_reflink"), "xfs/050"),
            Some("quota")
        );
        assert_eq!(b.known_failure(Some("xfs_1k"), "xfs/050"), None);
        assert_eq!(
            b.known_failure(Some("xfs_1k"), "generic/475"),
            Some("all sections")
        );
        // The expunges folder itself as the root works too.
        let b2 =
            Baseline::load_kdevops(&root.path().join("expunges"), "6.1.0-56-cloud-amd64", "xfs")
                .unwrap();
        assert_eq!(b2, b);
        let e = Baseline::load_kdevops(root.path(), "6.2", "xfs")
            .unwrap_err()
            .to_string();
        assert!(e.contains("6.2") && e.contains("expunges"), "{e}");
        // Baseline::load on the folder reads the same files.
        assert_eq!(Baseline::load(&fs).unwrap().entries.len(), 2);
    }
}
