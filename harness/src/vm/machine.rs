//! A running QEMU virtual machine, owned by the harness.
//!
//! [`Machine::start`] resolves a [`MachineConfig`] (accelerator verdict,
//! throwaway disk overlay, scratch drives, private UEFI variable store),
//! binds the serial and QMP sockets, starts QEMU in its own process group
//! with its stdio on files, and waits for QEMU to connect to both sockets.
//! Dropping the `Machine` takes QEMU down: QMP `quit`, then SIGTERM, then
//! SIGKILL to the process group, and reaps it.

use bootrig_diagnostics::layout;
use std::fs::{self, File};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::console::{Console, ConsoleObserver, ConsoleOptions};
use crate::errors::{Error, Result};
use crate::vm::accel::{self, AccelVerdict};
use crate::vm::channel::CommandChannel;
use crate::vm::config::{Drive, MachineConfig};
use crate::vm::connect::{accept_until, CONNECT_TIMEOUT};
use crate::vm::drives::{abs, overlay_over_saved_disk, prepare_disk, prepare_drives, prepare_uefi};
use crate::vm::kernel::KernelInfo;
use crate::vm::links::{bound_ports, mount_tag, Share};
use crate::vm::process::OwnedChild;
use crate::vm::qemu_args::QemuArgs;
pub use crate::vm::qemu_bin::{qemu_version, resolve_binary, shell_quote, tail_of_file};
use crate::vm::qmp::Qmp;
use crate::vm::registry::{Registration, Registry, VmRecord};

/// How long QEMU may take to greet on QMP and accept its capabilities,
/// once connected.
const QMP_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long QEMU may take to answer QMP `quit` when the machine is taken
/// down.
const QMP_QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long QEMU may take to exit after `quit` before it is signalled.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// Where a machine writes its files and what it may reuse.
pub struct MachineOptions {
    /// Folder for `serial.log`, `qemu-stderr.log`, `qemu-cmdline.txt`.
    pub out_dir: PathBuf,
    /// Cache folder (accelerator verdicts).
    pub cache_dir: PathBuf,
    /// A kernel to probe KVM with when the VM itself boots no kernel.
    pub probe_kernel: Option<PathBuf>,
    /// Watches console lines (kernel crash detection).
    pub observer: Option<Box<dyn ConsoleObserver>>,
    /// The run folder and test recorded with the VM in the host's VM
    /// registry (see [`crate::vm::registry`]).
    pub owner: Option<(PathBuf, String)>,
    /// Whether the machine's state is saved or restored (warm start).
    pub snapshot: Option<Snapshotting>,
}

impl std::fmt::Debug for MachineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineOptions")
            .field("out_dir", &self.out_dir)
            .field("cache_dir", &self.cache_dir)
            .field("probe_kernel", &self.probe_kernel)
            .field("observer", &self.observer.is_some())
            .field("owner", &self.owner)
            .field("snapshot", &self.snapshot)
            .finish()
    }
}

impl MachineOptions {
    /// Options writing into `out_dir`, with the default cache folder.
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        MachineOptions {
            out_dir: out_dir.into(),
            cache_dir: accel::default_cache_dir(),
            probe_kernel: None,
            observer: None,
            owner: None,
            snapshot: None,
        }
    }
}

/// The part a machine plays in a warm start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshotting {
    /// Booted normally, its state may be saved ([`Machine::save_state`]).
    Source,
    /// Started from a saved state: waits for it (`-incoming defer`), its
    /// root disk an overlay over `disk` (the saved copy) when there is one.
    Restore {
        /// The saved disk to put the machine's overlay over.
        disk: Option<PathBuf>,
    },
}

/// A boot input file, with the role it plays (for metadata and hashing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFile {
    /// `kernel`, `initrd`, `iso`, `disk`, `drive`, `firmware`.
    pub role: &'static str,
    /// The file as given (not the overlay).
    pub path: PathBuf,
}

/// A running VM. See the module documentation.
#[derive(Debug)]
pub struct Machine {
    name: String,
    console: Console,
    channel: Option<CommandChannel>,
    qmp: Mutex<Option<Qmp>>,
    child: Mutex<OwnedChild>,
    argv: Vec<String>,
    qemu: PathBuf,
    qemu_version: String,
    accel: AccelVerdict,
    boot_files: Vec<BootFile>,
    display: bool,
    shares: Vec<Share>,
    /// (guest port, host port on 127.0.0.1).
    forwards: Vec<(u16, u16)>,
    kernel_info: Option<KernelInfo>,
    out_dir: PathBuf,
    started: Instant,
    /// Set when bootrig itself takes QEMU down ([`Machine::kill`]), so a
    /// signal death is then not someone else's doing.
    stopping: std::sync::atomic::AtomicBool,
    // Removed after QEMU is reaped (Drop kills it first).
    _registration: Registration,
    /// The throwaway overlay QEMU writes the root disk to, if any.
    disk_overlay: Option<PathBuf>,
    // Last: removed after QEMU is gone (sockets, overlay, scratch drives).
    _workdir: tempfile::TempDir,
}

