//! A host-local Ethernet switch for QEMU `-netdev stream` Unix sockets.
//!
//! Each VM on a private network connects its NIC's backend to the switch's
//! Unix socket (`-netdev stream,server=off,addr.type=unix`); QEMU sends
//! each Ethernet frame as a 4-byte big-endian length and the frame. The
//! switch learns which port each source MAC address is behind, sends a
//! frame for a known unicast address to that port only and floods the
//! others (broadcast, multicast, unknown) to every other port. Nothing
//! leaves the host: there is no host interface, no tap, no route; the
//! socket lives in a private folder. Why this and not `vde_switch` or
//! QEMU's multicast sockets: `docs/decisions.md`.
//!
//! Threads: one accepts connections, one per port reads frames. Dropping
//! the [`Switch`] wakes the acceptor, shuts every port down and joins all
//! of them; a port whose VM went away (read or write error) is dropped.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::errors::{Error, Result};

/// The largest frame accepted: QEMU's own limit for stream backends
/// (`NET_BUFSIZE`, 68 KiB), so a corrupt length cannot make the switch
/// allocate gigabytes.
pub const MAX_FRAME: usize = 4096 + 65536;

/// A connected VM.
struct Port {
    id: u64,
    /// Written to by every reader thread that forwards a frame here.
    writer: Mutex<UnixStream>,
    /// The same socket, unlocked: shut down when the switch stops, which
    /// also ends a write blocked on a VM that stopped reading.
    control: UnixStream,
}

#[derive(Default)]
struct State {
    ports: Vec<Arc<Port>>,
    /// Source MAC address → the port it was last seen on.
    macs: HashMap<[u8; 6], u64>,
    readers: Vec<JoinHandle<()>>,
    next_id: u64,
}

struct Shared {
    stopping: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A learning Ethernet switch on a Unix socket. See the module
/// documentation.
pub struct Switch {
    socket: PathBuf,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("socket", &self.socket)
            .field("ports", &self.shared.state().ports.len())
            .finish()
    }
}

impl Switch {
    /// Binds `socket` (which must not exist) and starts accepting VMs.
    pub fn start(socket: &Path) -> Result<Switch> {
        let listener = UnixListener::bind(socket)
            .map_err(|e| Error::io(format!("binding the switch socket {}", socket.display()), e))?;
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            state: Mutex::default(),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("bootrig-switch".into())
                .spawn(move || accept_loop(listener, shared))
                .map_err(|e| Error::io("starting the switch thread", e))?
        };
        Ok(Switch {
            socket: socket.to_path_buf(),
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The socket VMs connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// How many VMs are connected.
    pub fn ports(&self) -> usize {
        self.shared.state().ports.len()
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in accept(); it sees `stopping`. If
        // the socket cannot be reached the thread is left blocked rather
        // than joined forever (it holds nothing but the listener).
        let woken = UnixStream::connect(&self.socket).is_ok();
        if let Some(t) = self.acceptor.take().filter(|_| woken) {
            let _ = t.join();
        }
        let readers = {
            let mut state = self.shared.state();
            for port in &state.ports {
                let _ = port.control.shutdown(Shutdown::Both);
            }
            state.ports.clear();
            std::mem::take(&mut state.readers)
        };
        for r in readers {
            let _ = r.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        let (Ok(reader), Ok(control)) = (stream.try_clone(), stream.try_clone()) else {
            continue;
        };
        let mut state = shared.state();
        let id = state.next_id;
        state.next_id += 1;
        let port = Arc::new(Port {
            id,
            writer: Mutex::new(stream),
            control,
        });
        state.ports.push(port);
        let shared2 = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("bootrig-switch-{id}"))
            .spawn(move || read_loop(id, reader, shared2));
        match spawned {
            Ok(t) => state.readers.push(t),
            Err(_) => state.ports.retain(|p| p.id != id),
        }
    }
}

/// Reads one length-prefixed frame into `buf`; `Ok(false)` at a clean end.
fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over {MAX_FRAME}"),
        ));
    }
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

fn read_loop(id: u64, mut reader: UnixStream, shared: Arc<Shared>) {
    let mut frame = Vec::with_capacity(2048);
    let mut out = Vec::with_capacity(2048 + 4);
    while let Ok(true) = read_frame(&mut reader, &mut frame) {
        if frame.len() < 14 {
            continue; // not an Ethernet frame
        }
        let dst: [u8; 6] = frame[0..6].try_into().expect("6 bytes");
        let src: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        let targets: Vec<Arc<Port>> = {
            let mut state = shared.state();
            if src[0] & 1 == 0 {
                state.macs.insert(src, id);
            }
            let known = (dst[0] & 1 == 0).then(|| state.macs.get(&dst).copied());
            match known.flatten() {
                Some(to) if to == id => Vec::new(),
                Some(to) => state.ports.iter().filter(|p| p.id == to).cloned().collect(),
                None => state.ports.iter().filter(|p| p.id != id).cloned().collect(),
            }
        };
        out.clear();
        out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        out.extend_from_slice(&frame);
        for port in targets {
            let ok = port
                .writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(&out)
                .is_ok();
            if !ok {
                forget(&shared, port.id);
            }
        }
    }
    forget(&shared, id);
}

