//! End to end: the real fstests (built from `shared/vendor/xfstests-*.tar.xz`,
//! cached) run in the `fstests` image under TCG, each (section, test) a
//! trial of an inner [`Suite`] whose records are checked here.
//!
//! - `fstests::e2e::two_sections`: two ext4 sections (4k and 1k blocks,
//!   the second with its own devices, which fstests records), a handful
//!   of real quick tests, a real failure (`xfs/001` on ext4, whose message
//!   must hold its diff) and a real notrun (`generic/110`, reflink,
//!   skipped with fstests' reason); every fstests file catalogued.
//! - `fstests::e2e::user_kernel`: `bootrig fstests --kernel --modules`
//!   with Debian's 6.12 (not the image's kernel); fstests records it.
//! - `fstests::e2e::sharding`: `--vms 2` gives one VM's outcomes, and
//!   the trials under `cargo nextest --partition count:K/2` make two
//!   disjoint halves equal to one run.
//! - `fstests::e2e::hang_and_crash`: a copy of the tree with two injected
//!   tests, `generic/990` (sleeps forever) and `generic/991` (writes `c`
//!   to `/proc/sysrq-trigger`); with `max_deaths` 1 each is recorded as an
//!   error once and not retried, and the tests around them still run and
//!   pass (retrying a culprit up to the limit is unit-tested).
//!
//! The tarball is found from `BOOTRIG_FSTESTS_SRC` or a `shared/vendor`
//! folder above the workspace; without it the tests skip (fail under CI).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bootrig::fstests::{
    build_from_source, Deadlines, Devices, FstestsConfig, FstestsTree, Section,
};
use bootrig::{check, Error, Outcome, Result, RunSettings, Suite, TestContext, TestRecord};
use bootrig_tests::{bootrig_bin, test_kernel, vm_marks};

fn main() -> ExitCode {
    let mut suite = Suite::from_args();
    // Opt-in: the fstests trials themselves in this suite (for nextest
    // partitions, by hand (see docs/fstests.md) and by
    // `fstests::e2e::sharding`); needs a built tree.
    if let Some(tree) = std::env::var_os("BOOTRIG_FSTESTS_TREE") {
        suite = match FstestsTree::open(tree) {
            Ok(tree) => suite.fstests(partition_config(tree)),
            Err(e) => suite.test("fstests::direct", move |_| Err(Error::Check(e.to_string()))),
        };
    }
    suite
        .test_with(
            "fstests::e2e::two_sections",
            vm_marks().timeout(Duration::from_secs(900)),
            two_sections,
        )
        .test_with(
            "fstests::e2e::hang_and_crash",
            vm_marks().timeout(Duration::from_secs(900)),
            hang_and_crash,
        )
        .test_with(
            "fstests::e2e::user_kernel",
            vm_marks().timeout(Duration::from_secs(900)),
            user_kernel,
        )
        .test_with(
            "fstests::e2e::interrupted",
            vm_marks().timeout(Duration::from_secs(600)),
            interrupted,
        )
        .test_with(
            "fstests::e2e::sharding",
            vm_marks().timeout(Duration::from_secs(900)),
            sharding,
        )
        .test(
            "fstests::cli::unbuilt_tree_is_refused_before_booting",
            unbuilt_tree,
        )
        .test("fstests::cli::results_and_compare", results_and_compare)
        .run()
}

/// A shared folder above the workspace (`shared/<sub>`).
fn shared(sub: &str) -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared").join(sub))
        .find(|p| p.exists())
}

