//! Hold on failure: a failed test's VMs stay up for `bootrig attach`.
//!
//! With [`RunSettings::hold`] (`bootrig run --hold`, `BOOTRIG_HOLD=1`), a
//! test that fails writes its postmortem as usual, but its VMs are not
//! stopped: once `TestFinished` is sent, the worker that ran the test
//! holds them. For each VM it serves the attach protocol on a Unix socket,
//! writes `hold.json` into the test's artifacts folder, and says how to
//! attach (with several VMs, `bootrig attach DIR --vm NAME` picks one by
//! its machine name). The held VMs keep their slots of the VM budget
//! until the hold ends: other tests wait for free slots. It holds until
//! the run is interrupted (Ctrl-C, SIGTERM) or every held VM has exited
//! on its own (`poweroff` in the guest); then the VMs are stopped and
//! reaped like any other (registry records removed), and `hold.json` is
//! removed.
//!
//! The worker keeps holding on its own thread: QEMU's parent-death signal
//! is tied to the thread that started it (see [`crate::vm::process`]).
//! With `-j N` the other workers go on with the queue and hold their own
//! failures, so every failed test's VMs are held and the run waits, at
//! its end, for Ctrl-C. A Ctrl-C ends the held VMs and the run as any
//! interruption does (no new test starts but fstests trials reporting
//! what their run did; exit 130).
//!
//! Refused under `CI=true` (nobody is there to attach; a CI job would
//! hang): [`check_allowed`].
//!
//! # The attach protocol
//!
//! `hold.json` is [`HoldFile`]: the holding bootrig's pid, the test, and
//! per VM its name and socket (in a short temporary folder: a Unix socket
//! path is limited to 108 bytes, artifacts folders can be longer). A client
//! connects and sends one request line, JSON ([`Request`]):
//!
//! - `{"console": true}`: the server answers `{"ok": true}` and a newline,
//!   then the connection carries the serial console both ways, raw: every
//!   byte the guest writes (from the moment of attaching) to the client,
//!   every byte the client sends to the guest. Either side closing ends it.
//! - `{"exec": "CMD", "timeout_s": 60}`: the server runs `CMD` in the
//!   test's guest session (on the command channel when the guest has one,
//!   so the output is exact), answers `{"exit": N, "len": L}` and a
//!   newline, then the `L` bytes of output, and closes.
//!
//! A failure is answered `{"error": "..."}`. One client is served at a
//! time per VM; the next waits in the socket's backlog.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::console::ConsoleTap;
use crate::deadline::Deadline;
use crate::events::Event;
use crate::guest::session::Session;
use crate::postmortem::VmHandle;
use crate::run::networks::Networks;
use crate::run::settings::RunSettings;

/// The file in a held test's artifacts folder that tells `bootrig attach`
/// where to connect.
pub const HOLD_FILE: &str = "hold.json";

/// The escape byte `bootrig attach` leaves the console on: Ctrl-].
pub const ESCAPE: u8 = 0x1d;

/// How long a one-off command may run by default.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a hold checks whether its VMs exited on their own.
const EXIT_CHECK: Duration = Duration::from_millis(500);

/// `hold.json`: see the module documentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldFile {
    /// The pid of the bootrig process holding the VMs.
    pub holder_pid: u32,
    /// The held test.
    pub test: String,
    /// Its held VMs.
    pub vms: Vec<HeldVm>,
}

/// One held VM in [`HoldFile`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldVm {
    /// The VM's name.
    pub name: String,
    /// The socket serving the attach protocol.
    pub socket: PathBuf,
}

/// A client's request; see the module documentation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    /// Attach to the serial console.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub console: bool,
    /// Run this command in the guest session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    /// The command's timeout in seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

/// The server's answer line; see the module documentation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    /// The console is attached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ok: bool,
    /// The command's exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// How many output bytes follow the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Refuses holding under `CI=true`: nobody would attach, and the job
/// would wait for a Ctrl-C that never comes.
pub fn check_allowed(hold: bool) -> Result<(), String> {
    if hold && std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(
            "--hold / BOOTRIG_HOLD keeps failed VMs running until Ctrl-C, \
             which a CI job (CI=true) never sends: refused"
                .into(),
        );
    }
    Ok(())
}

/// What a failed test leaves running for [`hold`]: its VMs, and the
/// private networks that join them (their switches run as long as they
/// are kept, so held guests still reach each other).
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// The test's VMs, still running.
    pub(crate) vms: Vec<VmHandle>,
    /// The test's networks.
    pub(crate) networks: Networks,
}

