//! The guest side of a run: the files put on the results disk before it
//! boots (the driver script, `local.config`, one test list per section),
//! and the kernel-log markers the host watches on the console.
//!
//! The driver runs `check` once per section, in the background, with its
//! output in files on the results disk (never on the console: kernel
//! messages interleave there). The host follows progress from kernel-log
//! lines alone: fstests' own `run fstests <test> at <date>` at each test
//! start, and the driver's section and end markers, written to
//! `/dev/kmsg` so they reach the console even while the shell is busy.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::fstests::config::{DeviceSet, PlanSection, RUN_DEVICES};
use crate::{Error, Result};

/// Where the guest mounts the fstests tree (read-only).
pub const TREE_MNT: &str = "/mnt/fstests";
/// Where the guest mounts the results disk.
pub const RESULTS_MNT: &str = "/mnt/results";
/// The folder on the results disk fstests writes into (`RESULT_BASE`).
pub const RESULTS_SUBDIR: &str = "/results";
/// The folder on the results disk with the driver's and `check`'s output.
pub const LOGS_SUBDIR: &str = "/logs";

/// Virtio serial numbers of the disks (the guest finds them under
/// `/dev/disk/by-id/virtio-<serial>`).
pub mod serial {
    /// The fstests tree.
    pub const TREE: &str = "fst-tree";
    /// The results disk.
    pub const RESULTS: &str = "fst-results";
    // The test and scratch devices' serials come from their device set
    // (`DeviceSet::serial`: `fst-test`, `fst-s1-scratch2`, ...).
}

/// The marker prefix of the driver's kernel-log lines.
pub const MARK: &str = "bootrig-fstests:";

/// The regexes the host waits for on the console, in this order: a test
/// starts, a section begins, a section ends, the run ends.
pub fn marker_patterns() -> [&'static str; 4] {
    [
        r"run fstests (\S+) at ",
        r"bootrig-fstests: section (\S+) begin",
        r"bootrig-fstests: section (\S+) end rc=(\d+)",
        r"bootrig-fstests: all done",
    ]
}

/// [`marker_patterns`], compiled once.
pub fn batch_markers() -> &'static [regex::bytes::Regex] {
    static RES: std::sync::OnceLock<Vec<regex::bytes::Regex>> = std::sync::OnceLock::new();
    RES.get_or_init(|| compiled(&marker_patterns()))
}

/// [`queue_patterns`], compiled once.
pub fn queue_markers() -> &'static [regex::bytes::Regex] {
    static RES: std::sync::OnceLock<Vec<regex::bytes::Regex>> = std::sync::OnceLock::new();
    RES.get_or_init(|| compiled(&queue_patterns()))
}

fn compiled(patterns: &[&str]) -> Vec<regex::bytes::Regex> {
    patterns
        .iter()
        .map(|p| regex::bytes::Regex::new(p).expect("marker patterns are valid"))
        .collect()
}

/// What goes on the results disk before the VM boots.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// How the driver takes its tests.
    pub mode: Mode,
    /// `local.config` with its device placeholders left for the guest.
    pub local_config: &'a str,
    /// The sections (and, in batch mode, their tests) in run order.
    pub sections: &'a [PlanSection],
    /// The device set key of each section (see [`DeviceSet`]).
    pub keys: &'a [String],
    /// Every device set attached to the VM.
    pub sets: &'a [DeviceSet],
    /// `check -i N`.
    pub iterations: u32,
    /// `check --exact-order`.
    pub exact_order: bool,
    /// The guest's I/O scheduler for every test and scratch device.
    pub scheduler: Option<&'a str>,
}

