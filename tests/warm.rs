//! Warm start end to end: scenarios with `"start": "warm"` run through
//! the `bootrig` binary in real QEMU, each run with its own snapshot
//! folder (`BOOTRIG_SNAPSHOTS`), and what each test's `metadata.json` and
//! transcript say is checked: the first test boots and saves, the others
//! restore; no test sees another's files; restored guests get the host's
//! time and their own random numbers; a changed boot file or a corrupt
//! snapshot means a cold boot.
//!
//! `cargo test -p bootrig-tests --test warm [-- FILTER]`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bootrig::{check, check_failed, Image, ImageStore, Marks, Requirement, SnapshotStore, Suite};
use bootrig_diagnostics::metadata::{Metadata, Outcome};
use bootrig_tests::{output_text, run_bootrig};
use serde_json::Value;

fn warm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/warm")
}

fn marks(minutes: u64) -> Marks {
    Marks::new()
        .requires(Requirement::Qemu)
        .timeout(Duration::from_secs(60 * minutes))
}

/// One test of a finished run: its name, metadata and transcript.
struct Ran {
    name: String,
    metadata: Metadata,
    transcript: String,
    start: Value,
}

/// Runs `scenario` with `bootrig run -j JOBS`, snapshots in `snapshots`,
/// artifacts in `artifacts`; fails unless every test passed. Returns the
/// tests, sorted by name, and bootrig's output.
fn run_warm(
    scenario: &Path,
    jobs: usize,
    snapshots: &Path,
    artifacts: &Path,
) -> bootrig::Result<(Vec<Ran>, String)> {
    let jobs = jobs.to_string();
    let out = run_bootrig(
        &[
            "run",
            "-j",
            &jobs,
            "--artifacts",
            &artifacts.display().to_string(),
            &scenario.display().to_string(),
        ],
        Path::new("."),
        &[("BOOTRIG_SNAPSHOTS", &snapshots.display().to_string())],
    );
    let text = output_text(&out);
    check!(out.status.success(), "bootrig run failed:\n{text}");
    let run = std::fs::read_link(artifacts.join("latest"))
        .map(|r| artifacts.join(r))
        .map_err(|e| bootrig::Error::io("reading the latest run", e))?;
    let mut ran = Vec::new();
    for e in std::fs::read_dir(&run).map_err(|e| bootrig::Error::io("listing the run", e))? {
        let dir = e
            .map_err(|e| bootrig::Error::io("listing the run", e))?
            .path();
        let Ok(md) = std::fs::read(dir.join("metadata.json")) else {
            continue;
        };
        let metadata: Metadata = serde_json::from_slice(&md)
            .map_err(|e| bootrig::Error::Check(format!("{}: {e}", dir.display())))?;
        check!(
            metadata.outcome == Outcome::Passed,
            "{} did not pass:\n{text}",
            dir.display()
        );
        let start = metadata.extra.get("start").cloned().unwrap_or(Value::Null);
        ran.push(Ran {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            transcript: std::fs::read_to_string(dir.join("transcript.log")).unwrap_or_default(),
            metadata,
            start,
        });
    }
    ran.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((ran, text))
}

/// The tests that made a snapshot, and the snapshot keys used.
fn created_and_keys(ran: &[Ran]) -> (Vec<&str>, BTreeSet<String>) {
    let created = ran
        .iter()
        .filter(|r| r.start["created"] == Value::Bool(true))
        .map(|r| r.name.as_str())
        .collect();
    let keys = ran
        .iter()
        .filter_map(|r| r.start["snapshot"]["key"].as_str().map(str::to_string))
        .collect();
    (created, keys)
}

/// The output lines of command `cmd` in a transcript.
fn outputs_of(transcript: &str, cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = transcript.lines();
    while let Some(l) = lines.next() {
        if l.ends_with(&format!("$ {cmd}")) {
            if let Some(o) = lines.next().and_then(|o| o.trim().strip_prefix("| ")) {
                out.push(o.trim().to_string());
            }
        }
    }
    out
}