impl Machine {
    /// Starts QEMU for `config`. Returns once QEMU runs and both the serial
    /// console and QMP are connected; the guest is booting.
    pub fn start(config: &MachineConfig, options: MachineOptions) -> Result<Machine> {
        config.validate().map_err(|message| Error::Config {
            what: format!("machine {}", config.name),
            message,
        })?;
        // The user's kernel replaces the image's, with the initrd built
        // for it (cached).
        let prepared = match &config.user_kernel {
            Some(user) => Some(crate::vm::initramfs::prepare(
                config,
                user,
                &options.cache_dir,
            )?),
            None => None,
        };
        let kernel_boot = prepared
            .as_ref()
            .map(|p| &p.boot)
            .or(config.kernel.as_ref());
        let qemu = resolve_binary(&config.qemu)?;
        let qemu_version = qemu_version(&qemu)?;
        fs::create_dir_all(&options.out_dir)
            .map_err(|e| Error::io(format!("creating {}", options.out_dir.display()), e))?;
        let probe_kernel = config
            .kernel
            .as_ref()
            .map(|k| k.kernel.clone())
            .or(options.probe_kernel.clone());
        let verdict = accel::resolve(
            config.accel,
            &qemu,
            &qemu_version,
            probe_kernel.as_deref(),
            &options.cache_dir,
        );

        // Short paths: Unix socket paths are limited to 108 bytes.
        let workdir = tempfile::Builder::new()
            .prefix("bootrig-")
            .tempdir()
            .map_err(|e| Error::io("creating a scratch folder in the temp dir", e))?;
        let serial_socket = workdir.path().join("serial.sock");
        let qmp_socket = workdir.path().join("qmp.sock");
        let serial_listener = UnixListener::bind(&serial_socket)
            .map_err(|e| Error::io(format!("binding {}", serial_socket.display()), e))?;
        let qmp_listener = UnixListener::bind(&qmp_socket)
            .map_err(|e| Error::io(format!("binding {}", qmp_socket.display()), e))?;
        let channel_socket = workdir.path().join("cmd.sock");
        let channel_listener = if config.command_channel {
            Some(
                UnixListener::bind(&channel_socket)
                    .map_err(|e| Error::io(format!("binding {}", channel_socket.display()), e))?,
            )
        } else {
            None
        };

        let mut boot_files = Vec::new();
        let restore_disk = match &options.snapshot {
            Some(Snapshotting::Restore { disk, .. }) => disk.clone(),
            _ => None,
        };
        let args = QemuArgs {
            name: sanitize_vm_name(&config.name),
            accel: verdict.accel,
            memory_mib: config.memory_mib,
            cpus: config.cpus,
            kernel: kernel_boot.map(|k| {
                boot_files.push(BootFile {
                    role: "kernel",
                    path: k.kernel.clone(),
                });
                if let Some(i) = &k.initrd {
                    boot_files.push(BootFile {
                        role: "initrd",
                        path: i.clone(),
                    });
                }
                (
                    abs(&k.kernel),
                    k.initrd.as_deref().map(abs),
                    k.append.clone(),
                )
            }),
            uefi: prepare_uefi(config.firmware, workdir.path())?,
            iso: config.iso.as_ref().map(|iso| {
                boot_files.push(BootFile {
                    role: "iso",
                    path: iso.clone(),
                });
                abs(iso)
            }),
            disk: match &config.disk {
                Some(disk) => {
                    boot_files.push(BootFile {
                        role: "disk",
                        path: disk.clone(),
                    });
                    Some(match &restore_disk {
                        Some(saved) => overlay_over_saved_disk(saved, workdir.path())?,
                        None => prepare_disk(disk, config.persist, workdir.path())?,
                    })
                }
                None => None,
            },
            drives: {
                boot_files.extend(config.drives.iter().filter_map(|d| match d {
                    Drive::File(path) => Some(BootFile {
                        role: "drive",
                        path: path.clone(),
                    }),
                    Drive::Scratch(_) => None,
                }));
                prepare_drives(&config.drives, workdir.path())?
            },
            serial_socket,
            qmp_socket,
            channel_socket: channel_listener.as_ref().map(|_| channel_socket.clone()),
            network: config.network,
            forwards: config.forwards.iter().map(|f| (f.host, f.guest)).collect(),
            shares: config
                .shares
                .iter()
                .enumerate()
                .map(|(i, s)| (abs(&s.host), mount_tag(i), !s.writable))
                .collect(),
            private_networks: config
                .networks
                .iter()
                .map(|p| (p.socket.clone(), p.mac.clone()))
                .collect(),
            no_reboot: true,
            vmgenid: options.snapshot.is_some(),
            incoming: matches!(options.snapshot, Some(Snapshotting::Restore { .. })),
            display: config.display,
            modules_share: prepared.as_ref().and_then(|p| p.share.clone()),
            extra: config.extra_args.clone(),
        };
        let disk_overlay = args
            .disk
            .as_ref()
            .map(|(p, _)| p.clone())
            .filter(|p| p.starts_with(workdir.path()));
        let argv_os = args.build();
        let argv: Vec<String> = std::iter::once(qemu.to_string_lossy().into_owned())
            .chain(argv_os.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect();
        write_file(
            &options.out_dir.join(layout::QEMU_CMDLINE.path),
            shell_quote(&argv).as_bytes(),
        )?;

        let stderr_path = options.out_dir.join(layout::QEMU_STDERR.path);
        let stderr = File::create(&stderr_path)
            .map_err(|e| Error::io(format!("creating {}", stderr_path.display()), e))?;
        let stdout = stderr
            .try_clone()
            .map_err(|e| Error::io("duplicating the stderr log handle", e))?;
        let mut cmd = Command::new(&qemu);
        cmd.args(&argv_os)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let mut child = OwnedChild::spawn(format!("qemu ({})", config.name), &mut cmd)
            .map_err(|e| Error::io(format!("starting {}", qemu.display()), e))?;
        let registration = register(&child, &argv, &options)?;

        let started = Instant::now();
        let deadline = started + CONNECT_TIMEOUT;
        let serial = accept_until(&serial_listener, &mut child, deadline, &stderr_path)?;
        let qmp_stream = accept_until(&qmp_listener, &mut child, deadline, &stderr_path)?;
        let channel = match &channel_listener {
            Some(l) => {
                let stream = accept_until(l, &mut child, deadline, &stderr_path)?;
                Some(
                    CommandChannel::start(stream)
                        .map_err(|e| Error::io("starting the command channel reader", e))?,
                )
            }
            None => None,
        };

        let serial_log_path = options.out_dir.join(layout::SERIAL_LOG.path);
        let serial_log = File::create(&serial_log_path)
            .map_err(|e| Error::io(format!("creating {}", serial_log_path.display()), e))?;
        let console_options = ConsoleOptions {
            observer: options.observer,
            ..ConsoleOptions::default()
        };
        let console = Console::start(serial, serial_log, console_options)
            .map_err(|e| Error::io("starting the serial console reader", e))?;
        let mut qmp =
            Qmp::handshake(qmp_stream, QMP_HANDSHAKE_TIMEOUT).map_err(|e| Error::Qemu {
                message: format!("QMP handshake failed: {e}"),
                stderr_tail: tail_of_file(&stderr_path, 20),
            })?;
        // Host port 0 lets QEMU bind a free port: ask which.
        let forwards = match config.forwards.is_empty() {
            true => Vec::new(),
            false => qmp
                .human("info usernet")
                .map_err(|e| e.to_string())
                .and_then(|text| bound_ports(&config.forwards, &text))
                .map_err(|message| Error::Qemu {
                    message: format!("reading the forwarded ports: {message}"),
                    stderr_tail: tail_of_file(&stderr_path, 20),
                })?,
        };

        Ok(Machine {
            name: config.name.clone(),
            console,
            channel,
            qmp: Mutex::new(Some(qmp)),
            child: Mutex::new(child),
            argv,
            qemu,
            qemu_version,
            accel: verdict,
            boot_files,
            display: config.display,
            shares: config.shares.clone(),
            forwards,
            kernel_info: prepared.map(|p| p.info),
            out_dir: options.out_dir,
            started,
            stopping: std::sync::atomic::AtomicBool::new(false),
            _registration: registration,
            disk_overlay,
            _workdir: workdir,
        })
    }

    /// The serial console.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// The command channel, when the machine has one (see
    /// [`MachineConfig::command_channel`]).
    pub fn channel(&self) -> Option<&CommandChannel> {
        self.channel.as_ref()
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// QEMU's full argv (binary first).
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The QEMU binary in use.
    pub fn qemu(&self) -> &Path {
        &self.qemu
    }

    /// `qemu-system-x86_64 --version`'s first line.
    pub fn qemu_version(&self) -> &str {
        &self.qemu_version
    }

    /// The accelerator verdict (what runs, and why).
    pub fn accel(&self) -> &AccelVerdict {
        &self.accel
    }

    /// The boot input files with their roles.
    pub fn boot_files(&self) -> &[BootFile] {
        &self.boot_files
    }

    /// The user's kernel this machine boots (release, modules), if it
    /// boots one (see [`MachineConfig::with_user_kernel`]).
    pub fn user_kernel(&self) -> Option<&KernelInfo> {
        self.kernel_info.as_ref()
    }

    /// Whether the guest has a display (so a screendump can be taken).
    pub fn has_display(&self) -> bool {
        self.display
    }

    /// The host folders shared into the guest; the `i`-th has mount tag
    /// `bootrig<i>`.
    pub fn shares(&self) -> &[Share] {
        &self.shares
    }

    /// The host port on 127.0.0.1 that reaches guest TCP port `guest`, if
    /// the machine forwards it.
    pub fn forwarded_port(&self, guest: u16) -> Option<u16> {
        self.forwards
            .iter()
            .find(|(g, _)| *g == guest)
            .map(|(_, h)| *h)
    }

    /// Every forward as (guest port, host port on 127.0.0.1).
    pub fn forwards(&self) -> &[(u16, u16)] {
        &self.forwards
    }

    /// Where this machine writes its logs.
    pub fn out_dir(&self) -> &Path {
        &self.out_dir
    }

    /// When QEMU was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The throwaway qcow2 overlay over the root disk, if the machine has
    /// one (not for `persist`).
    pub fn disk_overlay(&self) -> Option<&Path> {
        self.disk_overlay.as_deref()
    }

    fn qmp_lock(&self) -> MutexGuard<'_, Option<Qmp>> {
        self.qmp.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a QMP command (None if QMP is gone because QEMU exited).
    pub fn qmp<T>(&self, f: impl FnOnce(&mut Qmp) -> T) -> Option<T> {
        self.qmp_lock().as_mut().map(f)
    }

    /// QEMU's exit status if it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_wait()
            .ok()
            .flatten()
    }

    /// The signal that killed QEMU, if one did that bootrig did not send
    /// (another process, the OOM killer, QEMU crashing): a failure of the
    /// infrastructure, not of the test.
    pub fn killed_from_outside(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        // The console ends as QEMU exits; the exit status follows at once.
        let status = match self.console.is_closed() {
            true => self.wait_exit(Duration::from_millis(500)),
            false => self.exit_status(),
        };
        status?.signal()
    }

    /// Waits up to `timeout` for QEMU to exit on its own.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        self.child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .wait_deadline(timeout)
            .ok()
            .flatten()
    }

