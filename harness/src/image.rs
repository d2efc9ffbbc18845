//! Built-in guest images, built from Debian packages on first use.
//!
//! A recipe is a folder `scenarios/images/<name>/` with `recipe.sh OUTDIR`
//! and `packages.txt` (see `scenarios/images/README.md`); the recipes are
//! also embedded in bootrig, for a crate used from a registry (see
//! [`RecipeSource`]). A built image is
//! cached under `<cache>/images/<name>-<key>/`, where the key hashes every
//! recipe file and the candidate versions of the recipe's packages, so a
//! new kernel in the archive or an edited recipe builds a new image and an
//! unchanged one is reused. Builds hold a lock, so parallel tests wait for
//! one build instead of racing.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

mod recipes;
use sha2::{Digest, Sha256};

use crate::errors::{Error, Result};
pub use crate::image::recipes::RecipeSource;
use crate::vm::config::{Firmware, MachineConfig};
use crate::vm::process::OwnedChild;

/// The built-in image names.
pub const BUILTIN: &[&str] = &["busybox", "debian", "iso", "fstests"];

/// Credentials from an image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// `image.json`, written by a recipe next to the files it built.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageManifest {
    /// Kernel file, relative to the image folder.
    pub kernel: Option<PathBuf>,
    /// Initrd file.
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[serde(default)]
    pub append: Option<String>,
    /// Root disk file.
    pub disk: Option<PathBuf>,
    /// ISO file.
    pub iso: Option<PathBuf>,
    /// Firmwares the ISO or disk boots with.
    #[serde(default)]
    pub firmware: Vec<Firmware>,
    /// A user to log in as.
    pub login: Option<Credentials>,
    /// Root's password.
    pub root_password: Option<String>,
    /// Prompt regex of a shell without login.
    pub shell_prompt: Option<String>,
    /// Login prompt regex, if not the usual `login:`.
    pub login_prompt: Option<String>,
    /// A kernel to probe KVM with, for images that boot none directly.
    pub probe_kernel: Option<PathBuf>,
    /// What the image is.
    #[serde(default)]
    pub description: String,
}

/// A built image: its folder and manifest.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image name.
    pub name: String,
    /// The folder holding its files.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: ImageManifest,
}

/// A reference to an image that may not be built yet. Naming one costs
/// nothing; [`ImageStore::ensure`] builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The image name.
    pub name: String,
}

impl Image {
    /// Names a built-in image (`busybox`, `debian`, `iso`).
    pub fn builtin(name: &str) -> ImageRef {
        ImageRef {
            name: name.to_string(),
        }
    }

    /// A machine config booting this image.
    pub fn machine_config(&self, vm_name: &str, firmware: Option<Firmware>) -> MachineConfig {
        let m = &self.manifest;
        let path = |p: &PathBuf| self.dir.join(p);
        let mut cfg = MachineConfig::new(vm_name);
        if let Some(k) = &m.kernel {
            cfg = cfg.with_kernel(
                path(k),
                m.initrd.as_ref().map(path),
                m.append.clone().unwrap_or_default(),
            );
        }
        if let Some(iso) = &m.iso {
            cfg = cfg.with_iso(path(iso));
        }
        if let Some(disk) = &m.disk {
            cfg = cfg.with_disk(path(disk));
        }
        cfg.with_firmware(firmware.or(m.firmware.first().copied()).unwrap_or_default())
    }

    /// A kernel usable for the KVM probe.
    pub fn kernel(&self) -> Option<PathBuf> {
        self.manifest
            .kernel
            .as_ref()
            .or(self.manifest.probe_kernel.as_ref())
            .map(|k| self.dir.join(k))
    }
}

/// Package name → candidate version.
type Versions = BTreeMap<String, String>;

/// Where recipes are and where built images go.
#[derive(Debug, Clone)]
pub struct ImageStore {
    /// Where the recipes are (`scenarios/images`, or the embedded copy).
    pub recipes: RecipeSource,
    /// The cache folder (images go to `<cache>/images`).
    pub cache: PathBuf,
    /// Package versions already looked up, by package list: `apt-cache
    /// policy` takes about 0.4 s and every test asks for its image's key.
    /// Shared by clones, so a whole run asks apt once per recipe.
    versions: Arc<Mutex<HashMap<Vec<String>, Versions>>>,
}

impl Default for ImageStore {
    /// Recipes from [`RecipeSource::default_for`], images under the default
    /// cache folder.
    fn default() -> Self {
        let cache = crate::vm::accel::default_cache_dir();
        ImageStore::with_source(RecipeSource::default_for(&cache), cache)
    }
}

impl ImageStore {
    /// A store with recipes in `recipes` and built images under `cache`.
    pub fn new(recipes: impl Into<PathBuf>, cache: impl Into<PathBuf>) -> ImageStore {
        ImageStore::with_source(RecipeSource::Dir(recipes.into()), cache)
    }

