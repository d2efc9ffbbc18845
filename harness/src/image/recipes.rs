//! Where the image recipes come from.
//!
//! The recipes live in `scenarios/images/` (`harness/images` is a symlink
//! to it, so `cargo package` ships them inside the `bootrig` crate). They
//! are also embedded in the binary: a crate from a registry has no
//! `scenarios/` folder, and its source folder may be gone when the test
//! binary runs. Then the embedded set is written once to
//! `<cache>/recipes/<hash>/` and used from there. A source checkout keeps
//! using its own `scenarios/images`, so editing a recipe rebuilds the image.
//!
//! The image cache key hashes the recipe files by relative path and
//! content, so the embedded copy of a recipe gives the same key as the
//! source file it came from, and an image built from a checkout is reused
//! by a registry dependency (and the other way round).

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::errors::{Error, Result};

/// Every recipe file, by path relative to the recipes folder. A unit test
/// checks this list against the files on disk.
const EMBEDDED: &[(&str, &[u8])] = &[
    ("README.md", include_bytes!("../../images/README.md")),
    ("lib.sh", include_bytes!("../../images/lib.sh")),
    (
        "busybox/packages.txt",
        include_bytes!("../../images/busybox/packages.txt"),
    ),
    (
        "busybox/recipe.sh",
        include_bytes!("../../images/busybox/recipe.sh"),
    ),
    (
        "debian/packages.txt",
        include_bytes!("../../images/debian/packages.txt"),
    ),
    (
        "debian/recipe.sh",
        include_bytes!("../../images/debian/recipe.sh"),
    ),
    (
        "fstests/packages.txt",
        include_bytes!("../../images/fstests/packages.txt"),
    ),
    (
        "fstests/recipe.sh",
        include_bytes!("../../images/fstests/recipe.sh"),
    ),
    (
        "iso/packages.txt",
        include_bytes!("../../images/iso/packages.txt"),
    ),
    (
        "iso/recipe.sh",
        include_bytes!("../../images/iso/recipe.sh"),
    ),
    ("iso/uses.txt", include_bytes!("../../images/iso/uses.txt")),
];

/// Where an image store reads its recipes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipeSource {
    /// A folder of recipes on disk, used as it is.
    Dir(PathBuf),
    /// The recipes embedded in bootrig, written to this folder (under the
    /// cache) on first use.
    Embedded(PathBuf),
}

impl RecipeSource {
    /// `$BOOTRIG_IMAGES`; else the `scenarios/images` folder of the source
    /// tree bootrig was built from, if it is still there; else the
    /// embedded recipes, written under `cache`.
    pub fn default_for(cache: &Path) -> RecipeSource {
        if let Some(dir) = std::env::var_os("BOOTRIG_IMAGES") {
            return RecipeSource::Dir(dir.into());
        }
        let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/images");
        if source_tree.is_dir() {
            return RecipeSource::Dir(source_tree);
        }
        RecipeSource::embedded(cache)
    }

    /// The embedded recipes, to be written under `<cache>/recipes/`.
    pub fn embedded(cache: &Path) -> RecipeSource {
        RecipeSource::Embedded(cache.join("recipes").join(embedded_hash()))
    }

    /// The recipes folder (for the embedded recipes, where they are or
    /// will be written).
    pub fn dir(&self) -> &Path {
        match self {
            RecipeSource::Dir(dir) | RecipeSource::Embedded(dir) => dir,
        }
    }

    /// The recipes folder, written first if these are the embedded
    /// recipes and they are not there yet.
    pub fn ready(&self) -> Result<&Path> {
        if let RecipeSource::Embedded(dir) = self {
            materialise(dir)?;
        }
        Ok(self.dir())
    }
}

/// A short hash of the embedded set, naming its folder under the cache.
fn embedded_hash() -> String {
    let mut h = Sha256::new();
    for (rel, bytes) in EMBEDDED {
        h.update(rel.as_bytes());
        h.update([0]);
        h.update(bytes);
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the embedded recipes to `dir` unless it exists. Written to a
/// temporary folder next to it and renamed into place, so a concurrent
/// process sees either no folder or a complete one.
fn materialise(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    let err = |what: &str, p: &Path, e| Error::io(format!("{what} {}", p.display()), e);
    fs::create_dir_all(parent).map_err(|e| err("creating", parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".recipes-")
        .tempdir_in(parent)
        .map_err(|e| err("creating a folder in", parent, e))?;
    for (rel, bytes) in EMBEDDED {
        let path = tmp.path().join(rel);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(|e| err("creating", p, e))?;
        }
        fs::write(&path, bytes).map_err(|e| err("writing", &path, e))?;
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .map_err(|e| err("making executable", &path, e))?;
        }
    }
    match fs::rename(tmp.path(), dir) {
        Ok(()) => Ok(()),
        // Another process put its complete copy there first.
        Err(_) if dir.is_dir() => Ok(()),
        Err(e) => Err(err("moving the recipes to", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files_under(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into());
            }
        }
    }

    #[test]
    fn embedded_set_is_every_recipe_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("images");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|(r, _)| r.to_string()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "harness/src/image/recipes.rs must embed every file of scenarios/images"
        );
        for (rel, bytes) in EMBEDDED {
            assert_eq!(fs::read(root.join(rel)).unwrap(), *bytes, "{rel}");
        }
    }

    #[test]
    fn materialised_copy_matches_and_is_written_once() {
        let cache = tempfile::tempdir().unwrap();
        let source = RecipeSource::embedded(cache.path());
        let dir = source.ready().unwrap().to_path_buf();
        assert!(dir.starts_with(cache.path().join("recipes")));
        for (rel, bytes) in EMBEDDED {
            assert_eq!(fs::read(dir.join(rel)).unwrap(), *bytes, "{rel}");
        }
        // A second use finds it in place and leaves no temporary folders.
        fs::write(dir.join("marker"), "").unwrap();
        source.ready().unwrap();
        assert!(dir.join("marker").exists());
        let entries: Vec<_> = fs::read_dir(dir.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }
}
