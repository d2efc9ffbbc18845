//! The collector extension point: what a failed test's postmortem asks
//! each VM, and how.
//!
//! A [`Collector`] is registered on the test context
//! ([`TestContext::add_collector`](crate::TestContext::add_collector)); the
//! built-in ones (module `collectors`) are registered the same
//! way. When a test fails, every collector runs once per VM of the test,
//! while the guests still answer: guest collectors first (in the order they
//! were registered), then host collectors. Each gets the VM's [`VmHandle`]
//! and a deadline, and returns [`Collected`] items: text, written by the
//! postmortem to `diagnostics/<name>.txt` in the VM's folder, or a file the
//! collector wrote itself into [`VmHandle::dir`]. Every item is catalogued
//! in `metadata.json` with its sha256.
//!
//! A guest collector that declares the tool it needs
//! ([`Collector::needs_tool`]) is skipped, with a note, when `command -v`
//! does not find it in the guest; a guest that stops answering makes the
//! remaining guest collectors of that VM skip at once. Neither hides the
//! test's own failure nor hangs the run.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bootrig_diagnostics::catalog::Producer;
use bootrig_diagnostics::layout::VmLayout;

use crate::deadline::Deadline;
use crate::errors::{Error, Result};
use crate::guest::session::{CommandOutput, Session};
use crate::vm::machine::Machine;

/// Where a collector gets its facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Runs commands in the guest through the VM's shell.
    Guest,
    /// Reads host-side state: the console, QMP, files on the host.
    Host,
}

/// Something that knows a failed test's VM: see the module documentation.
///
/// A host-side collector is one type implementing this trait, registered
/// with [`TestContext::add_collector`](crate::TestContext::add_collector):
///
/// ```
/// use bootrig::{Collected, Collector, Deadline, Producer, Side, VmHandle};
///
/// /// How many bytes the guest printed, from the host's side.
/// struct ConsoleBytes;
///
/// impl Collector for ConsoleBytes {
///     fn name(&self) -> &str {
///         "console-bytes"
///     }
///     fn side(&self) -> Side {
///         Side::Host
///     }
///     fn producer(&self) -> Producer {
///         Producer::host("bytes received on the serial console")
///     }
///     fn collect(&self, vm: &VmHandle, _deadline: Deadline) -> Vec<Collected> {
///         let n = vm.machine().console().bytes_received();
///         vec![Collected::text(self.name(), self.producer(), format!("{n}\n"))]
///     }
/// }
/// ```
pub trait Collector: Send + Sync {
    /// Its name: the artifact name (and `diagnostics/<name>.txt`) of its
    /// output, and how notes refer to it.
    fn name(&self) -> &str;

    /// Guest or host side.
    fn side(&self) -> Side;

    /// What produces its output (the guest command, or the host source),
    /// also recorded when it is skipped.
    fn producer(&self) -> Producer;

    /// The guest tool it needs (`journalctl`): when the guest has none,
    /// the collector is skipped with a note instead of printing `not
    /// found`. Only asked of guest collectors.
    fn needs_tool(&self) -> Option<&str> {
        None
    }

    /// Collects from `vm`, finishing before `deadline`.
    fn collect(&self, vm: &VmHandle, deadline: Deadline) -> Vec<Collected>;
}

/// One item a collector produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Artifact name, also the file name under `diagnostics/` (`.txt`)
    /// for text.
    pub name: String,
    /// What produced it: the command run in the guest, or the host-side
    /// source.
    pub produced_by: Producer,
    /// What it printed (empty for a file).
    pub output: String,
    /// Its exit code, when it ran.
    pub exit: Option<i32>,
    /// How long it took.
    pub duration: Duration,
    /// Why the output is missing or partial, if it is.
    pub note: Option<String>,
    /// The guest tool it needed and the guest lacks: recorded in the
    /// catalog, left out of the failure message but for one line.
    pub missing_tool: Option<String>,
    /// A file the collector wrote itself, relative to the VM's folder,
    /// instead of `output`.
    pub file: Option<String>,
}

impl Collected {
    /// Text output of `name`.
    pub fn text(name: impl Into<String>, produced_by: Producer, output: impl Into<String>) -> Self {
        Collected {
            name: name.into(),
            produced_by,
            output: output.into(),
            exit: None,
            duration: Duration::ZERO,
            note: None,
            missing_tool: None,
            file: None,
        }
    }

