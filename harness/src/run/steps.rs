//! The step kinds of a scenario test, each declared once: the key that
//! selects it and the fields it takes (`kinds!` and [`StepKind::extras`]),
//! how it is read from its JSON object (`StepKind::parse`), described
//! in reports ([`Step::describe`]), whether it needs a shell
//! ([`Step::needs_shell`]) and how it runs ([`Step::execute`]). Every
//! match over kinds is exhaustive, so a new kind that misses one of them
//! does not compile.
//!
//! # Adding a step kind
//!
//! A `wait_for_file` step that waits until a guest path exists, with an
//! optional `timeout`, touches this file and `docs/scenarios.md` only:
//!
//! ```text
//! 1. kinds! { …, WaitForFile = "wait_for_file" }
//! 2. enum Step { …, WaitForFile { path: String, timeout: Option<f64> } }
//! 3. then fill in what the compiler points at:
//!    StepKind::extras   WaitForFile => &["timeout"],
//!    StepKind::parse    WaitForFile => Step::WaitForFile {
//!                           path: f.action_text()?, timeout: f.seconds("timeout")? },
//!    Step::kind         Step::WaitForFile { .. } => StepKind::WaitForFile,
//!    Step::describe     Step::WaitForFile { path, .. } => format!("wait_for_file {path}"),
//!    Step::needs_shell  Step::WaitForFile { .. } => true,
//!    Step::execute      Step::WaitForFile { path, timeout } => vm
//!                           .wait_until_succeeds(&format!("test -e {}", shell_quote(path)),
//!                                                within(*timeout)).map(drop),
//! 4. document the step in docs/scenarios.md.
//! ```
//!
//! Parsing stays strict with no more code: a field of no kind, two actions
//! in one step, or `timeout` on a kind that does not list it are errors
//! located at `file:line:column`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::errors::{Error, Result};
use crate::guest::session::{compile, Key, Session};

/// The longest timeout a scenario may set, in seconds (a week): longer is
/// a typo, and a deadline must stay a representable instant.
pub const MAX_TIMEOUT_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// `secs` (validated seconds) as a duration; out-of-range values (only
/// reachable through code that skipped validation) become the maximum
/// instead of panicking.
pub(crate) fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.min(MAX_TIMEOUT_SECS))
        .unwrap_or(Duration::from_secs(MAX_TIMEOUT_SECS as u64))
}

/// Checks a number of seconds given for `what`: positive, finite, at most
/// [`MAX_TIMEOUT_SECS`].
pub(crate) fn check_seconds(what: &str, secs: f64) -> std::result::Result<(), String> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!(
            "{what} must be a positive number of seconds, not {secs}"
        ));
    }
    if secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "{what} of {secs} seconds is too long (at most {MAX_TIMEOUT_SECS} s, a week)"
        ));
    }
    Ok(())
}

/// Declares the step kinds: `Variant = "json key"`, one per line, in the
/// order the documentation and error messages list them.
macro_rules! kinds {
    ($($kind:ident = $action:literal),* $(,)?) => {
        /// What a step does, named by its action key.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum StepKind {
            $(
                #[doc = concat!("`", $action, "`")]
                $kind,
            )*
        }

        impl StepKind {
            /// Every kind.
            pub const ALL: &'static [StepKind] = &[$(StepKind::$kind),*];

            /// The JSON key that selects this kind and holds its argument.
            pub fn action(self) -> &'static str {
                match self {
                    $(StepKind::$kind => $action,)*
                }
            }
        }
    };
}

kinds! {
    Expect = "expect",
    Send = "send",
    SendKey = "send_key",
    Succeed = "succeed",
    Fail = "fail",
    Run = "run",
    WaitForUnit = "wait_for_unit",
    WaitUntilSucceeds = "wait_until_succeeds",
    WaitUntilFails = "wait_until_fails",
    WaitForFile = "wait_for_file",
    WaitForOpenPort = "wait_for_open_port",
    WaitForConsoleText = "wait_for_console_text",
    CopyToGuest = "copy_to_guest",
    CopyFromGuest = "copy_from_guest",
    Crash = "crash",
    Reboot = "reboot",
}

