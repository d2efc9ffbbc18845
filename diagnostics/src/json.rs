//! Reading bootrig's versioned JSON files with errors that name the file,
//! the line, the column and the field.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::errors::{Error, ErrorKind, JsonProblem, Result};

/// Parses `text` (the contents of `path`) as a `T` whose document carries a
/// `schema_version` no newer than `supported`. `action` names what was being
/// done in errors (`loading metadata`).
pub(crate) fn parse_versioned<T: DeserializeOwned>(
    text: &str,
    path: &Path,
    action: &str,
    supported: u32,
) -> Result<T> {
    let problem = |e: serde_json::Error| {
        Error::new(
            action,
            path,
            ErrorKind::Json(JsonProblem::from_serde(text, &e)),
        )
    };
    // Syntax first, and the version before the types: a file from a newer
    // bootrig should say so rather than complain about some field.
    let value: serde_json::Value = serde_json::from_str(text).map_err(problem)?;
    if let Some(found) = value.get("schema_version").and_then(|v| v.as_u64()) {
        if found > u64::from(supported) {
            return Err(Error::new(
                action,
                path,
                ErrorKind::UnsupportedSchema {
                    found,
                    supported: u64::from(supported),
                },
            ));
        }
    }
    serde_json::from_str(text).map_err(problem)
}

/// Reads and parses the file at `path`, see [`parse_versioned`].
pub(crate) fn load_versioned<T: DeserializeOwned>(
    path: &Path,
    action: &str,
    supported: u32,
) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(action, path, e))?;
    parse_versioned(&text, path, action, supported)
}