    /// A file the collector wrote at `rel_path` in the VM's folder
    /// ([`VmHandle::dir`]).
    pub fn file(
        name: impl Into<String>,
        produced_by: Producer,
        rel_path: impl Into<String>,
    ) -> Self {
        Collected {
            file: Some(rel_path.into()),
            ..Collected::text(name, produced_by, "")
        }
    }

    /// Nothing collected, because of `why`.
    pub fn skipped(name: impl Into<String>, produced_by: Producer, why: &str) -> Self {
        Collected::text(name, produced_by, "").with_note(format!("skipped: {why}"))
    }

    /// With `note`.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// With the exit code and duration of the command that produced it.
    pub fn with_run(mut self, exit: Option<i32>, duration: Duration) -> Self {
        self.exit = exit;
        self.duration = duration;
        self
    }

    /// Whether it holds no output because the guest lacks a tool.
    pub fn is_unavailable(&self) -> bool {
        self.missing_tool.is_some()
    }
}

/// A VM of a test, as the postmortem sees it: its session, where its files
/// go (decided once, when it booted), and whether its guest still answers.
pub struct VmHandle {
    session: Arc<Session>,
    layout: VmLayout,
    dir: PathBuf,
    unresponsive: Mutex<Option<String>>,
}

impl std::fmt::Debug for VmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmHandle")
            .field("vm", &self.session.machine().name())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl VmHandle {
    /// The VM of `session`, whose files are in `dir`, at `layout` in its
    /// test's folder.
    pub fn new(session: Arc<Session>, layout: VmLayout, dir: impl Into<PathBuf>) -> VmHandle {
        VmHandle {
            session,
            layout,
            dir: dir.into(),
            unresponsive: Mutex::new(None),
        }
    }

    /// A VM on its own: its folder is its machine's output folder, as a
    /// test's first VM.
    pub fn standalone(session: Arc<Session>) -> VmHandle {
        let dir = session.machine().out_dir().to_path_buf();
        VmHandle::new(session, VmLayout::first(), dir)
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        self.session.machine()
    }

    /// Where its files are in its test's folder.
    pub fn layout(&self) -> &VmLayout {
        &self.layout
    }

    /// Its folder on the host: a collector writing files writes them here.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn unresponsive_state(&self) -> MutexGuard<'_, Option<String>> {
        self.unresponsive.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the guest cannot run collectors' commands (`None` while it
    /// answers): QEMU exited, no shell yet, or it stopped answering.
    pub fn unresponsive(&self) -> Option<String> {
        if let Some(why) = self.unresponsive_state().clone() {
            return Some(why);
        }
        if self.machine().console().is_closed() {
            Some("the guest is gone (QEMU exited)".into())
        } else if !self.session.has_shell() {
            Some(self.session.lost_shell().unwrap_or_else(|| {
                "no shell in the guest (the test failed before login or attach)".into()
            }))
        } else {
            None
        }
    }

    /// Asks the guest `cmd` before `deadline`, if it has a shell; no
    /// answer is held against it (unlike [`VmHandle::run`]).
    pub fn query(&self, cmd: &str, deadline: Deadline) -> Option<CommandOutput> {
        if self.unresponsive().is_some() || self.machine().console().fault().is_some() {
            return None;
        }
        self.session.run_timeout(cmd, deadline.remaining()).ok()
    }

    /// Runs `cmd` in the guest's shell, finishing before `deadline`. A
    /// guest that does not answer (or whose kernel crashed) is remembered:
    /// the remaining guest collectors of this VM are skipped.
    pub fn run(&self, cmd: &str, deadline: Deadline) -> Result<CommandOutput> {
        if let Some(why) = self.unresponsive() {
            return Err(Error::Check(format!("not run: {why}")));
        }
        let timeout = deadline.remaining();
        let result = self.session.run_timeout(cmd, timeout);
        if let Err(e) = &result {
            let why = match e {
                Error::CommandTimeout { .. } => format!(
                    "the guest did not answer within {:.0}s",
                    timeout.as_secs_f64()
                ),
                Error::KernelCrash(r) => format!("the kernel crashed: {}", r.title),
                other => format!(
                    "could not run: {}",
                    other.to_string().lines().next().unwrap_or("")
                ),
            };
            *self.unresponsive_state() = Some(why);
        }
        result
    }
}