impl Held {
    /// Whether there is nothing to hold.
    pub(crate) fn is_empty(&self) -> bool {
        self.vms.is_empty()
    }
}

/// Holds the failed test `test`'s running VMs and networks (artifacts in
/// `artifacts`) until the run is interrupted or the VMs all exit; see the
/// module documentation. Stops them before returning.
pub(crate) fn hold(settings: &RunSettings, test: &str, artifacts: &Path, held: Held) {
    let Held { vms, networks } = held;
    let say = |line: String| {
        settings.events.send(Event::Output {
            test: test.to_string(),
            line,
        })
    };
    let exited = |vms: &[VmHandle]| vms.iter().all(|vm| vm.machine().exit_status().is_some());
    if exited(&vms) {
        say(format!(
            "the VM(s) of the failed test {test} already exited: nothing to hold"
        ));
        return;
    }
    match serve(test, artifacts, &vms) {
        Ok(servers) => {
            let names: Vec<&str> = vms.iter().map(|vm| vm.machine().name()).collect();
            let (which, pick) = match names.as_slice() {
                [_] => (String::from("1 VM"), String::new()),
                _ => (
                    format!("{} VMs ({})", names.len(), names.join(", ")),
                    " --vm NAME".to_string(),
                ),
            };
            let dir = artifacts.display();
            say(format!(
                "holding {which} of the failed test {test}: attach with `bootrig attach {dir}{pick}` \
                 (console; Ctrl-] leaves) or run a command with `bootrig attach {dir}{pick} -- CMD`; \
                 Ctrl-C here ends them"
            ));
            while settings.interrupts.wait(EXIT_CHECK).is_none() {
                if exited(&vms) {
                    say(format!(
                        "the held VM(s) of {test} exited; no longer holding"
                    ));
                    break;
                }
            }
            drop(servers);
        }
        Err(e) => say(format!("cannot hold the VMs of {test}: {e}")),
    }
    for vm in &vms {
        vm.machine().kill();
    }
    // Dropping the last handles closes the consoles: the logs are final.
    drop(vms);
    drop(networks);
    if let Err(e) = refresh_catalog(artifacts) {
        say(format!(
            "could not update the artifact catalog after the hold: {e}"
        ));
    }
}

/// Re-hashes the catalogued files that changed while the VMs were held
/// (`serial.log` and the transcripts go on growing), so `metadata.json`
/// matches the files again (`bootrig report --verify`), with a note.
fn refresh_catalog(artifacts: &Path) -> bootrig_diagnostics::errors::Result<()> {
    let mut dir = bootrig_diagnostics::TestDir::open(artifacts)?;
    let mut changed = false;
    let paths: Vec<(String, String)> = dir
        .metadata()
        .artifacts
        .iter()
        .map(|a| (a.name.clone(), a.path.clone()))
        .collect();
    for (name, rel) in paths {
        let Ok(path) = dir.artifact_path(&rel) else {
            continue;
        };
        let Ok(digest) = bootrig_diagnostics::hash::digest_file(&path) else {
            continue;
        };
        if let Some(a) = dir.metadata_mut().artifacts.get_mut(&name) {
            if a.sha256 != digest.sha256 || a.bytes != digest.size {
                a.sha256 = digest.sha256;
                a.bytes = digest.size;
                a.note = Some("includes what happened while the VM was held".into());
                changed = true;
            }
        }
    }
    if changed {
        dir.save_metadata()?;
    }
    Ok(())
}

/// The attach servers of one held test; dropping stops them and removes
/// `hold.json`.
struct Servers {
    file: PathBuf,
    servers: Vec<Server>,
    _sockets: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        for s in self.servers.drain(..) {
            s.stop();
        }
    }
}