/// One step of a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Wait for a regex on the console.
    Expect(String),
    /// Send text as it is.
    Send(String),
    /// Send a key.
    SendKey(Key),
    /// Run a command that must exit 0.
    Succeed(String),
    /// Run a command that must not exit 0.
    Fail(String),
    /// Run a command with an expected exit code and output.
    Run {
        /// The command.
        cmd: String,
        /// Expected exit code (default 0).
        exit: i32,
        /// A regex its output must match.
        output_matches: Option<String>,
    },
    /// Wait for a systemd unit to be active.
    WaitForUnit {
        /// The unit.
        unit: String,
        /// Seconds.
        timeout: Option<f64>,
    },
    /// Retry a command until it succeeds.
    WaitUntilSucceeds {
        /// The command.
        cmd: String,
        /// Seconds.
        timeout: Option<f64>,
    },
    /// Retry a command until it fails.
    WaitUntilFails {
        /// The command.
        cmd: String,
        /// Seconds.
        timeout: Option<f64>,
    },
    /// Wait until a guest path exists.
    WaitForFile {
        /// The guest path.
        path: String,
        /// Seconds.
        timeout: Option<f64>,
    },
    /// Wait until a TCP port listens in the guest.
    WaitForOpenPort {
        /// The port.
        port: u16,
        /// Seconds.
        timeout: Option<f64>,
    },
    /// Wait for a regex on the console (kernel messages included).
    WaitForConsoleText {
        /// The regex.
        pattern: String,
        /// Seconds.
        timeout: Option<f64>,
    },
    /// Copy a host file into the guest, checked by sha256.
    CopyToGuest {
        /// The host file (relative to the scenario file's folder).
        from: std::path::PathBuf,
        /// The guest path.
        to: String,
    },
    /// Copy a guest file to the host, checked by sha256.
    CopyFromGuest {
        /// The guest path.
        from: String,
        /// The host file (relative to the VM's artifacts folder).
        to: std::path::PathBuf,
    },
    /// Crash the kernel on purpose; its title must match the regex.
    Crash(String),
    /// Reboot the guest and get the shell back (`{"reboot": true}`).
    Reboot,
}

impl StepKind {
    /// The fields a step of this kind takes besides its action.
    pub fn extras(self) -> &'static [&'static str] {
        match self {
            StepKind::Expect
            | StepKind::Send
            | StepKind::SendKey
            | StepKind::Succeed
            | StepKind::Fail => &[],
            StepKind::Run => &["exit", "output_matches"],
            StepKind::WaitForUnit
            | StepKind::WaitUntilSucceeds
            | StepKind::WaitUntilFails
            | StepKind::WaitForFile
            | StepKind::WaitForOpenPort
            | StepKind::WaitForConsoleText => &["timeout"],
            StepKind::CopyToGuest | StepKind::CopyFromGuest => &["to"],
            StepKind::Crash | StepKind::Reboot => &[],
        }
    }

    /// Reads a step of this kind from its fields (already checked to be
    /// this kind's action and extras).
    fn parse(self, f: &Fields) -> std::result::Result<Step, String> {
        Ok(match self {
            StepKind::Expect => Step::Expect(regex(f.action_text()?)?),
            StepKind::Send => Step::Send(f.action_text()?),
            StepKind::SendKey => {
                let name = f.action_text()?;
                Step::SendKey(Key::parse(&name).ok_or_else(|| {
                    format!("unknown key {name:?} (Up, Down, Left, Right, Enter, Tab, Esc, Backspace, Delete, Home, End, PageUp, PageDown, Space, Ctrl-C, Ctrl-D, F1..F12)")
                })?)
            }
            StepKind::Succeed => Step::Succeed(f.command()?),
            StepKind::Fail => Step::Fail(f.command()?),
            StepKind::Run => Step::Run {
                cmd: f.command()?,
                exit: f.exit_code()?,
                output_matches: f.get::<String>("output_matches")?.map(regex).transpose()?,
            },
            StepKind::WaitForUnit => Step::WaitForUnit {
                unit: f.command()?,
                timeout: f.seconds("timeout")?,
            },
            StepKind::WaitUntilSucceeds => Step::WaitUntilSucceeds {
                cmd: f.command()?,
                timeout: f.seconds("timeout")?,
            },
            StepKind::WaitUntilFails => Step::WaitUntilFails {
                cmd: f.command()?,
                timeout: f.seconds("timeout")?,
            },
            StepKind::WaitForFile => Step::WaitForFile {
                path: f.command()?,
                timeout: f.seconds("timeout")?,
            },
            StepKind::WaitForOpenPort => Step::WaitForOpenPort {
                port: match f.get::<u16>(self.action())? {
                    Some(p) if p > 0 => p,
                    other => {
                        return Err(format!(
                            "\"wait_for_open_port\" needs a TCP port 1..=65535, not {other:?}"
                        ))
                    }
                },
                timeout: f.seconds("timeout")?,
            },
            StepKind::WaitForConsoleText => Step::WaitForConsoleText {
                pattern: regex(f.action_text()?)?,
                timeout: f.seconds("timeout")?,
            },
            StepKind::CopyToGuest => Step::CopyToGuest {
                from: f.command()?.into(),
                to: f.required_text("to")?,
            },
            StepKind::CopyFromGuest => Step::CopyFromGuest {
                from: f.command()?,
                to: f.required_text("to")?.into(),
            },
            StepKind::Crash => Step::Crash(regex(f.action_text()?)?),
            StepKind::Reboot => match f.get::<bool>(self.action())? {
                Some(true) => Step::Reboot,
                other => return Err(format!("\"reboot\" takes true, not {other:?}")),
            },
        })
    }
}

