//! A minimal QMP (QEMU Machine Protocol) client over a Unix socket.
//!
//! QMP is line-delimited JSON: a greeting, then `qmp_capabilities`, then
//! commands answered by `{"return": ...}` or `{"error": ...}`, with
//! asynchronous `{"event": ...}` messages in between (kept, not lost).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Value};

/// A connected QMP session.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<Value>,
    /// A message read in part when a read timed out, completed by the
    /// next read.
    partial: String,
}

/// A QMP failure: transport, protocol or a command error reply.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket failed or timed out.
    #[error("QMP I/O: {0}")]
    Io(#[from] io::Error),
    /// QEMU closed the connection (it exited).
    #[error("QMP connection closed by QEMU")]
    Closed,
    /// QEMU sent something that is not QMP.
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// The command failed.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QEMU's error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

impl Qmp {
    /// Reads the greeting and negotiates capabilities.
    pub fn handshake(stream: UnixStream, timeout: Duration) -> Result<Qmp, QmpError> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
            partial: String::new(),
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected greeting, got {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Sets the reply deadline for later commands.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(Some(timeout))
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        // A read that times out keeps what it got in `partial`.
        let n = self.reader.read_line(&mut self.partial)?;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        let line = std::mem::take(&mut self.partial);
        serde_json::from_str(&line).map_err(|e| QmpError::Protocol(format!("{e}: {line:?}")))
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut bytes = serde_json::to_vec(&msg).expect("serialising a JSON value");
        bytes.push(b'\n');
        self.writer.write_all(&bytes)?;
        loop {
            let reply = self.read_message()?;
            if reply.get("event").is_some() {
                self.events.push(reply);
                continue;
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            return Err(QmpError::Protocol(format!("unexpected reply {reply}")));
        }
    }

    /// `query-status`: the run state (`running`, `paused`, `shutdown`,
    /// `guest-panicked`, ...).
    pub fn query_status(&mut self) -> Result<String, QmpError> {
        let ret = self.execute("query-status", None)?;
        Ok(ret
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }

    /// Asks the guest to power off (ACPI power button).
    pub fn system_powerdown(&mut self) -> Result<(), QmpError> {
        self.execute("system_powerdown", None).map(drop)
    }

    /// Tells QEMU to exit now. The connection closing before the reply
    /// arrives counts as success.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed) => Ok(()),
            Err(QmpError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Saves a PNG screenshot of the display (needs a display device).
    pub fn screendump(&mut self, path: &std::path::Path) -> Result<(), QmpError> {
        self.execute(
            "screendump",
            Some(json!({ "filename": path.to_string_lossy(), "format": "png" })),
        )
        .map(drop)
    }

    /// Waits up to `timeout` for the asynchronous event `name` (`RESET`,
    /// `SHUTDOWN`, ...) and takes it; one already received while a command
    /// ran counts. Returns `None` when the time is up first.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Option<Value>, QmpError> {
        let is = |e: &Value| e.get("event").and_then(Value::as_str) == Some(name);
        if let Some(i) = self.events.iter().position(is) {
            return Ok(Some(self.events.remove(i)));
        }
        let stream = self.reader.get_ref();
        let before = stream.read_timeout()?;
        stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let found = loop {
            match self.read_message() {
                Ok(m) if is(&m) => break Ok(Some(m)),
                Ok(m) if m.get("event").is_some() => self.events.push(m),
                // A late reply to a command that gave up waiting.
                Ok(_) => {}
                Err(QmpError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break Ok(None)
                }
                Err(e) => break Err(e),
            }
        };
        self.reader.get_ref().set_read_timeout(before)?;
        found
    }

    /// Forgets the events received so far named `name`.
    pub fn drop_events(&mut self, name: &str) {
        self.events
            .retain(|e| e.get("event").and_then(Value::as_str) != Some(name));
    }

    /// What a guest reboot does: reset the machine (`true`) or end QEMU
    /// (`false`, as `-no-reboot` does). QMP `set-action`, QEMU 6.0 or later.
    pub fn set_reboot_resets(&mut self, reset: bool) -> Result<(), QmpError> {
        let action = if reset { "reset" } else { "shutdown" };
        self.execute("set-action", Some(json!({ "reboot": action })))
            .map(drop)
    }

    /// Runs a human monitor command (`info usernet`) and returns its text.
    pub fn human(&mut self, command_line: &str) -> Result<String, QmpError> {
        let ret = self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": command_line })),
        )?;
        Ok(ret.as_str().unwrap_or_default().to_string())
    }

    /// The asynchronous events received so far (SHUTDOWN, RESET, ...).
    pub fn events(&self) -> &[Value] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;

    /// A QMP session with a fake QEMU that greets, accepts capabilities,
    /// then writes each piece it is sent.
    fn fake_qemu() -> (Qmp, mpsc::Sender<&'static str>, std::thread::JoinHandle<()>) {
        let (client, mut server) = UnixStream::pair().unwrap();
        let (tx, rx) = mpsc::channel::<&'static str>();
        let qemu = std::thread::spawn(move || {
            server
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .unwrap();
            let mut line = String::new();
            BufReader::new(server.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(line.contains("qmp_capabilities"), "{line}");
            server.write_all(b"{\"return\": {}}\n").unwrap();
            for piece in rx {
                server.write_all(piece.as_bytes()).unwrap();
            }
        });
        let qmp = Qmp::handshake(client, Duration::from_secs(10)).unwrap();
        (qmp, tx, qemu)
    }

    #[test]
    fn an_event_split_by_a_timeout_is_not_lost() {
        let (mut qmp, tx, qemu) = fake_qemu();
        // Half an event, then nothing: the wait times out and keeps it.
        tx.send("{\"event\": \"SHUTDOWN\"}\n{\"event\": \"RE")
            .unwrap();
        let short = Duration::from_millis(200);
        assert_eq!(qmp.wait_event("RESET", short).unwrap(), None);
        // Other events are kept for later waits.
        assert_eq!(qmp.events().len(), 1);
        tx.send("SET\", \"data\": {\"guest\": true}}\n").unwrap();
        let event = qmp
            .wait_event("RESET", Duration::from_secs(10))
            .unwrap()
            .expect("the RESET event");
        assert_eq!(event["data"]["guest"], true);
        let shutdown = qmp.wait_event("SHUTDOWN", short).unwrap();
        assert!(shutdown.is_some(), "an earlier event was lost");
        qmp.drop_events("SHUTDOWN");
        drop(tx);
        qemu.join().unwrap();
        assert!(matches!(
            qmp.wait_event("RESET", Duration::from_secs(10)),
            Err(QmpError::Closed)
        ));
    }
}
