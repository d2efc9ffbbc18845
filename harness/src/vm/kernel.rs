//! The user's own kernel on a built-in root filesystem.
//!
//! A [`UserKernel`] names a kernel image (`bzImage`, or an ELF `vmlinux`
//! QEMU can boot: one with a PVH note), extra command line, and optionally
//! its modules. [`UserKernel::check`] reads the kernel's release from the
//! image itself (the bzImage header's version string, or the `Linux
//! version` banner of a vmlinux) and finds the modules of that release in
//! the folder given, which may be:
//!
//! - a `make modules_install INSTALL_MOD_PATH=STAGING` staging folder
//!   (`STAGING/lib/modules/<release>/...`);
//! - a `lib/modules/<release>` folder itself (named after the release);
//! - a flat folder of `.ko` files (`.ko.xz`, `.ko.zst`, `.ko.gz` too), whose
//!   `vermagic` must name the release.
//!
//! How the kernel then boots the image's root is `vm::initramfs`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The user's kernel, to boot instead of an image's own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserKernel {
    /// The kernel image (`bzImage`, `vmlinuz`, or a PVH-capable `vmlinux`).
    pub kernel: PathBuf,
    /// Its modules: a staging folder, a `lib/modules/<release>` folder or
    /// a flat folder of `.ko` files. They are shared read-only into the
    /// guest at `/lib/modules/<release>` so `modprobe` works.
    pub modules: Option<PathBuf>,
    /// Extra kernel command line, appended to the image's.
    pub append: String,
}

/// Environment variables naming a kernel for every VM of a `cargo test`
/// suite: the kernel, its modules, extra command line.
pub const KERNEL_ENV: [&str; 3] = ["BOOTRIG_KERNEL", "BOOTRIG_MODULES", "BOOTRIG_APPEND"];

/// What [`UserKernel::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelInfo {
    /// The kernel image.
    pub kernel: PathBuf,
    /// Its release (`uname -r`).
    pub release: String,
    /// The modules, if any.
    pub modules: Option<ModulesDir>,
}

/// A modules folder, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulesDir {
    /// The folder as given.
    pub given: PathBuf,
    /// The folder holding the modules of the release (what the guest sees
    /// at `/lib/modules/<release>`).
    pub dir: PathBuf,
    /// Whether it is a flat folder of `.ko` files (no `modules.builtin`).
    pub flat: bool,
}

impl UserKernel {
    /// A kernel with no modules and no extra command line.
    pub fn new(kernel: impl Into<PathBuf>) -> UserKernel {
        UserKernel {
            kernel: kernel.into(),
            ..UserKernel::default()
        }
    }

    /// With its modules (see [`UserKernel::modules`]).
    pub fn with_modules(mut self, modules: impl Into<PathBuf>) -> UserKernel {
        self.modules = Some(modules.into());
        self
    }

    /// With extra kernel command line.
    pub fn with_append(mut self, append: impl Into<String>) -> UserKernel {
        self.append = append.into();
        self
    }