impl Step {
    /// Its kind.
    pub fn kind(&self) -> StepKind {
        match self {
            Step::Expect(_) => StepKind::Expect,
            Step::Send(_) => StepKind::Send,
            Step::SendKey(_) => StepKind::SendKey,
            Step::Succeed(_) => StepKind::Succeed,
            Step::Fail(_) => StepKind::Fail,
            Step::Run { .. } => StepKind::Run,
            Step::WaitForUnit { .. } => StepKind::WaitForUnit,
            Step::WaitUntilSucceeds { .. } => StepKind::WaitUntilSucceeds,
            Step::WaitUntilFails { .. } => StepKind::WaitUntilFails,
            Step::WaitForFile { .. } => StepKind::WaitForFile,
            Step::WaitForOpenPort { .. } => StepKind::WaitForOpenPort,
            Step::WaitForConsoleText { .. } => StepKind::WaitForConsoleText,
            Step::CopyToGuest { .. } => StepKind::CopyToGuest,
            Step::CopyFromGuest { .. } => StepKind::CopyFromGuest,
            Step::Crash(_) => StepKind::Crash,
            Step::Reboot => StepKind::Reboot,
        }
    }

    /// A one-line description for reports: `run (exit 0): uname -r`.
    pub fn describe(&self) -> String {
        match self {
            Step::Expect(r) => format!("expect /{r}/"),
            Step::Send(t) => format!("send {t:?}"),
            Step::SendKey(k) => format!("send_key {k:?}"),
            Step::Succeed(c) => format!("succeed: {c}"),
            Step::Fail(c) => format!("fail: {c}"),
            Step::Run { cmd, exit, .. } => format!("run (exit {exit}): {cmd}"),
            Step::WaitForUnit { unit, .. } => format!("wait_for_unit {unit}"),
            Step::WaitUntilSucceeds { cmd, .. } => format!("wait_until_succeeds: {cmd}"),
            Step::WaitUntilFails { cmd, .. } => format!("wait_until_fails: {cmd}"),
            Step::WaitForFile { path, .. } => format!("wait_for_file {path}"),
            Step::WaitForOpenPort { port, .. } => format!("wait_for_open_port {port}"),
            Step::WaitForConsoleText { pattern, .. } => {
                format!("wait_for_console_text /{pattern}/")
            }
            Step::CopyToGuest { from, to } => format!("copy_to_guest {} -> {to}", from.display()),
            Step::CopyFromGuest { from, to } => {
                format!("copy_from_guest {from} -> {}", to.display())
            }
            Step::Crash(title) => format!("crash (expected /{title}/)"),
            Step::Reboot => "reboot".into(),
        }
    }