    /// A store with recipes from `recipes` and built images under `cache`.
    pub fn with_source(recipes: RecipeSource, cache: impl Into<PathBuf>) -> ImageStore {
        ImageStore {
            recipes,
            cache: cache.into(),
            versions: Arc::default(),
        }
    }

    /// Candidate versions of the packages listed in `list`, looked up once
    /// per store.
    fn package_versions(&self, list: &Path) -> BTreeMap<String, String> {
        let pkgs = read_list(list);
        let mut known = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        known
            .entry(pkgs.clone())
            .or_insert_with(|| package_versions(&pkgs))
            .clone()
    }

    fn recipe_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.recipes.ready()?.join(name);
        if !BUILTIN.contains(&name) || !dir.join("recipe.sh").is_file() {
            return Err(Error::Image {
                name: name.into(),
                message: format!(
                    "no recipe {}/recipe.sh (built-in images: {}; set BOOTRIG_IMAGES to the scenarios/images folder)",
                    dir.display(),
                    BUILTIN.join(", ")
                ),
            });
        }
        Ok(dir)
    }

    /// The cache key of an image: its recipe folder, the shared top-level
    /// scripts (`*.sh`), the folders of the recipes it builds on (named in
    /// `uses.txt`), and the candidate versions of its packages.
    pub fn key(&self, name: &str) -> Result<String> {
        let dir = self.recipe_dir(name)?;
        let recipes = self.recipes.dir();
        let read_err = |p: &Path, e| Error::io(format!("reading {}", p.display()), e);
        let mut files = Vec::new();
        collect_files(&dir, &mut files).map_err(|e| read_err(&dir, e))?;
        for used in read_list(&dir.join("uses.txt")) {
            let udir = recipes.join(&used);
            collect_files(&udir, &mut files).map_err(|e| read_err(&udir, e))?;
        }
        for e in fs::read_dir(recipes).map_err(|e| read_err(recipes, e))? {
            let p = e.map_err(|e| read_err(recipes, e))?.path();
            if p.is_file() && p.extension().is_some_and(|x| x == "sh") {
                files.push(p);
            }
        }
        files.sort();
        let mut h = Sha256::new();
        for f in &files {
            let rel = f.strip_prefix(recipes).unwrap_or(f);
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            h.update(fs::read(f).map_err(|e| read_err(f, e))?);
            h.update([0]);
        }
        for (pkg, version) in self.package_versions(&dir.join("packages.txt")) {
            h.update(format!("{pkg}={version}\n").as_bytes());
        }
        Ok(hex(&h.finalize())[..16].to_string())
    }

    /// The folder a built image lives in, if it is built and current.
    pub fn cached(&self, name: &str) -> Result<Option<Image>> {
        let key = self.key(name)?;
        let dir = self.cache.join("images").join(format!("{name}-{key}"));
        load_image(name, &dir)
    }

    /// Returns the image, building it first if needed. `progress` gets one
    /// line per recipe step.
    pub fn ensure(&self, image: &ImageRef, progress: &mut dyn FnMut(&str)) -> Result<Image> {
        let name = image.name.as_str();
        let recipe = self.recipe_dir(name)?;
        let key = self.key(name)?;
        let images = self.cache.join("images");
        fs::create_dir_all(&images)
            .map_err(|e| Error::io(format!("creating {}", images.display()), e))?;
        let dir = images.join(format!("{name}-{key}"));
        if let Some(img) = load_image(name, &dir)? {
            return Ok(img);
        }
        // One build at a time per image, across processes; the lock is
        // released when the file is closed.
        let lock_path = images.join(format!("{name}.lock"));
        let _lock = File::create(&lock_path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
        if let Some(img) = load_image(name, &dir)? {
            return Ok(img);
        }
        let tmp = images.join(format!("{name}-{key}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let log_path = images.join(format!("{name}-{key}.build.log"));
        progress(&format!(
            "building image {name} (recipe {}, log {})",
            recipe.display(),
            log_path.display()
        ));
        let log = File::create(&log_path)
            .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
        let mut cmd = Command::new("bash");
        cmd.arg(recipe.join("recipe.sh"))
            .arg(&tmp)
            .current_dir(&recipe)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = OwnedChild::spawn(format!("image recipe {name}"), &mut cmd)
            .map_err(|e| Error::io(format!("running {}/recipe.sh", recipe.display()), e))?;
        let stdout = child.take_stdout();
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                let step = line.strip_prefix("step: ").unwrap_or(&line);
                progress(&format!("image {name}: {step}"));
            }
        }
        let status = child
            .wait_deadline(std::time::Duration::from_secs(3600))
            .map_err(|e| Error::io("waiting for the recipe", e))?;
        drop(child);
        match status {
            Some(s) if s.success() => {}
            other => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(Error::Image {
                    name: name.into(),
                    message: format!(
                        "recipe failed ({}); last lines of {}:\n{}",
                        other
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "timed out".into()),
                        log_path.display(),
                        crate::vm::machine::tail_of_file(&log_path, 15)
                    ),
                });
            }
        }
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir)
            .map_err(|e| Error::io(format!("moving {} into place", tmp.display()), e))?;
        prune_stale(&images, name, &dir);
        load_image(name, &dir)?.ok_or_else(|| Error::Image {
            name: name.into(),
            message: format!("the recipe wrote no image.json in {}", dir.display()),
        })
    }
}

