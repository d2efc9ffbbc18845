//! Runs one test of a scenario file inside a [`TestContext`]: resolve the
//! machine, boot, get a shell, run the steps. Shared by `bootrig run` and
//! the libtest runner.

use std::sync::Arc;
use std::time::Duration;

use crate::errors::{Error, Result};
use crate::guest::session::{compile, Session};
use crate::image::Image;
use crate::run::context::TestContext;
use crate::run::scenario::{Scenario, Step, TestSpec};
use crate::vm::config::{Drive, MachineConfig};

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
            let img = ctx.image(&Image::builtin(name))?;
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
    cfg = cfg.with_display(m.display);
    for d in &m.drives {
        cfg = cfg.with_drive(match (&d.path, &d.size) {
            (Some(p), _) => Drive::File(p.clone()),
            (None, Some(size)) => Drive::Scratch(size.0),
            (None, None) => unreachable!("validated when the scenario was loaded"),
        });
    }
    Ok((cfg, image))
}

/// Boots the scenario's machine and runs `test`'s steps.
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
        if let Some(step) = test.steps.iter().find(|s| needs_shell(s)) {
            return Err(Error::Config {
                what: format!("scenario {}", sc.file.display()),
                message: format!(
                    "step `{}` needs a shell, but the scenario has neither \"login\" nor \"shell_prompt\"",
                    step.describe()
                ),
            });
        }
    }
    // A live line on a terminal while the guest boots; nothing otherwise.
    let spinner = ctx
        .settings()
        .progress
        .spinner(&format!("{}: booting", ctx.name()));
    let vm = ctx.boot_with(cfg, sc.timeouts.session())?;
    if let Some(login) = &sc.login {
        pm.phase_start("login");
        vm.login(&login.user, &login.password)?;
        pm.phase_end("login");
        if login.root {
            pm.phase_start("become root");
            vm.become_root()?;
            pm.phase_end("become root");
        }
        pm.mark_shell_ready();
    } else if let Some(prompt) = &shell_prompt {
        pm.phase_start("shell");
        vm.attach_shell(prompt)?;
        pm.phase_end("shell");
        pm.mark_shell_ready();
    }
    drop(spinner);
    for (i, step) in test.steps.iter().enumerate() {
        pm.step_start(i, &step.describe());
        let result = run_step(&vm, step);
        pm.step_end(i, result.is_ok());
        result?;
    }
    Ok(())
}

fn needs_shell(step: &Step) -> bool {
    !matches!(step, Step::Expect(_) | Step::Send(_) | Step::SendKey(_))
}

/// Runs one step.
pub fn run_step(vm: &Arc<Session>, step: &Step) -> Result<()> {
    let step_timeout = vm.timeouts().step;
    match step {
        Step::Expect(re) => vm.wait_for_console(re, step_timeout).map(drop),
        Step::Send(text) => vm.send(text),
        Step::SendKey(key) => vm.send_key(*key),
        Step::Succeed(cmd) => vm.succeed(cmd).map(drop),
        Step::Fail(cmd) => vm.fail(cmd).map(drop),
        Step::Run {
            cmd,
            exit,
            output_matches,
        } => {
            let out = vm.run(cmd)?;
            if out.exit != *exit {
                return Err(Error::Command {
                    command: cmd.clone(),
                    expected: format!("was expected to exit with {exit}"),
                    exit: out.exit,
                    output: out.output,
                });
            }
            if let Some(pattern) = output_matches {
                let re = compile(pattern)?;
                if !re.is_match(out.output.as_bytes()) {
                    return Err(Error::Command {
                        command: cmd.clone(),
                        expected: format!("was expected to print output matching /{pattern}/"),
                        exit: out.exit,
                        output: out.output,
                    });
                }
            }
            Ok(())
        }
        Step::WaitForUnit { unit, timeout } => vm.wait_for_unit_within(
            unit,
            timeout.map(Duration::from_secs_f64).unwrap_or(step_timeout),
        ),
        Step::WaitUntilSucceeds { cmd, timeout } => vm
            .wait_until_succeeds(
                cmd,
                timeout.map(Duration::from_secs_f64).unwrap_or(step_timeout),
            )
            .map(drop),
    }
}