/// Writes the driver, `local.config` and the test lists into `dir` (the
/// results disk's content).
pub fn write_inputs(dir: &Path, inputs: &Inputs<'_>) -> Result<()> {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, text).map_err(|e| Error::io(format!("writing {}", p.display()), e))
    };
    w("local.config.in", inputs.local_config)?;
    let mut plan = String::new();
    for (i, s) in inputs.sections.iter().enumerate() {
        let label = s.name.as_deref().unwrap_or("-");
        let key = inputs.keys.get(i).map_or(RUN_DEVICES, String::as_str);
        writeln!(plan, "{i} {label} {} {key}", s.fstyp).ok();
        w(&format!("tests.{i}"), &(s.tests.join("\n") + "\n"))?;
    }
    w("plan", &plan)?;
    w("run.sh", &script(inputs))?;
    for sub in [RESULTS_SUBDIR, LOGS_SUBDIR] {
        fs::create_dir_all(dir.join(sub.trim_start_matches('/')))
            .map_err(|e| Error::io(format!("creating {sub} in {}", dir.display()), e))?;
    }
    Ok(())
}

/// How the driver takes its tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `check` once per planned section, with the section's test list
    /// (`plan`, `tests.N` on the results disk).
    Batch,
    /// One test at a time from a FIFO the host writes jobs into
    /// ([`job_command`]), each with its own `RESULT_BASE`
    /// (`results/job-N`), until the host sends `end`: the VMs of a sharded
    /// run share one queue of tests on the host.
    Queue,
}

/// The FIFO a [`Mode::Queue`] driver reads its jobs from.
pub const QUEUE_FIFO: &str = "/run/bootrig-fstests.queue";

/// The folder (under the results disk's `results/`) of job `n` of a
/// [`Mode::Queue`] driver.
pub fn job_dir(n: usize) -> String {
    format!("job-{n}")
}

/// The regexes a [`Mode::Queue`] host waits for: a test starts, a job
/// ends, the driver ends.
pub fn queue_patterns() -> [&'static str; 3] {
    [
        r"run fstests (\S+) at ",
        r"bootrig-fstests: job (\d+) end rc=(\d+)",
        r"bootrig-fstests: all done",
    ]
}

/// One test handed to a [`Mode::Queue`] driver.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// The job's number (its `results/job-N`).
    pub number: usize,
    /// The section, if the run has sections.
    pub section: Option<&'a str>,
    /// The section's filesystem type.
    pub fstyp: &'a str,
    /// The key of the section's device set.
    pub devices: &'a str,
    /// `generic/001`.
    pub test: &'a str,
}

/// The command that hands `job` to a [`Mode::Queue`] driver; `end` when
/// `job` is `None`.
pub fn job_command(job: Option<Job<'_>>) -> String {
    let line = match job {
        Some(j) => format!(
            "{} {} {} {} {}",
            j.number,
            j.section.unwrap_or("-"),
            j.fstyp,
            j.devices,
            j.test
        ),
        None => "end".to_string(),
    };
    format!("echo '{line}' > {QUEUE_FIFO}")
}