/// Removes older builds of `name` (other keys) so the cache does not grow
/// with every kernel update. Held under the build lock.
fn prune_stale(images: &Path, name: &str, keep: &Path) {
    let Ok(entries) = fs::read_dir(images) else {
        return;
    };
    let prefix = format!("{name}-");
    for e in entries.flatten() {
        let p = e.path();
        let fname = e.file_name().to_string_lossy().into_owned();
        let is_key = fname
            .strip_prefix(&prefix)
            .is_some_and(|k| k.len() == 16 && k.chars().all(|c| c.is_ascii_hexdigit()));
        if p != keep && p.is_dir() && is_key {
            let _ = fs::remove_dir_all(&p);
            let _ = fs::remove_file(images.join(format!("{fname}.build.log")));
        }
    }
}

fn load_image(name: &str, dir: &Path) -> Result<Option<Image>> {
    let manifest_path = dir.join("image.json");
    let Ok(text) = fs::read_to_string(&manifest_path) else {
        return Ok(None);
    };
    let manifest: ImageManifest = serde_json::from_str(&text).map_err(|e| Error::Image {
        name: name.into(),
        message: format!(
            "{}:{}:{}: {e}",
            manifest_path.display(),
            e.line(),
            e.column()
        ),
    })?;
    Ok(Some(Image {
        name: name.into(),
        dir: dir.to_path_buf(),
        manifest,
    }))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_files(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// The non-empty, non-comment lines of a list file (empty if absent).
fn read_list(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Candidate versions (`apt-cache policy`) of `pkgs` ("unknown" where apt
/// cannot tell).
fn package_versions(pkgs: &[String]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        pkgs.iter().map(|p| (p.clone(), "unknown".into())).collect();
    if pkgs.is_empty() {
        return out;
    }
    let Ok(res) = Command::new("apt-cache")
        .arg("policy")
        .args(pkgs)
        .stdin(Stdio::null())
        .output()
    else {
        return out;
    };
    let mut current = None;
    for line in String::from_utf8_lossy(&res.stdout).lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = Some(line.trim_end_matches(':').to_string());
        } else if let (Some(pkg), Some(v)) = (&current, line.trim().strip_prefix("Candidate:")) {
            out.insert(pkg.clone(), v.trim().to_string());
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(files: &[(&str, &str)]) -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let store = ImageStore::new(dir.path(), dir.path().join("cache"));
        (dir, store)
    }

    #[test]
    fn key_follows_own_recipe_used_recipes_and_shared_scripts_only() {
        let (dir, store) = store_with(&[
            ("lib.sh", "a"),
            ("README.md", "docs"),
            ("busybox/recipe.sh", "b"),
            ("debian/recipe.sh", "d"),
            ("iso/recipe.sh", "i"),
            ("iso/uses.txt", "busybox\n"),
        ]);
        let keys = |s: &ImageStore| {
            (
                s.key("busybox").unwrap(),
                s.key("debian").unwrap(),
                s.key("iso").unwrap(),
            )
        };
        let (b0, d0, i0) = keys(&store);
        fs::write(dir.path().join("README.md"), "other docs").unwrap();
        assert_eq!(
            keys(&store),
            (b0.clone(), d0.clone(), i0.clone()),
            "docs must not rebuild images"
        );
        fs::write(dir.path().join("busybox/recipe.sh"), "b2").unwrap();
        let (b1, d1, i1) = keys(&store);
        assert_ne!(b1, b0);
        assert_eq!(d1, d0, "debian does not use busybox");
        assert_ne!(i1, i0, "iso uses busybox");
        fs::write(dir.path().join("lib.sh"), "a2").unwrap();
        let (b2, d2, _) = keys(&store);
        assert_ne!(b2, b1);
        assert_ne!(d2, d1);
    }

    #[test]
    fn embedded_recipes_give_the_source_tree_keys() {
        let cache = tempfile::tempdir().unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/images");
        let from_tree = ImageStore::new(source, cache.path());
        let embedded = ImageStore::with_source(RecipeSource::embedded(cache.path()), cache.path());
        for name in BUILTIN {
            assert_eq!(
                embedded.key(name).unwrap(),
                from_tree.key(name).unwrap(),
                "{name}"
            );
        }
        assert!(embedded.recipes.dir().starts_with(cache.path()));
    }

    #[test]
    fn unknown_image_is_a_clear_error() {
        let (_dir, store) = store_with(&[("lib.sh", "")]);
        let e = store.key("plan9").unwrap_err().to_string();
        assert!(e.contains("plan9") && e.contains("built-in images"), "{e}");
    }
}
