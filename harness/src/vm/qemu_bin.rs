//! The QEMU binary on the host (where it is, its version) and how its
//! command line and logs are shown to people (`qemu-cmdline.txt`, the tail
//! of `qemu-stderr.log` in errors).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::errors::{Error, Result};

/// `qemu --version`, first line.
pub fn qemu_version(qemu: &Path) -> Result<String> {
    let out = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {} --version", qemu.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// Finds `qemu` on PATH (or checks the given path), with an install hint.
pub fn resolve_binary(qemu: &Path) -> Result<PathBuf> {
    if qemu.components().count() > 1 {
        return if qemu.is_file() {
            Ok(qemu.to_path_buf())
        } else {
            Err(Error::MissingTool {
                tool: qemu.display().to_string(),
                hint: "the configured QEMU binary does not exist".into(),
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(qemu))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::MissingTool {
            tool: qemu.display().to_string(),
            hint:
                "install it with scripts/install-deps.sh (qemu-system-x86 from bookworm-backports)"
                    .into(),
        })
}

/// Quotes an argv for a shell, one option and its value per line, so
/// `qemu-cmdline.txt` reads well and can be pasted into a shell.
pub fn shell_quote(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push_str(if a.starts_with('-') { " \\\n    " } else { " " });
        }
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
        {
            out.push_str(a);
        } else {
            out.push('\'');
            out.push_str(&a.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out.push('\n');
    out
}

/// The last `lines` lines of a text file ("" if unreadable).
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let text = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