fn bootrig(args: &[&str]) -> Result<(i32, String, String)> {
    let out = std::process::Command::new(bootrig_bin())
        .args(args)
        .output()
        .map_err(|e| Error::io("running bootrig", e))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// An unpacked but unbuilt tree is refused with the reason, exit 2, and no
/// VM; so is a folder that is no fstests tree.
fn unbuilt_tree(ctx: &TestContext) -> Result<()> {
    let src = tarball()?;
    let dir = ctx.artifacts_dir().join("unbuilt");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("mkdir", e))?;
    let ok = std::process::Command::new("tar")
        .arg("xf")
        .arg(&src)
        .arg("-C")
        .arg(&dir)
        .arg("--strip-components=1")
        .status()
        .map_err(|e| Error::io("tar", e))?;
    check!(ok.success(), "tar xf {} failed", src.display());
    let d = dir.display().to_string();
    let (code, _, err) = bootrig(&["fstests", "--fstests", &d, "generic/001"])?;
    check!(
        code == 2 && err.contains("is not built: ltp/fsstress is missing"),
        "exit {code}: {err}"
    );
    let (code, _, err) = bootrig(&["fstests", "--fstests", "/", "generic/001"])?;
    check!(
        code == 2 && err.contains("not an fstests tree"),
        "exit {code}: {err}"
    );
    // Bad sizes are refused before the tree is looked at (or built).
    for (flag, value, says) in [
        ("--memory", "1K", "too small"),
        ("--memory", "lots", "invalid size"),
        ("--device-size", "1e30T", "invalid size"),
    ] {
        let (code, _, err) = bootrig(&["fstests", "--fstests", &d, flag, value, "generic/001"])?;
        check!(
            code == 2 && err.contains(flag) && err.contains(says) && !err.contains("not built"),
            "{flag} {value}: exit {code}: {err}"
        );
    }
    let (code, _, err) = bootrig(&["fstests", "--fstests", &d, "--cpus", "0", "generic/001"])?;
    check!(
        code == 2 && err.contains("--cpus") && err.contains("not in 1..=64"),
        "--cpus 0: exit {code}: {err}"
    );
    Ok(())
}

