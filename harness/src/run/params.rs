//! The parameters of one case of a multi-parameter
//! [`Suite::parametrize_grid`](crate::Suite::parametrize_grid), and the
//! readable, folder-safe id that names it.

use std::fmt;

/// One case of a parameter grid: a value for each named parameter, in the
/// order the parameters were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The value of parameter `key`, if the grid has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of parameter `key`; a test asking for a parameter its
    /// grid does not have fails with a message naming both.
    pub fn value(&self, key: &str) -> crate::Result<&str> {
        self.get(key).ok_or_else(|| crate::Error::Config {
            what: "parametrize".into(),
            message: format!("no parameter {key:?} in this case ({self})"),
        })
    }

    /// The (parameter, value) pairs in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The case's id, as in pytest: the values joined by `-`
    /// (`debian-ext4`), each reduced to `[A-Za-z0-9_.]` (any other
    /// character becomes `_`) so that the trial name is stable, can be
    /// typed in a filter and is a folder name as it is.
    pub fn id(&self) -> String {
        self.pairs
            .iter()
            .map(|(_, v)| id_part(v))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Every combination of `axes` (the cartesian product, the last
    /// parameter varying fastest). No axes, or an axis without values,
    /// gives no case.
    pub fn grid(axes: &[(String, Vec<String>)]) -> Vec<Params> {
        if axes.is_empty() {
            return Vec::new();
        }
        let mut cases = vec![Params { pairs: Vec::new() }];
        for (key, values) in axes {
            cases = cases
                .iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut pairs = c.pairs.clone();
                        pairs.push((key.clone(), v.clone()));
                        Params { pairs }
                    })
                })
                .collect();
        }
        cases
    }
}

/// `image=debian, fs=ext4`.
impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&shown.join(", "))
    }
}

/// A value as part of an id: `[A-Za-z0-9_.]` kept, anything else `_`,
/// never empty.
fn id_part(value: &str) -> String {
    let part: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if part.is_empty() {
        "_".to_string()
    } else {
        part
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(a: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        a.iter()
            .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
            .collect()
    }

    #[test]
    fn the_grid_is_the_product_in_order() {
        let cases = Params::grid(&axes(&[
            ("image", &["busybox", "debian"]),
            ("fs", &["ext4", "xfs", "btrfs"]),
        ]));
        let ids: Vec<String> = cases.iter().map(Params::id).collect();
        assert_eq!(
            ids,
            [
                "busybox-ext4",
                "busybox-xfs",
                "busybox-btrfs",
                "debian-ext4",
                "debian-xfs",
                "debian-btrfs"
            ]
        );
        assert_eq!(cases[4].get("fs"), Some("xfs"));
        assert_eq!(cases[4].get("image"), Some("debian"));
        assert_eq!(cases[4].get("nope"), None);
        assert!(cases[4].value("nope").is_err());
        assert_eq!(cases[4].to_string(), "image=debian, fs=xfs");
        assert!(Params::grid(&[]).is_empty());
        assert!(Params::grid(&axes(&[("a", &["1"]), ("b", &[])])).is_empty());
    }

    #[test]
    fn ids_are_safe_folder_names() {
        let cases = Params::grid(&axes(&[("p", &["a/b c", "", "../x", "2.5"])]));
        let ids: Vec<String> = cases.iter().map(Params::id).collect();
        assert_eq!(ids, ["a_b_c", "_", ".._x", "2.5"]);
        // The id never makes the trial's folder lossy (no hash suffix).
        let folder = bootrig_diagnostics::names::safe_name(&format!("boot::{}", ids[0]));
        assert_eq!(folder, "boot.a_b_c");
    }
}
