//! Warm start against cold boot: time to a responsive shell in the same
//! state, for the `busybox` image (root shell) and the `debian` image
//! (logged in, root, `multi-user.target` reached), measured side by side
//! in one run.
//!
//! `cargo bench -p bootrig --bench warm [-- RUNS [IMAGE...]]` (default 3
//! runs each, cold and warm interleaved so host drift hits both alike).
//! Snapshots go to a temporary folder: the first warm start of each image
//! boots and saves (reported apart), the measured ones restore.

use std::time::Instant;

use bootrig::{Image, RunSettings, TestContext, Timeouts, WarmState};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runs: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(3);
    let mut images: Vec<&str> = args
        .iter()
        .filter(|a| a.parse::<usize>().is_err())
        .map(String::as_str)
        .collect();
    if images.is_empty() {
        images = vec!["busybox", "debian"];
    }
    let tmp = tempfile::tempdir().unwrap();
    std::env::set_var(bootrig::SNAPSHOTS_ENV, tmp.path().join("snapshots"));
    let settings = RunSettings::for_root(tmp.path().join("artifacts"));
    let mut n = 0;
    let mut ctx = |kind: &str| {
        n += 1;
        TestContext::new(&format!("bench::{kind}{n}"), settings.clone()).unwrap()
    };
    println!("warm start vs cold boot to a responsive shell, TCG, {runs} runs each (median):");
    for name in images {
        let c = ctx("image");
        let img = c.image(Image::builtin(name)).unwrap();
        let state = WarmState::for_image(&img);
        let config = img.machine_config(name, None);
        drop(c.finish(&Ok(()), None));

        // The snapshot: a cold boot, the state reached, saved.
        let c = ctx("save");
        let started = Instant::now();
        let vm = c
            .boot_warm(config.clone(), &state, Timeouts::default())
            .unwrap();
        vm.succeed("true").unwrap();
        let save = started.elapsed().as_secs_f64();
        drop(vm);
        drop(c.finish(&Ok(()), None));

        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let c = ctx("cold");
            let started = Instant::now();
            let vm = c.boot(config.clone()).unwrap();
            state.reach(&vm).unwrap();
            vm.succeed("true").unwrap();
            cold.push(started.elapsed().as_secs_f64());
            drop(vm);
            drop(c.finish(&Ok(()), None));

            let c = ctx("warm");
            let started = Instant::now();
            let vm = c
                .boot_warm(config.clone(), &state, Timeouts::default())
                .unwrap();
            vm.succeed("true").unwrap();
            warm.push(started.elapsed().as_secs_f64());
            drop(vm);
            drop(c.finish(&Ok(()), None));
        }
        let (c, w) = (median(&mut cold), median(&mut warm));
        println!("  {name:8} cold boot to responsive shell   {c:7.3} s   1.000 (baseline)");
        println!(
            "  {name:8} warm start (restore)            {w:7.3} s   {:.3}",
            w / c
        );
        println!(
            "  {name:8} first warm start (boot + save)  {save:7.3} s   {:.3}",
            save / c
        );
    }
}
