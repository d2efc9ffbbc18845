//! A scenario's machines: one `machine`, or named `machines` on private
//! networks, and which machine each step runs on (`"on"`). Checked when
//! the scenario is loaded, so a bad name boots nothing.

use std::path::Path;

use crate::errors::{Error, Result};
use std::collections::BTreeMap;

use crate::run::locate::{locate, locate_path, locate_test};
use crate::run::machine_spec::MachineSpec;
use crate::run::steps::PlacedStep;
use crate::vm::network::valid_host_name;

/// The most machines a scenario may have.
pub const MAX_MACHINES: usize = 16;

/// A scenario's machines, as written: `machine` or `machines`.
pub(crate) struct Machines<'a> {
    /// `machine`.
    pub(crate) one: &'a mut Option<MachineSpec>,
    /// `machines`.
    pub(crate) named: &'a mut BTreeMap<String, MachineSpec>,
}

/// Resolves and checks the machines (`machine` xor `machines`) of a
/// scenario read from `text` at `path`, and the `on` of every step of its
/// `tests` (name and steps).
pub(crate) fn check(
    machines: Machines<'_>,
    tests: &[(&str, &[PlacedStep])],
    text: &str,
    path: &Path,
) -> Result<()> {
    let Machines { one, named } = machines;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let at = |keys: &[&str], message: String| Error::Scenario {
        location: locate_path(text, path, keys),
        message,
    };
    match (&mut *one, named.is_empty()) {
        (Some(_), false) => {
            return Err(at(
                &["machines"],
                "give \"machine\" (one VM) or \"machines\" (named VMs), not both".into(),
            ))
        }
        (None, true) => {
            return Err(Error::Scenario {
                location: path.display().to_string(),
                message: "the scenario needs \"machine\" (one VM) or \"machines\" (named VMs)"
                    .into(),
            })
        }
        (Some(m), true) => {
            m.resolve(&base, &|key, message| Error::Scenario {
                location: locate(text, path, key),
                message,
            })?;
            if !m.networks.is_empty() {
                return Err(at(
                    &["networks"],
                    "\"networks\" joins machines of \"machines\": name the machines that share it"
                        .into(),
                ));
            }
        }
        (None, false) => {
            if named.len() > MAX_MACHINES {
                return Err(at(
                    &["machines"],
                    format!(
                        "{} machines: a scenario has at most {MAX_MACHINES}",
                        named.len()
                    ),
                ));
            }
            for (name, m) in named.iter_mut() {
                if !valid_host_name(name) {
                    return Err(at(
                        &["machines", name],
                        format!(
                            "machine name {name:?}: it is the machine's host name, 1 to 63 \
                             lowercase letters, digits or '-', starting with a letter"
                        ),
                    ));
                }
                m.resolve(&base, &|key, message| Error::Scenario {
                    location: locate_path(text, path, &["machines", name, key]),
                    message: format!("machine {name:?}: {message}"),
                })?;
            }
        }
    }
    let names = || named.keys().cloned().collect::<Vec<_>>().join(", ");
    for (i, (test, steps)) in tests.iter().enumerate() {
        for (j, step) in steps.iter().enumerate() {
            let problem = match (&step.on, &*one) {
                (Some(on), Some(_)) => Some(format!(
                    "\"on\": {on:?} names one of \"machines\", but this scenario has one \"machine\""
                )),
                (Some(on), None) if !named.contains_key(on) => Some(format!(
                    "\"on\": {on:?} is not a machine of this scenario (machines: {})",
                    names()
                )),
                (None, None) if named.len() > 1 => Some(format!(
                    "the step has no \"on\": with several machines each step names the one it \
                     runs on ({})",
                    names()
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                return Err(Error::Scenario {
                    location: locate_test(text, path, i),
                    message: format!(
                        "test {:?}, step {} (`{}`): {problem}",
                        test,
                        j + 1,
                        step.describe()
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::scenario::Scenario;

    fn parse(text: &str) -> Result<Scenario> {
        Scenario::parse(text, Path::new("dir/web.json"))
    }

    fn err_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const TWO: &str = r#"{
  "name": "web",
  "machines": {
    "server": { "image": "busybox", "networks": ["lan"] },
    "client": { "image": "busybox", "networks": ["lan", "other"] }
  },
  "tests": [{ "name": "fetch", "steps": [
    { "on": "server", "succeed": "httpd" },
    { "on": "client", "succeed": "nc server 80" }
  ] }]
}"#;

    #[test]
    fn machines_are_listed_by_name_and_steps_keep_their_machine() {
        let sc = parse(TWO).unwrap();
        let names: Vec<Option<&str>> = sc.machine_list().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [Some("client"), Some("server")]);
        assert_eq!(sc.network_names(), ["lan", "other"]);
        assert!(sc.machine_list().iter().all(|(_, m)| m.user_network));
        let steps = &sc.tests[0].steps;
        assert_eq!(steps[1].on.as_deref(), Some("client"));
        assert_eq!(steps[1].describe(), "succeed: nc server 80");
    }

    #[test]
    fn a_step_on_an_unknown_machine_is_refused_with_the_file_test_and_step() {
        let e = err_of(&TWO.replace("\"on\": \"client\"", "\"on\": \"clinet\""));
        assert!(e.starts_with("dir/web.json:7:"), "{e}");
        assert!(
            e.contains("test \"fetch\", step 2 (`succeed: nc server 80`)")
                && e.contains("\"on\": \"clinet\" is not a machine of this scenario (machines: client, server)"),
            "{e}"
        );
    }

    #[test]
    fn with_several_machines_every_step_names_one() {
        let e = err_of(&TWO.replace("\"on\": \"server\", ", ""));
        assert!(
            e.contains("step 1 (`succeed: httpd`): the step has no \"on\""),
            "{e}"
        );
    }

    #[test]
    fn machine_and_machines_do_not_mix() {
        let one = r#"{"name": "s", "machine": {"image": "busybox"},
            "tests": [{"name": "t", "steps": [{"on": "x", "succeed": "true"}]}]}"#;
        assert!(err_of(one).contains("this scenario has one \"machine\""));
        let both = TWO.replace(
            "\"machines\"",
            "\"machine\": {\"image\": \"busybox\"}, \"machines\"",
        );
        assert!(err_of(&both).contains("not both"), "{}", err_of(&both));
        let neither = r#"{"name": "s", "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"#;
        assert!(err_of(neither).contains("needs \"machine\""));
        let lonely = r#"{"name": "s", "machine": {"image": "busybox", "networks": ["lan"]},
            "tests": [{"name": "t", "steps": [{"succeed": "true"}]}]}"#;
        assert!(err_of(lonely).contains("\"networks\" joins machines"));
    }

    #[test]
    fn names_are_checked_where_they_are_written() {
        let e = err_of(&TWO.replace("\"server\": {", "\"Server!\": {"));
        assert!(e.starts_with("dir/web.json:4:"), "{e}");
        assert!(e.contains("machine name \"Server!\""), "{e}");
        let e = err_of(&TWO.replace("[\"lan\", \"other\"]", "[\"lan\", \"no way\"]"));
        assert!(
            e.contains("machine \"client\": network name \"no way\""),
            "{e}"
        );
        let e = err_of(&TWO.replace(
            "\"client\": { \"image\": \"busybox\"",
            "\"client\": { \"image\": \"nope\"",
        ));
        assert!(
            e.contains("machine \"client\": unknown image \"nope\""),
            "{e}"
        );
        let off = parse(&TWO.replace(
            "\"networks\": [\"lan\"] }",
            "\"networks\": [\"lan\"], \"user_network\": false }",
        ))
        .unwrap();
        assert!(!off.machines["server"].user_network);
        let e = err_of(&TWO.replace("\"on\": \"server\",", "\"on\": 3,"));
        assert!(e.contains("\"on\" names a machine, not 3"), "{e}");
    }
}
