//! How many VMs run at once in this process.

use std::sync::{Condvar, Mutex};

/// Limits how many VMs run at once in this process.
#[derive(Debug)]
pub struct VmBudget {
    size: usize,
    free: Mutex<usize>,
    cv: Condvar,
}

/// Held VM slots, given back on drop.
#[derive(Debug)]
pub struct VmSlot<'a>(&'a VmBudget, usize);

impl VmBudget {
    /// A budget of `n` concurrent VMs (at least one).
    pub fn new(n: usize) -> VmBudget {
        VmBudget {
            size: n.max(1),
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    /// A budget of [`VmBudget::default_size`] VMs.
    pub fn from_env() -> VmBudget {
        VmBudget::new(VmBudget::default_size())
    }

    /// `BOOTRIG_MAX_VMS`, else min(cores, available memory / 1.5 GiB): as
    /// many VMs as the host runs without overcommitting. `bootrig run`'s
    /// default `-j`.
    pub fn default_size() -> usize {
        std::env::var("BOOTRIG_MAX_VMS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(default_max_vms)
            .max(1)
    }

    /// How many VMs may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Waits for a free slot.
    pub fn acquire(&self) -> VmSlot<'_> {
        self.acquire_many(1)
    }

    /// Waits until `n` slots are free and takes them together (a test
    /// with `n` VMs): at most the whole budget, so a test with more VMs
    /// than the budget runs alone rather than never.
    pub fn acquire_many(&self, n: usize) -> VmSlot<'_> {
        let n = n.clamp(1, self.size);
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free < n {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= n;
        VmSlot(self, n)
    }
}

impl Drop for VmSlot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += self.1;
        self.0.cv.notify_all();
    }
}

fn default_max_vms() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let avail_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(4 << 20);
    let by_mem = (avail_kib / (1536 * 1024)) as usize;
    cores.min(by_mem).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_back() {
        let b = VmBudget::new(0);
        assert_eq!(b.size(), 1);
        drop(b.acquire());
        let _held = b.acquire();
        assert_eq!(*b.free.lock().unwrap(), 0);
    }

    #[test]
    fn several_slots_are_taken_together_and_capped_at_the_budget() {
        let b = VmBudget::new(3);
        let two = b.acquire_many(2);
        assert_eq!(*b.free.lock().unwrap(), 1);
        drop(two);
        let all = b.acquire_many(10);
        assert_eq!(*b.free.lock().unwrap(), 0);
        drop(all);
        assert_eq!(*b.free.lock().unwrap(), 3);
    }
}