/// Drops port `id` (its VM went away) and the addresses learnt on it.
fn forget(shared: &Shared, id: u64) {
    let mut state = shared.state();
    state.ports.retain(|p| p.id != id);
    state.macs.retain(|_, p| *p != id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(payload);
        let mut out = (f.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&f);
        out
    }

    fn recv(s: &mut UnixStream) -> Vec<u8> {
        let mut buf = Vec::new();
        assert!(read_frame(s, &mut buf).unwrap());
        buf[14..].to_vec()
    }

    /// Connects `n` ports and waits until the switch has them all.
    fn connect(sw: &Switch, n: usize) -> Vec<UnixStream> {
        let ports: Vec<UnixStream> = (0..n)
            .map(|_| UnixStream::connect(sw.socket()).unwrap())
            .collect();
        wait_for_ports(sw, n);
        ports
    }

    fn wait_for_ports(sw: &Switch, n: usize) {
        use crate::deadline::{poll_until, Deadline, POLL_INTERVAL};
        let deadline = Deadline::after(std::time::Duration::from_secs(10));
        let seen = poll_until(deadline, POLL_INTERVAL, || {
            Ok::<_, ()>((sw.ports() == n).then_some(()))
        });
        assert_eq!(
            seen,
            Ok(Some(())),
            "the switch has {} ports, not {n}",
            sw.ports()
        );
    }

    const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const BROADCAST: [u8; 6] = [0xff; 6];

    #[test]
    fn floods_broadcasts_then_sends_unicast_to_the_learnt_port_only() {
        let dir = tempfile::tempdir().unwrap();
        let sw = Switch::start(&dir.path().join("sw.sock")).unwrap();
        let mut p = connect(&sw, 3);
        // A broadcasts: B's and C's ports get it.
        p[0].write_all(&frame(BROADCAST, A, b"who has")).unwrap();
        assert_eq!(recv(&mut p[1]), b"who has");
        assert_eq!(recv(&mut p[2]), b"who has");
        // B answers A by unicast: A learnt, so only A's port gets it.
        p[1].write_all(&frame(A, B, b"me")).unwrap();
        assert_eq!(recv(&mut p[0]), b"me");
        // A to B: B was learnt from its answer. C sees nothing of it: the
        // next thing C reads is a later broadcast.
        p[0].write_all(&frame(B, A, b"data")).unwrap();
        assert_eq!(recv(&mut p[1]), b"data");
        p[1].write_all(&frame(BROADCAST, B, b"later")).unwrap();
        assert_eq!(recv(&mut p[2]), b"later");
    }

    #[test]
    fn an_oversized_frame_drops_its_port_and_the_switch_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let sw = Switch::start(&dir.path().join("sw.sock")).unwrap();
        let mut p = connect(&sw, 3);
        p[2].write_all(&(u32::MAX).to_be_bytes()).unwrap();
        wait_for_ports(&sw, 2);
        p[0].write_all(&frame(BROADCAST, A, b"still")).unwrap();
        assert_eq!(recv(&mut p[1]), b"still");
        drop(sw);
        assert!(!dir.path().join("sw.sock").exists());
    }

    #[test]
    fn stopping_does_not_wait_for_a_port_that_stopped_reading() {
        let dir = tempfile::tempdir().unwrap();
        let sw = Switch::start(&dir.path().join("sw.sock")).unwrap();
        let mut p = connect(&sw, 2);
        // Port 1 never reads: the switch's write to it blocks once the
        // socket buffers are full, holding that port's writer.
        let mut sender = p.remove(0);
        let flood = std::thread::spawn(move || {
            let frame = frame(BROADCAST, A, &[0u8; 1400]);
            while sender.write_all(&frame).is_ok() {}
        });
        let mut probe = UnixStream::connect(sw.socket()).unwrap();
        wait_for_ports(&sw, 3);
        // The probe gets a flooded frame only while the switch still
        // forwards; once it is blocked on port 1, nothing comes.
        probe
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut buf = Vec::new();
        while read_frame(&mut probe, &mut buf).is_ok() {}
        drop(sw);
        flood.join().unwrap();
    }
}