/// The driver script. Devices are resolved by their virtio serial; each
/// device set gets shell variables named after its key (`TEST_DEV_d`,
/// `SCRATCH_POOL_s1`, ...).
fn script(inputs: &Inputs<'_>) -> String {
    let mut options = if inputs.iterations > 1 {
        format!("-i {}", inputs.iterations)
    } else {
        String::new()
    };
    if inputs.exact_order {
        options.push_str(" --exact-order");
    }
    let mut devs = String::new();
    let mut subst = Vec::new();
    let mut blocks = Vec::new();
    for set in inputs.sets {
        let k = &set.key;
        let pool: Vec<String> = (1..=set.devices.scratch_pool.max(1))
            .map(|i| format!("$(dev {})", set.serial(&format!("scratch{i}"))))
            .collect();
        writeln!(devs, "TEST_DEV_{k}=$(dev {})", set.serial("test")).ok();
        writeln!(devs, "SCRATCH_POOL_{k}=\"{}\"", pool.join(" ")).ok();
        writeln!(devs, "LOGWRITES_DEV_{k}=$(dev {})", set.serial("logwrites")).ok();
        subst.push(format!(
            "-e \"s|{}|$TEST_DEV_{k}|g\"",
            set.placeholder("TEST_DEV")
        ));
        subst.push(format!(
            "-e \"s|{}|${{SCRATCH_POOL_{k}%% *}}|g\"",
            set.placeholder("SCRATCH_DEV")
        ));
        subst.push(format!(
            "-e \"s|{}|$SCRATCH_POOL_{k}|g\"",
            set.placeholder("SCRATCH_DEV_POOL")
        ));
        subst.push(format!(
            "-e \"s|{}|$LOGWRITES_DEV_{k}|g\"",
            set.placeholder("LOGWRITES_DEV")
        ));
        blocks.push(format!("$TEST_DEV_{k} $SCRATCH_POOL_{k}"));
    }
    let prelude = format!(
        r#"#!/bin/bash
# Generated by bootrig: runs fstests' check ({mode:?} mode).
R={results}
mark() {{ echo "{mark} $*" > /dev/kmsg; }}
dev() {{ readlink -f /dev/disk/by-id/virtio-$1; }}
{devs}for d in {scheduler}; do
    for b in {blocks}; do
        echo $d > /sys/block/${{b##*/}}/queue/scheduler || echo "bootrig: no I/O scheduler $d for $b"
    done
done
sed {subst} \
    $R/local.config.in > $R/local.config
export HOST_OPTIONS=$R/local.config RESULT_BASE=$R{sub} RECREATE_TEST_DEV=true
mkdir -p {test_dir} {scratch_mnt} $RESULT_BASE
cd {tree}
# check mounts TEST_DEV before it recreates it: give it a filesystem.
# mkfs_test FSTYP KEY: the test device of device set KEY.
mkfs_test() {{
    local dev
    eval dev=\$TEST_DEV_$2
    case $1 in ext2|ext3|ext4) force=-F;; xfs|btrfs) force=-f;; *) force=;; esac
    mkfs -t $1 $force $dev >> $R{logs}/mkfs.out 2>&1
}}
"#,
        mode = inputs.mode,
        results = RESULTS_MNT,
        mark = MARK,
        scheduler = inputs.scheduler.unwrap_or(""),
        blocks = blocks.join(" "),
        subst = subst.join(" "),
        sub = RESULTS_SUBDIR,
        logs = LOGS_SUBDIR,
        test_dir = crate::fstests::config::TEST_DIR,
        scratch_mnt = crate::fstests::config::SCRATCH_MNT,
        tree = TREE_MNT,
    );
    let body = match inputs.mode {
        Mode::Batch => format!(
            r#"while read -r i section fstyp key; do
    mark section $section begin
    mkfs_test $fstyp $key
    args=""
    [ "$section" != "-" ] && args="-s $section"
    ./check -R xunit {options} $args $(cat $R/tests.$i) > $R{logs}/check.$i.out 2>&1
    rc=$?
    sync
    mark section $section end rc=$rc
done < $R/plan
"#,
            logs = LOGS_SUBDIR,
        ),
        Mode::Queue => format!(
            r#"last=
while read -r job section fstyp key test < {fifo}; do
    [ "$job" = end ] && break
    [ "$last" = "$section $fstyp $key" ] || mkfs_test $fstyp $key
    last="$section $fstyp $key"
    export RESULT_BASE=$R{sub}/{job_prefix}$job
    mkdir -p $RESULT_BASE
    args=""
    [ "$section" != "-" ] && args="-s $section"
    ./check -R xunit {options} $args $test > $R{logs}/check.job-$job.out 2>&1
    rc=$?
    sync
    mark job $job end rc=$rc
done
"#,
            fifo = QUEUE_FIFO,
            sub = RESULTS_SUBDIR,
            logs = LOGS_SUBDIR,
            job_prefix = job_dir(0).trim_end_matches('0'),
        ),
    };
    format!("{prelude}{body}sync\nmark all done\n")
}