    /// Whether the step needs a shell (a login or a shell prompt) rather
    /// than the bare console.
    pub fn needs_shell(&self) -> bool {
        match self {
            Step::Expect(_)
            | Step::Send(_)
            | Step::SendKey(_)
            | Step::WaitForConsoleText { .. }
            | Step::Crash(_) => false,
            Step::WaitUntilFails { .. }
            | Step::WaitForFile { .. }
            | Step::WaitForOpenPort { .. }
            | Step::CopyToGuest { .. }
            | Step::CopyFromGuest { .. }
            | Step::Reboot
            | Step::Succeed(_)
            | Step::Fail(_)
            | Step::Run { .. }
            | Step::WaitForUnit { .. }
            | Step::WaitUntilSucceeds { .. } => true,
        }
    }

    /// Runs the step on `vm`. Its time limit is its own `timeout` (or the
    /// session's step timeout), bounded by the test's deadline
    /// ([`Session::deadline`]): a step never outlives its test.
    pub fn execute(&self, vm: &Session) -> Result<()> {
        let step = vm.timeouts().step;
        let within = |own: Option<f64>| {
            vm.deadline()
                .within(own.map(seconds).unwrap_or(step))
                .remaining()
        };
        match self {
            Step::Expect(re) => vm.wait_for_console(re, within(None)).map(drop),
            Step::Send(text) => vm.send(text),
            Step::SendKey(key) => vm.send_key(*key),
            Step::Succeed(cmd) => run_checked(vm, cmd, within(None), |e| e == 0, "succeed", None),
            Step::Fail(cmd) => run_checked(vm, cmd, within(None), |e| e != 0, "fail", None),
            Step::Run {
                cmd,
                exit,
                output_matches,
            } => run_checked(
                vm,
                cmd,
                within(None),
                |e| e == *exit,
                &format!("exit with {exit}"),
                output_matches.as_deref(),
            ),
            Step::WaitForUnit { unit, timeout } => vm.wait_for_unit_within(unit, within(*timeout)),
            Step::WaitUntilSucceeds { cmd, timeout } => {
                vm.wait_until_succeeds(cmd, within(*timeout)).map(drop)
            }
            Step::WaitUntilFails { cmd, timeout } => {
                vm.wait_until_fails(cmd, within(*timeout)).map(drop)
            }
            Step::WaitForFile { path, timeout } => vm.wait_for_file(path, within(*timeout)),
            Step::WaitForOpenPort { port, timeout } => {
                vm.wait_for_open_port(*port, within(*timeout))
            }
            Step::WaitForConsoleText { pattern, timeout } => vm
                .wait_for_console_text(pattern, within(*timeout))
                .map(drop),
            Step::CopyToGuest { from, to } => vm.copy_to_guest(from, to).map(drop),
            Step::CopyFromGuest { from, to } => {
                let to = vm.machine().out_dir().join(to);
                vm.copy_from_guest(from, &to).map(drop)
            }
            Step::Crash(title) => {
                let report = vm.crash()?;
                if compile(title)?.is_match(report.title.as_bytes()) {
                    Ok(())
                } else {
                    Err(Error::KernelCrash(report))
                }
            }
            Step::Reboot => vm.reboot().map(drop),
        }
    }
}

/// Runs `cmd` within `timeout`; fails unless its exit code passes `ok`
/// ("was expected to `expected`") and its output matches `output_matches`.
fn run_checked(
    vm: &Session,
    cmd: &str,
    timeout: Duration,
    ok: impl Fn(i32) -> bool,
    expected: &str,
    output_matches: Option<&str>,
) -> Result<()> {
    let out = vm.run_timeout(cmd, timeout)?;
    if !ok(out.exit) {
        return Err(Error::Command {
            command: cmd.to_string(),
            expected: format!("was expected to {expected}"),
            exit: out.exit,
            output: out.output,
        });
    }
    if let Some(pattern) = output_matches {
        if !compile(pattern)?.is_match(out.output.as_bytes()) {
            return Err(Error::Command {
                command: cmd.to_string(),
                expected: format!("was expected to print output matching /{pattern}/"),
                exit: out.exit,
                output: out.output,
            });
        }
    }
    Ok(())
}

