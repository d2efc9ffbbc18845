//! Declarative scenarios: JSON files describing a machine, how to get a
//! shell on it, and tests made of steps. See `docs/scenarios.md`.
//!
//! Parsing is strict: unknown fields, wrong types, invalid regexes, bad
//! key names and sizes are reported as `file:line:column: what is wrong`,
//! and nothing boots.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::errors::{Error, Result};
use crate::run::locate::{line_col, locate, locate_path, locate_test};
pub use crate::run::machine_spec::MachineSpec;
use crate::run::machines::{check as check_machines, Machines};
use crate::run::steps::{check_seconds, seconds};
pub use crate::run::steps::{PlacedStep, Step};

/// A parsed, validated scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name: the first part of its tests' names.
    pub name: String,
    /// The machine every test boots (or `machines`).
    #[serde(default)]
    pub machine: Option<MachineSpec>,
    /// Named machines every test boots, on private networks (or
    /// `machine`); see `run::machines`.
    #[serde(default)]
    pub machines: BTreeMap<String, MachineSpec>,
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
    /// The steps, run in order, each on its machine.
    pub steps: Vec<PlacedStep>,
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
        // Host files a step copies into the guest are found like the
        // machine's files: next to the scenario.
        for t in &mut sc.tests {
            for step in &mut t.steps {
                if let Step::CopyToGuest { from, .. } = &mut step.step {
                    if from.is_relative() {
                        *from = base.join(&*from);
                    }
                }
            }
        }
        let tests: Vec<(&str, &[PlacedStep])> = sc
            .tests
            .iter()
            .map(|t| (t.name.as_str(), t.steps.as_slice()))
            .collect();
        let machines = Machines {
            one: &mut sc.machine,
            named: &mut sc.machines,
        };
        check_machines(machines, &tests, text, path)?;
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

impl Scenario {
    /// The machines every test boots, in boot order: `(None, machine)` for
    /// a scenario with one `machine`, `(Some(name), spec)` for each of
    /// `machines` (sorted by name).
    pub fn machine_list(&self) -> Vec<(Option<&str>, &MachineSpec)> {
        match &self.machine {
            Some(m) => vec![(None, m)],
            None => self
                .machines
                .iter()
                .map(|(n, m)| (Some(n.as_str()), m))
                .collect(),
        }
    }

    /// The private networks of the scenario, each once, in the order the
    /// machines (by name) list them.
    pub fn network_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (_, m) in self.machine_list() {
            for n in &m.networks {
                if !out.contains(&n.as_str()) {
                    out.push(n);
                }
            }
        }
        out
    }
}

