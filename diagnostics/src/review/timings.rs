//! Boot-phase timings of a run, per image: each test that booted is one
//! sample of each boot phase of its (first) VM.

use std::collections::BTreeMap;
use std::path::Path;

use crate::metadata::{BootRole, Metadata, Phase};

use super::Run;

/// The boot phases compared, in boot order, then [`TOTAL`].
pub const BOOT_PHASES: [&str; 6] = [
    Phase::QEMU_START,
    Phase::FIRMWARE,
    Phase::KERNEL,
    Phase::USERSPACE,
    Phase::LOGIN_PROMPT,
    "login",
];

/// The derived phase from QEMU's start until the shell was ready.
pub const TOTAL: &str = "boot total";

/// The name a test's boot is filed under: the built-in image's name when
/// it booted one (the `image NAME` phase) or booted a file from an image
/// cache folder (`<name>-<16 hex digits>/`, as `ImageStore` lays them
/// out), else the file name of its kernel, ISO or disk.
pub fn image_key(m: &Metadata) -> String {
    if let Some(p) = m.phases.iter().find_map(|p| p.name.strip_prefix("image ")) {
        return p.to_string();
    }
    let pick = |role| m.boot_sources.iter().find(|b| b.role == role);
    let Some(source) = [BootRole::Kernel, BootRole::Iso, BootRole::Disk]
        .into_iter()
        .find_map(pick)
    else {
        return "unknown".into();
    };
    let path = Path::new(&source.path);
    let cached_image = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|d| d.to_str())
        .and_then(|d| d.rsplit_once('-'))
        .filter(|(name, hash)| {
            !name.is_empty() && hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit())
        })
        .map(|(name, _)| name.to_string());
    cached_image
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}

/// The boot phases of `m`'s first VM, in milliseconds, with [`TOTAL`];
/// empty when the boot did not complete (no shell or login), since the
/// durations of an unfinished boot are cut at the test's end.
pub fn boot_phases(m: &Metadata) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let ready = m
        .phases
        .iter()
        .find(|p| p.name == Phase::SHELL_READY || (p.name == "login" && p.duration_ms.is_some()));
    let Some(ready) = ready else { return out };
    let ready_at = ready.start_ms + ready.duration_ms.unwrap_or(0);
    for name in BOOT_PHASES {
        if let Some(p) = m.phases.iter().find(|p| p.name == name) {
            if let Some(d) = p.duration_ms {
                out.insert(name.to_string(), d);
            }
        }
    }
    if let Some(q) = m.phases.iter().find(|p| p.name == Phase::QEMU_START) {
        out.insert(TOTAL.to_string(), ready_at.saturating_sub(q.start_ms));
    }
    out
}

/// Samples per image and phase: `(image, phase)` → durations in ms, in
/// test order.
pub type Samples = BTreeMap<(String, String), Vec<u64>>;

/// Every boot sample of `run`.
pub fn samples(run: &Run) -> Samples {
    let mut s = Samples::new();
    for t in &run.tests {
        let Some(m) = &t.metadata else { continue };
        let image = image_key(m);
        for (phase, ms) in boot_phases(m) {
            s.entry((image.clone(), phase)).or_default().push(ms);
        }
    }
    s
}

/// The median of `v` (the mean of the middle two for an even count);
/// `None` for no sample.
pub fn median(v: &[u64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_unstable();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    })
}

/// Sort key putting phases in boot order, [`TOTAL`] last.
pub fn phase_order(phase: &str) -> usize {
    BOOT_PHASES
        .iter()
        .position(|p| *p == phase)
        .unwrap_or(BOOT_PHASES.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BootSource;
    use chrono::Utc;
    use std::time::Duration;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5, 1, 3]), Some(3.0));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2.5));
    }

    #[test]
    fn phases_of_a_completed_boot_only() {
        let ms = Duration::from_millis;
        let mut m = Metadata::new("t", Utc::now());
        m.phase_start("image busybox", ms(0));
        m.phase_end("image busybox", ms(5));
        m.phase_start(Phase::QEMU_START, ms(10));
        m.phase_end(Phase::QEMU_START, ms(110));
        m.phase_start(Phase::KERNEL, ms(500));
        m.phase_end(Phase::KERNEL, ms(2500));
        assert!(boot_phases(&m).is_empty(), "no shell yet");
        m.phase_start(Phase::SHELL_READY, ms(3010));
        m.phase_end(Phase::SHELL_READY, ms(3010));
        let p = boot_phases(&m);
        assert_eq!(p["kernel"], 2000);
        assert_eq!(p["qemu start"], 100);
        assert_eq!(p[TOTAL], 3000);
        assert_eq!(image_key(&m), "busybox");
    }

    #[test]
    fn image_keys_of_kernel_boots() {
        let mut m = Metadata::new("t", Utc::now());
        assert_eq!(image_key(&m), "unknown");
        let source = |path: &str| BootSource {
            role: BootRole::Kernel,
            path: path.into(),
            size: 1,
            sha256: String::new(),
        };
        m.boot_sources = vec![source("/c/images/busybox-ae0b73ba24564162/vmlinuz")];
        assert_eq!(image_key(&m), "busybox");
        m.boot_sources = vec![source("/boot/vmlinuz-6.1.0-18-amd64")];
        assert_eq!(image_key(&m), "vmlinuz-6.1.0-18-amd64");
        m.boot_sources = vec![source("/k/my-kernel/bzImage")];
        assert_eq!(image_key(&m), "bzImage");
    }
}