/// Every test of an isolation scenario started warm: exactly one made the
/// snapshot and the others restored it (one key, one sha256); each saw
/// only its own file (the scenario's steps check that); the restored ones
/// read the host's time and their own random numbers.
fn check_isolation_run(ran: &[Ran], tests: usize) -> bootrig::Result<()> {
    check!(ran.len() == tests, "{} tests ran, not {tests}", ran.len());
    for r in ran {
        check!(
            r.start["mode"] == "warm",
            "{} did not start warm: {}",
            r.name,
            r.start
        );
        check!(
            r.metadata
                .phases
                .iter()
                .any(|p| p.name == bootrig::PHASE_WARM_START),
            "{}: no warm start phase",
            r.name
        );
    }
    let (created, keys) = created_and_keys(ran);
    check!(
        created.len() == 1,
        "tests that booted and saved: {created:?}"
    );
    check!(keys.len() == 1, "snapshot keys: {keys:?}");
    let shas: BTreeSet<_> = ran
        .iter()
        .map(|r| r.start["snapshot"]["state_sha256"].to_string())
        .collect();
    check!(shas.len() == 1, "state sha256s: {shas:?}");
    let restored: Vec<&Ran> = ran
        .iter()
        .filter(|r| r.start["created"] == Value::Bool(false))
        .collect();
    check!(restored.len() == tests - 1);
    for r in &restored {
        check!(
            r.start["restore_seconds"].as_f64().is_some(),
            "{}: no restore time",
            r.name
        );
    }
    // Random numbers: all different.
    let randoms: Vec<String> = ran
        .iter()
        .flat_map(|r| outputs_of(&r.transcript, "od -An -N16 -tx1 /dev/urandom"))
        .collect();
    let distinct: BTreeSet<_> = randoms.iter().collect();
    check!(
        randoms.len() == tests && distinct.len() == tests,
        "random bytes read in the guests: {randoms:?}"
    );
    // The guest clock follows the host's after a restore.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for r in &restored {
        let dates = outputs_of(&r.transcript, "date +%s");
        let Some(secs) = dates.first().and_then(|d| d.parse::<u64>().ok()) else {
            return check_failed!("{}: no date in its transcript", r.name);
        };
        check!(
            now.abs_diff(secs) < 3600,
            "{}: guest clock {secs}, host {now}",
            r.name
        );
    }
    Ok(())
}

/// `busybox-network.json`'s run: in each test both machines started
/// warm (recorded per machine); the first test booted and saved one
/// snapshot per machine, the second restored both (`created: false` is
/// only recorded by a restore; its steps fetched a page by name over the
/// restored NICs).
fn check_machines_run(ran: &[Ran]) -> bootrig::Result<()> {
    check!(ran.len() == 2, "{} tests ran, not 2", ran.len());
    let mut keys = BTreeSet::new();
    for (r, created) in ran.iter().zip([true, false]) {
        let starts = &r
            .metadata
            .extra
            .get("start_machines")
            .cloned()
            .unwrap_or_default();
        for machine in ["server", "client"] {
            let s = &starts[machine];
            check!(
                s["mode"] == "warm" && s["created"] == Value::Bool(created),
                "{}: {machine} started {s} (created expected {created})",
                r.name
            );
            if let Some(k) = s["snapshot"]["key"].as_str() {
                keys.insert((machine, k.to_string()));
            }
        }
    }
    // One snapshot per machine (their NICs differ), the same in both tests.
    let distinct: BTreeSet<&String> = keys.iter().map(|(_, k)| k).collect();
    check!(
        keys.len() == 2 && distinct.len() == 2,
        "snapshot keys per machine: {keys:?}"
    );
    Ok(())
}