/// serde_json appends " at line L column C"; the location is printed first.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
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
    use crate::run::machine_spec::SizeText;

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
        assert_eq!(
            sc.machine.as_ref().unwrap().memory,
            Some(SizeText(512 << 20))
        );
        assert_eq!(
            sc.machine.as_ref().unwrap().drives[0].size,
            Some(SizeText(1 << 30))
        );
        let steps = &sc.tests[0].steps;
        assert_eq!(steps.len(), 8);
        assert_eq!(steps[2].step, Step::SendKey(Key::Down));
        assert_eq!(
            steps[5].step,
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
    fn own_kernel_on_an_image_is_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        let load = |machine: &str| {
            let text = OK.replace(r#""image": "busybox""#, machine);
            Scenario::parse(&text, &file).unwrap_err().to_string()
        };
        std::fs::create_dir(dir.path().join("kdir")).unwrap();
        let e = load(r#""image": "busybox", "kernel": "kdir""#);
        assert!(
            e.contains("kernel: ") && e.contains("kdir is a directory"),
            "{e}"
        );
        let bz = crate::vm::kernel::tests::fake_bzimage("6.12.9-test #1");
        std::fs::write(dir.path().join("bzImage"), bz).unwrap();
        std::fs::create_dir_all(dir.path().join("mods/lib/modules/6.1.0-9-amd64/kernel")).unwrap();
        let e = load(r#""image": "debian", "kernel": "bzImage", "modules": "mods""#);
        assert!(
            e.contains("modules: ") && e.contains("6.1.0-9-amd64") && e.contains("6.12.9-test"),
            "{e}"
        );
        let e = load(r#""image": "busybox", "modules": "mods""#);
        assert!(
            e.contains("\"modules\" needs \"image\" and \"kernel\""),
            "{e}"
        );
        let e = load(r#""image": "busybox", "kernel": "bzImage", "initrd": "bzImage""#);
        assert!(e.contains("drop \"initrd\""), "{e}");
        std::fs::create_dir_all(dir.path().join("mods/lib/modules/6.12.9-test/kernel")).unwrap();
        let text = OK.replace(
            r#""image": "busybox""#,
            r#""image": "debian", "kernel": "bzImage", "modules": "mods", "append": "x=1""#,
        );
        let sc = Scenario::parse(&text, &file).unwrap();
        assert_eq!(
            sc.machine.unwrap().modules.unwrap(),
            dir.path().join("mods")
        );
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
    fn shares_and_forwards_are_checked_before_booting() {
        let dir = tempfile::tempdir().unwrap();
        let sc_dir = dir.path().join("sc");
        std::fs::create_dir_all(sc_dir.join("data")).unwrap();
        std::fs::write(sc_dir.join("file.txt"), b"x").unwrap();
        let file = sc_dir.join("s.json");
        let with = |machine: &str| {
            OK.replace(
                r#""drives": [{"size": "1G"}] }"#,
                &format!("\"drives\": [{{\"size\": \"1G\"}}],\n {machine} }}"),
            )
        };
        let ok = with(
            r#""shares": [{"host": "data", "guest": "/mnt/data"}, {"host": "data", "guest": "/mnt/rw", "writable": true}], "forwards": [{"guest": 80}, {"guest": 22, "host": 2222}]"#,
        );
        let sc = Scenario::parse(&ok, &file).unwrap();
        let m = sc.machine.as_ref().unwrap();
        assert_eq!(m.shares[0].host, sc_dir.join("data"));
        assert!(!m.shares[0].writable && m.shares[1].writable);
        assert_eq!((m.forwards[0].guest, m.forwards[0].host), (80, 0));
        assert_eq!(m.forwards[1].host, 2222);
        for (machine, says) in [
            (
                r#""shares": [{"host": "nope", "guest": "/mnt/x"}]"#,
                "shares[0].host: ",
            ),
            (
                r#""shares": [{"host": "nope", "guest": "/mnt/x"}]"#,
                "nope does not exist",
            ),
            (
                r#""shares": [{"host": "file.txt", "guest": "/mnt/x"}]"#,
                "file.txt is not a folder",
            ),
            (
                r#""shares": [{"host": "data", "guest": "mnt/x"}]"#,
                "shares[0].guest: \"mnt/x\" is not an absolute guest path",
            ),
            (
                r#""shares": [{"host": "data", "guest": "/mnt/x"}, {"host": "data", "guest": "/mnt/x/"}]"#,
                "shares[1].guest: \"/mnt/x/\" is already the guest path of another share",
            ),
            (
                r#""shares": [{"host": "..", "guest": "/mnt/x", "writable": true}]"#,
                "outside the scenario's folder and the guest writes to it",
            ),
            (r#""shares": [{"host": "data"}]"#, "missing field `guest`"),
            (
                r#""shares": [{"host": "data", "guest": "/x", "mode": "rw"}]"#,
                "unknown field `mode`",
            ),
            (
                r#""forwards": [{"guest": 0}]"#,
                "forwards[0].guest: a guest port is 1..=65535, not 0",
            ),
            (r#""forwards": [{"guest": 70000}]"#, "70000"),
            (
                r#""forwards": [{"guest": 80}, {"guest": 80}]"#,
                "forwards[1].guest: guest port 80 is forwarded twice",
            ),
            (
                r#""forwards": [{"guest": 80, "host": 8080}, {"guest": 81, "host": 8080}]"#,
                "host port 8080 is used twice",
            ),
            (
                r#""forwards": [{"guest": 80, "bind": "0.0.0.0"}]"#,
                "unknown field `bind`",
            ),
        ] {
            let e = Scenario::parse(&with(machine), &file)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{machine}: {e}");
            assert!(
                e.starts_with(&format!("{}:", file.display())),
                "{machine}: {e}"
            );
        }
        // A read-only share may be anywhere; a writable one outside needs
        // the opt-in.
        assert!(Scenario::parse(
            &with(r#""shares": [{"host": "..", "guest": "/mnt/x"}]"#),
            &file
        )
        .is_ok());
        assert!(Scenario::parse(
            &with(r#""shares": [{"host": "..", "guest": "/mnt/x", "writable": true, "allow_outside": true}]"#),
            &file
        )
        .is_ok());
    }

    #[test]
    fn the_command_channel_is_on_unless_turned_off() {
        let on = parse(r##"{"name": "s", "machine": {"image": "busybox"}, "shell_prompt": "# $", "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"##).unwrap();
        assert!(on.machine.unwrap().command_channel);
        let off = parse(
            r##"{"name": "s", "machine": {"image": "busybox", "command_channel": false}, "shell_prompt": "# $", "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"##,
        )
        .unwrap();
        assert!(!off.machine.unwrap().command_channel);
    }

    #[test]
    fn machines_start_cold_unless_warm_and_warm_refuses_unsaved_parts() {
        let sc = |machine: &str| {
            parse(&format!(
                r##"{{"name": "s", "machine": {machine}, "shell_prompt": "# $", "tests": [{{"name": "t", "steps": [{{"succeed": "true"}}]}}]}}"##
            ))
        };
        use crate::run::warm::Start;
        assert_eq!(
            sc(r#"{"image": "busybox"}"#)
                .unwrap()
                .machine
                .unwrap()
                .start,
            Start::Cold
        );
        let warm = sc(r#"{"image": "busybox", "start": "warm"}"#).unwrap();
        assert_eq!(warm.machine.as_ref().unwrap().start, Start::Warm);
        let e = sc(r#"{"image": "busybox", "start": "hot"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hot") && e.contains("warm"), "{e}");
        let e = sc(r#"{"image": "busybox", "start": "warm", "drives": [{"size": "1G"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"start\": \"warm\" cannot be used with \"drives\""),
            "{e}"
        );
        assert!(e.starts_with("s.json:1:"), "{e}");
        // Cold machines may have them.
        sc(r#"{"image": "busybox", "drives": [{"size": "1G"}]}"#).unwrap();
    }
}
