//! `--kernel`, `--modules`, `--append`: the flags that boot a kernel of
//! your own in every test of a run, shared by `bootrig run` and `bootrig
//! fstests`.

use std::path::PathBuf;

/// `--kernel`, `--modules`, `--append`: a kernel of your own for every VM
/// of a run (`bootrig run`, `bootrig fstests`).
#[derive(Debug, Clone, clap::Args)]
pub struct KernelArgs {
    /// Boot this kernel (bzImage, or a PVH vmlinux) instead of the image's,
    /// on the image's root filesystem, in every test of the run
    /// [default: `BOOTRIG_KERNEL`].
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Its modules: a `make modules_install INSTALL_MOD_PATH=` folder, a
    /// `lib/modules/<release>` folder or a folder of `.ko` files; shared
    /// read-only at /lib/modules/<release> so modprobe works.
    #[arg(long, value_name = "DIR", requires = "kernel")]
    modules: Option<PathBuf>,
    /// Extra kernel command line, after the image's.
    #[arg(
        long,
        value_name = "ARGS",
        requires = "kernel",
        allow_hyphen_values = true
    )]
    append: Option<String>,
}

impl KernelArgs {
    /// The kernel given (`--kernel`, else `BOOTRIG_KERNEL`), checked
    /// (release, modules) before anything boots; `None` when there is none.
    pub fn resolve(&self) -> Result<Option<crate::UserKernel>, String> {
        let (user, flag) = match &self.kernel {
            Some(kernel) => {
                let mut user = crate::UserKernel::new(kernel);
                if let Some(m) = &self.modules {
                    user = user.with_modules(m);
                }
                if let Some(a) = &self.append {
                    user = user.with_append(a);
                }
                (user, true)
            }
            None => match crate::UserKernel::from_env() {
                Some(user) => (user, false),
                None => return Ok(None),
            },
        };
        let info = user.check().map_err(|e| match flag {
            true => format!("--{e}"),
            false => format!("BOOTRIG_KERNEL/BOOTRIG_MODULES: {e}"),
        })?;
        eprintln!(
            "bootrig: kernel {} ({}){}",
            user.kernel.display(),
            info.release,
            info.modules
                .map(|m| format!(", modules {}", m.dir.display()))
                .unwrap_or_default()
        );
        Ok(Some(user))
    }
}