/// `s` if it is a valid regex.
fn regex(s: String) -> std::result::Result<String, String> {
    regex::bytes::Regex::new(&s).map_err(|e| format!("invalid regex {s:?}: {e}"))?;
    Ok(s)
}

/// Every field a step may have: each kind's action followed by its extras
/// (an extra shared by several kinds after the last of them).
fn all_fields() -> Vec<&'static str> {
    let mut out = Vec::new();
    for (i, kind) in StepKind::ALL.iter().enumerate() {
        out.push(kind.action());
        for extra in kind.extras() {
            let later = StepKind::ALL[i + 1..]
                .iter()
                .any(|k| k.extras().contains(extra));
            if !later && !out.contains(extra) {
                out.push(extra);
            }
        }
    }
    out
}

/// A step's JSON object, its fields checked against the kinds.
struct Fields {
    kind: StepKind,
    map: serde_json::Map<String, Value>,
}

impl Fields {
    /// Which kind the fields are, once every field is known to belong to
    /// some kind: exactly one action, and only that kind's extras.
    fn check(map: serde_json::Map<String, Value>) -> std::result::Result<Fields, String> {
        let given: Vec<StepKind> = StepKind::ALL
            .iter()
            .copied()
            .filter(|k| map.contains_key(k.action()))
            .collect();
        let kind = match given.as_slice() {
            [kind] => *kind,
            [] => {
                let actions: Vec<&str> = StepKind::ALL.iter().map(|k| k.action()).collect();
                let (last, first) = actions.split_last().unwrap_or((&"", &[]));
                return Err(format!(
                    "a step needs one action: {} or {last}",
                    first.join(", ")
                ));
            }
            many => {
                let names: Vec<&str> = many.iter().map(|k| k.action()).collect();
                return Err(format!(
                    "a step has exactly one action, this one has {}",
                    names.join(", ")
                ));
            }
        };
        let extras: Vec<&str> = all_fields()
            .into_iter()
            .filter(|f| StepKind::ALL.iter().all(|k| k.action() != *f))
            .collect();
        let misplaced = |f: &&&str| map.contains_key(**f) && !kind.extras().contains(*f);
        if let Some(field) = extras.iter().find(misplaced) {
            let owners: Vec<StepKind> = StepKind::ALL
                .iter()
                .copied()
                .filter(|k| k.extras().contains(field))
                .collect();
            let fields: Vec<String> = extras
                .iter()
                .filter(|f| {
                    StepKind::ALL
                        .iter()
                        .filter(|k| k.extras().contains(f))
                        .eq(owners.iter())
                })
                .map(|f| format!("\"{f}\""))
                .collect();
            // One owner is quoted, several are listed plain (the wording
            // scenario authors have always seen).
            let owner_names = match owners.as_slice() {
                [one] => format!("\"{}\"", one.action()),
                many => {
                    let names: Vec<&str> = many.iter().map(|k| k.action()).collect();
                    match names.split_last() {
                        Some((last, [])) => last.to_string(),
                        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                        None => String::new(),
                    }
                }
            };
            let verb = if fields.len() == 1 {
                "belongs"
            } else {
                "belong"
            };
            return Err(format!(
                "{} {verb} to {owner_names} steps, not \"{}\"",
                fields.join(" and "),
                kind.action()
            ));
        }
        Ok(Fields { kind, map })
    }

