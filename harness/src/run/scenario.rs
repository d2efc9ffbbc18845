//! Declarative scenarios: JSON files describing a machine, how to get a
//! shell on it, and tests made of steps. See `docs/scenarios.md`.
//!
//! Parsing is strict: unknown fields, wrong types, invalid regexes, bad
//! key names and sizes are reported as `file:line:column: what is wrong`,
//! and nothing boots.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::errors::{Error, Result};
pub use crate::run::steps::Step;
use crate::run::steps::{check_seconds, seconds};
use crate::vm::config::{check_drive_size, check_memory, parse_size, Accel, Firmware};

/// A parsed, validated scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name: the first part of its tests' names.
    pub name: String,
    /// The machine every test boots.
    pub machine: MachineSpec,
    /// How to log in (for images with a getty).
    #[serde(default)]
    pub login: Option<LoginSpec>,
    /// A prompt regex for shells without login.
    #[serde(default)]
    pub shell_prompt: Option<RegexText>,
    /// Deadlines, in seconds.
    #[serde(default)]
    pub timeouts: TimeoutSpec,
    /// What to collect when a test fails.
    #[serde(default)]
    pub diagnostics: DiagnosticsSpec,
    /// Markers every test of the file carries (`-m EXPR` selects them).
    #[serde(default)]
    pub marks: crate::run::select::MarkNames,
    /// The tests.
    pub tests: Vec<TestSpec>,
    /// The file it came from.
    #[serde(skip)]
    pub file: PathBuf,
}

/// The `machine` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// A built-in image (`busybox`, `debian`, `iso`).
    pub image: Option<String>,
    /// A kernel for direct boot.
    pub kernel: Option<PathBuf>,
    /// Its initrd.
    pub initrd: Option<PathBuf>,
    /// Its command line.
    pub append: Option<String>,
    /// An ISO to boot.
    pub iso: Option<PathBuf>,
    /// `bios` or `uefi`.
    pub firmware: Option<Firmware>,
    /// A disk image (booted through a throwaway overlay).
    pub disk: Option<PathBuf>,
    /// Write to the disk image itself (only inside the scenario's folder
    /// unless `allow_outside`).
    #[serde(default)]
    pub persist: bool,
    /// Allow a `persist` disk outside the scenario's folder.
    #[serde(default)]
    pub allow_outside: bool,
    /// Extra drives.
    #[serde(default)]
    pub drives: Vec<DriveSpec>,
    /// Memory, e.g. `1G`.
    pub memory: Option<SizeText>,
    /// Virtual CPUs.
    pub cpus: Option<u32>,
    /// `auto`, `kvm`, `tcg`.
    pub accel: Option<Accel>,
    /// Give the guest a VGA display (a screendump is taken on failure).
    #[serde(default)]
    pub display: bool,
    /// Carry command output on the command channel (a virtio-serial port;
    /// default true). `false` reads it from the console between markers.
    #[serde(default = "yes")]
    pub command_channel: bool,
}

fn yes() -> bool {
    true
}

/// An extra drive: an existing file, or a scratch disk of a size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSpec {
    /// An existing image file.
    pub path: Option<PathBuf>,
    /// A sparse scratch disk size, e.g. `2G`.
    pub size: Option<SizeText>,
    /// Allow `path` outside the scenario's folder (it is attached
    /// read-write, so by default only files next to the scenario are).
    #[serde(default)]
    pub allow_outside: bool,
}

/// The `login` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Become root (`sudo -i`) after login.
    #[serde(default)]
    pub root: bool,
}

/// The `timeouts` object (seconds).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSpec {
    /// Boot to prompt.
    pub boot: Option<f64>,
    /// Each step.
    pub step: Option<f64>,
    /// Each whole test (enforced by the runner).
    pub test: Option<f64>,
}

impl TimeoutSpec {
    /// The session deadlines.
    pub fn session(&self) -> crate::guest::session::Timeouts {
        let d = crate::guest::session::Timeouts::default();
        crate::guest::session::Timeouts {
            boot: self.boot.map(seconds).unwrap_or(d.boot),
            step: self.step.map(seconds).unwrap_or(d.step),
        }
    }
}

/// The `diagnostics` object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsSpec {
    /// Units whose status and journal are collected on failure.
    #[serde(default)]
    pub units: Vec<String>,
    /// Extra commands whose output is collected on failure.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Fail the test on kernel WARNINGs (default: only record them).
    #[serde(default)]
    pub warnings_fatal: bool,
}