/// `busybox-network.json` run twice: first as [`check_machines_run`]
/// says, then with the server's state made one that passes the sha256
/// check but that QEMU refuses, so its restore fails after its QEMU
/// started (and joined the network): the server boots cold on the network
/// instead with one line saying why, saves anew, and the tests pass.
fn machines_warm() -> bootrig::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
    let scenario = warm_dir().join("busybox-network.json");
    let (snaps, arts) = (tmp.path().join("snapshots"), tmp.path().join("artifacts"));
    let (ran, _) = run_warm(&scenario, 1, &snaps, &arts)?;
    check_machines_run(&ran)?;
    let key = ran[0].metadata.extra["start_machines"]["server"]["snapshot"]["key"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let io = |what: &'static str| move |e| bootrig::Error::io(what, e);
    let state = snaps.join(&key).join("state");
    let mut bytes = std::fs::read(&state).map_err(io("reading the state"))?;
    bytes[..4096].fill(0xa5);
    std::fs::write(&state, &bytes).map_err(io("writing the state"))?;
    let info_path = snaps.join(&key).join("snapshot.json");
    let mut info: Value =
        serde_json::from_slice(&std::fs::read(&info_path).map_err(io("reading snapshot.json"))?)
            .map_err(|e| bootrig::Error::Check(format!("snapshot.json: {e}")))?;
    info["state_sha256"] = bootrig_diagnostics::hash::digest_bytes(&bytes)
        .sha256
        .into();
    std::fs::write(&info_path, info.to_string()).map_err(io("writing snapshot.json"))?;
    let (again, text) = run_warm(&scenario, 1, &snaps, &arts)?;
    one_line_saying_why(&text, &key)?;
    let starts = |r: &Ran| r.metadata.extra["start_machines"].clone();
    let (first, second) = (starts(&again[0]), starts(&again[1]));
    check!(
        first["server"]["created"] == Value::Bool(true)
            && first["server"]["restore_failed"]["snapshot"] == key.as_str()
            && first["client"]["created"] == Value::Bool(false)
            && second["server"]["created"] == Value::Bool(false),
        "starts after the failed restore: {first} / {second}"
    );
    // QEMU refused it, not the sha256 check.
    let reason = first["server"]["restore_failed"]["reason"]
        .as_str()
        .unwrap_or_default();
    check!(
        !reason.is_empty() && !reason.contains("changed since it was saved"),
        "the restore failed before QEMU loaded the state: {reason}"
    );
    Ok(())
}

/// The busybox image's kernel and initrd copied to `dir`, with its append.
fn copied_busybox(dir: &Path) -> bootrig::Result<(PathBuf, PathBuf, String)> {
    let img = ImageStore::default().ensure(&Image::builtin("busybox"), &mut |_| {})?;
    let m = &img.manifest;
    let copy = |name: &Path| -> bootrig::Result<PathBuf> {
        let to = dir.join(name.file_name().unwrap());
        std::fs::copy(img.dir.join(name), &to)
            .map_err(|e| bootrig::Error::io("copying the busybox image", e))?;
        Ok(to)
    };
    Ok((
        copy(m.kernel.as_ref().unwrap())?,
        copy(m.initrd.as_ref().unwrap())?,
        m.append.clone().unwrap_or_default(),
    ))
}

/// A one-test warm scenario booting `kernel` and `initrd` directly.
/// (`no_timer_check`: on a loaded host the kernel's check of the emulated
/// timer can fail under TCG and panic the boot; it is not what is tested.)
fn kernel_scenario(dir: &Path, kernel: &Path, initrd: &Path, append: &str) -> PathBuf {
    let append = format!("{append} no_timer_check");
    let sc = serde_json::json!({
        "name": "warm-kernel",
        "machine": {"kernel": kernel, "initrd": initrd, "append": append,
                    "memory": "512M", "start": "warm"},
        "shell_prompt": "# $",
        "timeouts": {"boot": 300, "step": 60, "test": 600},
        "tests": [{"name": "t", "steps": [{"succeed": "test ! -e /tmp/mark && touch /tmp/mark"}]}]
    });
    let path = dir.join("kernel.json");
    std::fs::write(&path, sc.to_string()).unwrap();
    path
}

