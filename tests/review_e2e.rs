//! `bootrig report`, `compare` and `history` on REAL runs: each trial
//! writes busybox scenarios into its artifacts folder, runs them with the
//! `bootrig` CLI (real QEMU, TCG where KVM does not work), then reviews
//! the run folders. The HTML report is opened in headless Chromium.
//!
//! `cargo test -p bootrig-tests --test review_e2e` (filter like any
//! libtest binary). Offline checks on generated folders: `tests/review.rs`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use bootrig::{check, Error, Image, OwnedChild, Requirement, Suite, TestContext};
use bootrig_diagnostics::catalog::Producer;
use bootrig_diagnostics::metadata::{Failure, FailureKind, Outcome};
use bootrig_diagnostics::TestDir;
use bootrig_tests::{bootrig_bin, vm_marks};

fn main() -> ExitCode {
    Suite::from_args()
        .test_with(
            "review::html_report_in_chromium",
            vm_marks().requires(Requirement::Tool("chromium".into())),
            html_report_in_chromium,
        )
        .test_with(
            "review::compare_two_real_runs",
            vm_marks(),
            compare_two_real_runs,
        )
        .test_with("review::nightly_script", vm_marks(), nightly_script)
        .test_with(
            "review::fail_fast_then_last_failed",
            vm_marks(),
            fail_fast_then_last_failed,
        )
        .run()
}

