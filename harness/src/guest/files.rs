//! Files between the host and the guest, exact for binary data and
//! checked by sha256 on both sides, on any guest with a shell: over the
//! command channel when the shell holds it (the guest reads the bytes from
//! the port), else base64 over the console (slow: meant for small files).
//! Also the expected kernel crash.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use bootrig_diagnostics::crash::CrashReport;
use bootrig_diagnostics::hash::digest_bytes;

use crate::errors::{Error, Result};
use crate::guest::protocol::{shell_quote, CHANNEL_FD};
use crate::guest::session::Session;

/// Base64 text per console command when a file is typed in (the long
/// command mechanism splits it into short lines).
const BASE64_PIECE: usize = 3000;

/// A console pattern nothing prints: the crash ends the wait.
const NEVER_PRINTED: &str = "bootrig: this line is never printed 7c1d0e";

/// How long a crash may take to be reported after it is triggered.
const CRASH_TIMEOUT: Duration = Duration::from_secs(60);

impl Session {
    /// Copies the host file `from` to `to` in the guest (created or
    /// replaced), byte for byte; the guest's sha256 of the result must
    /// match the host's. Returns the sha256.
    pub fn copy_to_guest(&self, from: &Path, to: &str) -> Result<String> {
        let bytes =
            std::fs::read(from).map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        let sha = digest_bytes(&bytes).sha256;
        let dest = shell_quote(to);
        let deadline = self.deadline_within(self.timeouts.step);
        match self.machine.channel().filter(|_| self.on_channel()) {
            Some(ch) => {
                let n = bytes.len();
                let writer = ch
                    .send(bytes, deadline)
                    .map_err(|e| Error::io("sending a file on the command channel", e))?;
                let out = self.run_until(&format!("head -c {n} <&{CHANNEL_FD} > {dest}"), deadline);
                let sent = writer
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the channel writer panicked")));
                let out = out?;
                if out.exit != 0 {
                    return Err(copy_failed(
                        to,
                        "writing the file in the guest",
                        &out.output,
                    ));
                }
                sent.map_err(|e| Error::io("sending a file on the command channel", e))?;
            }
            None => {
                let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
                self.succeed(&format!(": > {dest}"))?;
                for piece in text.as_bytes().chunks(BASE64_PIECE) {
                    let piece = std::str::from_utf8(piece).unwrap_or_default();
                    self.succeed(&format!("printf %s '{piece}' | base64 -d >> {dest}"))?;
                }
            }
        }
        self.check_guest_sha(to, &sha)?;
        Ok(sha)
    }

    /// Copies the guest file `from` to the host file `to`, byte for byte;
    /// the host's sha256 of what arrived must match the guest's. Returns
    /// the sha256.
    pub fn copy_from_guest(&self, from: &str, to: &Path) -> Result<String> {
        let src = shell_quote(from);
        let bytes = if self.on_channel() {
            let out = self.run(&format!("cat {src}"))?;
            if out.exit != 0 || !out.quiet {
                return Err(copy_failed(
                    from,
                    "reading the file in the guest",
                    &out.output,
                ));
            }
            out.into_bytes()
        } else {
            let out = self.run(&format!("base64 {src}"))?;
            if out.exit != 0 {
                return Err(copy_failed(
                    from,
                    "reading the file in the guest",
                    &out.output,
                ));
            }
            let text: String = out.output.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| copy_failed(from, "decoding the guest's base64", &e.to_string()))?
        };
        let sha = digest_bytes(&bytes).sha256;
        self.check_guest_sha(from, &sha)?;
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        std::fs::write(to, &bytes)
            .map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
        Ok(sha)
    }

    /// Fails unless the guest's sha256 of `path` is `sha`.
    fn check_guest_sha(&self, path: &str, sha: &str) -> Result<()> {
        let out = self.succeed(&format!("sha256sum {}", shell_quote(path)))?;
        let guest = out.split_whitespace().next().unwrap_or("");
        if guest != sha {
            return Err(copy_failed(
                path,
                "comparing sha256",
                &format!("host {sha}, guest {guest}"),
            ));
        }
        Ok(())
    }

    /// Crashes the guest's kernel on purpose (`echo c >
    /// /proc/sysrq-trigger`, as root) and returns its crash report once the
    /// console shows it. The crash does not fail the test: the report was
    /// expected. The VM is gone afterwards.
    pub fn crash(&self) -> Result<CrashReport> {
        self.send("echo c > /proc/sysrq-trigger\n")?;
        match self.wait_for_console(NEVER_PRINTED, CRASH_TIMEOUT) {
            Err(Error::KernelCrash(report)) => Ok(report),
            Err(e) => Err(e),
            Ok(m) => Err(Error::Config {
                what: "crash".into(),
                message: format!(
                    "the console matched an impossible pattern: {:?}",
                    m.matched_str()
                ),
            }),
        }
    }
}

fn copy_failed(path: &str, doing: &str, detail: &str) -> Error {
    Error::Config {
        what: format!("copying {path}"),
        message: format!("{doing}: {}", detail.trim()),
    }
}