/// `results --json` on the real fixture, and `compare` on edited copies:
/// a regression, a fix and a new notrun, exit 1.
fn results_and_compare(ctx: &TestContext) -> Result<()> {
    let Some(fixture) = shared("fixtures/fstests/ext4-15tests/results") else {
        return Err(Error::Skip("no shared/fixtures/fstests".into()));
    };
    let (code, out, err) = bootrig(&[
        "fstests",
        "results",
        "--json",
        &fixture.display().to_string(),
    ])?;
    check!(code == 0, "results exit {code}: {err}");
    let json: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| Error::Check(format!("not JSON ({e}): {out}")))?;
    let tests = json.as_array().map_or(0, Vec::len);
    check!(tests == 15, "{tests} tests in {out}");
    // Several folders are merged: the two-section run's tests are added.
    if let Some(sections) = shared("fixtures/fstests/sections-ext4-xfs/results") {
        let count = |args: &[&str]| -> Result<usize> {
            let (code, out, err) = bootrig(args)?;
            check!(code == 0, "results exit {code}: {err}");
            let json: serde_json::Value = serde_json::from_str(&out)
                .map_err(|e| Error::Check(format!("not JSON ({e}): {out}")))?;
            Ok(json.as_array().map_or(0, Vec::len))
        };
        let (a, b) = (
            fixture.display().to_string(),
            sections.display().to_string(),
        );
        let alone = count(&["fstests", "results", "--json", &b])?;
        let both = count(&["fstests", "results", "--json", &a, &b])?;
        check!(
            alone > 0 && both == 15 + alone,
            "merged {both} tests, expected 15 + {alone}"
        );
    }
    let old = ctx.artifacts_dir().join("old");
    let new = ctx.artifacts_dir().join("new");
    for d in [&old, &new] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("mkdir", e))?;
    }
    let xml = std::fs::read_to_string(fixture.join("result.xml"))
        .map_err(|e| Error::io("reading result.xml", e))?;
    std::fs::write(old.join("result.xml"), &xml).map_err(|e| Error::io("writing", e))?;
    // btrfs/001 fixed, generic/002 regressed, generic/005 not run.
    let edited = xml
        .replacen(
            r#"<failure message="- output mismatch (see /opt/fstests/results//btrfs/001.out.bad)" type="TestFail" />"#,
            "",
            1,
        )
        .replacen(
            r#"name="generic/002" time="4">"#,
            r#"name="generic/002" time="4"><failure message="- output mismatch" type="TestFail" />"#,
            1,
        )
        .replacen(
            r#"name="generic/005" time="3">"#,
            r#"name="generic/005" time="3"><skipped message="not supported" />"#,
            1,
        );
    std::fs::write(new.join("result.xml"), edited).map_err(|e| Error::io("writing", e))?;
    let (code, out, err) = bootrig(&[
        "fstests",
        "compare",
        &old.display().to_string(),
        &new.display().to_string(),
    ])?;
    check!(code == 1, "compare exit {code} (expected 1): {out}{err}");
    for want in ["generic/002", "btrfs/001", "generic/005"] {
        check!(out.contains(want), "compare output lacks {want}:\n{out}");
    }
    // The same with the new side split in two shards (`--new`): the
    // unchanged tests in one, the edited ones in the other.
    let (shard_a, shard_b) = (ctx.artifacts_dir().join("a"), ctx.artifacts_dir().join("b"));
    let edited =
        std::fs::read_to_string(new.join("result.xml")).map_err(|e| Error::io("reading", e))?;
    let body = edited
        .trim_end()
        .strip_suffix("</testsuite>")
        .ok_or_else(|| Error::Check("result.xml does not end with </testsuite>".into()))?;
    let (head, rest) = body
        .split_once("<testcase")
        .ok_or_else(|| Error::Check("no testcase in result.xml".into()))?;
    let cases: Vec<String> = rest
        .split("<testcase")
        .map(|c| format!("<testcase{c}"))
        .collect();
    for (dir, keep) in [(&shard_a, 0), (&shard_b, 1)] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", e))?;
        let mut xml = head.to_string();
        for c in cases.iter().skip(keep).step_by(2) {
            xml.push_str(c);
        }
        xml.push_str("</testsuite>\n");
        std::fs::write(dir.join("result.xml"), xml).map_err(|e| Error::io("writing", e))?;
    }
    let (code, sharded, err) = bootrig(&[
        "fstests",
        "compare",
        &old.display().to_string(),
        &shard_a.display().to_string(),
        "--new",
        &shard_b.display().to_string(),
    ])?;
    check!(
        code == 1 && sharded == out,
        "sharded compare exit {code}, output differs from the whole:\n{sharded}{err}\n---\n{out}"
    );
    Ok(())
}

/// The vendored fstests tarball.
fn tarball() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BOOTRIG_FSTESTS_SRC") {
        return Ok(PathBuf::from(p));
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let vendor = dir.join("shared/vendor");
        if let Ok(rd) = std::fs::read_dir(&vendor) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("xfstests-") && n.ends_with(".tar.xz") {
                    return Ok(e.path());
                }
            }
        }
    }
    let why =
        "no fstests tarball: set BOOTRIG_FSTESTS_SRC or put xfstests-*.tar.xz in shared/vendor";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(Error::Check(why.into()));
    }
    Err(Error::Skip(why.into()))
}

/// The built tree (cached by the tarball's hash).
fn built_tree(ctx: &TestContext) -> Result<FstestsTree> {
    let src = tarball()?;
    let cache = ctx.settings().images.cache.clone();
    build_from_source(&src, &cache, &mut |l| ctx.output(l))
}

/// Runs `cfg` as an inner suite (all its trials in this process, its run
/// folder `sub` in the test's folder) and returns the records.
fn run_inner(ctx: &TestContext, sub: &str, cfg: FstestsConfig) -> Vec<TestRecord> {
    let mut settings = RunSettings::from_env(ctx.artifacts_dir().join(sub));
    settings.run_dir = ctx.artifacts_dir().join(sub);
    settings.images = ctx.settings().images.clone();
    settings.accel = ctx.settings().accel;
    settings.events = ctx.settings().events.clone();
    settings.strict_requirements = ctx.settings().strict_requirements;
    let args = libtest_mimic::Arguments {
        test_threads: Some(2),
        ..Default::default()
    };
    let (records, _) = Suite::with_args(args)
        .with_settings(settings)
        .fstests(cfg)
        .run_collect();
    records
}