    /// The optional field `key` as a `T`.
    fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> std::result::Result<Option<T>, String> {
        self.map
            .get(key)
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| e.to_string()))
            .transpose()
    }

    /// The action's text (`"succeed": "<this>"`).
    fn action_text(&self) -> std::result::Result<String, String> {
        Ok(self.get(self.kind.action())?.unwrap_or_default())
    }

    /// The action's text when it names something to run or wait for (a
    /// command, a unit): not empty or blank.
    fn command(&self) -> std::result::Result<String, String> {
        let text = self.action_text()?;
        if text.trim().is_empty() {
            let what = match self.kind {
                StepKind::WaitForUnit => "a unit name",
                _ => "a command",
            };
            return Err(format!(
                "\"{}\" needs {what}, not an empty string",
                self.kind.action()
            ));
        }
        Ok(text)
    }

    /// The text of the required field `key`: not empty.
    fn required_text(&self, key: &str) -> std::result::Result<String, String> {
        match self.get::<String>(key)? {
            Some(t) if !t.trim().is_empty() => Ok(t),
            _ => Err(format!(
                "\"{}\" needs \"{key}\": where to put the copy",
                self.kind.action()
            )),
        }
    }

    /// The expected exit code (default 0): what a shell can report, 0..=255.
    fn exit_code(&self) -> std::result::Result<i32, String> {
        let exit = self.get::<i64>("exit")?.unwrap_or(0);
        if !(0..=255).contains(&exit) {
            return Err(format!("exit must be an exit status 0..=255, not {exit}"));
        }
        Ok(exit as i32)
    }

    /// An optional positive number of seconds, at most a week.
    fn seconds(&self, key: &str) -> std::result::Result<Option<f64>, String> {
        let t = self.get::<f64>(key)?;
        if let Some(t) = t {
            check_seconds(key, t)?;
        }
        Ok(t)
    }
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Step, D::Error> {
        // Which kind, and its checks, once the whole object is read (as
        // serde's `try_from` did: errors are located as they always were).
        let map = d.deserialize_map(StepVisitor { placed: false })?;
        let fields = Fields::check(map).map_err(de::Error::custom)?;
        fields.kind.parse(&fields).map_err(de::Error::custom)
    }
}

/// A step of a scenario test and the machine it runs on: `"on"`, one of
/// the scenario's `machines` (checked when the scenario is loaded). It
/// dereferences to its [`Step`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedStep {
    /// The machine's name; `None`: the scenario's only machine.
    pub on: Option<String>,
    /// The step.
    pub step: Step,
}

impl std::ops::Deref for PlacedStep {
    type Target = Step;
    fn deref(&self) -> &Step {
        &self.step
    }
}

impl<'de> Deserialize<'de> for PlacedStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<PlacedStep, D::Error> {
        let mut map = d.deserialize_map(StepVisitor { placed: true })?;
        let on = match map.remove("on") {
            None => None,
            Some(Value::String(name)) => Some(name),
            Some(other) => {
                return Err(de::Error::custom(format!(
                    "\"on\" names a machine, not {other}"
                )))
            }
        };
        let fields = Fields::check(map).map_err(de::Error::custom)?;
        let step = fields.kind.parse(&fields).map_err(de::Error::custom)?;
        Ok(PlacedStep { on, step })
    }
}

/// Reads a step's object; `placed`: `"on"` is a field too.
struct StepVisitor {
    placed: bool,
}

