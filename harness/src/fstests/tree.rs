//! The fstests tree on the host: a built checkout given by the user
//! (`--fstests DIR`), or one built here from a source folder or tarball
//! (`--fstests-src`), cached by the hash of the source under
//! `<cache>/fstests/<hash>/`.
//!
//! A tree is checked before anything boots: a tree that is not built (no
//! `ltp/fsstress`, no binaries under `src/`) is refused with a message
//! saying how to build it.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::{Error, OwnedChild, Result};

/// Debian packages fstests needs to build (`make`) on the host.
pub const BUILD_PACKAGES: &[&str] = &[
    "build-essential",
    "autoconf",
    "automake",
    "libtool",
    "pkg-config",
    "xfslibs-dev",
    "uuid-dev",
    "libattr1-dev",
    "libacl1-dev",
    "libaio-dev",
    "libgdbm-dev",
    "libcap-dev",
    "liburing-dev",
    "gawk",
];

/// How long a build may take (a cold `make` on 2 cores takes about 45 s).
const BUILD_TIMEOUT: Duration = Duration::from_secs(1800);

/// A built fstests tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstestsTree {
    /// Its top folder (where `check` is).
    pub dir: PathBuf,
}

impl FstestsTree {
    /// A built tree at `dir`; refused, naming what is missing, when it is
    /// not an fstests tree or not built.
    pub fn open(dir: impl AsRef<Path>) -> Result<FstestsTree> {
        let dir = std::path::absolute(dir.as_ref()).unwrap_or_else(|_| dir.as_ref().into());
        let bad = |message: String| Error::Config {
            what: format!("fstests tree {}", dir.display()),
            message,
        };
        if !dir.join("check").is_file() || !dir.join("tests").is_dir() {
            return Err(bad(
                "not an fstests tree (no `check` script or `tests/` folder)".into(),
            ));
        }
        let unbuilt = |what: &str| {
            bad(format!(
                "is not built: {what}; run `make -j$(nproc)` in it, or give the source with --fstests-src to have bootrig build it"
            ))
        };
        if !is_executable(&dir.join("ltp/fsstress")) {
            return Err(unbuilt("ltp/fsstress is missing"));
        }
        let built_helpers = fs::read_dir(dir.join("src"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| is_elf(&e.path()))
                    .count()
            })
            .unwrap_or(0);
        if built_helpers == 0 {
            return Err(unbuilt("no built helper binaries under src/"));
        }
        Ok(FstestsTree { dir })
    }

    /// Test names (`generic/001`) in `groups` for a section of type
    /// `fstyp`, as `check -g` picks them: from `tests/generic` and
    /// `tests/<fstyp>` (`ext4` for ext2/ext3), or `tests/<dir>` for a group
    /// written `<dir>/<group>`; read from the `group.list` files made by
    /// the build.
    pub fn group_tests(&self, groups: &[String], fstyp: &str) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for group in groups {
            let (dirs, name): (Vec<String>, &str) = match group.split_once('/') {
                Some((d, g)) => (vec![d.to_string()], g),
                None => {
                    let fsdir = match fstyp {
                        "ext2" | "ext3" => "ext4",
                        other => other,
                    };
                    (vec!["generic".into(), fsdir.to_string()], group.as_str())
                }
            };
            for d in dirs {
                let list = self.dir.join("tests").join(&d).join("group.list");
                let Ok(text) = fs::read_to_string(&list) else {
                    continue;
                };
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    let mut words = line.split_whitespace();
                    let Some(num) = words.next() else { continue };
                    if name == "all" || words.any(|w| w == name) {
                        out.insert(format!("{d}/{num}"));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether `test` (`generic/001`) exists in the tree and is listed in
    /// its folder's `group.list` (`check` ignores a test that is not, as
    /// an "unknown test").
    pub fn has_test(&self, test: &str) -> bool {
        let Some((dir, num)) = test.split_once('/') else {
            return false;
        };
        let listed = fs::read_to_string(self.dir.join("tests").join(dir).join("group.list"))
            .is_ok_and(|t| t.lines().any(|l| l.split_whitespace().next() == Some(num)));
        listed && self.dir.join("tests").join(test).is_file()
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_elf(p: &Path) -> bool {
    let mut magic = [0u8; 4];
    is_executable(p)
        && File::open(p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && magic == *b"\x7fELF"
}

/// The build packages not installed on this host (asked of dpkg), or
/// all of them with a note when dpkg is not there.
pub fn missing_build_packages() -> Vec<&'static str> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\n"])
        .args(BUILD_PACKAGES)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else {
        return BUILD_PACKAGES.to_vec();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.ends_with("install ok installed"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|p| p.split(':').next().unwrap_or(p))
        .collect();
    BUILD_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect()
}

/// Builds fstests from `source` (a source folder or a `.tar.*` tarball)
/// into `<cache>/fstests/<hash>/`, or returns the tree already built
/// there. `progress` gets one line per step. The build dependencies are
/// checked first; a missing one fails before anything is unpacked.
pub fn build_from_source(
    source: &Path,
    cache: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<FstestsTree> {
    let hash = source_hash(source)?;
    let root = cache.join("fstests");
    let dest = root.join(&hash);
    if let Ok(tree) = FstestsTree::open(&dest) {
        if dest.join(".bootrig-built").is_file() {
            return Ok(tree);
        }
    }
    let missing = missing_build_packages();
    if !missing.is_empty() {
        return Err(Error::MissingTool {
            tool: "fstests build dependencies".into(),
            hint: format!(
                "building fstests needs {}: apt-get install -y {} (or run scripts/install-deps.sh)",
                missing.join(" "),
                missing.join(" ")
            ),
        });
    }
    fs::create_dir_all(&root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let lock_path = root.join(format!("{hash}.lock"));
    let _lock = File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
    if dest.join(".bootrig-built").is_file() {
        return FstestsTree::open(&dest);
    }
    let tmp = root.join(format!("{hash}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    progress(&format!(
        "fstests: unpacking {} into {}",
        source.display(),
        dest.display()
    ));
    if source.is_dir() {
        run_step(
            Command::new("cp").arg("-a").arg(source.join(".")).arg(&tmp),
            "copying the fstests source",
            &root.join(format!("{hash}.build.log")),
        )?;
    } else {
        run_step(
            Command::new("tar")
                .arg("-xf")
                .arg(source)
                .arg("-C")
                .arg(&tmp)
                .arg("--strip-components=1"),
            "unpacking the fstests tarball",
            &root.join(format!("{hash}.build.log")),
        )?;
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let log = root.join(format!("{hash}.build.log"));
    progress(&format!(
        "fstests: make -j{jobs} (about a minute; log {})",
        log.display()
    ));
    run_step(
        Command::new("make")
            .arg(format!("-j{jobs}"))
            .current_dir(&tmp),
        "building fstests (make)",
        &log,
    )?;
    FstestsTree::open(&tmp)?;
    fs::write(tmp.join(".bootrig-built"), source.display().to_string())
        .map_err(|e| Error::io("marking the fstests build done", e))?;
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&tmp, &dest)
        .map_err(|e| Error::io(format!("moving the build to {}", dest.display()), e))?;
    progress("fstests: built");
    FstestsTree::open(&dest)
}

/// Runs one build step with its output appended to `log`.
fn run_step(cmd: &mut Command, what: &str, log: &Path) -> Result<()> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child =
        OwnedChild::spawn(what.to_string(), cmd).map_err(|e| Error::io(what.to_string(), e))?;
    let status = child
        .wait_deadline(BUILD_TIMEOUT)
        .map_err(|e| Error::io(what.to_string(), e))?;
    match status {
        Some(s) if s.success() => Ok(()),
        other => Err(Error::Config {
            what: what.into(),
            message: format!(
                "failed ({}); the last lines of {}:\n{}",
                other.map_or("timed out".into(), |s| s.to_string()),
                log.display(),
                tail(log, 20)
            ),
        }),
    }
}

/// The last `n` lines of the file at `path`.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The cache key of a source: the sha256 of a tarball's bytes, or of a
/// folder's file names and contents (build products and `.git` skipped).
pub fn source_hash(source: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let read = |p: &Path| fs::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e));
    if source.is_file() {
        let mut f = File::open(source)
            .map_err(|e| Error::io(format!("reading {}", source.display()), e))?;
        std::io::copy(&mut f, &mut h)
            .map_err(|e| Error::io(format!("reading {}", source.display()), e))?;
    } else if source.is_dir() {
        let mut files = Vec::new();
        walk(source, &mut files)
            .map_err(|e| Error::io(format!("reading {}", source.display()), e))?;
        files.sort();
        for f in files {
            h.update(
                f.strip_prefix(source)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .as_bytes(),
            );
            h.update([0]);
            h.update(read(&f)?);
        }
    } else {
        return Err(Error::Config {
            what: "--fstests-src".into(),
            message: format!("{} is neither a folder nor a tarball", source.display()),
        });
    }
    let digest = h.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let name = e.file_name();
        if name == ".git" || name == "results" {
            continue;
        }
        let t = e.file_type()?;
        if t.is_dir() {
            walk(&p, out)?;
        } else if t.is_file() && !is_elf(&p) && p.extension().is_none_or(|x| x != "o" && x != "lo")
        {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbuilt_tree_is_refused_with_the_reason() {
        let d = tempfile::tempdir().unwrap();
        let err = FstestsTree::open(d.path()).unwrap_err().to_string();
        assert!(err.contains("not an fstests tree"), "{err}");
        fs::write(d.path().join("check"), "#!/bin/sh\n").unwrap();
        fs::create_dir_all(d.path().join("tests/generic")).unwrap();
        let err = FstestsTree::open(d.path()).unwrap_err().to_string();
        assert!(err.contains("ltp/fsstress is missing"), "{err}");
        fs::create_dir_all(d.path().join("ltp")).unwrap();
        fs::copy("/bin/true", d.path().join("ltp/fsstress")).unwrap();
        fs::create_dir_all(d.path().join("src")).unwrap();
        fs::write(d.path().join("src/foo.c"), "int main(){}").unwrap();
        let err = FstestsTree::open(d.path()).unwrap_err().to_string();
        assert!(err.contains("no built helper binaries under src/"), "{err}");
        fs::copy("/bin/true", d.path().join("src/foo")).unwrap();
        FstestsTree::open(d.path()).unwrap();
    }

    #[test]
    fn groups_expand_like_check() {
        let d = tempfile::tempdir().unwrap();
        for (dir, list) in [
            ("generic", "# c\n001 auto quick\n002 auto\n"),
            ("ext4", "001 auto quick\n"),
            ("xfs", "001 auto quick\n"),
        ] {
            fs::create_dir_all(d.path().join("tests").join(dir)).unwrap();
            fs::write(d.path().join("tests").join(dir).join("group.list"), list).unwrap();
        }
        let tree = FstestsTree {
            dir: d.path().into(),
        };
        let quick: Vec<_> = tree
            .group_tests(&["quick".into()], "ext3")
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(quick, ["ext4/001", "generic/001"]);
        let xfs: Vec<_> = tree
            .group_tests(&["xfs/auto".into()], "ext4")
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(xfs, ["xfs/001"]);
    }
}