/// What a finished command left: exit code, stdout, stderr.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` as an owned child (own process group, killed with it on
/// drop) with its output in files under `dir`; fails after `timeout`.
fn run_owned(name: &str, cmd: &mut Command, dir: &Path, timeout: Duration) -> bootrig::Result<Ran> {
    let safe = name.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let out_path = dir.join(format!("{safe}.stdout"));
    let err_path = dir.join(format!("{safe}.stderr"));
    let file =
        |p: &Path| File::create(p).map_err(|e| Error::io(format!("creating {}", p.display()), e));
    cmd.stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?);
    let mut child =
        OwnedChild::spawn(name, cmd).map_err(|e| Error::io(format!("starting {name}"), e))?;
    let status = child
        .wait_deadline(timeout)
        .map_err(|e| Error::io(format!("waiting for {name}"), e))?;
    let read = |p: &Path| {
        std::fs::read(p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let Some(status) = status else {
        return Err(Error::Check(format!(
            "{name} did not finish within {timeout:?}; output so far:\n{}",
            read(&out_path)
        )));
    };
    Ok(Ran {
        code: status.code(),
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

fn bootrig(args: &[&str], dir: &Path, timeout: Duration) -> bootrig::Result<Ran> {
    let name = format!("bootrig {}", args.first().copied().unwrap_or(""));
    run_owned(&name, Command::new(bootrig_bin()).args(args), dir, timeout)
}

fn write(path: &Path, text: &str) -> bootrig::Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The scenario of the HTML trial: a pass, a command failure, a kernel
/// crash and a console that prints a `<script>`. Command output travels
/// on the command channel, so what must be on the console is written to
/// `/dev/console`.
const REVIEW_SCENARIO: &str = r#"{
  "name": "review",
  "machine": { "image": "busybox", "memory": "512M" },
  "timeouts": { "boot": 180, "step": 60, "test": 300 },
  "tests": [
    { "name": "passes", "steps": [ { "succeed": "uname -r" } ] },
    { "name": "command-fails", "steps": [
      { "succeed": "printf '\\033[1;33mcoloured\\033[0m\\n' > /dev/console" },
      { "succeed": "test -e /no-such-file" } ] },
    { "name": "kernel-crash", "steps": [
      { "succeed": "true" },
      { "send": "echo c > /proc/sysrq-trigger\n" },
      { "expect": "this is never printed" } ] },
    { "name": "script", "steps": [
      { "succeed": "echo \"<script>document.title='pwned'</script>\" > /dev/console" } ] }
  ]
}"#;

/// Where the shared fstests fixtures are: `shared/fixtures/fstests` in an
/// ancestor of this crate.
fn fstests_fixture() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/fixtures/fstests/ext4-15tests/results"))
        .find(|p| p.is_dir())
}

/// Adds an fstests failure to `run`: no VM run of fstests exists here,
/// so the trial `fstests::btrfs/001` is recorded with the real fixture's
/// result (the `.out`/`.out.bad` diff fstests wrote in result.xml, and
/// the `.out.bad` itself as an artifact), through `TestDir` as the harness
/// would.
fn add_fstests_failure(run: &Path) -> bootrig::Result<()> {
    let results = fstests_fixture()
        .ok_or_else(|| Error::Check("no shared/fixtures/fstests above the tests crate".into()))?;
    let xml = std::fs::read_to_string(results.join("result.xml"))
        .map_err(|e| Error::io("reading the fstests result.xml", e))?;
    let case = xml
        .split("<testcase ")
        .find(|c| c.contains("name=\"btrfs/001\""))
        .ok_or_else(|| Error::Check("btrfs/001 not in result.xml".into()))?;
    let diff = case
        .split("<system-err>")
        .nth(1)
        .and_then(|e| e.split("<![CDATA[").nth(1))
        .and_then(|e| e.split("]]>").next())
        .ok_or_else(|| Error::Check("no diff in btrfs/001's system-err".into()))?;
    let out_bad = std::fs::read(results.join("btrfs/001.out.bad"))
        .map_err(|e| Error::io("reading btrfs/001.out.bad", e))?;
    let now = chrono::Utc::now();
    let err = |e: bootrig_diagnostics::errors::Error| Error::Check(e.to_string());
    let mut t = TestDir::create(run, "fstests::btrfs/001", now).map_err(err)?;
    t.write_artifact(
        "001.out.bad",
        "fstests/btrfs/001.out.bad",
        &out_bad,
        Producer::command("fstests ./check btrfs/001"),
        Some(1),
        None,
    )
    .map_err(err)?;
    let message = format!(
        "- output mismatch (see /opt/fstests/results//btrfs/001.out.bad)\n{}",
        diff.trim_start_matches('\n')
    );
    t.finish(
        Outcome::Failed,
        Some(Failure::new(FailureKind::Command, message).with_step(0, "run: ./check btrfs/001")),
        now,
    )
    .map_err(err)?;
    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    t.update_run_summary(run, &id).map_err(err)?;
    Ok(())
}

/// Runs headless Chromium on `url` with `extra` arguments.
fn chromium(extra: &[&str], url: &str, dir: &Path, name: &str) -> bootrig::Result<Ran> {
    let profile = dir.join(format!("chromium-profile-{name}"));
    std::fs::create_dir_all(&profile).map_err(|e| Error::io("creating a Chromium profile", e))?;
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url);
    run_owned(
        &format!("chromium {name}"),
        &mut cmd,
        dir,
        Duration::from_secs(120),
    )
}

fn html_report_in_chromium(ctx: &TestContext) -> bootrig::Result<()> {
    ctx.image(Image::builtin("busybox"))?;
    let dir = ctx.artifacts_dir().join("review");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the work folder", e))?;
    let scenario = dir.join("review.json");
    write(&scenario, REVIEW_SCENARIO)?;
    let runs = dir.join("runs");
    let ran = bootrig(
        &["run", "-j", "1", "--artifacts", s(&runs), s(&scenario)],
        &dir,
        Duration::from_secs(900),
    )?;
    check!(
        ran.code == Some(1),
        "bootrig run: expected exit 1 (two failures):\n{}",
        ran.text()
    );
    let run = runs.join("latest");
    add_fstests_failure(&run)?;

    // The terminal report.
    let page = dir.join("report.html");
    let rep = bootrig(
        &["report", s(&run), "--html", s(&page)],
        &dir,
        Duration::from_secs(60),
    )?;
    let t = rep.text();
    check!(rep.code == Some(0), "bootrig report failed:\n{t}");
    for want in [
        "2 passed, 3 failed, 0 skipped, 0 xfail, 0 xpass, 0 flaky (5 tests)",
        "==== FAIL review::command-fails ====",
        "failing step: step 2: succeed: test -e /no-such-file",
        "==== FAIL review::kernel-crash ====",
        "kind: kernel-crash",
        "==== FAIL fstests::btrfs/001 ====",
        "review.kernel-crash/serial.log (",
    ] {
        check!(t.contains(want), "report lacks {want:?}:\n{t}");
    }
    let marked = t
        .lines()
        .any(|l| l.starts_with(" >") && l.contains("Kernel panic - not syncing"));
    check!(marked, "the panic line is not marked:\n{t}");
    // The failing command's number: its place among the commands of the
    // test's transcript (the session's own set-up commands come first).
    let transcript =
        std::fs::read_to_string(run.join("review.command-fails").join("transcript.log"))?;
    let number = transcript
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("] $ "))
        .position(|l| l.ends_with("$ test -e /no-such-file"))
        .map(|i| i + 1)
        .unwrap_or(0);
    let want = format!("[bootrig #{number}] exit 1");
    let marked = t
        .lines()
        .any(|l| l.starts_with(" >") && l.trim_end().ends_with(&want));
    check!(
        number > 0 && marked,
        "the failing command's end marker ({want}) is not marked:\n{t}"
    );

    // The page in a real browser: the DOM after scripts would have run.
    let url = format!("file://{}", page.display());
    let dom = chromium(&["--dump-dom"], &url, &dir, "dump-dom")?;
    check!(
        dom.code == Some(0),
        "chromium --dump-dom failed:\n{}",
        dom.stderr
    );
    let d = &dom.stdout;
    write(&dir.join("report.dom.html"), d)?;
    let run_id = std::fs::canonicalize(&run)
        .map_err(|e| Error::io("resolving latest", e))?
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    check!(
        d.contains(&format!("<title>bootrig report: {run_id}</title>"))
            && !d.contains("pwned</title>"),
        "the title changed: a guest script ran"
    );
    check!(
        !d.to_lowercase().contains("<script"),
        "a <script> element is in the DOM"
    );
    check!(
        d.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "the guest's <script> is not shown as text"
    );
    check!(d.contains("<table class=\"summary\">"), "no summary table");
    check!(
        d.matches("<svg class=\"timeline\"").count() >= 4,
        "fewer than 4 timeline SVGs"
    );
    check!(
        d.matches("class=\"line fail\"").count() >= 2,
        "failure lines not highlighted"
    );
    check!(
        d.contains("class=\"failure-link\" href=\"#t"),
        "no link to the failure line"
    );
    check!(
        d.contains("<span style=\"color:#e5e510;font-weight:bold;\">coloured</span>"),
        "the ANSI colour was not rendered"
    );
    check!(
        d.contains("<p><b>fstests diff:</b></p><pre class=\"diff\">"),
        "no fstests diff"
    );
    check!(
        d.contains("<span class=\"del\">-"),
        "the diff has no removed line"
    );
    check!(
        d.contains("QEMU argv") && d.contains("sha256 <code>"),
        "no metadata (argv, hashes)"
    );

    // The kernel panic is the highlighted line of the crash's full log.
    let anchor = d
        .split("class=\"line fail\" id=\"")
        .skip(1)
        .find(|r| {
            r.split("</span>")
                .next()
                .is_some_and(|l| l.contains("Kernel panic"))
        })
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| Error::Check("the kernel panic line is not the highlighted one".into()))?
        .to_string();
    check!(anchor.contains("-L"), "odd anchor {anchor}");
    // A screenshot of the page's top: summary, each failure with its
    // highlighted console line, the first timeline.
    let shot = dir.join("report.png");
    let sr = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
            "--hide-scrollbars",
        ],
        &url,
        &dir,
        "screenshot",
    )?;
    check!(
        sr.code == Some(0),
        "chromium --screenshot failed:\n{}",
        sr.stderr
    );
    let png = std::fs::read(&shot).map_err(|e| Error::io("reading the screenshot", e))?;
    check!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    // The highlighted failure lines are drawn: pixels of their background.
    let highlighted = count_pixels(&png, [0x7a, 0x1f, 0x1f])?;
    check!(
        highlighted > 1000,
        "no highlighted failure line in the screenshot ({highlighted} pixels)"
    );
    let timeline_blue = count_pixels(&png, [0x33, 0x7a, 0xb7])?;
    check!(
        timeline_blue > 500,
        "no timeline bars in the screenshot ({timeline_blue} pixels)"
    );
    ctx.output(&format!("screenshot: {}", shot.display()));
    Ok(())
}

