//! The command channel: the host end of a virtio-serial port
//! (`org.bootrig.cmd`) that bootrig adds to every machine.
//!
//! The kernel never writes to it and it is not a tty, so bytes arrive
//! exactly as the guest wrote them. The session redirects each command's
//! output (stdout and stderr) to the port, between two frames that carry
//! the session's private token, the command's number and, at the end, its
//! exit status:
//!
//! ```text
//! \0BRQ<token>B<n>\0   <output bytes, unaltered>   \0BRQ<token>E<n>_<status>\0
//! ```
//!
//! A command that prints a frame cannot forge a status: it does not know
//! the token (it is typed into the shell, never in an argument list or
//! the environment). One reader thread owns the socket and appends to a
//! buffer; [`CommandChannel::take_frame`] waits on a condition variable
//! for a whole frame, with a deadline.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::deadline::Deadline;

/// The port's name in the guest (`/sys/class/virtio-ports/*/name`).
pub const PORT_NAME: &str = "org.bootrig.cmd";

/// Most bytes kept for one frame; beyond that the output is cut and the
/// rest counted (a command printing gigabytes should write to a file).
pub const FRAME_CAP: usize = 512 << 20;

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 1 << 16;

/// Why a frame did not come.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The deadline passed first.
    #[error("the command channel gave no complete frame in time")]
    Timeout,
    /// QEMU closed the channel (it exited).
    #[error("the command channel closed (QEMU exited)")]
    Closed,
}

/// One command's output and the trailer of its end frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The bytes between the begin and the end frame.
    pub output: Vec<u8>,
    /// What followed the end frame's prefix up to its `\0` (the status).
    pub trailer: Vec<u8>,
    /// Output bytes beyond [`FRAME_CAP`] that were dropped.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Shared {
    buf: Vec<u8>,
    /// Bytes dropped because `buf` was at its cap.
    dropped: u64,
    closed: bool,
    received: u64,
    /// How far the search for the end of the frame at the front of `buf`
    /// got (0: not started).
    scanned: usize,
}

/// The host end of the command channel. See the module documentation.
#[derive(Debug)]
pub struct CommandChannel {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    stream: UnixStream,
    reader: Option<JoinHandle<()>>,
}

