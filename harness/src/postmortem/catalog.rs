//! The catalog stage: every file the test left goes into `metadata.json`
//! with its sha256, named and placed as [`bootrig_diagnostics::layout`]
//! says.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use bootrig_diagnostics::catalog::Producer;
use bootrig_diagnostics::crash::CrashReport;
use bootrig_diagnostics::layout::{self, VmLayout};
use bootrig_diagnostics::TestDir;

use crate::ansi::AnsiStripper;
use crate::postmortem::collector::Collected;

/// An artifact the test's folder could not take (or took only in part):
/// recorded in `metadata.json` (`extra.artifacts_lost`) instead of being
/// dropped silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loss {
    /// The file and what happened to it, one line.
    pub(crate) what: String,
    /// The disk was full (or over quota): the host's failure, not the
    /// test's.
    pub(crate) disk_full: bool,
}

impl Loss {
    /// `rel` could not be written: `err`.
    pub(crate) fn of(rel: &str, err: &bootrig_diagnostics::errors::Error) -> Loss {
        Loss {
            what: format!("{rel}: not written: {}", err.kind),
            disk_full: bootrig_diagnostics::reserve::error_is_disk_full(err),
        }
    }

    /// `rel` could not be written: the I/O error `err`.
    pub(crate) fn io(rel: &str, doing: &str, err: &std::io::Error) -> Loss {
        Loss {
            what: format!("{rel}: {doing}: {err}"),
            disk_full: bootrig_diagnostics::reserve::is_disk_full(err),
        }
    }
}

/// Writes and catalogues what the collectors of the VM at `vm` gave: text
/// under `diagnostics/`, files where the collector wrote them.
pub(crate) fn collected(
    dir: &mut TestDir,
    vm: &VmLayout,
    items: &[Collected],
    lost: &mut Vec<Loss>,
) {
    for c in items {
        let name = vm.name(&c.name);
        let done = match &c.file {
            Some(rel) => dir
                .add_existing(&name, &vm.path(rel), c.produced_by.clone())
                .is_ok(),
            None => {
                let rel = vm.collector_output(&c.name);
                let written = dir.write_artifact(
                    &name,
                    &rel,
                    c.output.as_bytes(),
                    c.produced_by.clone(),
                    c.exit,
                    Some(c.duration),
                );
                if let Err(e) = &written {
                    lost.push(Loss::of(&rel, e));
                }
                written.is_ok()
            }
        };
        if done {
            if let Some(note) = &c.note {
                dir.set_note(&name, note.clone());
            }
        }
    }
}

/// Records the kernel reports in `metadata.json` (`extra.kernel_reports`)
/// and writes them to `kernel-reports.txt`. Also on passing tests: a
/// WARNING that did not fail the test is still something to see.
pub(crate) fn kernel_reports(dir: &mut TestDir, reports: &[CrashReport], lost: &mut Vec<Loss>) {
    if reports.is_empty() {
        return;
    }
    let titles: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| serde_json::json!({ "title": r.title, "fatal": r.fatal }))
        .collect();
    dir.metadata_mut()
        .extra
        .insert("kernel_reports".into(), titles.into());
    let text: String = reports
        .iter()
        .map(|r| {
            let tag = if r.fatal {
                ""
            } else {
                "(recorded, not fatal) "
            };
            format!("{tag}{}\n{}\n\n", r.title, r.excerpt)
        })
        .collect();
    let spec = layout::KERNEL_REPORTS;
    if let Err(e) = dir.write_artifact(
        spec.name,
        spec.path,
        text.as_bytes(),
        spec.producer(),
        None,
        None,
    ) {
        lost.push(Loss::of(spec.path, &e));
    }
}

/// Catalogues the files the VM at `vm` wrote into its folder, writing
/// `serial.txt`, the ANSI-stripped console, from `serial.log` first (a
/// `serial.txt` that could not be written whole is removed: it is only a
/// copy, and a cut one would pass for the whole console).
pub(crate) fn vm_files(dir: &mut TestDir, vm: &VmLayout, lost: &mut Vec<Loss>) {
    let serial = dir.path().join(vm.file(&layout::SERIAL_LOG));
    let stripped = dir.path().join(vm.file(&layout::SERIAL_TXT));
    if serial.is_file() {
        if let Err(e) = strip_file(&serial, &stripped) {
            let _ = std::fs::remove_file(&stripped);
            let rel = vm.file(&layout::SERIAL_TXT);
            lost.push(Loss::io(
                &rel,
                "not written (a copy of serial.log without escapes)",
                &e,
            ));
        }
    }
    for spec in layout::VM_FILES {
        let rel = vm.file(&spec);
        if dir.path().join(&rel).is_file() {
            let _ = dir.add_existing(&vm.name(spec.name), &rel, spec.producer());
        }
    }
}

/// Hashes again the added artifacts that live in the folder: they may
/// have grown since they were added.
pub(crate) fn live_files(
    dir: &mut TestDir,
    files: &[(String, String, Producer)],
    lost: &mut Vec<Loss>,
) {
    for (name, rel, producer) in files {
        if let Err(e) = dir.add_existing(name, rel, producer.clone()) {
            lost.push(Loss::of(rel, &e));
        }
    }
}

/// Streams `from` through the ANSI stripper into `to`.
fn strip_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut input = BufReader::new(File::open(from)?);
    let mut out = BufWriter::new(File::create(to)?);
    let mut stripper = AnsiStripper::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut text = Vec::with_capacity(1 << 16);
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        text.clear();
        stripper.feed(&buf[..n], &mut text);
        out.write_all(&text)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_a_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("serial.log");
        std::fs::write(&raw, b"\x1b[1;32mok\x1b[0m\r\nline2\r\n").unwrap();
        let out = dir.path().join("serial.txt");
        strip_file(&raw, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"ok\nline2\n");
    }

    #[test]
    fn a_later_vms_files_are_catalogued_in_its_folder() {
        let run = tempfile::tempdir().unwrap();
        let mut dir = TestDir::create(run.path(), "t", chrono::Utc::now()).unwrap();
        let vm = VmLayout::nth(1, "peer");
        let vm_dir = vm.dir(dir.path());
        std::fs::create_dir_all(&vm_dir).unwrap();
        std::fs::write(vm_dir.join("serial.log"), b"\x1b[1mhi\x1b[0m\n").unwrap();
        let mut lost = Vec::new();
        vm_files(&mut dir, &vm, &mut lost);
        collected(
            &mut dir,
            &vm,
            &[Collected::text(
                "lsblk",
                Producer::command("lsblk"),
                "vda\n",
            )],
            &mut lost,
        );
        assert_eq!(lost, vec![]);
        let cat = dir.artifacts();
        assert_eq!(cat.get("peer/serial.txt").unwrap().path, "peer/serial.txt");
        assert_eq!(
            cat.get("peer/lsblk").unwrap().path,
            "peer/diagnostics/lsblk.txt"
        );
        assert!(cat.get("serial.log").is_none());
    }
}