fn find<'a>(records: &'a [TestRecord], name: &str) -> Result<&'a TestRecord> {
    records
        .iter()
        .find(|r| r.entry.test == name)
        .ok_or_else(|| {
            let names: Vec<&str> = records.iter().map(|r| r.entry.test.as_str()).collect();
            Error::Check(format!("no trial {name} among {names:?}"))
        })
}

fn message(r: &TestRecord) -> &str {
    r.message.as_deref().unwrap_or("")
}

/// The plan of the opt-in trials: a pass, a notrun and a failure.
fn partition_config(tree: FstestsTree) -> FstestsConfig {
    FstestsConfig::new(tree, "ext4")
        .with_tests(["generic/002", "generic/110", "xfs/001"])
        .with_devices(devices())
        .with_cpus(VCPUS)
}

/// vCPUs per fstests VM: CI runs two VM tests at once on 2 cores (and
/// `--vms 2` two VMs in one test), so 1 vCPU each keeps TCG from
/// oversubscribing the host (measured: the two slowest tests took 16%
/// less slot time than with 2 vCPUs).
const VCPUS: u32 = 1;

/// Small devices: mkfs and fsck are quicker under TCG.
fn devices() -> Devices {
    Devices {
        size: 3 << 30,
        ..Devices::default()
    }
}

fn two_sections(ctx: &TestContext) -> Result<()> {
    let tree = built_tree(ctx)?;
    let cfg = FstestsConfig::new(tree, "ext4")
        .with_sections(vec![
            Section::new("ext4_4k", "ext4").var("MKFS_OPTIONS", "-b 4096"),
            // Its own, smaller devices, next to the run's.
            Section::new("ext4_1k", "ext4")
                .var("MKFS_OPTIONS", "-b 1024")
                .with_devices(Devices {
                    size: 2 << 30,
                    ..Devices::default()
                }),
        ])
        .with_tests(["generic/002", "generic/110", "xfs/001"])
        .with_devices(devices())
        .with_cpus(VCPUS);
    let records = run_inner(ctx, "one-vm", cfg);
    check!(records.len() == 6, "{} trials, expected 6", records.len());
    // fstests itself recorded each section's devices in its result.xml.
    let results = run_folder(&ctx.artifacts_dir().join("one-vm"))?.join("attempt-1/results");
    let parsed = bootrig_diagnostics::fstests::FsResults::load(&results)
        .map_err(|e| Error::Check(e.to_string()))?;
    let prop = |section: &str, key: &str| {
        parsed
            .sections
            .iter()
            .find(|s| s.name.as_deref() == Some(section))
            .and_then(|s| s.properties.get(key).cloned())
            .unwrap_or_default()
    };
    check!(
        prop("ext4_4k", "SCRATCH_DEV_SIZE_KB") == "3145728"
            && prop("ext4_1k", "SCRATCH_DEV_SIZE_KB") == "2097152"
            && prop("ext4_4k", "TEST_DEV") != prop("ext4_1k", "TEST_DEV"),
        "sections' devices: ext4_4k {} {}, ext4_1k {} {}",
        prop("ext4_4k", "TEST_DEV"),
        prop("ext4_4k", "SCRATCH_DEV_SIZE_KB"),
        prop("ext4_1k", "TEST_DEV"),
        prop("ext4_1k", "SCRATCH_DEV_SIZE_KB")
    );
    for section in ["ext4_4k", "ext4_1k"] {
        let r = find(&records, &format!("fstests::{section}::generic/002"))?;
        check!(
            r.outcome() == Outcome::Passed,
            "generic/002 in {section}: {:?}: {}",
            r.outcome(),
            message(r)
        );
        let r = find(&records, &format!("fstests::{section}::generic/110"))?;
        check!(
            r.outcome() == Outcome::Skipped && message(r).contains("Reflink not supported"),
            "generic/110 in {section}: {:?}: {}",
            r.outcome(),
            message(r)
        );
        let r = find(&records, &format!("fstests::{section}::xfs/001"))?;
        check!(
            r.outcome() == Outcome::Failed,
            "xfs/001 in {section}: {:?}",
            r.outcome()
        );
        let m = message(r);
        check!(
            m.contains("--- tests/xfs/001.out") && m.contains("+++ "),
            "xfs/001's message has no diff:\n{m}"
        );
        // Its files are in its folder and catalogued with their sha256.
        let meta = std::fs::read_to_string(r.artifacts.join("metadata.json"))
            .map_err(|e| Error::io("reading metadata.json", e))?;
        check!(
            meta.contains("fstests/001.out.bad") && meta.contains("fstests/001.full"),
            "xfs/001's metadata.json does not catalogue its files:\n{meta}"
        );
        check!(
            r.artifacts.join("fstests/001.out.bad").is_file(),
            "no 001.out.bad copied"
        );
    }
    Ok(())
}

