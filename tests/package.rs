//! bootrig as a new user gets it: `cargo package` the two crates, depend
//! on the packaged `bootrig` from a fresh project outside the repository,
//! and run the README's "use it from your own crate" test there (it boots
//! the `busybox` image).
//!
//! The fresh project cannot reach this checkout's `scenarios/images`, so
//! it finds the image recipes through the copy embedded in the crate. The
//! image cache (`~/.cache/bootrig`) is shared, so an image built before is
//! reused; the fresh project builds in `<target>/package-test/target`,
//! kept between runs, so only the two bootrig crates are compiled again.
//!
//! Skipped with a message when QEMU is not installed (under `CI=true` it
//! fails instead).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The README section a new user copies from.
const README_SECTION: &str = "## Use it from your own crate";

/// A second test in the fresh project: the recipes came from the copy
/// embedded in the crate, not from a source tree.
const RECIPES_TEST: &str = r#"
#[test]
fn recipes_are_the_embedded_copy() {
    let store = bootrig::ImageStore::default();
    let dir = store.recipes.dir();
    eprintln!("recipes: {}", dir.display());
    assert!(dir.starts_with(store.cache.join("recipes")), "recipes in {}", dir.display());
}
"#;

/// The first fenced block of `lang` after the README's "use it from your
/// own crate" heading.
fn readme_block(lang: &str) -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let section = readme
        .split_once(README_SECTION)
        .unwrap_or_else(|| panic!("README.md has no {README_SECTION:?} section"))
        .1;
    let fence = format!("```{lang}\n");
    let block = section
        .split_once(&fence)
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("no ```{lang} block in README.md's {README_SECTION:?}"))
        .0;
    block.to_string()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace folder")
}

/// The target folder this test binary was built in (`<target>/<profile>/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn qemu_available() -> bool {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "qemu-system-x86_64 is required under CI=true"
        );
        eprintln!("skipped: qemu-system-x86_64 is not installed");
    }
    ok
}

/// `--offline` when cargo's registry index is already here: the test
/// resolves the same crates the workspace was built with.
fn offline_flag() -> Option<&'static str> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let index = cargo_home.join("registry").join("index");
    let cached = std::fs::read_dir(index).is_ok_and(|mut d| d.next().is_some());
    cached.then_some("--offline")
}

fn text(o: &Output) -> String {
    bootrig_tests::output_text(o)
}

fn cargo() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    // Nothing of this run's settings may leak into the fresh project: not
    // the recipes folder, the JUnit file, the run folder or nextest's run.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("NEXTEST")
            || ["BOOTRIG_IMAGES", "BOOTRIG_JUNIT", "BOOTRIG_RUN_ID"].contains(&key.as_str())
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Packages both crates into `<out>/package/` and returns that folder.
fn package(out: &Path) -> PathBuf {
    let mut cmd = cargo();
    cmd.args(["package", "--no-verify", "--allow-dirty"])
        .args(["-p", "bootrig-diagnostics", "-p", "bootrig"])
        .arg("--target-dir")
        .arg(out)
        .args(offline_flag())
        .current_dir(workspace());
    let done = cmd.output().expect("running cargo package");
    assert!(
        done.status.success(),
        "cargo package failed:\n{}",
        text(&done)
    );
    out.join("package")
}

fn unpack(krate: &Path, into: &Path) {
    let done = Command::new("tar")
        .arg("-xzf")
        .arg(krate)
        .arg("-C")
        .arg(into)
        .output()
        .expect("running tar");
    assert!(
        done.status.success(),
        "unpacking {}:\n{}",
        krate.display(),
        text(&done)
    );
}

#[test]
fn packaged_crate_boots_busybox_from_a_fresh_project() {
    if !qemu_available() {
        return;
    }
    let started = Instant::now();
    let work = target_dir().join("package-test");
    let packages = package(&work);
    let packaged = started.elapsed();

    // Everything the fresh project sees lives outside the repository.
    let fresh = tempfile::tempdir().expect("temp dir");
    assert!(!fresh.path().starts_with(workspace()));
    for krate in ["bootrig-diagnostics-0.1.0", "bootrig-0.1.0"] {
        unpack(&packages.join(format!("{krate}.crate")), fresh.path());
    }
    // The README's Cargo.toml lines and test, with `bootrig = "0.1"`
    // patched to the packaged crates as a registry would serve them.
    let app = fresh.path().join("uses-bootrig");
    std::fs::create_dir_all(app.join("tests")).unwrap();
    let manifest = format!(
        r#"[package]
name = "uses-bootrig"
version = "0.0.0"
edition = "2021"
publish = false

{}
[patch.crates-io]
bootrig = {{ path = "../bootrig-0.1.0" }}
bootrig-diagnostics = {{ path = "../bootrig-diagnostics-0.1.0" }}

[workspace]
"#,
        readme_block("toml")
    );
    std::fs::write(app.join("Cargo.toml"), manifest).unwrap();
    let test = readme_block("rust");
    let trial = test
        .split_once(".test(\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .expect("the README's test names a trial")
        .0
        .to_string();
    std::fs::write(app.join("tests/boot.rs"), test).unwrap();
    std::fs::write(app.join("tests/recipes.rs"), RECIPES_TEST).unwrap();
    // The versions this workspace was built and tested with.
    std::fs::copy(workspace().join("Cargo.lock"), app.join("Cargo.lock")).unwrap();

    let run = cargo()
        .arg("test")
        .args(offline_flag())
        .env("CARGO_TARGET_DIR", work.join("target"))
        .env("BOOTRIG_ARTIFACTS", fresh.path().join("artifacts"))
        .current_dir(&app)
        .output()
        .expect("running cargo test in the fresh project");
    let out = text(&run);
    eprintln!("{out}");
    eprintln!(
        "packaged in {packaged:?}, built and ran the fresh project in {:?}",
        started.elapsed() - packaged
    );
    assert!(
        run.status.success(),
        "the fresh project's test failed:\n{out}"
    );
    for trial in [trial.as_str(), "recipes_are_the_embedded_copy"] {
        // libtest-mimic pads the names: `test NAME   ... ok`.
        let passed = out.lines().any(|l| {
            l.strip_prefix("test ")
                .and_then(|l| l.strip_suffix(" ... ok"))
                .is_some_and(|name| name.trim_end() == trial)
        });
        assert!(passed, "{trial} did not pass:\n{out}");
    }
    assert!(!out.contains("FAILED"), "{out}");
}