/// One test: a name and steps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// The test's name (second part of the trial name).
    pub name: String,
    /// The steps, run in order.
    pub steps: Vec<Step>,
    /// Expected to fail, with the reason.
    #[serde(default)]
    pub xfail: Option<String>,
    /// Markers of this test, added to the scenario's.
    #[serde(default)]
    pub marks: crate::run::select::MarkNames,
}

/// A regex given as text, checked at parse time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RegexText(pub String);

impl TryFrom<String> for RegexText {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        regex::bytes::Regex::new(&s).map_err(|e| format!("invalid regex {s:?}: {e}"))?;
        Ok(RegexText(s))
    }
}

/// A size given as text (`512M`, `2G`), checked at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SizeText(pub u64);

impl TryFrom<String> for SizeText {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        parse_size(&s).map(SizeText)
    }
}

impl Scenario {
    /// Reads and validates a scenario file. Relative paths in it are made
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Scenario> {
        let bytes = fs::read(path).map_err(|e| Error::Scenario {
            location: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let (line, col) = line_col(&bytes, e.valid_up_to());
            Error::Scenario {
                location: format!("{}:{line}:{col}", path.display()),
                message: format!(
                    "not UTF-8: byte 0x{:02x} is not valid text (scenario files are UTF-8 JSON)",
                    bytes[e.valid_up_to()]
                ),
            }
        })?;
        Scenario::parse(text, path)
    }