/// The command the host types to start the driver in the background.
pub fn start_command(mode: Mode) -> String {
    let fifo = match mode {
        Mode::Batch => String::new(),
        // Made before the driver starts, so the first job cannot race it.
        Mode::Queue => format!("rm -f {QUEUE_FIFO} && mkfifo {QUEUE_FIFO} && "),
    };
    format!(
        "mount -o ro,noload /dev/disk/by-id/virtio-{tree} {TREE_MNT} && mount -o sync /dev/disk/by-id/virtio-{res} {RESULTS_MNT} && {fifo}(setsid bash {RESULTS_MNT}/run.sh </dev/null >{RESULTS_MNT}{LOGS_SUBDIR}/run.out 2>&1 &)",
        tree = serial::TREE,
        res = serial::RESULTS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fstests::config::{device_key, device_sets, local_config, Devices, Layout, Section};

    fn inputs<'a>(
        mode: Mode,
        sections: &'a [PlanSection],
        keys: &'a [String],
        sets: &'a [DeviceSet],
    ) -> Inputs<'a> {
        Inputs {
            mode,
            local_config: "cfg",
            sections,
            keys,
            sets,
            iterations: 1,
            exact_order: false,
            scheduler: None,
        }
    }

    #[test]
    fn inputs_name_every_section_and_test() {
        let d = tempfile::tempdir().unwrap();
        let sections = vec![
            PlanSection {
                name: Some("ext4_4k".into()),
                fstyp: "ext4".into(),
                tests: vec!["generic/001".into(), "xfs/001".into()],
            },
            PlanSection {
                name: None,
                fstyp: "ext4".into(),
                tests: vec!["generic/002".into()],
            },
        ];
        let sets = device_sets(
            &Layout::Sections(vec![]),
            &Devices {
                scratch_pool: 3,
                ..Devices::default()
            },
        );
        let keys = vec![RUN_DEVICES.to_string(); 2];
        let i = Inputs {
            iterations: 2,
            exact_order: true,
            scheduler: Some("mq-deadline"),
            ..inputs(Mode::Batch, &sections, &keys, &sets)
        };
        write_inputs(d.path(), &i).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("plan")).unwrap(),
            "0 ext4_4k ext4 d\n1 - ext4 d\n"
        );
        assert_eq!(
            fs::read_to_string(d.path().join("tests.0")).unwrap(),
            "generic/001\nxfs/001\n"
        );
        let script = fs::read_to_string(d.path().join("run.sh")).unwrap();
        assert!(script.contains("-i 2 --exact-order"), "{script}");
        assert!(script.contains("$(dev fst-scratch3)"), "{script}");
        assert!(script.contains("for d in mq-deadline; do"), "{script}");
        assert!(d.path().join("results").is_dir());
        // The markers the script writes match the patterns the host waits for.
        let re = regex::Regex::new(marker_patterns()[2]).unwrap();
        assert!(re.is_match("bootrig-fstests: section ext4_4k end rc=1"));
        assert!(!start_command(Mode::Batch).contains("bootrig-fstests:"));
        assert!(!start_command(Mode::Batch).contains("mkfifo"));
        assert!(start_command(Mode::Queue).contains("mkfifo"));
    }

    #[test]
    fn a_section_with_its_own_devices_gets_its_own_disks_and_placeholders() {
        let sections = vec![
            Section::new("ext4", "ext4"),
            Section::new("btrfs", "btrfs").with_devices(Devices {
                scratch_pool: 4,
                size: 1 << 30,
                ..Devices::default()
            }),
        ];
        let layout = Layout::Sections(sections.clone());
        let sets = device_sets(&layout, &Devices::default());
        assert_eq!(sets.len(), 2);
        assert_eq!(device_key(&layout, Some("ext4")), "d");
        assert_eq!(device_key(&layout, Some("btrfs")), "s1");
        assert_eq!(
            sets[1].serials(),
            [
                "fst-s1-test",
                "fst-s1-scratch1",
                "fst-s1-scratch2",
                "fst-s1-scratch3",
                "fst-s1-scratch4"
            ]
        );
        let config = local_config(&sections, &Devices::default());
        let btrfs = &config[config.find("[btrfs]").unwrap()..];
        assert!(
            btrfs.contains("export TEST_DEV=\"@S1_TEST_DEV@\""),
            "{config}"
        );
        assert!(
            btrfs.contains("export SCRATCH_DEV_POOL=\"@S1_SCRATCH_DEV_POOL@\""),
            "{config}"
        );
        assert!(btrfs.contains("export SCRATCH_DEV=\"\""), "{config}");
        let ext4 = &config[config.find("[ext4]").unwrap()..config.find("[btrfs]").unwrap()];
        assert!(ext4.contains("export TEST_DEV=\"@TEST_DEV@\""), "{config}");
        assert!(ext4.contains("export SCRATCH_DEV_POOL=\"\""), "{config}");

        let d = tempfile::tempdir().unwrap();
        let plan: Vec<PlanSection> = sections
            .iter()
            .map(|s| PlanSection {
                name: Some(s.name.clone()),
                fstyp: s.fstyp.clone(),
                tests: vec!["generic/001".into()],
            })
            .collect();
        let keys = vec!["d".to_string(), "s1".to_string()];
        write_inputs(d.path(), &inputs(Mode::Batch, &plan, &keys, &sets)).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("plan")).unwrap(),
            "0 ext4 ext4 d\n1 btrfs btrfs s1\n"
        );
        let script = fs::read_to_string(d.path().join("run.sh")).unwrap();
        for want in [
            "TEST_DEV_s1=$(dev fst-s1-test)",
            "$(dev fst-s1-scratch4)",
            "s|@S1_SCRATCH_DEV_POOL@|$SCRATCH_POOL_s1|g",
            "s|@TEST_DEV@|$TEST_DEV_d|g",
            "mkfs_test $fstyp $key",
        ] {
            assert!(script.contains(want), "{want} not in:\n{script}");
        }
        // The generated shell is valid.
        let st = std::process::Command::new("bash")
            .arg("-n")
            .arg(d.path().join("run.sh"))
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn queue_jobs_are_lines_the_driver_reads() {
        let d = tempfile::tempdir().unwrap();
        let sections = vec![PlanSection {
            name: None,
            fstyp: "ext4".into(),
            tests: vec![],
        }];
        let sets = device_sets(&Layout::Sections(vec![]), &Devices::default());
        let keys = vec![RUN_DEVICES.to_string()];
        write_inputs(d.path(), &inputs(Mode::Queue, &sections, &keys, &sets)).unwrap();
        let script = fs::read_to_string(d.path().join("run.sh")).unwrap();
        assert!(script.contains(&format!("< {QUEUE_FIFO}; do")), "{script}");
        assert!(
            script.contains("RESULT_BASE=$R/results/job-$job"),
            "{script}"
        );
        assert!(script.ends_with("mark all done\n"), "{script}");
        let job = Job {
            number: 3,
            section: Some("ext4_4k"),
            fstyp: "ext4",
            devices: "s0",
            test: "generic/001",
        };
        assert_eq!(
            job_command(Some(job)),
            format!("echo '3 ext4_4k ext4 s0 generic/001' > {QUEUE_FIFO}")
        );
        let job = Job {
            number: 0,
            section: None,
            fstyp: "xfs",
            devices: "d",
            test: "xfs/001",
        };
        assert_eq!(
            job_command(Some(job)),
            format!("echo '0 - xfs d xfs/001' > {QUEUE_FIFO}")
        );
        assert_eq!(job_command(None), format!("echo 'end' > {QUEUE_FIFO}"));
        let re = regex::Regex::new(queue_patterns()[1]).unwrap();
        let c = re.captures("bootrig-fstests: job 12 end rc=1").unwrap();
        assert_eq!((&c[1], &c[2]), ("12", "1"));
    }
}
