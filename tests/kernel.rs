//! The kernel developer's loop, end to end: a kernel that is not the
//! images' (Debian's generic 6.12 from bookworm-backports, fetched by
//! `scripts/fetch-kernel.sh`, modules as `.ko.xz`) boots the built-in root
//! filesystems, and `modprobe` loads its modules from the host folder.
//! Run with `BOOTRIG_MAX_VMS=1 cargo test -p bootrig-tests --test kernel`.

use std::path::Path;
use std::process::ExitCode;

use bootrig::{check, check_failed, Image, Result, Session, Suite, TestContext, UserKernel};
use bootrig_tests::{output_text, run_bootrig, test_kernel, vm_marks};

/// `uname -r` is the test kernel's, `dummy` is not loaded at boot, and
/// `modprobe dummy` loads it from the shared folder.
fn check_kernel_and_modprobe(vm: &Session, release: &str) -> Result<()> {
    check_kernel_and_modprobe_from(vm, release, "kernel/drivers/net")
}

/// [`check_kernel_and_modprobe`], with `shared` a path the modules share
/// holds.
fn check_kernel_and_modprobe_from(vm: &Session, release: &str, shared: &str) -> Result<()> {
    let uname = vm.succeed("uname -r")?;
    check!(
        uname.trim() == release,
        "uname -r is {uname:?}, expected {release}"
    );
    let lsmod = vm.succeed("cat /proc/modules")?;
    check!(
        !lsmod.lines().any(|l| l.starts_with("dummy ")),
        "dummy is loaded before modprobe:\n{lsmod}"
    );
    vm.succeed("modprobe dummy")?;
    let lsmod = vm.succeed("lsmod")?;
    check!(
        lsmod.lines().any(|l| l.starts_with("dummy ")),
        "lsmod does not show dummy after modprobe:\n{lsmod}"
    );
    // The module came from the host folder, shared read-only.
    vm.succeed(&format!("test -e /lib/modules/{release}/host/{shared}"))?;
    let refused = vm.fail(&format!("touch /lib/modules/{release}/host/x 2>&1"))?;
    check!(
        refused.contains("Read-only file system"),
        "a write to the modules share: {refused:?}"
    );
    Ok(())
}

fn boot_with_own_kernel(ctx: &TestContext, image: &str) -> Result<std::sync::Arc<Session>> {
    let (kernel, modules, _) = test_kernel()?;
    let img = ctx.image(Image::builtin(image))?;
    let cfg = img
        .machine_config(&format!("{image}-own-kernel"), None)
        .with_user_kernel(
            UserKernel::new(kernel)
                .with_modules(modules)
                .with_append("bootrig.test=1"),
        );
    let vm = ctx.boot(cfg)?;
    if let Some(prompt) = &img.manifest.shell_prompt {
        vm.attach_shell(prompt)?;
    } else if let Some(login) = &img.manifest.login {
        vm.login(&login.user, &login.password)?;
        vm.become_root()?;
    }
    Ok(vm)
}

