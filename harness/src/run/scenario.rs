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
use crate::vm::config::{parse_size, Accel, Firmware};

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
    /// The tests.
    pub tests: Vec<TestSpec>,
    /// The file it came from.
    #[serde(skip)]
    pub file: PathBuf,
}

/// The `machine` object.
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Write to the disk image itself.
    #[serde(default)]
    pub persist: bool,
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
}

/// An extra drive: an existing file, or a scratch disk of a size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSpec {
    /// An existing image file.
    pub path: Option<PathBuf>,
    /// A sparse scratch disk size, e.g. `2G`.
    pub size: Option<SizeText>,
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
            boot: self.boot.map(Duration::from_secs_f64).unwrap_or(d.boot),
            step: self.step.map(Duration::from_secs_f64).unwrap_or(d.step),
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
        let text = fs::read_to_string(path).map_err(|e| Error::Scenario {
            location: path.display().to_string(),
            message: format!("cannot read: {e}"),
        })?;
        Scenario::parse(&text, path)
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
                if !p.is_file() {
                    return Err(err(
                        key,
                        format!("{key} file {} does not exist", p.display()),
                    ));
                }
            }
        }
        for d in &m.drives {
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
        if let Some(cpus) = m.cpus {
            if cpus == 0 || cpus > 64 {
                return Err(err("cpus", format!("cpus must be 1..=64, not {cpus}")));
            }
        }
        if sc.tests.is_empty() {
            return Err(err("tests", "no tests: \"tests\" is empty".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &sc.tests {
            if t.name.trim().is_empty() {
                return Err(err("name", "a test has an empty name".into()));
            }
            if !names.insert(t.name.clone()) {
                return Err(err(&t.name, format!("two tests are named {:?}", t.name)));
            }
        }
        for (key, v) in [
            ("boot", sc.timeouts.boot),
            ("step", sc.timeouts.step),
            ("test", sc.timeouts.test),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return Err(err(
                        key,
                        format!("timeouts.{key} must be a positive number of seconds"),
                    ));
                }
            }
        }
        Ok(sc)
    }

    /// The test deadline, if any.
    pub fn test_timeout(&self) -> Option<Duration> {
        self.timeouts.test.map(Duration::from_secs_f64)
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
    let needle = format!("\"{key}\"");
    match text.find(&needle) {
        Some(off) => {
            let before = &text[..off];
            let line = before.matches('\n').count() + 1;
            let col = off - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("{}:{line}:{col}", path.display())
        }
        None => path.display().to_string(),
    }
}

/// Finds scenario files: each argument is a `.json` file or a folder
/// searched recursively for `*.json` (skipping `images/` folders); sorted,
/// without duplicates.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(dir) = stack.pop() {
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
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::session::Key;

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
    fn duplicate_test_names_are_rejected() {
        let text = OK.replace(
            r#""tests": ["#,
            r#""tests": [ { "name": "basics", "steps": [] },"#,
        );
        assert!(err_of(&text).contains("two tests are named \"basics\""));
    }
}