    /// Asks the guest to power off via ACPI and waits; forces QEMU down
    /// when the guest ignores it. Returns whether the guest obeyed.
    pub fn powerdown(&self, timeout: Duration) -> bool {
        let _ = self.qmp(|q| q.system_powerdown());
        let obeyed = self.wait_exit(timeout).is_some();
        if !obeyed {
            self.kill();
        }
        obeyed
    }

    /// Takes QEMU down now: QMP `quit`, then signals to the process group.
    pub fn kill(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(mut qmp) = self.qmp_lock().take() {
            let _ = qmp.set_timeout(QMP_QUIT_TIMEOUT);
            let _ = qmp.quit();
        }
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if child.wait_deadline(QUIT_GRACE).ok().flatten().is_none() {
            let _ = child.terminate();
        }
    }

    /// The last lines of QEMU's stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail_of_file(&self.out_dir.join(layout::QEMU_STDERR.path), lines)
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Records the QEMU just spawned in the host's VM registry.
fn register(child: &OwnedChild, argv: &[String], options: &MachineOptions) -> Result<Registration> {
    let registry = Registry::open_default();
    let context = || {
        format!(
            "recording QEMU in the VM registry {}",
            registry.dir().display()
        )
    };
    let mut record =
        VmRecord::for_child(child.pid(), argv.to_vec()).map_err(|e| Error::io(context(), e))?;
    if let Some((run_dir, test)) = &options.owner {
        record.run_dir = Some(abs(run_dir));
        record.test = Some(test.clone());
    }
    record.out_dir = Some(abs(&options.out_dir));
    registry
        .register(&record)
        .map_err(|e| Error::io(context(), e))
}

fn sanitize_vm_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() {
        "vm".into()
    } else {
        s
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
