//! Runs one test of a scenario file inside a [`TestContext`]: resolve the
//! machine, boot, get a shell, run the steps. [`scenario_test`] makes it a
//! [`Test`] for the engine, shared by `bootrig run` and [`crate::Suite`].

use std::sync::Arc;

use crate::errors::{Error, Result};
use crate::events::Event;
use crate::image::Image;
use crate::run::context::TestContext;
use crate::run::engine::Test;
use crate::run::marks::Marks;
use crate::run::scenario::{Scenario, TestSpec};
use crate::vm::config::{Drive, MachineConfig};

/// The engine's test for test `index` of a scenario: its name
/// (`scenario::test`), markers (deadline from `timeouts.test`, `xfail`,
/// the scenario's and the test's `marks`) and
/// body.
pub fn scenario_test(sc: &Arc<Scenario>, index: usize) -> Test {
    let test = &sc.tests[index];
    let mut marks = Marks::new();
    marks.declarative = true;
    if let Some(t) = sc.test_timeout() {
        marks = marks.timeout(t);
    }
    if let Some(reason) = &test.xfail {
        marks = marks.xfail(reason.clone());
    }
    for name in sc.marks.0.iter().chain(&test.marks.0) {
        marks = marks.mark(name.clone());
    }
    let sc2 = sc.clone();
    Test::new(format!("{}::{}", sc.name, test.name), marks, move |ctx| {
        run_test(ctx, &sc2, &sc2.tests[index])
    })
}

/// Resolves the scenario's machine into a config (building the image if
/// one is named). Returns the config and the built image, if any.
fn machine_config(
    ctx: &TestContext,
    sc: &Scenario,
    test: &TestSpec,
) -> Result<(MachineConfig, Option<Image>)> {
    let m = &sc.machine;
    let vm_name = format!("{}-{}", sc.name, test.name);
    let (mut cfg, image) = match &m.image {
        Some(name) => {
            let img = ctx.image(Image::builtin(name))?;
            (img.machine_config(&vm_name, m.firmware), Some(img))
        }
        None => {
            let mut cfg = MachineConfig::new(&vm_name);
            if let Some(k) = &m.kernel {
                cfg = cfg.with_kernel(k, m.initrd.clone(), m.append.clone().unwrap_or_default());
            }
            if let Some(iso) = &m.iso {
                cfg = cfg.with_iso(iso);
            }
            if let Some(disk) = &m.disk {
                cfg = cfg.with_disk(disk).with_persist(m.persist);
            }
            (cfg.with_firmware(m.firmware.unwrap_or_default()), None)
        }
    };
    if let Some(mem) = m.memory {
        cfg = cfg.with_memory_mib((mem.0 >> 20).max(1));
    }
    if let Some(cpus) = m.cpus {
        cfg = cfg.with_cpus(cpus);
    }
    if let Some(accel) = m.accel {
        cfg = cfg.with_accel(accel);
    }
    cfg = cfg
        .with_display(m.display)
        .with_command_channel(m.command_channel);
    for d in &m.drives {
        cfg = cfg.with_drive(match (&d.path, &d.size) {
            (Some(p), _) => Drive::File(p.clone()),
            (None, Some(size)) => Drive::Scratch(size.0),
            (None, None) => unreachable!("validated when the scenario was loaded"),
        });
    }
    Ok((cfg, image))
}

/// Boots the scenario's machine and runs `test`'s steps. The session
/// reports its own phases (`login`, `become root`, `shell`) through the
/// context's hooks.
pub fn run_test(ctx: &TestContext, sc: &Scenario, test: &TestSpec) -> Result<()> {
    let (cfg, image) = machine_config(ctx, sc, test)?;
    let pm = ctx.postmortem();
    pm.set_scenario(&sc.name, &sc.file);
    pm.set_diagnostics_spec(&sc.diagnostics.units, &sc.diagnostics.commands);
    pm.set_warnings_fatal(sc.diagnostics.warnings_fatal);
    let manifest = image.as_ref().map(|i| &i.manifest);
    let shell_prompt = sc
        .shell_prompt
        .as_ref()
        .map(|r| r.0.clone())
        .or_else(|| manifest.and_then(|m| m.shell_prompt.clone()));
    // Decided before booting: a scenario that cannot get a shell must not
    // boot a VM to find out.
    if sc.login.is_none() && shell_prompt.is_none() {
        if let Some(step) = test.steps.iter().find(|s| s.needs_shell()) {
            return Err(Error::Config {
                what: format!("scenario {}", sc.file.display()),
                message: format!(
                    "step `{}` needs a shell, but the scenario has neither \"login\" nor \"shell_prompt\"",
                    step.describe()
                ),
            });
        }
    }
    let vm = ctx.boot_with(cfg, sc.timeouts.session())?;
    if let Some(login) = &sc.login {
        vm.login(&login.user, &login.password)?;
        if login.root {
            vm.become_root()?;
        }
    } else if let Some(prompt) = &shell_prompt {
        vm.attach_shell(prompt)?;
    }
    for (i, step) in test.steps.iter().enumerate() {
        let description = step.describe();
        pm.step_start(i, &description);
        ctx.settings().events.send(Event::Step {
            test: ctx.name().to_string(),
            index: i,
            description,
        });
        let result = step.execute(&vm);
        pm.step_end(i, result.is_ok());
        result?;
    }
    Ok(())
}
