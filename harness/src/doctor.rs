//! `bootrig doctor`: what this host can run, and how to fix what it can't.

use std::path::Path;
use std::process::ExitCode;

use crate::image::{ImageStore, BUILTIN};
use crate::vm::accel;
use crate::vm::config::Accel;
use crate::vm::machine::{qemu_version, resolve_binary};

/// Prints the host check; exit 0 when VM tests can run (under TCG at
/// least), 1 otherwise.
pub fn run() -> ExitCode {
    let mut ok = true;
    let mut missing_pkgs: Vec<&str> = Vec::new();
    match resolve_binary(Path::new("qemu-system-x86_64")) {
        Ok(q) => {
            let v = qemu_version(&q).unwrap_or_default();
            println!("qemu        ok       {} ({v})", q.display());
            let store = ImageStore::default();
            let probe = store
                .cached("busybox")
                .ok()
                .flatten()
                .and_then(|i| i.kernel());
            let verdict = accel::resolve(Accel::Auto, &q, &v, probe.as_deref(), &store.cache);
            let why = if verdict.reason.is_empty() {
                "KVM works".to_string()
            } else {
                verdict.reason.clone()
            };
            println!("accel       {:<8} {why}", verdict.accel.to_string());
        }
        Err(e) => {
            ok = false;
            missing_pkgs.push("qemu-system-x86/bookworm-backports");
            println!("qemu        MISSING  {e}");
        }
    }
    match crate::vm::qemu_args::find_uefi_code() {
        Some((code, _)) => println!("uefi        ok       {}", code.display()),
        None => {
            missing_pkgs.push("ovmf");
            println!("uefi        MISSING  OVMF firmware (firmware \"uefi\" will not work)");
        }
    }
    let tools: &[(&str, &str)] = &[
        ("qemu-img", "qemu-utils"),
        ("mmdebstrap", "mmdebstrap"),
        ("mke2fs", "e2fsprogs"),
        ("grub-mkrescue", "grub-common"),
        ("xorriso", "xorriso"),
        ("mformat", "mtools"),
        ("cpio", "cpio"),
    ];
    for (tool, pkg) in tools {
        match resolve_binary(Path::new(tool)) {
            Ok(p) => println!("{tool:<11} ok       {}", p.display()),
            Err(_) => {
                missing_pkgs.push(pkg);
                println!("{tool:<11} MISSING  (package {pkg})");
            }
        }
    }
    for (file, pkg) in [
        ("/usr/lib/grub/i386-pc", "grub-pc-bin"),
        ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
        // Both for --kernel: the initramfs bootrig builds for your kernel
        // (static busybox), and its modules' index (depmod).
        ("/bin/busybox", "busybox-static"),
        ("/usr/sbin/depmod", "kmod"),
    ] {
        if Path::new(file).exists() {
            println!("{:<11} ok       {file}", pkg);
        } else {
            missing_pkgs.push(pkg);
            println!("{:<11} MISSING  {file}", pkg);
        }
    }
    let fstests = crate::fstests::tree::missing_build_packages();
    if fstests.is_empty() {
        println!("fstests     ok       build dependencies installed");
    } else {
        println!(
            "fstests     MISSING  to build fstests (--fstests-src): apt-get install {}",
            fstests.join(" ")
        );
    }
    let store = ImageStore::default();
    for n in BUILTIN {
        match store.cached(n) {
            Ok(Some(img)) => println!("image {n:<5} built    {}", img.dir.display()),
            Ok(None) => println!("image {n:<5} -        not built yet (bootrig image build {n})"),
            Err(e) => println!("image {n:<5} ERROR    {e}"),
        }
    }
    if !missing_pkgs.is_empty() {
        println!(
            "\nto install what is missing: scripts/install-deps.sh\n(or: apt-get install {})",
            missing_pkgs.join(" ")
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
