//! What to run: the fstests configuration (sections with FSTYP,
//! MKFS_OPTIONS, MOUNT_OPTIONS and any other variable, or the user's own
//! `local.config`), the devices, and the selection of tests. The plan
//! ([`Plan`]) is the list of tests per section, fixed on the host before
//! anything boots; it names the trials.
//!
//! A bootrig fstests config file (JSON):
//!
//! ```json
//! {
//!   "sections": [
//!     {"name": "ext4_4k", "FSTYP": "ext4", "MKFS_OPTIONS": "-b 4096"},
//!     {"name": "ext4_1k", "FSTYP": "ext4", "MKFS_OPTIONS": "-b 1024",
//!      "MOUNT_OPTIONS": "-o data=journal"}
//!   ],
//!   "devices": {"size": "10G", "scratch_pool": 0, "logwrites": false}
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fstests::tree::FstestsTree;
use crate::{Error, Result};

/// Where the guest mounts the test and scratch filesystems.
pub const TEST_DIR: &str = "/mnt/test";
/// See [`TEST_DIR`].
pub const SCRATCH_MNT: &str = "/mnt/scratch";

/// One `[section]` of the generated `local.config`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Section {
    /// The section name (`ext4_4k`): letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// `FSTYP`.
    #[serde(rename = "FSTYP")]
    pub fstyp: String,
    /// The section's own devices (test, scratch or pool, logwrites),
    /// attached next to the run's; without them it uses the run's.
    #[serde(default)]
    pub devices: Option<Devices>,
    /// Every other variable (`MKFS_OPTIONS`, `MOUNT_OPTIONS`, ...), exported
    /// as given.
    #[serde(flatten)]
    pub vars: BTreeMap<String, String>,
}

impl Section {
    /// A section `name` of type `fstyp` with no other variables.
    pub fn new(name: impl Into<String>, fstyp: impl Into<String>) -> Section {
        Section {
            name: name.into(),
            fstyp: fstyp.into(),
            devices: None,
            vars: BTreeMap::new(),
        }
    }

    /// Gives the section its own devices.
    pub fn with_devices(mut self, devices: Devices) -> Section {
        self.devices = Some(devices);
        self
    }

    /// Sets a variable (`MKFS_OPTIONS`, ...).
    pub fn var(mut self, name: &str, value: &str) -> Section {
        self.vars.insert(name.into(), value.into());
        self
    }
}

/// The devices each VM gets, as sparse files made per run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// Size of each device in bytes (JSON: `"10G"`).
    #[serde(deserialize_with = "size", default = "default_size")]
    pub size: u64,
    /// `SCRATCH_DEV_POOL` of this many devices instead of one
    /// `SCRATCH_DEV` (0: a single scratch device).
    #[serde(default)]
    pub scratch_pool: usize,
    /// A `LOGWRITES_DEV` too.
    #[serde(default)]
    pub logwrites: bool,
    /// Where the sparse files go (default: the run folder; `/dev/shm` puts
    /// them on tmpfs).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Existing host files or block devices instead of sparse files, in
    /// order: test, scratch (or each of the pool), logwrites. Used as they
    /// are, never deleted.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Allows block devices in `paths` (fstests overwrites them); even
    /// then one that holds the host's root, is mounted or in use is
    /// refused.
    #[serde(default)]
    pub allow_block_devices: bool,
    /// The guest's I/O scheduler for the test and scratch devices
    /// (`none`, `mq-deadline`, `bfq`, `kyber`); the kernel's default when
    /// unset.
    #[serde(default)]
    pub scheduler: Option<String>,
}

fn default_size() -> u64 {
    10 << 30
}

fn size<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    crate::parse_size(&s).map_err(serde::de::Error::custom)
}

impl Devices {
    /// Checks the values the guest's script uses, naming the field.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = &self.scheduler {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(Error::Config {
                    what: "devices.scheduler".into(),
                    message: format!("{s:?} is not an I/O scheduler name (e.g. mq-deadline, none)"),
                });
            }
        }
        if !self.paths.is_empty() {
            let needed = 1 + self.scratch_pool.max(1) + usize::from(self.logwrites);
            if self.paths.len() != needed {
                return Err(Error::Config {
                    what: "devices.paths".into(),
                    message: format!(
                        "{} paths given, {needed} needed (test, {} scratch{})",
                        self.paths.len(),
                        self.scratch_pool.max(1),
                        if self.logwrites { ", logwrites" } else { "" }
                    ),
                });
            }
            for p in &self.paths {
                crate::fstests::hostdev::check(p, self.allow_block_devices)?;
            }
        }
        if self.size < (256 << 20) {
            return Err(Error::Config {
                what: "devices.size".into(),
                message: format!(
                    "{} bytes is too small for fstests (at least 256M)",
                    self.size
                ),
            });
        }
        Ok(())
    }
}