fn main() -> ExitCode {
    // Trials that start warm in this process save their snapshots here,
    // not in the user's cache; `bootrig run` children get their own.
    let snapshots = tempfile::tempdir().expect("a temporary folder");
    std::env::set_var(bootrig::SNAPSHOTS_ENV, snapshots.path());
    Suite::from_args()
        .test_with("warm::debian::ten_tests_isolated", marks(60), |_ctx| {
            let tmp = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
            let (ran, _) = run_warm(
                &warm_dir().join("debian-isolation.json"),
                2,
                &tmp.path().join("snapshots"),
                &tmp.path().join("artifacts"),
            )?;
            check_isolation_run(&ran, 10)
        })
        .test_with("warm::busybox::isolated_and_reseeded", marks(20), |_ctx| {
            let tmp = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
            let snaps = tmp.path().join("snapshots");
            let (ran, _) = run_warm(
                &warm_dir().join("busybox-isolation.json"),
                1,
                &snaps,
                &tmp.path().join("artifacts"),
            )?;
            check_isolation_run(&ran, 3)?;
            // `bootrig image list` shows the snapshot, `prune` removes it.
            let key = ran[0].start["snapshot"]["key"].as_str().unwrap_or("?");
            let env = [("BOOTRIG_SNAPSHOTS", snaps.to_str().unwrap())];
            let list = output_text(&run_bootrig(&["image", "list"], Path::new("."), &env));
            check!(
                list.contains(&format!("snapshot {key}"))
                    && list.contains("1 warm-start snapshot(s)"),
                "image list:\n{list}"
            );
            let prune = run_bootrig(&["image", "prune"], Path::new("."), &env);
            let text = output_text(&prune);
            check!(
                prune.status.success() && text.contains("removed 1 warm-start snapshot(s)"),
                "image prune:\n{text}"
            );
            check!(!snaps.join(key).exists(), "{key} still there after prune");
            let list = output_text(&run_bootrig(&["image", "list"], Path::new("."), &env));
            check!(
                list.contains("0 warm-start snapshot(s)"),
                "image list:\n{list}"
            );
            Ok(())
        })
        .test_with(
            "warm::busybox::two_machines_on_a_network",
            marks(40),
            |_| machines_warm(),
        )
        .test_with("warm::busybox::rust_api", marks(20), |ctx| {
            // Snapshots in this process's own folder (set in main).
            let first = ctx.vm_warm(Image::builtin("busybox"))?;
            first.succeed("touch /tmp/from-first")?;
            let second = ctx.vm_warm(Image::builtin("busybox"))?;
            check!(
                second.machine().argv().iter().any(|a| a == "-incoming"),
                "the second machine was not restored: {:?}",
                second.machine().argv()
            );
            second.succeed("test ! -e /tmp/from-first")?;
            second.succeed("touch /tmp/from-second")?;
            first.succeed("test ! -e /tmp/from-second")?;
            let random = "od -An -N16 -tx1 /dev/urandom";
            check!(first.succeed(random)? != second.succeed(random)?);
            let store = SnapshotStore::for_cache(&ctx.settings().images.cache);
            check!(store.list().len() == 1, "snapshots: {:?}", store.list());
            Ok(())
        })
        .test_with(
            "warm::busybox::changed_kernel_or_initrd_invalidates",
            marks(20),
            |_ctx| {
                let tmp = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
                let (kernel, initrd, append) = copied_busybox(tmp.path())?;
                let sc = kernel_scenario(tmp.path(), &kernel, &initrd, &append);
                let snaps = tmp.path().join("snapshots");
                let arts = tmp.path().join("artifacts");
                let key = |ran: &[Ran]| ran[0].start["snapshot"]["key"].clone();
                let (first, _) = run_warm(&sc, 1, &snaps, &arts)?;
                check!(first[0].start["created"] == true, "{}", first[0].start);
                let (again, _) = run_warm(&sc, 1, &snaps, &arts)?;
                check!(again[0].start["created"] == false, "{}", again[0].start);
                check!(key(&again) == key(&first));
                // The same initrd with a padding of zeros (the kernel skips
                // it): another file, so another snapshot.
                let pad = |file: &std::path::Path| {
                    let mut bytes = std::fs::read(file).unwrap();
                    bytes.extend_from_slice(&[0u8; 512]);
                    std::fs::write(file, bytes).unwrap();
                };
                pad(&initrd);
                let (changed, _) = run_warm(&sc, 1, &snaps, &arts)?;
                check!(
                    changed[0].start["created"] == true,
                    "a changed initrd restored {}",
                    changed[0].start
                );
                check!(key(&changed) != key(&first), "same key after the change");
                // The kernel too, padded the same way (QEMU loads the file
                // whole; the kernel ignores the tail).
                pad(&kernel);
                let (kernel_changed, _) = run_warm(&sc, 1, &snaps, &arts)?;
                check!(
                    kernel_changed[0].start["created"] == true,
                    "a changed kernel restored {}",
                    kernel_changed[0].start
                );
                check!(
                    key(&kernel_changed) != key(&changed),
                    "same key after the kernel changed"
                );
                Ok(())
            },
        )
        .test_with(
            "warm::busybox::corrupt_snapshot_boots_cold",
            marks(20),
            |_ctx| {
                let tmp = tempfile::tempdir().map_err(|e| bootrig::Error::io("tempdir", e))?;
                let (kernel, initrd, append) = copied_busybox(tmp.path())?;
                let sc = kernel_scenario(tmp.path(), &kernel, &initrd, &append);
                let snaps = tmp.path().join("snapshots");
                let arts = tmp.path().join("artifacts");
                let (first, _) = run_warm(&sc, 1, &snaps, &arts)?;
                let key = first[0].start["snapshot"]["key"]
                    .as_str()
                    .unwrap()
                    .to_string();
                // Garbage over the start of the state file, same size.
                let state = snaps.join(&key).join("state");
                let mut bytes = std::fs::read(&state).unwrap();
                bytes[..4096].fill(0xa5);
                std::fs::write(&state, bytes).unwrap();
                let (cold, text) = run_warm(&sc, 1, &snaps, &arts)?;
                one_line_saying_why(&text, &key)?;
                let start = &cold[0].start;
                check!(
                    start["restore_failed"]["snapshot"] == key.as_str(),
                    "{start}"
                );
                // A new snapshot replaced the bad one; it restores.
                check!(start["created"] == true, "{start}");
                let (again, _) = run_warm(&sc, 1, &snaps, &arts)?;
                check!(again[0].start["created"] == false, "{}", again[0].start);
                // A snapshot broken when it was saved (its recorded sha256
                // is that of the garbage): QEMU refuses it, and says why.
                let state = snaps.join(&key).join("state");
                let mut bytes = std::fs::read(&state).unwrap();
                bytes[..4096].fill(0xa5);
                std::fs::write(&state, &bytes).unwrap();
                let info_path = snaps.join(&key).join("snapshot.json");
                let mut info: Value =
                    serde_json::from_slice(&std::fs::read(&info_path).unwrap()).unwrap();
                info["state_sha256"] = bootrig_diagnostics::hash::digest_bytes(&bytes)
                    .sha256
                    .into();
                std::fs::write(&info_path, info.to_string()).unwrap();
                let (cold, text) = run_warm(&sc, 1, &snaps, &arts)?;
                let why: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(&format!("restoring snapshot {key} failed")))
                    .collect();
                check!(
                    why.len() == 1 && why[0].contains("(QEMU: ") && why[0].contains("booting cold"),
                    "expected one line with QEMU's reason:\n{text}"
                );
                check!(cold[0].start["created"] == true, "{}", cold[0].start);
                Ok(())
            },
        )
        .run()
}

/// A failed restore of snapshot `key` is said in exactly one line of the
/// run's output, and that line says it boots cold.
fn one_line_saying_why(text: &str, key: &str) -> bootrig::Result<()> {
    let why: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("restoring snapshot {key} failed")))
        .collect();
    check!(
        why.len() == 1 && why[0].contains("booting cold"),
        "expected one line saying why:\n{text}"
    );
    Ok(())
}