fn main() -> ExitCode {
    Suite::from_args()
        .test_with(
            "kernel::debian::own_kernel_and_modules",
            vm_marks(),
            |ctx| {
                let (_, _, release) = test_kernel()?;
                let vm = boot_with_own_kernel(ctx, "debian")?;
                check!(
                    vm.succeed("cat /proc/cmdline")?.contains("bootrig.test=1"),
                    "the extra command line is missing"
                );
                check_kernel_and_modprobe(&vm, &release)?;
                // The image's kernel is another one: this is really a new kernel.
                let img = ctx.image(Image::builtin("debian"))?;
                let theirs = bootrig::kernel_release(&img.dir.join("vmlinuz"))
                    .map_err(bootrig::Error::Check)?;
                check!(theirs != release, "the images already use {release}");
                Ok(())
            },
        )
        .test_with(
            "kernel::busybox::own_kernel_and_modules",
            vm_marks(),
            |ctx| {
                let (_, _, release) = test_kernel()?;
                let vm = boot_with_own_kernel(ctx, "busybox")?;
                check_kernel_and_modprobe(&vm, &release)
            },
        )
        .test_with(
            "kernel::debian::without_modules_the_root_disk_is_unreachable_and_said_so",
            vm_marks(),
            |ctx| {
                // Debian's kernel has virtio_blk as a module: without the
                // modules, the initramfs cannot reach /dev/vda and says so.
                let (kernel, _, _) = test_kernel()?;
                let img = ctx.image(Image::builtin("debian"))?;
                let cfg = img
                    .machine_config("debian-no-modules", None)
                    .with_user_kernel(UserKernel::new(kernel));
                let vm = ctx.boot(cfg)?;
                let login = img.manifest.login.clone().expect("debian logs in");
                match vm.login(&login.user, &login.password) {
                    Ok(_) => check_failed!("logged in without the modules that reach the disk"),
                    Err(e) => {
                        let tail = vm.console_tail(40);
                        check!(
                            tail.contains("bootrig-initramfs: root device /dev/vda did not appear"),
                            "no clear message on the console ({e}):\n{tail}"
                        );
                        Ok(())
                    }
                }
            },
        )
        .test_with(
            "kernel::busybox::flat_folder_of_modules",
            vm_marks(),
            |ctx| {
                // A folder of .ko files, as a developer's out-of-tree build
                // leaves them: what the share needs (9p) and one more module.
                let (kernel, modules, release) = test_kernel()?;
                let tree = modules.join("lib/modules").join(&release).join("kernel");
                let flat = tempfile::tempdir()?;
                for m in [
                    "drivers/net/dummy.ko.xz",
                    "fs/9p/9p.ko.xz",
                    "fs/netfs/netfs.ko.xz",
                    "net/9p/9pnet.ko.xz",
                    "net/9p/9pnet_virtio.ko.xz",
                ] {
                    let from = tree.join(m);
                    std::fs::copy(
                        &from,
                        flat.path().join(from.file_name().unwrap_or_default()),
                    )?;
                }
                let img = ctx.image(Image::builtin("busybox"))?;
                let cfg = img
                    .machine_config("busybox-flat", None)
                    .with_user_kernel(UserKernel::new(kernel).with_modules(flat.path()));
                let vm = ctx.boot(cfg)?;
                if let Some(prompt) = &img.manifest.shell_prompt {
                    vm.attach_shell(prompt)?;
                }
                check_kernel_and_modprobe_from(&vm, &release, "dummy.ko.xz")
            },
        )
        .test_with(
            "kernel::busybox::bootrig_run_overrides_the_kernel",
            vm_marks(),
            |ctx| {
                let (kernel, modules, release) = test_kernel()?;
                let dir = tempfile::tempdir()?;
                std::fs::write(
                    dir.path().join("uname.json"),
                    format!(
                        r#"{{"name": "own", "machine": {{"image": "busybox"}},
  "tests": [{{"name": "uname", "steps": [
    {{"run": "uname -r", "output_matches": "^{release}\n$"}},
    {{"succeed": "modprobe dummy && grep -q '^dummy ' /proc/modules"}},
    {{"succeed": "grep -q bootrig.cli=1 /proc/cmdline"}}]}}]}}"#,
                        release = regex_escape(&release)
                    ),
                )?;
                let out = run_bootrig(
                    &[
                        "run",
                        "--artifacts",
                        &ctx.artifacts_dir().join("run").to_string_lossy(),
                        "--kernel",
                        &kernel.to_string_lossy(),
                        "--modules",
                        &modules.to_string_lossy(),
                        "--append",
                        "bootrig.cli=1",
                        "uname.json",
                    ],
                    dir.path(),
                    &[],
                );
                if !out.status.success() {
                    return check_failed!("bootrig run --kernel failed:\n{}", output_text(&out));
                }
                let metadata = find_metadata(&ctx.artifacts_dir().join("run"))?;
                check!(
                    metadata.contains(&release) && metadata.contains("\"modules\""),
                    "metadata.json does not record the kernel:\n{metadata}"
                );
                Ok(())
            },
        )
        .run()
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if ".+*?()[]{}|^$\\".contains(c) {
                vec!['\\', '\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The text of the one test's `metadata.json` under a run root.
fn find_metadata(root: &Path) -> Result<String> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "metadata.json") {
                return Ok(std::fs::read_to_string(&p)?);
            }
        }
    }
    check_failed!("no metadata.json under {}", root.display())
}