impl Default for Devices {
    fn default() -> Devices {
        Devices {
            size: default_size(),
            scratch_pool: 0,
            logwrites: false,
            dir: None,
            paths: Vec::new(),
            allow_block_devices: false,
            scheduler: None,
        }
    }
}

/// One set of guest devices: the run's (key `d`) or a section's own (key
/// `s<N>`, N its index among the sections). The key names its virtio
/// serials (`fst-test`, `fst-s1-test`), its `local.config` placeholders
/// (`@TEST_DEV@`, `@S1_TEST_DEV@`) and its shell variables in the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSet {
    /// `d` or `s<N>`.
    pub key: String,
    /// The devices.
    pub devices: Devices,
}

/// The key of the run's own device set.
pub const RUN_DEVICES: &str = "d";

impl DeviceSet {
    /// The virtio serial of `role` (`test`, `scratch1`, `logwrites`).
    pub fn serial(&self, role: &str) -> String {
        match self.key.as_str() {
            RUN_DEVICES => format!("fst-{role}"),
            k => format!("fst-{k}-{role}"),
        }
    }

    /// The `local.config` placeholder of `var` (`TEST_DEV`).
    pub fn placeholder(&self, var: &str) -> String {
        match self.key.as_str() {
            RUN_DEVICES => format!("@{var}@"),
            k => format!("@{}_{var}@", k.to_uppercase()),
        }
    }

    /// The serials in attach order: test, scratch (each of the pool),
    /// logwrites.
    pub fn serials(&self) -> Vec<String> {
        let mut v = vec![self.serial("test")];
        v.extend(
            (1..=self.devices.scratch_pool.max(1)).map(|i| self.serial(&format!("scratch{i}"))),
        );
        if self.devices.logwrites {
            v.push(self.serial("logwrites"));
        }
        v
    }
}

/// The device sets every VM of a run gets: the run's, then each section's
/// own.
pub fn device_sets(layout: &Layout, devices: &Devices) -> Vec<DeviceSet> {
    let mut sets = vec![DeviceSet {
        key: RUN_DEVICES.into(),
        devices: devices.clone(),
    }];
    if let Layout::Sections(sections) = layout {
        for (i, s) in sections.iter().enumerate() {
            if let Some(d) = &s.devices {
                sets.push(DeviceSet {
                    key: format!("s{i}"),
                    devices: d.clone(),
                });
            }
        }
    }
    sets
}

/// The key of the device set section `name` uses.
pub fn device_key(layout: &Layout, name: Option<&str>) -> String {
    match layout {
        Layout::Sections(sections) => sections
            .iter()
            .position(|s| Some(s.name.as_str()) == name && s.devices.is_some())
            .map_or_else(|| RUN_DEVICES.to_string(), |i| format!("s{i}")),
        Layout::LocalConfig(_) => RUN_DEVICES.into(),
    }
}