/// `bootrig fstests --kernel K --modules M`: the `fstests` image boots the
/// user's kernel (Debian's 6.12 from backports, not the image's 6.1) with
/// its modules from the host, and fstests records that kernel.
fn user_kernel(ctx: &TestContext) -> Result<()> {
    let tree = built_tree(ctx)?;
    let (kernel, modules, release) = test_kernel()?;
    let root = ctx.artifacts_dir().join("cli");
    let path = |p: &Path| p.display().to_string();
    let (code, out, err) = bootrig(&[
        "fstests",
        "--fstests",
        &path(&tree.dir),
        "--kernel",
        &path(&kernel),
        "--modules",
        &path(&modules),
        "--device-size",
        "3G",
        "--cpus",
        &VCPUS.to_string(),
        "--memory",
        "1536M",
        "--artifacts",
        &path(&root),
        "generic/002",
    ])?;
    check!(
        code == 0,
        "bootrig fstests --kernel exited {code}:\n{out}{err}"
    );
    check!(
        out.contains("ext4: 1 tests, 0 failures, 0 skipped"),
        "no summary line in:\n{out}"
    );
    let results = root.join("latest/fstests.run/attempt-1/results");
    let parsed = bootrig_diagnostics::fstests::FsResults::load(&results)
        .map_err(|e| Error::Check(e.to_string()))?;
    let recorded = parsed
        .sections
        .first()
        .and_then(|s| s.properties.get("KERNEL").cloned())
        .unwrap_or_default();
    check!(
        recorded == release,
        "fstests ran on kernel {recorded:?}, expected the user's {release}"
    );
    // --cpus and --memory reached QEMU.
    let cmdline = std::fs::read_to_string(root.join("latest/fstests.run/qemu-cmdline.txt"))
        .map_err(|e| Error::io("reading qemu-cmdline.txt", e))?;
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .windows(2)
            .find(|w| w[0] == flag)
            .map(|w| w[1].to_string())
    };
    check!(
        after("-smp").as_deref() == Some(VCPUS.to_string().as_str())
            && after("-m").as_deref() == Some("1536M"),
        "-smp {:?} -m {:?} in {cmdline}",
        after("-smp"),
        after("-m")
    );
    Ok(())
}

