//! `bootrig attach ARTIFACT_DIR [-- CMD...]`: the client of the attach
//! protocol ([`crate::run::hold`]). Without a command it connects the
//! terminal to the held VM's serial console in raw mode until Ctrl-];
//! with one it runs it in the guest, prints its output and exits with its
//! status.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::run::hold::{HoldFile, Reply, Request, ESCAPE, HOLD_FILE};

/// `bootrig attach`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// The held test's artifacts folder (printed by `bootrig run --hold`).
    dir: PathBuf,
    /// Which of the test's VMs, by its machine name (needed when the test
    /// held several).
    #[arg(long)]
    vm: Option<String>,
    /// A command's timeout in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Run this command in the guest instead of attaching the console
    /// (its words are joined with spaces, as ssh does).
    #[arg(last = true)]
    command: Vec<String>,
}

/// Runs `bootrig attach`: the command's exit status, or 0 after leaving
/// the console; 2 when nothing is held there; 1 when the connection fails.
pub fn main(args: AttachArgs) -> ExitCode {
    let file = args.dir.join(HOLD_FILE);
    let hold: HoldFile = match std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "bootrig attach: {}: {e}; nothing is held there (is `bootrig run --hold` \
                 still holding this test's VM?)",
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    let names: Vec<&str> = hold.vms.iter().map(|v| v.name.as_str()).collect();
    let vm = match &args.vm {
        None if hold.vms.len() > 1 => {
            eprintln!(
                "bootrig attach: {} holds {} VMs of test {} ({}): say which with --vm NAME",
                args.dir.display(),
                names.len(),
                hold.test,
                names.join(", ")
            );
            return ExitCode::from(2);
        }
        None => hold.vms.first(),
        Some(name) => hold.vms.iter().find(|v| &v.name == name),
    };
    let Some(vm) = vm else {
        eprintln!(
            "bootrig attach: --vm {:?}: no such held VM in {} (held: {})",
            args.vm.as_deref().unwrap_or(""),
            file.display(),
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    let stream = match UnixStream::connect(&vm.socket) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "bootrig attach: connecting to {} (VM {} held by bootrig pid {}): {e}",
                vm.socket.display(),
                vm.name,
                hold.holder_pid
            );
            return ExitCode::from(2);
        }
    };
    let result = if args.command.is_empty() {
        let hello = format!(
            "bootrig attach: connected to the serial console of {} (test {}); Ctrl-] leaves\r\n",
            vm.name, hold.test
        );
        console(stream, &hello).map(|()| ExitCode::SUCCESS)
    } else {
        exec(stream, args.command.join(" "), args.timeout)
    };
    result.unwrap_or_else(|e| {
        eprintln!("bootrig attach: {e}");
        ExitCode::FAILURE
    })
}

/// Sends `request` and reads the reply line.
fn request(stream: &UnixStream, request: &Request) -> io::Result<(Reply, BufReader<UnixStream>)> {
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    (&*stream).write_all(&line)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    let reply: Reply = serde_json::from_str(&answer)
        .map_err(|e| io::Error::other(format!("the holding bootrig answered {answer:?}: {e}")))?;
    if let Some(e) = reply.error {
        return Err(io::Error::other(e));
    }
    Ok((reply, reader))
}

fn exec(stream: UnixStream, cmd: String, timeout: u64) -> io::Result<ExitCode> {
    let req = Request {
        exec: Some(cmd),
        timeout_s: Some(timeout),
        ..Request::default()
    };
    let (reply, reader) = request(&stream, &req)?;
    let len = reply.len.unwrap_or(0);
    let mut out = io::stdout().lock();
    let copied = io::copy(&mut reader.take(len), &mut out)?;
    out.flush()?;
    if copied != len {
        return Err(io::Error::other(format!(
            "the output was cut short: {copied} of {len} bytes"
        )));
    }
    let exit = reply.exit.unwrap_or(1);
    Ok(ExitCode::from(exit.clamp(0, 255) as u8))
}

/// The terminal in raw mode while it lives; restored on drop.
struct RawTerminal {
    fd: i32,
    saved: libc::termios,
}

impl RawTerminal {
    /// Raw mode on `fd` if it is a terminal.
    fn enter(fd: i32) -> Option<RawTerminal> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios; cfmakeraw only edits it.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `raw` is a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawTerminal { fd, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: `saved` is the termios read from this fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Carries the console between the terminal and the holding bootrig until
/// Ctrl-] on stdin or the end of the connection. `hello` is shown once
/// the console is attached and the terminal raw, so what is typed after
/// it goes to the guest as typed.
fn console(stream: UnixStream, hello: &str) -> io::Result<()> {
    let req = Request {
        console: true,
        ..Request::default()
    };
    let (_, mut from_vm) = request(&stream, &req)?;
    let stdin = io::stdin();
    let stdin_fd = stdin.as_raw_fd();
    let raw = RawTerminal::enter(stdin_fd);
    eprint!("{hello}");
    let mut out = io::stdout().lock();
    // Bytes the reply's reader already buffered belong to the console.
    let early = from_vm.buffer().to_vec();
    from_vm.consume(early.len());
    out.write_all(&early)?;
    out.flush()?;
    let mut to_vm = &stream;
    let mut buf = [0u8; 4096];
    let mut stdin_open = true;
    let ended = loop {
        let mut fds = [
            libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { stdin_fd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break Err(e);
        }
        if fds[0].revents != 0 {
            let n = from_vm.get_mut().read(&mut buf)?;
            if n == 0 {
                break Ok("the hold ended (the VM was stopped)");
            }
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
        if fds[1].revents != 0 {
            // SAFETY: `buf` is valid for `buf.len()` bytes.
            let n = unsafe { libc::read(stdin_fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // No more input (not a terminal): keep showing the console.
                stdin_open = false;
                continue;
            }
            let input = &buf[..n as usize];
            if let Some(at) = input.iter().position(|b| *b == ESCAPE) {
                to_vm.write_all(&input[..at])?;
                break Ok("left the console (Ctrl-]); the VM is still held");
            }
            to_vm.write_all(input)?;
        }
    };
    drop(raw);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let why = ended?;
    eprintln!("\r\nbootrig attach: {why}");
    Ok(())
}