/// Checks the run's devices and every section's own.
pub fn validate_devices(layout: &Layout, devices: &Devices) -> Result<()> {
    devices.validate()?;
    if let Layout::Sections(sections) = layout {
        for s in sections {
            if let Some(d) = &s.devices {
                d.validate().map_err(|e| Error::Config {
                    what: format!("section {}", s.name),
                    message: e.to_string(),
                })?;
                if d.scheduler.is_some() {
                    return Err(Error::Config {
                        what: format!("section {}: devices.scheduler", s.name),
                        message: "the I/O scheduler is the run's: set it in the top-level devices"
                            .into(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The fstests configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Sections generated into `local.config`.
    Sections(Vec<Section>),
    /// The user's own `local.config`, used as it is (the placeholders
    /// `@TEST_DEV@`, `@SCRATCH_DEV@`, `@SCRATCH_DEV_POOL@`,
    /// `@LOGWRITES_DEV@` are replaced by the guest's device paths).
    LocalConfig(PathBuf),
}

/// A bootrig fstests config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    sections: Vec<Section>,
    #[serde(default)]
    devices: Devices,
}

/// Reads a bootrig fstests config file (JSON): its sections and devices.
pub fn load_config(path: &Path) -> Result<(Vec<Section>, Devices)> {
    let bad = |message: String| Error::Config {
        what: format!("fstests config {}", path.display()),
        message,
    };
    let text = fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let file: ConfigFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if file.sections.is_empty() {
        return Err(bad("`sections` is empty: give at least one".into()));
    }
    for s in &file.sections {
        check_section(s).map_err(bad)?;
    }
    Ok((file.sections, file.devices))
}

fn check_section(s: &Section) -> std::result::Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    if s.name.is_empty() || !s.name.chars().all(ok) {
        return Err(format!(
            "section name {:?}: use letters, digits, `_`, `-` or `.`",
            s.name
        ));
    }
    if s.fstyp.is_empty() || !s.fstyp.chars().all(ok) {
        return Err(format!(
            "section {}: FSTYP {:?} is not a filesystem type",
            s.name, s.fstyp
        ));
    }
    for k in s.vars.keys() {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("section {}: {k:?} is not a variable name", s.name));
        }
    }
    if let Some(d) = &s.devices {
        d.validate()
            .map_err(|e| format!("section {}: {e}", s.name))?;
    }
    Ok(())
}

/// Which tests to run, as `check` takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Test names (`generic/001`).
    pub tests: Vec<String>,
    /// Groups (`-g quick`, `xfs/quick`).
    pub groups: Vec<String>,
    /// Excluded groups (`-x`).
    pub exclude_groups: Vec<String>,
    /// Exclude files (`-E`): one test a line, `#` comments.
    pub exclude_files: Vec<PathBuf>,
    /// Only these sections (`-s`); all when empty.
    pub sections: Vec<String>,
    /// `-i N`: run every test N times (default 1).
    pub iterations: u32,
    /// `--exact-order`: run the named tests in the order given (then the
    /// groups' tests), instead of check's sorted order.
    pub exact_order: bool,
}

/// The tests of one section, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSection {
    /// The section (`None` for a `local.config` without sections).
    pub name: Option<String>,
    /// Its FSTYP.
    pub fstyp: String,
    /// Its tests.
    pub tests: Vec<String>,
}

/// What runs: tests per section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The sections in order.
    pub sections: Vec<PlanSection>,
}

impl Plan {
    /// Every (section, test), in run order.
    pub fn pairs(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.sections
            .iter()
            .flat_map(|s| s.tests.iter().map(|t| (s.name.as_deref(), t.as_str())))
    }

    /// Fixes the plan: the selection applied to each section (groups
    /// expanded from the tree's `group.list` files, as `check` does).
    pub fn new(layout: &Layout, selection: &Selection, tree: Option<&FstestsTree>) -> Result<Plan> {
        let sections: Vec<(Option<String>, String)> = match layout {
            Layout::Sections(s) => s
                .iter()
                .map(|s| (Some(s.name.clone()), s.fstyp.clone()))
                .collect(),
            Layout::LocalConfig(p) => sections_of_local_config(p)?,
        };
        let known: Vec<&str> = sections.iter().filter_map(|s| s.0.as_deref()).collect();
        for s in &selection.sections {
            if !known.contains(&s.as_str()) {
                return Err(Error::Config {
                    what: "-s".into(),
                    message: format!("no section {s:?} (sections: {})", known.join(", ")),
                });
            }
        }
        let excluded = excluded_tests(selection, tree, &sections)?;
        let mut out = Vec::new();
        for (name, fstyp) in sections {
            if !selection.sections.is_empty()
                && !name
                    .as_ref()
                    .is_some_and(|n| selection.sections.contains(n))
            {
                continue;
            }
            let mut tests: BTreeSet<String> = selection.tests.iter().cloned().collect();
            if !selection.groups.is_empty() {
                let tree = tree.ok_or_else(|| Error::Config {
                    what: "-g".into(),
                    message: "groups need a built fstests tree to expand".into(),
                })?;
                tests.extend(tree.group_tests(&selection.groups, &fstyp)?);
                tests = tests
                    .difference(&tree.group_tests(&selection.exclude_groups, &fstyp)?)
                    .cloned()
                    .collect();
            }
            // check sorts its list unless told --exact-order; the plan
            // follows the same order, so trials list in run order.
            let mut ordered: Vec<String> = Vec::new();
            if selection.exact_order {
                for t in selection.tests.iter().chain(tests.iter()) {
                    if !ordered.contains(t) {
                        ordered.push(t.clone());
                    }
                }
            } else {
                ordered.extend(tests);
            }
            let tests: Vec<String> = ordered
                .into_iter()
                .filter(|t| !excluded.contains(t))
                .collect();
            out.push(PlanSection { name, fstyp, tests });
        }
        for t in &selection.tests {
            let valid = t
                .split_once('/')
                .is_some_and(|(d, n)| !d.is_empty() && !n.is_empty());
            if !valid {
                return Err(Error::Config {
                    what: "test name".into(),
                    message: format!("{t:?}: expected <dir>/<number>, e.g. generic/001"),
                });
            }
            if let Some(tree) = tree {
                if !tree.has_test(t) {
                    return Err(Error::Config {
                        what: "test name".into(),
                        message: format!(
                            "{t}: no tests/{t} listed in its group.list in {}",
                            tree.dir.display()
                        ),
                    });
                }
            }
        }
        if out.iter().all(|s| s.tests.is_empty()) {
            return Err(Error::Config {
                what: "fstests selection".into(),
                message: "selects no test: name tests or groups (-g quick)".into(),
            });
        }
        Ok(Plan { sections: out })
    }
}