/// How many pixels of the PNG `png` have the colour `rgb`.
fn count_pixels(png: &[u8], rgb: [u8; 3]) -> bootrig::Result<usize> {
    let bad = |e: png::DecodingError| Error::Check(format!("decoding the screenshot: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(bad)?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    let step = info.color_type.samples();
    check!(
        step >= 3,
        "the screenshot is not in colour ({:?})",
        info.color_type
    );
    Ok(buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p[..3] == rgb)
        .count())
}

/// A scenario on the busybox image's kernel and initrd, where `slow` makes
/// the login shell sleep 3 s before its first prompt (the kernel passes
/// `ENV=/proc/cmdline` to init, and ash runs `$ENV` at start-up: the
/// command line's `slow=1;sleep 3;` is shell code), and `broken` makes one
/// test fail.
fn compare_scenario(img: &Image, slow: bool, broken: bool) -> String {
    let m = &img.manifest;
    let kernel = img
        .dir
        .join(m.kernel.as_deref().expect("busybox has a kernel"));
    let initrd = img
        .dir
        .join(m.initrd.as_deref().expect("busybox has an initrd"));
    let mut append = m.append.clone().unwrap_or_default();
    if slow {
        append.push_str(" ENV=/proc/cmdline slow=1;sleep 3;");
    }
    let prompt = m.shell_prompt.clone().expect("busybox has a shell prompt");
    serde_json::json!({
        "name": "cmp",
        "machine": { "kernel": kernel, "initrd": initrd, "append": append, "memory": "512M" },
        "shell_prompt": prompt,
        "timeouts": { "boot": 180, "step": 60, "test": 300 },
        "tests": [
            { "name": "steady", "steps": [ { "succeed": "true" } ] },
            { "name": "breaks", "steps": [ { "succeed": if broken { "false" } else { "true" } } ] }
        ]
    })
    .to_string()
}

fn compare_two_real_runs(ctx: &TestContext) -> bootrig::Result<()> {
    let img = ctx.image(Image::builtin("busybox"))?;
    let dir = ctx.artifacts_dir().join("compare");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the work folder", e))?;
    let nightly = dir.join("nightly");
    let mut run_dirs = Vec::new();
    for (name, slow, broken, code) in [("old", false, false, 0), ("new", true, true, 1)] {
        let sc = dir.join(format!("{name}.json"));
        write(&sc, &compare_scenario(&img, slow, broken))?;
        let ran = bootrig(
            &["run", "-j", "1", "--artifacts", s(&nightly), s(&sc)],
            &dir,
            Duration::from_secs(900),
        )?;
        check!(
            ran.code == Some(code),
            "bootrig run {name}: expected exit {code}:\n{}",
            ran.text()
        );
        let run = std::fs::canonicalize(nightly.join("latest"))
            .map_err(|e| Error::io("resolving latest", e))?;
        run_dirs.push(run);
    }
    let (old, new) = (&run_dirs[0], &run_dirs[1]);
    let page = dir.join("compare.html");
    let c = bootrig(
        &["compare", s(old), s(new), "--html", s(&page)],
        &dir,
        Duration::from_secs(60),
    )?;
    let t = c.text();
    check!(c.code == Some(1), "compare: expected exit 1:\n{t}");
    check!(
        t.contains("regressions (new failures): 1\n  cmp::breaks: passed -> failed"),
        "no test regression:\n{t}"
    );
    let userspace = t
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("userspace"))
        .ok_or_else(|| Error::Check(format!("no userspace row:\n{t}")))?;
    check!(userspace.ends_with("SLOWER"), "userspace not flagged:\n{t}");
    check!(t.contains("1 test regression(s), "), "{t}");
    // Each kind of regression alone fails the comparison.
    for only in ["tests", "timing"] {
        let r = bootrig(
            &["compare", s(old), s(new), "--fail-on", only],
            &dir,
            Duration::from_secs(60),
        )?;
        check!(
            r.code == Some(1),
            "--fail-on {only}: expected 1:\n{}",
            r.text()
        );
    }
    let h = std::fs::read_to_string(&page).map_err(|e| Error::io("reading compare.html", e))?;
    check!(h.contains("<svg class=\"bars\""), "no before/after bars");
    // The nightly folder: the passing run is the baseline, history shows both.
    let b = bootrig(
        &[
            "compare",
            "--baseline",
            "latest-passing",
            s(&nightly),
            s(new),
        ],
        &dir,
        Duration::from_secs(60),
    )?;
    let old_id = old.file_name().unwrap().to_string_lossy().into_owned();
    check!(
        b.code == Some(1) && b.text().contains(&format!("baseline: {old_id}")),
        "latest-passing:\n{}",
        b.text()
    );
    let hist = bootrig(
        &[
            "history",
            s(&nightly),
            "--html",
            s(&dir.join("history.html")),
        ],
        &dir,
        Duration::from_secs(60),
    )?;
    check!(
        hist.code == Some(0) && hist.stdout.contains("bootrig history: 2 run(s)"),
        "history:\n{}",
        hist.text()
    );
    Ok(())
}

