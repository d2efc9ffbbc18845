//! Ctrl-C and SIGTERM for `bootrig run`: stop the VMs, finish the
//! postmortem, print the summary, exit 130 / 143.
//!
//! The signals are blocked in every thread and received by one dedicated
//! thread with `sigwait`, so no work happens in a signal handler. On the
//! first signal that thread records it and kills every live VM of the run;
//! the tests then fail promptly (their consoles close), write their
//! `metadata.json` with an `interrupted` failure, and no new test starts.
//! A second signal exits at once (the VMs die with bootrig through their
//! parent-death signal). Children get an empty signal mask back before
//! `exec` (see `process.rs`).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::guest::session::Session;

/// The run's interruption state and its live VMs.
#[derive(Debug, Default)]
pub struct Interrupts {
    signal: AtomicI32,
    vms: Mutex<Vec<Weak<Session>>>,
    woken: (Mutex<()>, Condvar),
}

impl Interrupts {
    /// Remembers a VM so an interruption can stop it.
    pub fn register(&self, vm: &Arc<Session>) {
        let mut vms = self.vms.lock().unwrap_or_else(|p| p.into_inner());
        vms.retain(|w| w.strong_count() > 0);
        vms.push(Arc::downgrade(vm));
    }

    /// The signal that interrupted the run, if any.
    pub fn interrupted(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Waits up to `timeout` for an interruption; the signal if one came.
    pub fn wait(&self, timeout: Duration) -> Option<i32> {
        let (lock, cv) = &self.woken;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _guard = cv
            .wait_timeout_while(guard, timeout, |_| self.interrupted().is_none())
            .unwrap_or_else(|p| p.into_inner());
        self.interrupted()
    }

    /// Records `signal` and kills every live VM.
    pub fn trigger(&self, signal: i32) {
        self.signal.store(signal, Ordering::SeqCst);
        {
            let (lock, cv) = &self.woken;
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            cv.notify_all();
        }
        let vms: Vec<Arc<Session>> = self
            .vms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for vm in vms {
            vm.machine().kill();
        }
    }
}

pub use crate::errors::signal_name;

/// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread
/// it spawns afterwards: call it first) and starts the thread that waits
/// for them.
pub fn install(interrupts: Arc<Interrupts>) -> std::io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before
    // use; pthread_sigmask and sigwait get valid pointers.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    std::thread::Builder::new()
        .name("bootrig-signals".into())
        .spawn(move || {
            let mut first = true;
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is a valid, initialised signal set.
                if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                    continue;
                }
                if !first {
                    eprintln!("bootrig: {} again, exiting now", signal_name(sig));
                    std::process::exit(128 + sig);
                }
                first = false;
                eprintln!(
                    "bootrig: {}: stopping the VMs and writing what was collected (again to exit at once)",
                    signal_name(sig)
                );
                interrupts.trigger(sig);
            }
        })?;
    Ok(())
}