fn excluded_tests(
    selection: &Selection,
    _tree: Option<&FstestsTree>,
    _sections: &[(Option<String>, String)],
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for f in &selection.exclude_files {
        let text = fs::read_to_string(f)
            .map_err(|e| Error::io(format!("reading -E {}", f.display()), e))?;
        for line in text.lines() {
            let t = line.split('#').next().unwrap_or("").trim();
            if !t.is_empty() {
                out.insert(t.to_string());
            }
        }
    }
    Ok(out)
}

/// The `[sections]` of a `local.config` with their FSTYP, or one unnamed
/// section when it has none.
fn sections_of_local_config(path: &Path) -> Result<Vec<(Option<String>, String)>> {
    let text = fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    let mut global_fstyp = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let inherited = out.last().map_or(global_fstyp.clone(), |s| s.1.clone());
            out.push((Some(name.trim().to_string()), inherited));
        } else if let Some(v) = line.trim_start_matches("export ").strip_prefix("FSTYP=") {
            let v = v.trim_matches(|c| c == '"' || c == '\'').to_string();
            match out.last_mut() {
                Some(s) => s.1 = v,
                None => global_fstyp = v,
            }
        }
    }
    if out.is_empty() {
        out.push((None, global_fstyp));
    }
    Ok(out)
}