/// Runs `collectors` on `vm`, each with `timeout`: guest collectors first,
/// then host collectors.
pub fn run_collectors(
    vm: &VmHandle,
    collectors: &[Arc<dyn Collector>],
    timeout: Duration,
) -> Vec<Collected> {
    let guest: Vec<&Arc<dyn Collector>> = collectors
        .iter()
        .filter(|c| c.side() == Side::Guest)
        .collect();
    let missing = missing_tools(vm, &guest, timeout);
    let mut out = Vec::new();
    for c in guest {
        if let Some(why) = vm.unresponsive() {
            out.push(Collected::skipped(c.name(), c.producer(), &why));
            continue;
        }
        if let Some(tool) = c.needs_tool().filter(|t| missing.iter().any(|m| m == t)) {
            let mut item = Collected::skipped(
                c.name(),
                c.producer(),
                &format!("`{tool}` is not installed in the guest"),
            );
            item.missing_tool = Some(tool.to_string());
            out.push(item);
            continue;
        }
        out.extend(
            c.collect(vm, Deadline::after(timeout))
                .into_iter()
                .map(mark_not_found),
        );
    }
    for c in collectors.iter().filter(|c| c.side() == Side::Host) {
        out.extend(c.collect(vm, Deadline::after(timeout)));
    }
    out
}

/// The tools guest `collectors` need that the guest lacks, asked in one
/// `command -v` round trip.
fn missing_tools(
    vm: &VmHandle,
    collectors: &[&Arc<dyn Collector>],
    timeout: Duration,
) -> Vec<String> {
    let mut tools: Vec<&str> = collectors.iter().filter_map(|c| c.needs_tool()).collect();
    tools.sort_unstable();
    tools.dedup();
    if tools.is_empty() || vm.unresponsive().is_some() {
        return Vec::new();
    }
    let quoted: Vec<String> = tools
        .iter()
        .map(|t| crate::guest::session::shell_quote(t))
        .collect();
    let cmd = format!(
        "for t in {}; do command -v \"$t\" >/dev/null 2>&1 || echo \"$t\"; done",
        quoted.join(" ")
    );
    match vm.run(&cmd, Deadline::after(timeout)) {
        Ok(o) => o
            .output
            .lines()
            .map(str::trim)
            .filter(|l| tools.contains(l))
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A command that exited 127 or printed `<tool>: not found` lacked a tool
/// it did not declare: noted, and kept out of the failure message.
fn mark_not_found(mut c: Collected) -> Collected {
    if c.missing_tool.is_some() || c.file.is_some() {
        return c;
    }
    let line = c
        .output
        .lines()
        .find(|l| l.trim_end().ends_with("not found"));
    if c.exit != Some(127) && line.is_none() {
        return c;
    }
    let tool = line
        .and_then(|l| {
            let parts: Vec<&str> = l.split(':').map(str::trim).collect();
            parts.len().checked_sub(2).map(|i| parts[i].to_string())
        })
        .filter(|t| !t.is_empty() && !t.contains(' '))
        .or_else(|| {
            let source = &c.produced_by.source;
            source.split_whitespace().next().map(str::to_string)
        })
        .unwrap_or_default();
    c.note
        .get_or_insert_with(|| "a tool this needs is not installed in the guest".to_string());
    c.missing_tool = Some(tool);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_output_names_the_missing_tool() {
        let c = Collected::text(
            "journal",
            Producer::command("journalctl -b | tail"),
            "sh: journalctl: not found\n",
        )
        .with_run(Some(0), Duration::ZERO);
        let c = mark_not_found(c);
        assert_eq!(c.missing_tool.as_deref(), Some("journalctl"));
        assert!(c.note.is_some());

        let c = Collected::text("x", Producer::command("frob --all"), "")
            .with_run(Some(127), Duration::ZERO);
        assert_eq!(mark_not_found(c).missing_tool.as_deref(), Some("frob"));

        let fine = Collected::text("lsblk", Producer::command("lsblk"), "vda\n")
            .with_run(Some(0), Duration::ZERO);
        assert_eq!(mark_not_found(fine.clone()), fine);
    }
}