/// `scripts/nightly.sh` two nights in a row: the first has no baseline
/// and passes; the second fails a test, is compared with the first, and
/// the job fails with every page published.
fn nightly_script(ctx: &TestContext) -> bootrig::Result<()> {
    ctx.image(Image::builtin("busybox"))?;
    let dir = ctx.artifacts_dir().join("nightly-job");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the work folder", e))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nightly.sh");
    let (nightly, publish) = (dir.join("nightly"), dir.join("www"));
    for (night, cmd, code) in [(1, "true", 0), (2, "false", 1)] {
        let sc = dir.join("night.json");
        write(
            &sc,
            &serde_json::json!({
                "name": "night", "machine": { "image": "busybox", "memory": "512M" },
                "tests": [ { "name": "t", "steps": [ { "succeed": cmd } ] } ]
            })
            .to_string(),
        )?;
        let mut c = Command::new("bash");
        c.arg(&script)
            .arg(&nightly)
            .arg(&publish)
            .env("BOOTRIG", bootrig_bin())
            .env("BOOTRIG_SCENARIOS", &sc);
        let ran = run_owned(
            &format!("nightly {night}"),
            &mut c,
            &dir,
            Duration::from_secs(900),
        )?;
        check!(
            ran.code == Some(code),
            "night {night}: expected exit {code}:\n{}",
            ran.text()
        );
        for page in ["report.html", "history.html", "junit.xml", "report.txt"] {
            check!(publish.join(page).is_file(), "night {night}: no {page}");
        }
        if night == 1 {
            check!(
                ran.text().contains("no earlier passing night"),
                "{}",
                ran.text()
            );
            check!(
                !publish.join("compare.html").exists(),
                "compare.html without a baseline"
            );
        }
    }
    let cmp = std::fs::read_to_string(publish.join("compare.html"))
        .map_err(|e| Error::io("reading compare.html", e))?;
    check!(
        cmp.contains("<td>regression</td><td>night::t</td><td>passed</td><td>failed</td>"),
        "no regression in compare.html"
    );
    let history = std::fs::read_to_string(publish.join("history.txt"))
        .map_err(|e| Error::io("reading history.txt", e))?;
    check!(history.contains("bootrig history: 2 run(s)"), "{history}");
    Ok(())
}