/// Ctrl-C on `bootrig fstests` while its second test runs: the first
/// keeps its pass (with a duration), the one running and the one never
/// started are reported interrupted, every trial is in `run.json`, the
/// exit status is 130, and the VM is gone.
fn interrupted(ctx: &TestContext) -> Result<()> {
    use std::io::BufRead;
    let tree = built_tree(ctx)?;
    let root = ctx.artifacts_dir().join("cli");
    let mut child = std::process::Command::new(bootrig_bin())
        .args(["fstests", "--fstests"])
        .arg(&tree.dir)
        .args(["--device-size", "3G", "--cpus", &VCPUS.to_string()])
        .arg("--artifacts")
        .arg(&root)
        .args(["generic/001", "generic/002", "generic/005"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running bootrig fstests", e))?;
    let stdout = child.stdout.take().expect("piped");
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let mut err = String::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    for line in lines.by_ref() {
        let line = line.map_err(|e| Error::io("reading bootrig's stderr", e))?;
        err.push_str(&line);
        err.push('\n');
        if line.contains("generic/002 started") {
            // SAFETY: kill(2) on our own child's pid, which we have not
            // waited for yet.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            break;
        }
    }
    for line in lines.map_while(std::result::Result::ok) {
        err.push_str(&line);
        err.push('\n');
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for bootrig", e))?;
    let out = out.join().unwrap_or_default();
    check!(
        status.code() == Some(130),
        "bootrig fstests exited {status} after SIGINT:\n{out}{err}"
    );
    check!(
        out.contains("PASS  fstests::ext4::generic/001"),
        "generic/001 did not keep its pass:\n{out}"
    );
    check!(
        err.contains("generic/002: interrupted by SIGINT while it ran"),
        "no line for the test that ran:\n{err}"
    );
    let summary = out
        .lines()
        .find(|l| l.starts_with("ext4: "))
        .unwrap_or_default();
    check!(
        summary.starts_with("ext4: 1 tests, 0 failures") && !summary.ends_with(" 0 seconds"),
        "summary {summary:?}:\n{out}"
    );
    check!(
        out.lines()
            .any(|l| l == "Interrupted by SIGINT: generic/002 generic/005"),
        "no line naming the interrupted tests:\n{out}"
    );
    let summary = bootrig_diagnostics::run::RunSummary::load(&root.join("latest/run.json"))
        .map_err(|e| Error::Check(e.to_string()))?;
    let outcome = |t: &str| {
        summary
            .tests
            .iter()
            .find(|e| e.test == format!("fstests::ext4::{t}"))
            .map(|e| (e.outcome, e.summary.clone().unwrap_or_default()))
    };
    check!(
        matches!(outcome("generic/001"), Some((Outcome::Passed, _))),
        "run.json: generic/001 {:?}",
        outcome("generic/001")
    );
    for t in ["generic/002", "generic/005"] {
        check!(
            matches!(outcome(t), Some((Outcome::Failed, ref s)) if s.contains("interrupted by SIGINT")),
            "run.json: {t} {:?}",
            outcome(t)
        );
    }
    // The run's own folder says it was cut short.
    let md = std::fs::read_to_string(root.join("latest/fstests.run/metadata.json"))
        .map_err(|e| Error::io("reading the run folder's metadata.json", e))?;
    let md: serde_json::Value =
        serde_json::from_str(&md).map_err(|e| Error::Check(e.to_string()))?;
    check!(
        md["outcome"] == "failed"
            && md["failure"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("interrupted by SIGINT")),
        "fstests.run metadata: {} {}",
        md["outcome"],
        md["failure"]
    );
    let left = std::process::Command::new("pgrep")
        .args(["-f", &root.display().to_string()])
        .output()
        .map_err(|e| Error::io("pgrep", e))?;
    check!(
        left.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    Ok(())
}

/// The fstests run folder in an inner run's folder: `fstests.run`, or
/// `fstests.run-N` for the N-th fstests run of this process.
fn run_folder(inner: &Path) -> Result<PathBuf> {
    std::fs::read_dir(inner)
        .map_err(|e| Error::io(format!("reading {}", inner.display()), e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("fstests.run"))
        })
        .ok_or_else(|| Error::Check(format!("no fstests.run folder in {}", inner.display())))
}

/// Trial name → outcome.
fn outcomes(records: &[TestRecord]) -> std::collections::BTreeMap<String, Outcome> {
    records
        .iter()
        .map(|r| (r.entry.test.clone(), r.outcome()))
        .collect()
}

/// Sharding, against one in-process run of a plan with a pass, a notrun
/// and a failure on one VM:
///
/// - `--vms 2` (one shared queue): the same outcomes, the failure's diff
///   in its message, and both VMs ran jobs;
/// - the fstests trials of this very binary (`BOOTRIG_FSTESTS_TREE`, see
///   `main`) under `cargo nextest run --partition count:K/2`, over the
///   pass and the failure: two disjoint halves, each trial in its own
///   process and VM, whose merged outcomes are the single run's.
fn sharding(ctx: &TestContext) -> Result<()> {
    let tree = built_tree(ctx)?;
    let nextest = std::process::Command::new(env!("CARGO"))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nextest {
        let why = "cargo-nextest is not installed";
        return Err(if std::env::var("CI").is_ok_and(|v| v == "true") {
            Error::Check(why.into())
        } else {
            Error::Skip(why.into())
        });
    }
    let single = outcomes(&run_inner(ctx, "single", partition_config(tree.clone())));
    let sharded = run_inner(ctx, "two-vms", partition_config(tree.clone()).with_vms(2));
    check!(
        outcomes(&sharded) == single,
        "--vms 2 outcomes differ from one VM's:\n{:?}\n{single:?}",
        outcomes(&sharded)
    );
    let r = find(&sharded, "fstests::ext4::xfs/001")?;
    check!(
        message(r).contains("--- tests/xfs/001.out"),
        "xfs/001's message on 2 VMs has no diff:\n{}",
        message(r)
    );
    let run_dir = run_folder(&ctx.artifacts_dir().join("two-vms"))?;
    let busy = (1..=4)
        .filter(|n| {
            std::fs::read_dir(run_dir.join(format!("attempt-{n}/results"))).is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("job-"))
            })
        })
        .count();
    // Both VMs took tests, unless one would not boot (a TCG guest on a
    // loaded host can stall in its boot; the run records why and goes on).
    let boot_failed = (1..=4).any(|n| run_dir.join(format!("attempt-{n}/error.txt")).is_file());
    check!(
        busy >= 2 || boot_failed,
        "{busy} of the 2 VMs ran a test ({})",
        run_dir.display()
    );
    // Partitions over two of the trials (a VM each): the pass and the
    // failure.
    let partitioned = r"test(/^fstests::ext4::(generic\/002|xfs\/001)$/)";
    let single: std::collections::BTreeMap<String, Outcome> = single
        .into_iter()
        .filter(|(t, _)| t.ends_with("generic/002") || t.ends_with("xfs/001"))
        .collect();
    let mut halves = Vec::new();
    for k in 1..=2 {
        let root = ctx.artifacts_dir().join(format!("part-{k}"));
        let out = std::process::Command::new(env!("CARGO"))
            .args(["nextest", "run", "-p", "bootrig-tests", "--test", "fstests"])
            .args(["--partition", &format!("count:{k}/2"), "--retries", "0"])
            .args(["--no-fail-fast", "-E", partitioned])
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
            .env("BOOTRIG_FSTESTS_TREE", &tree.dir)
            .env("BOOTRIG_ARTIFACTS", &root)
            .env_remove("BOOTRIG_RUN_ID")
            .env_remove("BOOTRIG_JUNIT")
            .output()
            .map_err(|e| Error::io("running cargo nextest", e))?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        std::fs::write(root.with_extension("log"), &text)
            .map_err(|e| Error::io("writing the nextest log", e))?;
        let mut half = std::collections::BTreeMap::new();
        for run in std::fs::read_dir(&root)
            .map_err(|e| Error::io(format!("reading {}", root.display()), e))?
        {
            let json = run
                .map_err(|e| Error::io("listing runs", e))?
                .path()
                .join("run.json");
            if !json.is_file() {
                continue;
            }
            let summary = bootrig_diagnostics::run::RunSummary::load(&json)
                .map_err(|e| Error::Check(e.to_string()))?;
            for e in summary.tests {
                if e.test.starts_with("fstests::ext4::") {
                    half.insert(e.test, e.outcome);
                }
            }
        }
        check!(
            !half.is_empty(),
            "partition {k}/2 ran no fstests trial:\n{text}"
        );
        halves.push(half);
    }
    let shared: Vec<&String> = halves[0]
        .keys()
        .filter(|t| halves[1].contains_key(*t))
        .collect();
    check!(shared.is_empty(), "both halves ran {shared:?}");
    let merged: std::collections::BTreeMap<String, Outcome> =
        halves.into_iter().flatten().collect();
    check!(
        merged == single,
        "the halves' merged outcomes differ from the single run's:\n{merged:?}\n{single:?}"
    );
    Ok(())
}