    /// The kernel named by `BOOTRIG_KERNEL` (with `BOOTRIG_MODULES` and
    /// `BOOTRIG_APPEND`), if set. An empty `BOOTRIG_KERNEL` is unset.
    pub fn from_env() -> Option<UserKernel> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let kernel = var(KERNEL_ENV[0])?;
        Some(UserKernel {
            kernel: kernel.into(),
            modules: var(KERNEL_ENV[1]).map(PathBuf::from),
            append: var(KERNEL_ENV[2])
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }

    /// Checks the kernel and its modules without booting: the kernel is a
    /// file with a readable release, and the modules folder holds that
    /// release's modules. The error names the field (`kernel`, `modules`)
    /// and the values that disagree.
    pub fn check(&self) -> Result<KernelInfo, String> {
        let release = kernel_release(&self.kernel)?;
        let modules = match &self.modules {
            Some(dir) => Some(resolve_modules(dir, &release, &self.kernel)?),
            None => None,
        };
        Ok(KernelInfo {
            kernel: self.kernel.clone(),
            release,
            modules,
        })
    }
}

/// A kernel of your own named next to an image (a scenario's `machine`:
/// `image`, `kernel`, `initrd`, `modules`, `append`), checked as
/// [`UserKernel::check`] does: `Ok(None)` when there is none; the error
/// names the field at fault and why.
pub fn on_image(
    image: bool,
    kernel: Option<&Path>,
    initrd: bool,
    modules: Option<&Path>,
    append: Option<&str>,
) -> Result<Option<UserKernel>, (&'static str, String)> {
    if image && initrd {
        return Err((
            "initrd",
            "with \"image\", \"kernel\" boots the image's root through an initrd \
             bootrig builds: drop \"initrd\""
                .into(),
        ));
    }
    let (true, Some(kernel)) = (image, kernel) else {
        return match modules {
            Some(_) => Err((
                "modules",
                "\"modules\" needs \"image\" and \"kernel\" (your kernel on an image's root)"
                    .into(),
            )),
            None => Ok(None),
        };
    };
    let user = UserKernel {
        kernel: kernel.to_path_buf(),
        modules: modules.map(Path::to_path_buf),
        append: append.unwrap_or_default().to_string(),
    };
    match user.check() {
        Ok(_) => Ok(Some(user)),
        Err(e) if e.starts_with("modules") => Err(("modules", e)),
        Err(e) => Err(("kernel", e)),
    }
}

/// The release of a kernel image: the first word of the bzImage header's
/// version string, or of the `Linux version` banner in an ELF vmlinux.
pub fn kernel_release(path: &Path) -> Result<String, String> {
    let field = |what: String| format!("kernel: {} {what}", path.display());
    if path.is_dir() {
        return Err(field("is a directory, not a kernel image".into()));
    }
    if !path.exists() {
        return Err(field("does not exist".into()));
    }
    let bytes = fs::read(path).map_err(|e| field(format!("cannot be read: {e}")))?;
    if bytes.len() > 0x210 && &bytes[0x202..0x206] == b"HdrS" {
        let ptr = u16::from_le_bytes([bytes[0x20e], bytes[0x20f]]) as usize;
        if ptr != 0 {
            let start = ptr + 0x200;
            if let Some(text) = bytes.get(start..) {
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                let version = String::from_utf8_lossy(&text[..end.min(256)]).into_owned();
                if let Some(release) = version.split_whitespace().next() {
                    return Ok(release.to_string());
                }
            }
        }
        return Err(field("is a bzImage without a version string".into()));
    }
    if bytes.starts_with(b"\x7fELF") {
        let banner = b"Linux version ";
        if let Some(at) = memchr::memmem::find(&bytes, banner) {
            let rest = &bytes[at + banner.len()..];
            let end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == 0)
                .unwrap_or(rest.len());
            if end > 0 {
                return Ok(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
        return Err(field(
            "is an ELF file without a `Linux version` banner".into(),
        ));
    }
    Err(field(
        "is not a kernel image (no bzImage header, not an ELF vmlinux)".into(),
    ))
}

/// Whether a file name is a kernel module (`.ko`, maybe compressed).
pub fn is_module(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// A module's name from its file name (`foo-bar.ko.xz` → `foo_bar`).
pub fn module_name(file_name: &str) -> String {
    let stem = file_name.split(".ko").next().unwrap_or(file_name);
    stem.replace('-', "_")
}

/// A module's contents, decompressed.
pub fn read_module(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: std::io::Error| format!("reading module {}: {e}", path.display());
    let file = fs::File::open(path).map_err(fail)?;
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".xz") {
        xz2::read::XzDecoder::new(file)
            .read_to_end(&mut out)
            .map_err(fail)?;
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(file)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(fail)?;
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut out)
            .map_err(fail)?;
    } else {
        std::io::BufReader::new(file)
            .read_to_end(&mut out)
            .map_err(fail)?;
    }
    Ok(out)
}

/// The release a module was built for: the first word of its `vermagic`.
pub fn module_vermagic(bytes: &[u8]) -> Option<String> {
    let at = memchr::memmem::find(bytes, b"vermagic=")?;
    let rest = &bytes[at + 9..];
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == 0)
        .unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Finds the modules of `release` in `given` (see the module docs).
fn resolve_modules(given: &Path, release: &str, kernel: &Path) -> Result<ModulesDir, String> {
    let field = |what: String| format!("modules: {} {what}", given.display());
    if !given.exists() {
        return Err(field("does not exist".into()));
    }
    if !given.is_dir() {
        return Err(field("is not a folder".into()));
    }
    let mismatch = |found: &str| {
        field(format!(
            "holds modules for {found}, but the kernel {} is {release}",
            kernel.display()
        ))
    };
    let lib_modules = given.join("lib/modules");
    if lib_modules.is_dir() {
        let dir = lib_modules.join(release);
        if dir.is_dir() {
            return Ok(ModulesDir {
                given: given.to_path_buf(),
                dir,
                flat: false,
            });
        }
        let found = subdirs(&lib_modules).join(", ");
        return Err(mismatch(&format!("lib/modules/{{{found}}}")));
    }
    let is_release_dir = ["modules.builtin", "modules.order", "modules.dep", "kernel"]
        .iter()
        .any(|f| given.join(f).exists());
    if is_release_dir {
        let name = given
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name != release {
            return Err(mismatch(&name));
        }
        return Ok(ModulesDir {
            given: given.to_path_buf(),
            dir: given.to_path_buf(),
            flat: false,
        });
    }
    let mut modules: Vec<PathBuf> = fs::read_dir(given)
        .map_err(|e| field(format!("cannot be read: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_module(&p.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    if modules.is_empty() {
        return Err(field(
            "has no lib/modules/<release>, no modules.builtin/modules.order and no .ko files"
                .into(),
        ));
    }
    modules.sort();
    for m in &modules {
        let bytes = read_module(m).map_err(field)?;
        match module_vermagic(&bytes) {
            Some(v) if v == release => {}
            Some(v) => {
                return Err(field(format!(
                    "holds {} built for {v}, but the kernel {} is {release}",
                    m.file_name().unwrap_or_default().to_string_lossy(),
                    kernel.display()
                )))
            }
            None => {
                return Err(field(format!(
                    "holds {}, which has no vermagic (not a kernel module?)",
                    m.display()
                )))
            }
        }
    }
    Ok(ModulesDir {
        given: given.to_path_buf(),
        dir: given.to_path_buf(),
        flat: true,
    })
}

fn subdirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal bzImage: the setup header's magic and version pointer.
    pub(crate) fn fake_bzimage(version: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        let ptr: u16 = 0x100; // string at 0x300
        b[0x20e..0x210].copy_from_slice(&ptr.to_le_bytes());
        b[0x300..0x300 + version.len()].copy_from_slice(version.as_bytes());
        b
    }

    fn fake_module(release: &str) -> Vec<u8> {
        format!("\x7fELF....\0license=GPL\0vermagic={release} SMP mod_unload\0").into_bytes()
    }

    #[test]
    fn release_from_bzimage_and_vmlinux() {
        let dir = tempfile::tempdir().unwrap();
        let bz = dir.path().join("bzImage");
        fs::write(&bz, fake_bzimage("6.12.9-test (me@host) #1 SMP")).unwrap();
        assert_eq!(kernel_release(&bz).unwrap(), "6.12.9-test");
        let elf = dir.path().join("vmlinux");
        fs::write(
            &elf,
            b"\x7fELF\0\0junk Linux version 6.13.0-rc1+ (x@y) #2\0",
        )
        .unwrap();
        assert_eq!(kernel_release(&elf).unwrap(), "6.13.0-rc1+");
        let junk = dir.path().join("junk");
        fs::write(&junk, b"hello").unwrap();
        let e = kernel_release(&junk).unwrap_err();
        assert!(
            e.starts_with("kernel: ") && e.contains("not a kernel image"),
            "{e}"
        );
    }

    #[test]
    fn a_kernel_that_is_a_folder_or_missing_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let e = UserKernel::new(dir.path()).check().unwrap_err();
        assert!(
            e.starts_with("kernel: ") && e.contains("is a directory"),
            "{e}"
        );
        let e = UserKernel::new(dir.path().join("nope"))
            .check()
            .unwrap_err();
        assert!(e.contains("nope") && e.contains("does not exist"), "{e}");
    }

    #[test]
    fn modules_layouts_and_release_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let bz = dir.path().join("bzImage");
        fs::write(&bz, fake_bzimage("6.12.9-test #1")).unwrap();
        let k = UserKernel::new(&bz);

        // A staging folder.
        let staging = dir.path().join("staging");
        let rel = staging.join("lib/modules/6.12.9-test");
        fs::create_dir_all(rel.join("kernel")).unwrap();
        let info = k.clone().with_modules(&staging).check().unwrap();
        assert_eq!(info.release, "6.12.9-test");
        assert_eq!(info.modules.unwrap().dir, rel);
        // The release folder itself.
        let info = k.clone().with_modules(&rel).check().unwrap();
        assert!(!info.modules.unwrap().flat);

        // Another release: both named.
        let other = dir.path().join("other");
        fs::create_dir_all(other.join("lib/modules/6.1.0-9-amd64/kernel")).unwrap();
        let e = k.clone().with_modules(&other).check().unwrap_err();
        assert!(e.starts_with("modules: "), "{e}");
        assert!(
            e.contains("6.1.0-9-amd64") && e.contains("6.12.9-test"),
            "{e}"
        );
        let e = k
            .clone()
            .with_modules(other.join("lib/modules/6.1.0-9-amd64"))
            .check()
            .unwrap_err();
        assert!(
            e.contains("6.1.0-9-amd64") && e.contains("6.12.9-test"),
            "{e}"
        );

        // A flat folder: vermagic decides.
        let flat = dir.path().join("flat");
        fs::create_dir_all(&flat).unwrap();
        fs::write(flat.join("mine.ko"), fake_module("6.12.9-test")).unwrap();
        assert!(
            k.clone()
                .with_modules(&flat)
                .check()
                .unwrap()
                .modules
                .unwrap()
                .flat
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &fake_module("5.10.0-old")).unwrap();
        fs::write(flat.join("old.ko.gz"), gz.finish().unwrap()).unwrap();
        let e = k.clone().with_modules(&flat).check().unwrap_err();
        assert!(
            e.contains("old.ko.gz built for 5.10.0-old") && e.contains("6.12.9-test"),
            "{e}"
        );

        // Nothing module-like, and a file.
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        assert!(k
            .clone()
            .with_modules(&empty)
            .check()
            .unwrap_err()
            .contains("no .ko files"));
        assert!(k
            .with_modules(&bz)
            .check()
            .unwrap_err()
            .contains("is not a folder"));
    }

    #[test]
    fn module_names() {
        assert_eq!(module_name("virtio-blk.ko.xz"), "virtio_blk");
        assert_eq!(module_name("9p.ko"), "9p");
        assert!(is_module("a.ko.zst") && !is_module("a.kobj"));
    }
}