    /// Parses scenario text; `path` is used for messages and relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario> {
        let mut sc: Scenario = serde_json::from_str(text).map_err(|e| Error::Scenario {
            location: format!("{}:{}:{}", path.display(), e.line(), e.column()),
            message: strip_position(&e.to_string()),
        })?;
        sc.file = path.to_path_buf();
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let err = |key: &str, message: String| Error::Scenario {
            location: locate(text, path, key),
            message,
        };
        let m = &mut sc.machine;
        for p in [&mut m.kernel, &mut m.initrd, &mut m.iso, &mut m.disk]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for d in &mut m.drives {
            if let Some(p) = &mut d.path {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        // Host files a step copies into the guest are found like the
        // machine's files: next to the scenario.
        for t in &mut sc.tests {
            for step in &mut t.steps {
                if let Step::CopyToGuest { from, .. } = step {
                    if from.is_relative() {
                        *from = base.join(&*from);
                    }
                }
            }
        }
        let m = &mut sc.machine;
        let sources = [
            m.image.is_some(),
            m.kernel.is_some(),
            m.iso.is_some(),
            m.disk.is_some(),
        ];
        if !sources.iter().any(|s| *s) {
            return Err(err(
                "machine",
                "machine needs a boot source: \"image\", \"kernel\", \"iso\" or \"disk\"".into(),
            ));
        }
        if m.image.is_some() && (m.kernel.is_some() || m.iso.is_some() || m.disk.is_some()) {
            return Err(err(
                "image",
                "\"image\" replaces kernel/iso/disk: give one or the other".into(),
            ));
        }
        if m.kernel.is_some() && m.iso.is_some() {
            return Err(err("iso", "\"kernel\" and \"iso\" are exclusive".into()));
        }
        if m.kernel.is_none() && (m.initrd.is_some() || m.append.is_some()) {
            return Err(err(
                "initrd",
                "\"initrd\" and \"append\" need \"kernel\"".into(),
            ));
        }
        if let Some(name) = &m.image {
            if !crate::image::BUILTIN.contains(&name.as_str()) {
                return Err(err(
                    "image",
                    format!(
                        "unknown image {name:?} (built-in images: {})",
                        crate::image::BUILTIN.join(", ")
                    ),
                ));
            }
        }
        for (key, p) in [
            ("kernel", &m.kernel),
            ("initrd", &m.initrd),
            ("iso", &m.iso),
            ("disk", &m.disk),
        ] {
            if let Some(p) = p {
                if p.is_dir() {
                    return Err(err(
                        key,
                        format!("{key} {} is a directory, not a file", p.display()),
                    ));
                }
                if !p.is_file() {
                    return Err(err(
                        key,
                        format!("{key} file {} does not exist", p.display()),
                    ));
                }
            }
        }
        if let Some(mem) = m.memory {
            check_memory(mem.0).map_err(|e| err("memory", e))?;
        }
        for d in &m.drives {
            if let Some(size) = d.size {
                check_drive_size(size.0).map_err(|e| err("size", format!("drive size: {e}")))?;
            }
            if let Some(p) = d.path.as_ref().filter(|p| p.is_dir()) {
                return Err(err(
                    "drives",
                    format!("drive {} is a directory, not a file", p.display()),
                ));
            }
            match (&d.path, &d.size) {
                (Some(p), None) if !p.is_file() => {
                    return Err(err(
                        "drives",
                        format!("drive file {} does not exist", p.display()),
                    ))
                }
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(err(
                        "drives",
                        "each drive has either \"path\" or \"size\"".into(),
                    ))
                }
            }
        }
        // Files the guest writes stay next to the scenario unless it says
        // otherwise: `"path": "../../etc/shadow"` is not attached by accident.
        let writable = m
            .drives
            .iter()
            .filter_map(|d| Some((d.path.as_ref()?, d.allow_outside, "drives")))
            .chain(
                m.disk
                    .as_ref()
                    .filter(|_| m.persist)
                    .map(|d| (d, m.allow_outside, "disk")),
            );
        for (p, allowed, key) in writable {
            if !allowed && !inside(&base, p) {
                return Err(err(
                    key,
                    format!(
                        "{} is outside the scenario's folder and the guest writes to it; \
                         add \"allow_outside\": true to attach it anyway",
                        p.display()
                    ),
                ));
            }
        }
        if let Some(cpus) = m.cpus {
            if cpus == 0 || cpus > 64 {
                return Err(err("cpus", format!("cpus must be 1..=64, not {cpus}")));
            }
        }
        if sc.tests.is_empty() {
            return Err(err("tests", "no tests: \"tests\" is empty".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in sc.tests.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err(Error::Scenario {
                    location: locate_test(text, path, i),
                    message: "a test has an empty name".into(),
                });
            }
            if !names.insert(t.name.clone()) {
                return Err(Error::Scenario {
                    location: locate_test(text, path, i),
                    message: format!("two tests are named {:?}", t.name),
                });
            }
        }
        for (key, v) in [
            ("boot", sc.timeouts.boot),
            ("step", sc.timeouts.step),
            ("test", sc.timeouts.test),
        ] {
            if let Some(v) = v {
                check_seconds(&format!("timeouts.{key}"), v).map_err(|message| {
                    Error::Scenario {
                        location: locate_path(text, path, &["timeouts", key]),
                        message,
                    }
                })?;
            }
        }
        for unit in &sc.diagnostics.units {
            if unit.trim().is_empty() {
                return Err(err(
                    "units",
                    "diagnostics.units has an empty unit name".into(),
                ));
            }
        }
        for cmd in &sc.diagnostics.commands {
            if cmd.trim().is_empty() {
                return Err(err(
                    "commands",
                    "diagnostics.commands has an empty command".into(),
                ));
            }
        }
        Ok(sc)
    }

    /// The test deadline, if any.
    pub fn test_timeout(&self) -> Option<Duration> {
        self.timeouts.test.map(seconds)
    }
}

/// Whether `path` (symbolic links resolved) is inside the folder `base`.
fn inside(base: &Path, path: &Path) -> bool {
    let base = fs::canonicalize(if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    });
    match (base, fs::canonicalize(path)) {
        (Ok(b), Ok(p)) => p.starts_with(b),
        _ => false,
    }
}

/// serde_json appends " at line L column C"; the location is printed first.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// `file:line:column` of the first `"key"` in `text` (or `file` alone).
fn locate(text: &str, path: &Path, key: &str) -> String {
    locate_path(text, path, &[key])
}