/// An fstests test script that runs `body`.
fn injected(num: &str, what: &str, body: &str) -> String {
    format!(
        "#!/bin/bash\n# SPDX-License-Identifier: GPL-2.0\n# FS QA Test {num}\n#\n# bootrig: {what}\n. ./common/preamble\n_begin_fstest auto quick\n{body}\necho Silence is golden\nstatus=0\nexit\n"
    )
}

fn hang_and_crash(ctx: &TestContext) -> Result<()> {
    let built = built_tree(ctx)?;
    let copy = ctx.artifacts_dir().join("tree");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&built.dir)
        .arg(&copy)
        .status()
        .map_err(|e| Error::io("copying the fstests tree", e))?;
    check!(status.success(), "cp -a of the tree failed");
    let tests = copy.join("tests/generic");
    let w = |name: &str, text: &str| {
        std::fs::write(tests.join(name), text).map_err(|e| Error::io(format!("writing {name}"), e))
    };
    w("990", &injected("990", "an injected hang", "sleep 1000000"))?;
    w(
        "991",
        &injected(
            "991",
            "an injected kernel crash",
            "echo c > /proc/sysrq-trigger",
        ),
    )?;
    for n in ["990", "991"] {
        w(
            &format!("{n}.out"),
            &format!("QA output created by {n}\nSilence is golden\n"),
        )?;
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(tests.join(n))
            .status()
            .map_err(|e| Error::io("chmod", e))?;
    }
    // check runs only tests listed in group.list (the build generates it).
    let list = tests.join("group.list");
    let mut groups =
        std::fs::read_to_string(&list).map_err(|e| Error::io("reading group.list", e))?;
    groups.push_str("990 auto quick\n991 auto quick\n");
    std::fs::write(&list, groups).map_err(|e| Error::io("writing group.list", e))?;
    let history = ctx.artifacts_dir().join("check.time");
    std::fs::write(&history, "generic/990 1\ngeneric/991 1\n")
        .map_err(|e| Error::io("writing check.time", e))?;
    let tree = FstestsTree::open(&copy)?;
    let cfg = FstestsConfig::new(tree, "ext4")
        .with_tests(["generic/002", "generic/990", "generic/991", "generic/005"])
        .with_exact_order()
        .with_devices(devices())
        .with_cpus(VCPUS)
        .with_history(&history)
        // One VM each: retrying a culprit is unit-tested (runner, shard);
        // here the run must survive both and go on.
        .with_max_deaths(1)
        .with_deadlines(Deadlines {
            floor: Duration::from_secs(25),
            ..Deadlines::default()
        });
    let records = run_inner(ctx, "inner", cfg);
    for t in ["generic/002", "generic/005"] {
        let r = find(&records, &format!("fstests::ext4::{t}"))?;
        check!(
            r.outcome() == Outcome::Passed,
            "{t}: {:?}: {}",
            r.outcome(),
            message(r)
        );
    }
    let hang = find(&records, "fstests::ext4::generic/990")?;
    let m = message(hang);
    check!(
        hang.outcome() == Outcome::Failed
            && m.contains("hung (no progress within 25s) in attempt 1")
            // The guest's diagnostics of the hang show the stuck test.
            && m.contains("sleep 1000000")
            && m.contains("not retried"),
        "generic/990: {:?}:\n{m}",
        hang.outcome()
    );
    let crash = find(&records, "fstests::ext4::generic/991")?;
    let m = message(crash);
    check!(
        crash.outcome() == Outcome::Failed && m.contains("took the VM down") && m.contains("sysrq"),
        "generic/991: {:?}:\n{m}",
        crash.outcome()
    );
    Ok(())
}
