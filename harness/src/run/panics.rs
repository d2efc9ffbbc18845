//! Panics in a test body, told apart: a panic in a Rust test's own code
//! (a failed `assert!`) is the test's failure, [`Error::Panic`] with where
//! it happened; a panic in bootrig's code, or anywhere under a declarative
//! scenario test (whose body is all bootrig), is a harness bug,
//! [`Error::HarnessPanic`] (failure kind `harness-error`).
//!
//! Where a panic happened comes from a panic hook, installed once, that
//! notes the location on the panicking thread and then calls the hook that
//! was there before (so the usual message is still printed).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::sync::Once;

use crate::errors::{Error, Result};

thread_local! {
    /// Where the last panic on this thread happened.
    static LAST_PANIC: RefCell<Option<(String, u32, u32)>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l: &Location<'_>| (l.file().to_string(), l.line(), l.column()));
            LAST_PANIC.with(|p| *p.borrow_mut() = at);
            previous(info);
        }));
    });
}

/// Runs `body`, turning a panic into an error as the module says.
/// `declarative`: the body is bootrig's own (a scenario test).
pub(crate) fn catch(declarative: bool, body: impl FnOnce() -> Result<()>) -> Result<()> {
    install_hook();
    LAST_PANIC.with(|p| p.borrow_mut().take());
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        let at = LAST_PANIC.with(|p| p.borrow_mut().take());
        Err(classify(declarative, message, at))
    })
}

/// The error for a panic saying `message` at `at` (file, line, column).
fn classify(declarative: bool, message: String, at: Option<(String, u32, u32)>) -> Error {
    let location = at
        .as_ref()
        .map(|(f, l, c)| format!("{f}:{l}:{c}"))
        .unwrap_or_else(|| "unknown".into());
    let ours = at.as_ref().is_some_and(|(f, _, _)| in_bootrig(f));
    if declarative || ours {
        Error::HarnessPanic { message, location }
    } else {
        Error::Panic(format!("{message} (at {location})"))
    }
}

/// Whether a source path is bootrig's own: this workspace's crates, or
/// the published crates in cargo's registry or git checkouts.
fn in_bootrig(file: &str) -> bool {
    let file = file.replace('\\', "/");
    let ours = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/src/"),
        "harness/src/",
        "diagnostics/src/",
    ];
    ours.iter().any(|p| file.starts_with(p))
        || ["/bootrig-", "/bootrig/"].iter().any(|crate_dir| {
            file.split_once(crate_dir)
                .is_some_and(|(_, rest)| rest.contains("/src/") && !rest.contains("/tests/"))
        }) && !file.contains("/bootrig-tests/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootrig_diagnostics::metadata::FailureKind;

    #[test]
    fn panics_are_told_apart() {
        let e = catch(false, || panic!("boom")).unwrap_err();
        assert_eq!(e.failure_kind(), FailureKind::HarnessError, "{e}");
        let e = classify(false, "boom".into(), Some(("tests/runner.rs".into(), 3, 4)));
        assert_eq!(e.failure_kind(), FailureKind::Check);
        assert_eq!(
            e.to_string(),
            "test panicked: boom (at tests/runner.rs:3:4)"
        );
        let at = Some(("/rustc/abc/library/core/src/time.rs".to_string(), 1, 1));
        assert_eq!(
            classify(true, "x".into(), at.clone()).failure_kind(),
            FailureKind::HarnessError,
            "anything under a scenario test is bootrig's"
        );
        assert_eq!(
            classify(false, "x".into(), at).failure_kind(),
            FailureKind::Check
        );
        let registry = "/home/u/.cargo/registry/src/x/bootrig-0.1.0/src/run/steps.rs";
        assert!(in_bootrig(registry));
        assert!(!in_bootrig("/home/u/proj/tests/vm.rs"));
    }
}