/// The `local.config` for `sections`, with device placeholders the guest
/// replaces (`@TEST_DEV@`, ...).
pub fn local_config(sections: &[Section], devices: &Devices) -> String {
    let mut out =
        String::from("# Generated by bootrig; @..@ are replaced by the guest's devices.\n");
    let layout = Layout::Sections(sections.to_vec());
    let sets = device_sets(&layout, devices);
    for s in sections {
        out.push_str(&format!("\n[{}]\n", s.name));
        let key = device_key(&layout, Some(&s.name));
        let set = sets
            .iter()
            .find(|d| d.key == key)
            .expect("every device key has its set");
        let devices = &set.devices;
        let mut vars: BTreeMap<&str, String> = BTreeMap::new();
        vars.insert("FSTYP", s.fstyp.clone());
        vars.insert("TEST_DEV", set.placeholder("TEST_DEV"));
        vars.insert("TEST_DIR", TEST_DIR.into());
        vars.insert("SCRATCH_MNT", SCRATCH_MNT.into());
        // Sections inherit what an earlier one exported: a pool and a
        // single scratch device exclude each other, so clear the other.
        if devices.scratch_pool > 0 {
            vars.insert("SCRATCH_DEV_POOL", set.placeholder("SCRATCH_DEV_POOL"));
            vars.insert("SCRATCH_DEV", String::new());
        } else {
            vars.insert("SCRATCH_DEV", set.placeholder("SCRATCH_DEV"));
            vars.insert("SCRATCH_DEV_POOL", String::new());
        }
        vars.insert(
            "LOGWRITES_DEV",
            if devices.logwrites {
                set.placeholder("LOGWRITES_DEV")
            } else {
                String::new()
            },
        );
        // Sections inherit what an earlier one set: say every option.
        vars.insert("MKFS_OPTIONS", String::new());
        vars.insert("MOUNT_OPTIONS", String::new());
        vars.insert("RECREATE_TEST_DEV", "true".into());
        for (k, v) in &s.vars {
            vars.insert(k, v.clone());
        }
        for (k, v) in vars {
            out.push_str(&format!("export {k}=\"{}\"\n", v.replace('"', "\\\"")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_loads_and_errors_name_the_field() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fs.json");
        fs::write(
            &p,
            r#"{"sections": [{"name": "ext4_1k", "FSTYP": "ext4", "MKFS_OPTIONS": "-b 1024"}],
                "devices": {"size": "2G", "scratch_pool": 3}}"#,
        )
        .unwrap();
        let (sections, devices) = load_config(&p).unwrap();
        assert_eq!(sections[0].vars["MKFS_OPTIONS"], "-b 1024");
        assert_eq!(devices.size, 2 << 30);
        let text = local_config(&sections, &devices);
        assert!(text.contains("[ext4_1k]\n"), "{text}");
        assert!(text.contains("export MKFS_OPTIONS=\"-b 1024\""), "{text}");
        assert!(
            text.contains("export SCRATCH_DEV_POOL=\"@SCRATCH_DEV_POOL@\""),
            "{text}"
        );
        assert!(text.contains("export SCRATCH_DEV=\"\""), "{text}");

        // A section's own devices; a bad one is named with its section.
        fs::write(
            &p,
            r#"{"sections": [{"name": "btrfs", "FSTYP": "btrfs", "MKFS_OPTIONS": "",
                              "devices": {"size": "1G", "scratch_pool": 4}}]}"#,
        )
        .unwrap();
        let (sections, _) = load_config(&p).unwrap();
        assert_eq!(sections[0].devices.as_ref().unwrap().scratch_pool, 4);
        assert!(!sections[0].vars.contains_key("devices"));
        fs::write(
            &p,
            r#"{"sections": [{"name": "btrfs", "FSTYP": "btrfs", "devices": {"size": "1M"}}]}"#,
        )
        .unwrap();
        let err = load_config(&p).unwrap_err().to_string();
        assert!(
            err.contains("fs.json") && err.contains("section btrfs") && err.contains("256M"),
            "{err}"
        );

        fs::write(&p, r#"{"sections": [{"name": "a b", "FSTYP": "ext4"}]}"#).unwrap();
        let err = load_config(&p).unwrap_err().to_string();
        assert!(err.contains("fs.json") && err.contains("\"a b\""), "{err}");
        fs::write(&p, r#"{"sections": [], "devcies": {}}"#).unwrap();
        let err = load_config(&p).unwrap_err().to_string();
        assert!(err.contains("devcies"), "{err}");
    }

    #[test]
    fn plans_follow_sections_and_exclusions() {
        let d = tempfile::tempdir().unwrap();
        let ex = d.path().join("exclude");
        fs::write(&ex, "generic/002 # slow\n").unwrap();
        let layout = Layout::Sections(vec![Section::new("a", "ext4"), Section::new("b", "xfs")]);
        let sel = Selection {
            tests: vec!["generic/001".into(), "generic/002".into()],
            exclude_files: vec![ex],
            sections: vec!["b".into()],
            ..Selection::default()
        };
        let plan = Plan::new(&layout, &sel, None).unwrap();
        let pairs: Vec<_> = plan.pairs().collect();
        assert_eq!(pairs, [(Some("b"), "generic/001")]);
        let bad = Selection {
            tests: vec!["001".into()],
            ..Selection::default()
        };
        let err = Plan::new(&layout, &bad, None).unwrap_err().to_string();
        assert!(err.contains("\"001\""), "{err}");
    }

    #[test]
    fn local_config_sections_are_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("local.config");
        fs::write(&p, "export FSTYP=ext4\n[one]\n[two]\nFSTYP=xfs\n").unwrap();
        let s = sections_of_local_config(&p).unwrap();
        assert_eq!(
            s,
            [
                (Some("one".into()), "ext4".into()),
                (Some("two".into()), "xfs".into())
            ]
        );
    }
}
