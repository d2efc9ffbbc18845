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

use crate::fstests::config::{Devices, PlanSection};
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
    /// `TEST_DEV`.
    pub const TEST: &str = "fst-test";
    /// `SCRATCH_DEV`, or the first of `SCRATCH_DEV_POOL` (`fst-scratchN`).
    pub const SCRATCH: &str = "fst-scratch";
    /// `LOGWRITES_DEV`.
    pub const LOGWRITES: &str = "fst-logwrites";
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

/// Writes the driver, `local.config` (from `local_config`, placeholders
/// left for the guest) and the test lists into `dir` (the results disk's
/// content).
pub fn write_inputs(
    dir: &Path,
    mode: Mode,
    local_config: &str,
    sections: &[PlanSection],
    iterations: u32,
    exact_order: bool,
    devices: &Devices,
) -> Result<()> {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, text).map_err(|e| Error::io(format!("writing {}", p.display()), e))
    };
    w("local.config.in", local_config)?;
    let mut plan = String::new();
    for (i, s) in sections.iter().enumerate() {
        let label = s.name.as_deref().unwrap_or("-");
        writeln!(plan, "{i} {label} {}", s.fstyp).ok();
        w(&format!("tests.{i}"), &(s.tests.join("\n") + "\n"))?;
    }
    w("plan", &plan)?;
    w("run.sh", &script(mode, iterations, exact_order, devices))?;
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

/// The command that hands job `n` (`test` of `section`, a filesystem of
/// type `fstyp`) to a [`Mode::Queue`] driver; `end` when `job` is `None`.
pub fn job_command(job: Option<(usize, Option<&str>, &str, &str)>) -> String {
    let line = match job {
        Some((n, section, fstyp, test)) => {
            format!("{n} {} {fstyp} {test}", section.unwrap_or("-"))
        }
        None => "end".to_string(),
    };
    format!("echo '{line}' > {QUEUE_FIFO}")
}

/// The driver script. Devices are resolved by their virtio serial.
fn script(mode: Mode, iterations: u32, exact_order: bool, devices: &Devices) -> String {
    let pool: Vec<String> = (1..=devices.scratch_pool.max(1))
        .map(|i| format!("$(dev {}{i})", serial::SCRATCH))
        .collect();
    let mut options = if iterations > 1 {
        format!("-i {iterations}")
    } else {
        String::new()
    };
    if exact_order {
        options.push_str(" --exact-order");
    }
    let prelude = format!(
        r#"#!/bin/bash
# Generated by bootrig: runs fstests' check ({mode:?} mode).
R={results}
mark() {{ echo "{mark} $*" > /dev/kmsg; }}
dev() {{ readlink -f /dev/disk/by-id/virtio-$1; }}
TEST_DEV=$(dev {test})
SCRATCH_POOL="{pool}"
SCRATCH_DEV=${{SCRATCH_POOL%% *}}
LOGWRITES_DEV=$(dev {logw})
for d in {scheduler}; do
    for b in $TEST_DEV $SCRATCH_POOL; do
        echo $d > /sys/block/${{b##*/}}/queue/scheduler || echo "bootrig: no I/O scheduler $d for $b"
    done
done
sed -e "s|@TEST_DEV@|$TEST_DEV|g" -e "s|@SCRATCH_DEV@|$SCRATCH_DEV|g" \
    -e "s|@SCRATCH_DEV_POOL@|$SCRATCH_POOL|g" -e "s|@LOGWRITES_DEV@|$LOGWRITES_DEV|g" \
    $R/local.config.in > $R/local.config
export HOST_OPTIONS=$R/local.config RESULT_BASE=$R{sub} RECREATE_TEST_DEV=true
mkdir -p {test_dir} {scratch_mnt} $RESULT_BASE
cd {tree}
# check mounts TEST_DEV before it recreates it: give it a filesystem.
mkfs_test() {{
    case $1 in ext2|ext3|ext4) force=-F;; xfs|btrfs) force=-f;; *) force=;; esac
    mkfs -t $1 $force $TEST_DEV >> $R{logs}/mkfs.out 2>&1
}}
"#,
        results = RESULTS_MNT,
        mark = MARK,
        test = serial::TEST,
        pool = pool.join(" "),
        logw = serial::LOGWRITES,
        scheduler = devices.scheduler.as_deref().unwrap_or(""),
        sub = RESULTS_SUBDIR,
        logs = LOGS_SUBDIR,
        test_dir = crate::fstests::config::TEST_DIR,
        scratch_mnt = crate::fstests::config::SCRATCH_MNT,
        tree = TREE_MNT,
    );
    let body = match mode {
        Mode::Batch => format!(
            r#"while read -r i section fstyp; do
    mark section $section begin
    mkfs_test $fstyp
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
while read -r job section fstyp test < {fifo}; do
    [ "$job" = end ] && break
    [ "$last" = "$section $fstyp" ] || mkfs_test $fstyp
    last="$section $fstyp"
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
        let devices = Devices {
            scratch_pool: 3,
            scheduler: Some("mq-deadline".into()),
            ..Devices::default()
        };
        write_inputs(d.path(), Mode::Batch, "cfg", &sections, 2, true, &devices).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("plan")).unwrap(),
            "0 ext4_4k ext4\n1 - ext4\n"
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
    fn queue_jobs_are_lines_the_driver_reads() {
        let d = tempfile::tempdir().unwrap();
        let sections = vec![PlanSection {
            name: None,
            fstyp: "ext4".into(),
            tests: vec![],
        }];
        write_inputs(
            d.path(),
            Mode::Queue,
            "cfg",
            &sections,
            1,
            false,
            &Devices::default(),
        )
        .unwrap();
        let script = fs::read_to_string(d.path().join("run.sh")).unwrap();
        assert!(script.contains(&format!("< {QUEUE_FIFO}; do")), "{script}");
        assert!(
            script.contains("RESULT_BASE=$R/results/job-$job"),
            "{script}"
        );
        assert!(script.ends_with("mark all done\n"), "{script}");
        assert_eq!(
            job_command(Some((3, Some("ext4_4k"), "ext4", "generic/001"))),
            format!("echo '3 ext4_4k ext4 generic/001' > {QUEUE_FIFO}")
        );
        assert_eq!(
            job_command(Some((0, None, "xfs", "xfs/001"))),
            format!("echo '0 - xfs xfs/001' > {QUEUE_FIFO}")
        );
        assert_eq!(job_command(None), format!("echo 'end' > {QUEUE_FIFO}"));
        let re = regex::Regex::new(queue_patterns()[1]).unwrap();
        let c = re.captures("bootrig-fstests: job 12 end rc=1").unwrap();
        assert_eq!((&c[1], &c[2]), ("12", "1"));
    }
}