/// Starts a server per VM and writes `hold.json`.
fn serve(test: &str, artifacts: &Path, vms: &[VmHandle]) -> io::Result<Servers> {
    // Short: Unix socket paths are limited to 108 bytes.
    let sockets = tempfile::Builder::new().prefix("bootrig-hold-").tempdir()?;
    let mut servers = Vec::new();
    let mut held = Vec::new();
    for (i, vm) in vms.iter().enumerate() {
        let path = sockets.path().join(format!("{i}.sock"));
        servers.push(Server::start(&path, vm.session().clone())?);
        held.push(HeldVm {
            name: vm.machine().name().to_string(),
            socket: path,
        });
    }
    let file = artifacts.join(HOLD_FILE);
    let content = HoldFile {
        holder_pid: std::process::id(),
        test: test.to_string(),
        vms: held,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(artifacts)?;
    serde_json::to_writer_pretty(&mut tmp, &content)?;
    tmp.persist(&file).map_err(|e| e.error)?;
    Ok(Servers {
        file,
        servers,
        _sockets: sockets,
    })
}

/// One VM's attach server: a thread accepting clients one at a time.
struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    /// The client being served, to cut it off when the hold ends.
    current: Arc<Mutex<Option<UnixStream>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    fn start(path: &Path, session: Arc<Session>) -> io::Result<Server> {
        let listener = UnixListener::bind(path)?;
        // The test's deadline is over; the held session answers without one.
        session.set_deadline(Deadline::never());
        let stop = Arc::new(AtomicBool::new(false));
        let current: Arc<Mutex<Option<UnixStream>>> = Arc::default();
        let (stop2, current2) = (stop.clone(), current.clone());
        let thread = std::thread::Builder::new()
            .name("bootrig-attach".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    if let Ok(c) = client.try_clone() {
                        *current2.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
                    }
                    // A client that goes away mid-answer is no error here.
                    let _ = handle(client, &session);
                    current2.lock().unwrap_or_else(|p| p.into_inner()).take();
                }
            })?;
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            current,
            thread,
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // Wakes the accept; the loop sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = self.thread.join();
    }
}

fn reply(stream: &mut UnixStream, r: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(r)?;
    line.push(b'\n');
    stream.write_all(&line)
}

/// Serves one client.
fn handle(stream: UnixStream, session: &Session) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut stream = stream;
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let error = Some(format!("bad request {:?}: {e}", line.trim_end()));
            return reply(
                &mut stream,
                &Reply {
                    error,
                    ..Reply::default()
                },
            );
        }
    };
    if let Some(cmd) = request.exec {
        let timeout = request.timeout_s.map_or(EXEC_TIMEOUT, Duration::from_secs);
        return match session.run_timeout(&cmd, timeout) {
            Ok(out) => {
                let exit = out.exit;
                let bytes = out.into_bytes();
                let r = Reply {
                    exit: Some(exit),
                    len: Some(bytes.len() as u64),
                    ..Reply::default()
                };
                reply(&mut stream, &r)?;
                stream.write_all(&bytes)
            }
            Err(e) => {
                let error = Some(format!("running {cmd:?}: {e}"));
                reply(
                    &mut stream,
                    &Reply {
                        error,
                        ..Reply::default()
                    },
                )
            }
        };
    }
    if !request.console {
        let error = Some("the request asks for neither \"console\" nor \"exec\"".into());
        return reply(
            &mut stream,
            &Reply {
                error,
                ..Reply::default()
            },
        );
    }
    reply(
        &mut stream,
        &Reply {
            ok: true,
            ..Reply::default()
        },
    )?;
    attach_console(reader, stream, session)
}

/// Forwards what the guest writes to a channel (never blocking the
/// console reader).
struct Forward(mpsc::Sender<Vec<u8>>);

impl ConsoleTap for Forward {
    fn received(&mut self, raw: &[u8]) {
        let _ = self.0.send(raw.to_vec());
    }
    fn sent(&mut self, _raw: &[u8]) {}
}

/// Carries the console both ways until the client leaves.
fn attach_console(
    mut from_client: BufReader<UnixStream>,
    to_client: UnixStream,
    session: &Session,
) -> io::Result<()> {
    let console = session.machine().console();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let previous = console.set_tap(Some(Box::new(Forward(tx))));
    let writer = std::thread::spawn(move || {
        let mut to_client = to_client;
        for chunk in rx {
            if to_client.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let mut buf = [0u8; 4096];
    let result = loop {
        match from_client.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = console.send(&buf[..n]) {
                    break Err(io::Error::other(e.to_string()));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    // Dropping the forwarding tap ends the writer.
    console.set_tap(previous);
    let _ = writer.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_one_json_line() {
        let r = Request {
            exec: Some("echo hi".into()),
            ..Request::default()
        };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"exec":"echo hi"}"#);
        let back: Request = serde_json::from_str(r#"{"console":true}"#).unwrap();
        assert!(back.console && back.exec.is_none());
        let ok = Reply {
            exit: Some(3),
            len: Some(0),
            ..Reply::default()
        };
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"exit":3,"len":0}"#);
    }

    #[test]
    fn holding_is_refused_only_when_asked_for_under_ci() {
        // The process environment is shared by tests: read, not set.
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert_eq!(check_allowed(true).is_err(), ci);
        assert!(check_allowed(false).is_ok());
    }
}