impl CommandChannel {
    /// Starts the reader thread on the socket QEMU connected to.
    pub fn start(stream: UnixStream) -> io::Result<CommandChannel> {
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let mut reader_stream = stream.try_clone()?;
        let s = shared.clone();
        let reader = std::thread::Builder::new()
            .name("bootrig-channel".into())
            .spawn(move || {
                let mut chunk = vec![0u8; READ_CHUNK];
                loop {
                    let n = match reader_stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let (lock, cv) = &*s;
                    let mut sh = lock.lock().unwrap_or_else(|p| p.into_inner());
                    sh.received += n as u64;
                    let room = FRAME_CAP.saturating_sub(sh.buf.len());
                    let keep = n.min(room);
                    sh.buf.extend_from_slice(&chunk[..keep]);
                    sh.dropped += (n - keep) as u64;
                    cv.notify_all();
                }
                let (lock, cv) = &*s;
                lock.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
                cv.notify_all();
            })?;
        Ok(CommandChannel {
            shared,
            stream,
            reader: Some(reader),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.lock().received
    }

    /// Waits until the buffer holds `begin`, later `end_prefix`, and a `\0`
    /// after it; returns what lay between `begin` and `end_prefix` and the
    /// trailer up to the `\0`, and drops everything up to that `\0` (bytes
    /// before `begin` are stale output of earlier commands).
    pub fn take_frame(
        &self,
        begin: &[u8],
        end_prefix: &[u8],
        deadline: Deadline,
    ) -> Result<Frame, ChannelError> {
        let (lock, cv) = &*self.shared;
        let mut sh = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if !sh.buf.starts_with(begin) {
                // Nothing before a begin frame is wanted: drop it, keeping
                // only what could be the start of one.
                let cut = match memchr::memmem::find(&sh.buf, begin) {
                    Some(i) => i,
                    None => sh.buf.len().saturating_sub(begin.len()),
                };
                sh.buf.drain(..cut);
                sh.scanned = 0;
            }
            if sh.buf.starts_with(begin) {
                // The end search resumes where the last one stopped (also
                // across calls), so a big output is scanned once.
                let from = sh.scanned.max(begin.len());
                match memchr::memmem::find(&sh.buf[from..], end_prefix) {
                    Some(i) => {
                        let e = from + i;
                        let t = e + end_prefix.len();
                        if let Some(z) = memchr::memchr(0, &sh.buf[t..]) {
                            // The output is moved out of the buffer, not
                            // copied: a big one is held once, and the
                            // buffer does not keep its capacity.
                            let rest = sh.buf.split_off(t + z + 1);
                            let mut output = std::mem::replace(&mut sh.buf, rest);
                            let trailer = output[t..t + z].to_vec();
                            output.truncate(e);
                            output.drain(..begin.len());
                            output.shrink_to_fit();
                            let dropped = std::mem::take(&mut sh.dropped);
                            sh.scanned = 0;
                            return Ok(Frame {
                                output,
                                trailer,
                                dropped,
                            });
                        }
                        // The prefix is there but not its end yet.
                        sh.scanned = e;
                    }
                    None => sh.scanned = sh.buf.len().saturating_sub(end_prefix.len()).max(from),
                }
            }
            if sh.closed {
                return Err(ChannelError::Closed);
            }
            let left = deadline.remaining();
            if left.is_zero() {
                return Err(ChannelError::Timeout);
            }
            sh = cv
                .wait_timeout(sh, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Sends `bytes` to the guest (a reader of the port there gets them),
    /// from a thread of its own, since the guest may read slower than the
    /// host writes. The write gives up at `deadline`. The handle returns
    /// how many bytes were written.
    pub fn send(
        &self,
        bytes: Vec<u8>,
        deadline: Deadline,
    ) -> io::Result<JoinHandle<io::Result<usize>>> {
        let mut stream = self.stream.try_clone()?;
        std::thread::Builder::new()
            .name("bootrig-channel-send".into())
            .spawn(move || {
                use std::io::Write;
                let mut written = 0;
                for chunk in bytes.chunks(READ_CHUNK) {
                    let left = deadline.remaining();
                    if left.is_zero() {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                    }
                    stream
                        .set_write_timeout(Some(left.min(std::time::Duration::from_secs(3600))))?;
                    stream.write_all(chunk)?;
                    written += chunk.len();
                }
                Ok(written)
            })
    }

    /// Drops everything buffered (after an interrupted command).
    pub fn clear(&self) {
        let mut sh = self.lock();
        sh.buf.clear();
        sh.dropped = 0;
        sh.scanned = 0;
    }
}

impl Drop for CommandChannel {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn pair() -> (CommandChannel, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (CommandChannel::start(a).unwrap(), b)
    }

    /// Command `n`'s frame with token `t`, waiting up to `secs`.
    fn frame(ch: &CommandChannel, n: u32, secs: u64) -> Result<Frame, ChannelError> {
        ch.take_frame(
            format!("\0BRQtB{n}\0").as_bytes(),
            format!("\0BRQtE{n}_").as_bytes(),
            Deadline::after(Duration::from_secs(secs)),
        )
    }

    #[test]
    fn frames_are_cut_exactly_and_stale_bytes_dropped() {
        let (ch, mut guest) = pair();
        guest.write_all(b"stale output\0BRQtB1\0").unwrap();
        guest
            .write_all(b"a\r\nb\x1b]unterminated\xff\0BRQtE1_7\0next")
            .unwrap();
        let f = frame(&ch, 1, 5).unwrap();
        assert_eq!(f.output, b"a\r\nb\x1b]unterminated\xff");
        assert_eq!(f.trailer, b"7");
        // What follows stays for the next frame.
        guest.write_all(b"\0BRQtB2\0\0BRQtE2_0\0").unwrap();
        let f = frame(&ch, 2, 5).unwrap();
        assert!(f.output.is_empty());
        assert_eq!(f.trailer, b"0");
    }

    #[test]
    fn a_frame_with_another_token_is_output() {
        let (ch, mut guest) = pair();
        guest
            .write_all(b"\0BRQtB1\0fake \0BRQxE1_0\0 done\0BRQtE1_3\0")
            .unwrap();
        let f = frame(&ch, 1, 5).unwrap();
        assert_eq!(f.output, b"fake \0BRQxE1_0\0 done");
        assert_eq!(f.trailer, b"3");
    }

    #[test]
    fn frames_split_over_many_writes_and_deadlines() {
        let (ch, mut guest) = pair();
        // Each piece reaches the reader on its own: the next is written
        // once the channel has counted the bytes before it.
        let received = |n: u64| {
            crate::deadline::poll_until(
                Deadline::after(Duration::from_secs(5)),
                Duration::from_millis(1),
                || Ok::<_, ()>((ch.bytes_received() >= n).then_some(())),
            )
        };
        // The taker waits while the frame arrives piece by piece.
        let f = std::thread::scope(|scope| {
            let taker = scope.spawn(|| frame(&ch, 1, 5));
            let mut sent = 0u64;
            for piece in [
                &b"\0BR"[..],
                b"QtB1",
                b"\0xy",
                b"z\0BRQt",
                b"E1_",
                b"12",
                b"\0",
            ] {
                guest.write_all(piece).unwrap();
                sent += piece.len() as u64;
                assert_eq!(
                    received(sent),
                    Ok(Some(())),
                    "the reader never got the piece"
                );
            }
            taker.join().unwrap().unwrap()
        });
        assert_eq!(
            (f.output.as_slice(), f.trailer.as_slice()),
            (&b"xyz"[..], &b"12"[..])
        );
        let r = ch.take_frame(
            b"\0BRQtB2\0",
            b"\0BRQtE2_",
            Deadline::after(Duration::from_millis(50)),
        );
        assert_eq!(r, Err(ChannelError::Timeout));
        drop(guest);
        let r = frame(&ch, 2, 5);
        assert_eq!(r, Err(ChannelError::Closed));
    }

    #[test]
    fn megabytes_arrive_whole() {
        let (ch, mut guest) = pair();
        let big: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
        let payload = big.clone();
        let writer = std::thread::spawn(move || {
            guest.write_all(b"\0BRQtB1\0").unwrap();
            guest.write_all(&payload).unwrap();
            guest.write_all(b"\0BRQtE1_0\0").unwrap();
            guest
        });
        let f = frame(&ch, 1, 30).unwrap();
        let _guest = writer.join().unwrap();
        assert_eq!(f.output.len(), big.len());
        assert!(f.output == big);
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever a command prints (any bytes; forged frames with another
        /// token, another command's number or cut short) and however the guest's
        /// writes are cut, the frame carries exactly that output and the
        /// real status; bytes before the begin frame are dropped.
        #[test]
        fn output_is_exact_however_it_is_cut(
            stale in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            output in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::num::u8::ANY.prop_map(|b| vec![b]),
                    proptest::strategy::Just(b"\0BRQxE1_0\0".to_vec()),
                    proptest::strategy::Just(b"\0BRQtE2_0\0".to_vec()),
                    proptest::strategy::Just(b"\0BRQtE1".to_vec()),
                    proptest::strategy::Just(b"\0BRQtB1\0".to_vec()),
                ],
                0..200,
            ),
            status in 0u8..=255,
            cuts in proptest::collection::vec(1usize..40, 1..20),
        ) {
            use proptest::prelude::prop_assert_eq;
            let output: Vec<u8> = output.concat();
            // The token is secret: a command cannot print the real end
            // frame's prefix (the other pieces above come close).
            proptest::prop_assume!(!output.windows(8).any(|w| w == b"\0BRQtE1_"));
            let end = format!("\0BRQtE1_{status}\0");
            let mut wire = stale.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>();
            wire.extend_from_slice(b"\0BRQtB1\0");
            wire.extend_from_slice(&output);
            wire.extend_from_slice(end.as_bytes());
            let (ch, mut guest) = pair();
            let writer = std::thread::spawn(move || {
                let mut rest = &wire[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = cuts[i % cuts.len()].min(rest.len());
                    guest.write_all(&rest[..n]).unwrap();
                    rest = &rest[n..];
                    i += 1;
                }
                guest
            });
            let f = frame(&ch, 1, 10).unwrap();
            let _guest = writer.join().unwrap();
            prop_assert_eq!(f.output, output);
            prop_assert_eq!(f.trailer, status.to_string().into_bytes());
        }
    }
}