/// Reads a step object's fields, refusing unknown and repeated ones.
impl<'de> Visitor<'de> for StepVisitor {
    type Value = serde_json::Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a step object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut access: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut fields = all_fields();
        if self.placed {
            fields.push("on");
        }
        let mut map = serde_json::Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if !fields.contains(&key.as_str()) {
                let expected: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                return Err(de::Error::custom(format!(
                    "unknown field `{key}`, expected one of {}",
                    expected.join(", ")
                )));
            }
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate field `{key}`")));
            }
            let value: Value = access.next_value()?;
            // A null field is an absent one, as before.
            if !value.is_null() {
                map.insert(key, value);
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> std::result::Result<Step, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses_and_describes_itself() {
        let steps = [
            (r#"{"expect": "login"}"#, "expect /login/"),
            (r#"{"send": "x"}"#, "send \"x\""),
            (r#"{"send_key": "Down"}"#, "send_key Down"),
            (r#"{"succeed": "true"}"#, "succeed: true"),
            (r#"{"fail": "false"}"#, "fail: false"),
            (r#"{"run": "echo", "exit": 3}"#, "run (exit 3): echo"),
            (r#"{"wait_for_unit": "x"}"#, "wait_for_unit x"),
            (
                r#"{"wait_until_succeeds": "true", "timeout": 5}"#,
                "wait_until_succeeds: true",
            ),
            (
                r#"{"wait_until_fails": "pidof x"}"#,
                "wait_until_fails: pidof x",
            ),
            (r#"{"wait_for_file": "/run/x"}"#, "wait_for_file /run/x"),
            (
                r#"{"wait_for_open_port": 80, "timeout": 9}"#,
                "wait_for_open_port 80",
            ),
            (
                r#"{"wait_for_console_text": "ready"}"#,
                "wait_for_console_text /ready/",
            ),
            (
                r#"{"copy_to_guest": "a.bin", "to": "/tmp/a"}"#,
                "copy_to_guest a.bin -> /tmp/a",
            ),
            (
                r#"{"copy_from_guest": "/tmp/a", "to": "a.bin"}"#,
                "copy_from_guest /tmp/a -> a.bin",
            ),
            (r#"{"crash": "sysrq"}"#, "crash (expected /sysrq/)"),
            (r#"{"reboot": true}"#, "reboot"),
        ];
        assert_eq!(steps.len(), StepKind::ALL.len());
        for (json, described) in steps {
            let step = parse(json).unwrap();
            assert_eq!(step.describe(), described);
            assert!(json.contains(step.kind().action()));
        }
    }

    #[test]
    fn strictness_messages() {
        let e = parse(r#"{"sucess": "x"}"#).unwrap_err();
        assert!(
            e.starts_with("unknown field `sucess`, expected one of `expect`, `send`, `send_key`, `succeed`, `fail`, `run`, `exit`, `output_matches`, `wait_for_unit`, `wait_until_succeeds`, `wait_until_fails`, `wait_for_file`, `wait_for_open_port`, `wait_for_console_text`, `timeout`, `copy_to_guest`, `copy_from_guest`, `to`, `crash`, `reboot`"),
            "{e}"
        );
        let e = parse(r#"{}"#).unwrap_err();
        assert!(e.starts_with("a step needs one action: expect, send, send_key, succeed, fail, run, wait_for_unit, wait_until_succeeds, wait_until_fails, wait_for_file, wait_for_open_port, wait_for_console_text, copy_to_guest, copy_from_guest, crash or reboot"), "{e}");
        let e = parse(r#"{"send": "x", "timeout": 3}"#).unwrap_err();
        assert!(
            e.starts_with(
                r#""timeout" belongs to wait_for_unit, wait_until_succeeds, wait_until_fails, wait_for_file, wait_for_open_port and wait_for_console_text steps, not "send""#
            ),
            "{e}"
        );
        let e = parse(r#"{"fail": "x", "output_matches": "y"}"#).unwrap_err();
        assert!(
            e.starts_with(r#""exit" and "output_matches" belong to "run" steps, not "fail""#),
            "{e}"
        );
        let e = parse(r#"{"wait_for_unit": "x", "timeout": -1}"#).unwrap_err();
        assert!(
            e.contains("timeout must be a positive number of seconds"),
            "{e}"
        );
        let e = parse(r#"{"expect": 5}"#).unwrap_err();
        assert!(
            e.contains("invalid type: integer `5`, expected a string"),
            "{e}"
        );
        let e = parse(r#"{"copy_to_guest": "a"}"#).unwrap_err();
        assert!(e.contains(r#""copy_to_guest" needs "to""#), "{e}");
        let e = parse(r#"{"wait_for_open_port": 0}"#).unwrap_err();
        assert!(e.contains("TCP port 1..=65535"), "{e}");
        let e = parse(r#"{"wait_for_open_port": 70000}"#).unwrap_err();
        assert!(e.contains("70000"), "{e}");
        let e = parse(r#"{"reboot": false}"#).unwrap_err();
        assert!(e.contains(r#""reboot" takes true, not Some(false)"#), "{e}");
        let e = parse(r#"{"reboot": "now"}"#).unwrap_err();
        assert!(e.contains("expected a boolean"), "{e}");
        let e = parse(r#"{"run": "x", "run": "y"}"#).unwrap_err();
        assert!(e.contains("duplicate field `run`"), "{e}");
    }

    #[test]
    fn shells_are_needed_by_commands_only() {
        assert!(!Step::Send("x".into()).needs_shell());
        assert!(Step::Succeed("x".into()).needs_shell());
    }
}