/// `bootrig run -x` stops after the first failure; `--last-failed` then
/// runs only that test.
fn fail_fast_then_last_failed(ctx: &TestContext) -> bootrig::Result<()> {
    ctx.image(Image::builtin("busybox"))?;
    let dir = ctx.artifacts_dir().join("rerun");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the work folder", e))?;
    let sc = dir.join("x.json");
    write(
        &sc,
        &serde_json::json!({
            "name": "x", "machine": { "image": "busybox", "memory": "512M" },
            "tests": [
                { "name": "first-fails", "steps": [ { "succeed": "false" } ] },
                { "name": "second", "steps": [ { "succeed": "true" } ] },
                { "name": "third", "steps": [ { "succeed": "true" } ] }
            ]
        })
        .to_string(),
    )?;
    let art = dir.join("art");
    let ran = bootrig(
        &["run", "-x", "-j", "1", "--artifacts", s(&art), s(&sc)],
        &dir,
        Duration::from_secs(600),
    )?;
    let t = ran.text();
    check!(ran.code == Some(1), "-x: expected exit 1:\n{t}");
    check!(t.contains("FAIL  x::first-fails"), "{t}");
    check!(
        !t.contains("x::second") && !t.contains("x::third"),
        "-x ran more tests:\n{t}"
    );
    check!(
        t.contains("-x: stopped after the first failure; 2 test(s) not run"),
        "{t}"
    );

    let ran = bootrig(
        &["run", "--last-failed", "--artifacts", s(&art), s(&sc)],
        &dir,
        Duration::from_secs(600),
    )?;
    let t = ran.text();
    check!(ran.code == Some(1), "--last-failed: expected exit 1:\n{t}");
    check!(
        t.contains("FAIL  x::first-fails") && !t.contains("x::second"),
        "{t}"
    );
    let run = bootrig_diagnostics::review::Run::open(&art.join("latest"))
        .map_err(|e| Error::Check(e.to_string()))?;
    check!(
        run.tests.len() == 1,
        "the rerun has {} tests",
        run.tests.len()
    );
    Ok(())
}