/// `file:line:column` of the last of `keys`, each searched after the one
/// before (`["timeouts", "test"]`: the `"test"` inside `timeouts`).
fn locate_path(text: &str, path: &Path, keys: &[&str]) -> String {
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
fn locate_test(text: &str, path: &Path, index: usize) -> String {
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
fn line_col(bytes: &[u8], off: usize) -> (usize, usize) {
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

/// Finds scenario files: each argument is a `.json` file or a folder
/// searched recursively for `*.json` (skipping `images/` folders); sorted,
/// without duplicates. Folders are followed through symbolic links once
/// each (by their canonical path), so a link to `.` or a loop of links
/// neither hangs nor lists a file twice; a file reached through several
/// paths is listed once, under the first path sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut visited_dirs = std::collections::HashSet::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
                let canonical = fs::canonicalize(&dir)
                    .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?;
                if !visited_dirs.insert(canonical) {
                    continue;
                }
                let entries = fs::read_dir(&dir)
                    .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
                for e in entries.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        if path.file_name().is_some_and(|n| n != "images") {
                            stack.push(path);
                        }
                    } else if path.extension().is_some_and(|x| x == "json") {
                        out.push(path);
                    }
                }
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(Error::Scenario {
                location: p.display().to_string(),
                message: "no such scenario file or folder".into(),
            });
        }
    }
    out.sort();
    let mut seen_files = std::collections::HashSet::new();
    out.retain(|p| seen_files.insert(fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    Ok(out)
}

/// Refuses trial names (`scenario::test`) given by more than one test of
/// the run: each would write the same artifacts folder and `run.json`
/// entry. The error is located at the later test's name and names the
/// earlier file.
pub fn check_unique_trials(scenarios: &[impl AsRef<Scenario>]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, &Path> = std::collections::HashMap::new();
    let mut errors = Vec::new();
    for sc in scenarios {
        let sc = sc.as_ref();
        for (i, t) in sc.tests.iter().enumerate() {
            let trial = format!("{}::{}", sc.name, t.name);
            match seen.get(trial.as_str()) {
                Some(first) => {
                    let text = fs::read_to_string(&sc.file).unwrap_or_default();
                    errors.push((
                        locate_test(&text, &sc.file, i),
                        format!(
                            "test {trial:?} is already defined in {} (trial names must be unique in a run)",
                            first.display()
                        ),
                    ));
                }
                None => {
                    seen.insert(trial, &sc.file);
                }
            }
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some((location, mut message)) => {
            for (more_at, more) in errors {
                message.push_str(&format!("\n{more_at}: {more}"));
            }
            Err(Error::Scenario { location, message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::session::Key;

    impl AsRef<Scenario> for Scenario {
        fn as_ref(&self) -> &Scenario {
            self
        }
    }

    fn parse(text: &str) -> Result<Scenario> {
        Scenario::parse(text, Path::new("s.json"))
    }

    const OK: &str = r##"{
  "name": "smoke",
  "machine": { "image": "busybox", "memory": "512M", "cpus": 1, "accel": "tcg",
               "drives": [{"size": "1G"}] },
  "shell_prompt": "# $",
  "timeouts": { "boot": 60, "step": 30 },
  "tests": [ { "name": "basics", "steps": [
      {"expect": "login"}, {"send": "x\r"}, {"send_key": "Down"},
      {"succeed": "true"}, {"fail": "false"},
      {"run": "echo hi", "exit": 0, "output_matches": "^hi"},
      {"wait_for_unit": "multi-user.target"},
      {"wait_until_succeeds": "true", "timeout": 5} ] } ] }"##;

    #[test]
    fn parses_the_contract_example() {
        let sc = parse(OK).unwrap();
        assert_eq!(sc.name, "smoke");
        assert_eq!(sc.machine.memory, Some(SizeText(512 << 20)));
        assert_eq!(sc.machine.drives[0].size, Some(SizeText(1 << 30)));
        let steps = &sc.tests[0].steps;
        assert_eq!(steps.len(), 8);
        assert_eq!(steps[2], Step::SendKey(Key::Down));
        assert_eq!(
            steps[5],
            Step::Run {
                cmd: "echo hi".into(),
                exit: 0,
                output_matches: Some("^hi".into())
            }
        );
    }

    fn err_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_field_has_line_and_column() {
        let e = err_of("{\n  \"name\": \"x\",\n  \"machin\": {}\n}");
        assert!(e.starts_with("s.json:3:"), "{e}");
        assert!(e.contains("unknown field `machin`"), "{e}");
    }

    #[test]
    fn bad_step_is_located() {
        let text = OK.replace(r#"{"fail": "false"}"#, r#"{"fail": "false", "exit": 1}"#);
        let e = err_of(&text);
        assert!(e.starts_with("s.json:10:"), "{e}");
        assert!(e.contains("belong to \"run\""), "{e}");
        let text = OK.replace(r#""send_key": "Down""#, r#""send_key": "Sideways""#);
        assert!(err_of(&text).contains("unknown key \"Sideways\""));
        let text = OK.replace(r#""^hi""#, r#""(unclosed""#);
        assert!(err_of(&text).contains("invalid regex"));
        let text = OK.replace(
            r#"{"succeed": "true"}"#,
            r#"{"succeed": "true", "fail": "x"}"#,
        );
        assert!(err_of(&text).contains("exactly one action"));
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let text = OK.replace(r#""image": "busybox""#, r#""image": "plan9""#);
        let e = err_of(&text);
        assert!(e.starts_with("s.json:3:"), "{e}");
        assert!(e.contains("unknown image \"plan9\""), "{e}");
        let text = OK.replace(r#""image": "busybox""#, r#""kernel": "nope/vmlinuz""#);
        assert!(err_of(&text).contains("kernel file nope/vmlinuz does not exist"));
        let text = OK.replace(r#""memory": "512M""#, r#""memory": "lots""#);
        assert!(err_of(&text).contains("invalid size \"lots\""));
        let text = OK.replace(r#""accel": "tcg""#, r#""accel": "hvf""#);
        assert!(err_of(&text).contains("unknown variant `hvf`"));
    }

    #[test]
    fn duplicate_test_names_are_rejected_at_the_second() {
        let text = OK.replace(
            r#""tests": [ { "name": "basics", "steps": ["#,
            "\"tests\": [ { \"name\": \"basics\", \"steps\": [] },\n    { \"name\": \"basics\", \"steps\": [",
        );
        let e = err_of(&text);
        assert!(e.contains("two tests are named \"basics\""), "{e}");
        assert!(e.starts_with("s.json:8:7:"), "not at the second: {e}");
    }

    #[test]
    fn absurd_timeouts_are_refused_where_they_are_written() {
        for key in ["boot", "step", "test"] {
            let text = OK.replace(
                r#""timeouts": { "boot": 60, "step": 30 }"#,
                &format!("\"timeouts\": {{\n \"{key}\": 1e30 }}"),
            );
            let e = err_of(&text);
            assert!(e.starts_with("s.json:7:2:"), "{e}");
            assert!(e.contains(&format!("timeouts.{key} of 1")), "{e}");
            assert!(e.contains("too long"), "{e}");
        }
        let text = OK.replace(r#""timeout": 5"#, r#""timeout": 1e300"#);
        let e = err_of(&text);
        assert!(e.starts_with("s.json:12:"), "{e}");
        assert!(e.contains("too long"), "{e}");
        let text = OK.replace(r#""timeout": 5"#, r#""timeout": 604800"#);
        let sc = parse(&text).unwrap();
        assert_eq!(sc.timeouts.session().boot, Duration::from_secs(60));
        // Unvalidated values (built in code) saturate instead of panicking.
        let spec = TimeoutSpec {
            boot: Some(1e300),
            step: Some(f64::NAN),
            test: Some(1e30),
        };
        assert_eq!(
            spec.session().boot,
            seconds(crate::run::steps::MAX_TIMEOUT_SECS)
        );
        let _ = spec.session().step;
    }

    #[test]
    fn sizes_and_commands_are_bounded() {
        for (from, to, says) in [
            (r#""memory": "512M""#, r#""memory": "1K""#, "too small"),
            (
                r#""memory": "512M""#,
                r#""memory": "1e30T""#,
                "invalid size",
            ),
            (r#""memory": "512M""#, r#""memory": "2048G""#, "too large"),
            (r#"{"size": "1G"}"#, r#"{"size": "0.1"}"#, "at least 1 byte"),
            (r#"{"size": "1G"}"#, r#"{"size": "1000T"}"#, "too large"),
            (r#"{"size": "1G"}"#, r#"{"size": "4K"}"#, "too small"),
            (
                r#"{"succeed": "true"}"#,
                r#"{"succeed": ""}"#,
                "needs a command",
            ),
            (
                r#"{"fail": "false"}"#,
                r#"{"fail": "  "}"#,
                "needs a command",
            ),
            (r#""exit": 0"#, r#""exit": 256"#, "0..=255, not 256"),
            (r#""exit": 0"#, r#""exit": -1"#, "0..=255, not -1"),
            (
                r#""wait_for_unit": "multi-user.target""#,
                r#""wait_for_unit": """#,
                "needs a unit name",
            ),
            (
                r#""tests": ["#,
                r#""diagnostics": {"units": [""]}, "tests": ["#,
                "empty unit name",
            ),
        ] {
            let text = OK.replace(from, to);
            assert_ne!(text, OK, "{from}");
            let e = err_of(&text);
            assert!(e.contains(says), "{to}: {e}");
            assert!(e.starts_with("s.json:"), "{to}: {e}");
        }
    }

    #[test]
    fn a_directory_is_not_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = OK.replace(r#""image": "busybox""#, r#""kernel": "sub""#);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let e = Scenario::parse(&text, &dir.path().join("s.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
        assert!(!e.contains("does not exist"), "{e}");
        let text = OK.replace(r#"{"size": "1G"}"#, r#"{"path": "sub"}"#);
        let e = Scenario::parse(&text, &dir.path().join("s.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn written_files_outside_the_scenario_need_an_opt_in() {
        let dir = tempfile::tempdir().unwrap();
        let sc_dir = dir.path().join("sc");
        std::fs::create_dir(&sc_dir).unwrap();
        std::fs::write(sc_dir.join("here.raw"), b"x").unwrap();
        std::fs::write(dir.path().join("there.raw"), b"x").unwrap();
        std::os::unix::fs::symlink("../there.raw", sc_dir.join("link.raw")).unwrap();
        let file = sc_dir.join("s.json");
        let with = |drive: &str| OK.replace(r#"{"size": "1G"}"#, drive);
        assert!(Scenario::parse(&with(r#"{"path": "here.raw"}"#), &file).is_ok());
        for drive in [
            r#"{"path": "../there.raw"}"#,
            r#"{"path": "link.raw"}"#,
            r#"{"path": "/etc/hostname"}"#,
        ] {
            let e = Scenario::parse(&with(drive), &file)
                .unwrap_err()
                .to_string();
            assert!(e.contains("outside the scenario's folder"), "{drive}: {e}");
            assert!(e.contains("s.json:"), "{drive}: {e}");
        }
        let ok = with(r#"{"path": "../there.raw", "allow_outside": true}"#);
        assert!(Scenario::parse(&ok, &file).is_ok());
        let disk = OK.replace(
            r#""image": "busybox""#,
            r#""disk": "../there.raw", "persist": true"#,
        );
        let e = Scenario::parse(&disk, &file).unwrap_err().to_string();
        assert!(e.contains("outside the scenario's folder"), "{e}");
        let overlay = disk.replace(r#", "persist": true"#, "");
        assert!(
            Scenario::parse(&overlay, &file).is_ok(),
            "an overlay is not written"
        );
    }

    #[test]
    fn non_utf8_files_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.json");
        std::fs::write(&f, b"{\n  \"name\": \"caf\xe9\"\n}").unwrap();
        let e = Scenario::load(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:15:", f.display())), "{e}");
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn discovery_survives_link_loops_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.json"), OK).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/b.json"), OK).unwrap();
        std::os::unix::fs::symlink(".", root.join("self1")).unwrap();
        std::os::unix::fs::symlink(".", root.join("self2")).unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("a.json", root.join("link.json")).unwrap();
        let found = discover(&[root.to_path_buf(), root.join("self1")]).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"a.json".to_string()) || names.contains(&"link.json".to_string()));
    }

    #[test]
    fn a_trial_name_given_twice_in_a_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(&a, OK).unwrap();
        std::fs::write(&b, OK.replace("\"basics\"", "\"other\"")).unwrap();
        let load = |p: &Path| Scenario::load(p).unwrap();
        assert!(check_unique_trials(&[load(&a), load(&b)]).is_ok());
        std::fs::write(&b, OK).unwrap();
        let e = check_unique_trials(&[load(&a), load(&b)])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{}:7:16:", b.display())), "{e}");
        assert!(e.contains("\"smoke::basics\" is already defined in"), "{e}");
        assert!(e.contains("a.json"), "{e}");
    }

    #[test]
    fn the_command_channel_is_on_unless_turned_off() {
        let on = parse(r##"{"name": "s", "machine": {"image": "busybox"}, "shell_prompt": "# $", "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"##).unwrap();
        assert!(on.machine.command_channel);
        let off = parse(
            r##"{"name": "s", "machine": {"image": "busybox", "command_channel": false}, "shell_prompt": "# $", "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"##,
        )
        .unwrap();
        assert!(!off.machine.command_channel);
    }
}
