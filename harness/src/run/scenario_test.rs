//! Runs one test of a scenario file inside a [`TestContext`]: resolve the
//! machines (one `machine`, or named `machines` on private networks),
//! boot them, get their shells, bring up their networks, run the steps,
//! each on its machine. [`scenario_test`] makes it a
//! [`Test`] for the engine, shared by `bootrig run` and [`crate::Suite`].

use std::sync::Arc;

use crate::errors::{Error, Result};
use crate::events::Event;
use crate::guest::session::Session;
use crate::image::Image;
use crate::run::context::TestContext;
use crate::run::engine::Test;
use crate::run::machine_spec::MachineSpec;
use crate::run::marks::Marks;
use crate::run::scenario::{Scenario, TestSpec};
use crate::run::warm::{Start, WarmState};
use crate::vm::config::{Drive, MachineConfig};

/// The engine's test for test `index` of a scenario: its name
/// (`scenario::test`), markers (deadline from `timeouts.test`, `xfail`,
/// the scenario's and the test's `marks`) and
/// body.
pub fn scenario_test(sc: &Arc<Scenario>, index: usize) -> Test {
    let test = &sc.tests[index];
    let mut marks = Marks::new();
    marks.declarative = true;
    marks = marks.vms(sc.machine_list().len());
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

/// Resolves a scenario machine `m` into a config for the VM `vm_name`
/// (building the image if one is named). Returns the config and the built
/// image, if any.
fn machine_config(
    ctx: &TestContext,
    m: &MachineSpec,
    vm_name: &str,
) -> Result<(MachineConfig, Option<Image>)> {
    let (mut cfg, image) = match &m.image {
        Some(name) => {
            let img = ctx.image(Image::builtin(name))?;
            let mut cfg = img.machine_config(vm_name, m.firmware);
            if let Some(kernel) = &m.kernel {
                cfg = cfg.with_user_kernel(crate::vm::kernel::UserKernel {
                    kernel: kernel.clone(),
                    modules: m.modules.clone(),
                    append: m.append.clone().unwrap_or_default(),
                });
            }
            (cfg, Some(img))
        }
        None => {
            let mut cfg = MachineConfig::new(vm_name);
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
    for s in &m.shares {
        cfg = cfg.with_share(s.share());
    }
    cfg.forwards.extend(m.forwards.iter().copied());
    cfg.network = m.user_network;
    for d in &m.drives {
        cfg = cfg.with_drive(match (&d.path, &d.size) {
            (Some(p), _) => Drive::File(p.clone()),
            (None, Some(size)) => Drive::Scratch(size.0),
            (None, None) => unreachable!("validated when the scenario was loaded"),
        });
    }
    Ok((cfg, image))
}

/// A machine of the test, resolved, before it boots.
struct Planned {
    name: Option<String>,
    config: MachineConfig,
    shell_prompt: Option<String>,
    start: Start,
}

/// Resolves every machine of the scenario (networks started and joined)
/// and checks, before anything boots, that each machine a step needs a
/// shell on (or that is on a network) can get one.
fn plan(ctx: &TestContext, sc: &Scenario, test: &TestSpec) -> Result<Vec<Planned>> {
    let networks = sc
        .network_names()
        .into_iter()
        .map(|n| ctx.network(n))
        .collect::<Result<Vec<_>>>()?;
    let mut planned = Vec::new();
    for (name, m) in sc.machine_list() {
        let vm_name = name
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-{}", sc.name, test.name));
        let (mut config, image) = machine_config(ctx, m, &vm_name)?;
        for net in networks
            .iter()
            .filter(|n| m.networks.iter().any(|x| x == n.name()))
        {
            config = config.with_network(net)?;
        }
        let shell_prompt = sc
            .shell_prompt
            .as_ref()
            .map(|r| r.0.clone())
            .or_else(|| image.as_ref().and_then(|i| i.manifest.shell_prompt.clone()));
        if sc.login.is_none() && shell_prompt.is_none() {
            let mine = |on: &Option<String>| on.is_none() || on.as_deref() == name;
            let what = match name {
                Some(n) => format!("machine {n:?}"),
                None => "the scenario".to_string(),
            };
            let needs = test.steps.iter().find(|s| mine(&s.on) && s.needs_shell());
            let reason = match needs {
                Some(step) => Some(format!("step `{}` needs a shell", step.describe())),
                None if !m.networks.is_empty() => {
                    Some("its networks are set up from a shell".to_string())
                }
                None => None,
            };
            if let Some(reason) = reason {
                return Err(Error::Config {
                    what: format!("scenario {}", sc.file.display()),
                    message: format!(
                        "{reason}, but {what} has neither \"login\" nor \"shell_prompt\""
                    ),
                });
            }
        }
        planned.push(Planned {
            name: name.map(str::to_string),
            config,
            shell_prompt,
            start: m.start,
        });
    }
    Ok(planned)
}

/// Boots the scenario's machines and runs `test`'s steps. Every machine's
/// QEMU starts before the first shell is awaited, so the boots overlap;
/// then each gets its shell and its networks. The session reports its own
/// phases (`login`, `become root`, `shell`) through the context's hooks.
pub fn run_test(ctx: &TestContext, sc: &Scenario, test: &TestSpec) -> Result<()> {
    let pm = ctx.postmortem();
    pm.set_scenario(&sc.name, &sc.file);
    pm.set_diagnostics_spec(&sc.diagnostics.units, &sc.diagnostics.commands);
    pm.set_warnings_fatal(sc.diagnostics.warnings_fatal);
    // Decided before booting: a scenario that cannot get a shell must not
    // boot a VM to find out.
    let planned = plan(ctx, sc, test)?;
    // Cold machines' QEMUs start first, so their boots overlap with the
    // warm ones' restores (or the cold boot that saves a snapshot).
    let mut booted: Vec<Option<(Arc<Session>, bool)>> = vec![None; planned.len()];
    for (i, p) in planned.iter().enumerate() {
        if p.start == Start::Cold {
            booted[i] = Some((
                ctx.boot_with(p.config.clone(), sc.timeouts.session())?,
                false,
            ));
        }
    }
    for (i, p) in planned.iter().enumerate() {
        if p.start == Start::Warm {
            // From a snapshot of the state the scenario asks for (booted,
            // logged in, root; `multi-user.target` with a login), taken
            // before the networks are set up.
            let state = warm_state(sc, p);
            let vm = ctx.boot_warm(p.config.clone(), &state, sc.timeouts.session())?;
            booted[i] = Some((vm, true));
        }
    }
    let mut vms: Vec<Booted> = Vec::new();
    for (p, vm) in planned.into_iter().zip(booted) {
        let (vm, ready) = vm.expect("every machine was started");
        if !ready {
            if let Some(login) = &sc.login {
                vm.login(&login.user, &login.password)?;
                if login.root {
                    vm.become_root()?;
                }
            } else if let Some(prompt) = &p.shell_prompt {
                vm.attach_shell(prompt)?;
            }
        }
        vms.push((p.name, vm, p.shell_prompt));
    }
    for (_, vm, _) in &vms {
        ctx.network_up(vm)?;
    }
    run_steps(ctx, test, &vms)
}

/// The state machine `p` of scenario `sc` starts warm in: booted, logged
/// in (root with `"root": true`, `multi-user.target` reached), or at its
/// shell prompt.
fn warm_state(sc: &Scenario, p: &Planned) -> WarmState {
    match (&sc.login, &p.shell_prompt) {
        (Some(l), _) => {
            let s = WarmState::login(&l.user, &l.password).with_unit("multi-user.target");
            if l.root {
                s.root()
            } else {
                s
            }
        }
        (None, Some(prompt)) => WarmState::shell(prompt),
        (None, None) => WarmState::default(),
    }
}

/// A booted machine of a test: its name (None for the only `machine`),
/// its session, its shell prompt.
type Booted = (Option<String>, Arc<Session>, Option<String>);

/// Runs `test`'s steps, each on its machine (`on`, else the first),
/// recording each.
fn run_steps(ctx: &TestContext, test: &TestSpec, vms: &[Booted]) -> Result<()> {
    let pm = ctx.postmortem();
    for (i, step) in test.steps.iter().enumerate() {
        let vm = match &step.on {
            None => &vms[0].1,
            Some(on) => match vms
                .iter()
                .find(|(n, _, _)| n.as_deref() == Some(on.as_str()))
            {
                Some((_, vm, _)) => vm,
                None => unreachable!("`on` is checked when the scenario is loaded"),
            },
        };
        let mut description = step.describe();
        if let Some(on) = &step.on {
            description = format!("on {on}: {description}");
        }
        pm.step_start(i, &description);
        ctx.settings().events.send(Event::Step {
            test: ctx.name().to_string(),
            index: i,
            description,
        });
        let result = step.execute(vm);
        pm.step_end(i, result.is_ok());
        result?;
    }
    Ok(())
}
