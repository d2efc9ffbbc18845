//! Extending the postmortem from a Rust test: a custom host-side
//! collector and a custom artifact.
//!
//! A test suite is a binary whose `main` builds a [`Suite`]. A test adds
//! to what a failure leaves behind through its [`TestContext`]:
//!
//! * [`TestContext::add_collector`] registers a [`Collector`]. When the
//!   test fails it runs on every VM of the test, after the built-in
//!   collectors registered before it (journal, dmesg tail, console tail,
//!   QMP status, ...). A host collector reads host-side state (here the
//!   console's byte count, QEMU's command line, the host's load); a guest
//!   collector ([`Side::Guest`]) runs commands through
//!   [`VmHandle::run`]. Its text lands in `diagnostics/<name>.txt` of the
//!   VM's folder; a collector may also write files into
//!   [`VmHandle::dir`] and return [`Collected::file`].
//! * [`TestContext::add_artifact`] adds a file (copied, or catalogued in
//!   place if already in the test's folder) or bytes, under a name that is
//!   also its path in the folder, whatever the outcome.
//!
//! Both end up in the failed test's folder and in its `metadata.json`
//! catalog with their sha256. This test fails on purpose, to show them:
//!
//! ```text
//! cargo run -p bootrig --example custom_collector
//! ls target/bootrig/latest/example.busybox.custom_collector_and_artifact/
//!   diagnostics/host-view.txt  custom/guest-uname.txt  metadata.json ...
//! ```
//!
//! `tests/vm.rs` (`postmortem::busybox::custom_collector_example`) runs
//! it and checks both files against the catalog.

use std::process::ExitCode;
use std::time::Duration;

use bootrig::{check, Deadline, Image, Marks, Requirement, Suite, TestContext};
use bootrig::{Collected, Collector, Producer, Side, VmHandle};

/// What the host knows about a VM: bytes its console sent, the length of
/// QEMU's command line, and the host's load when the test failed.
struct HostView;

impl Collector for HostView {
    fn name(&self) -> &str {
        "host-view"
    }

    fn side(&self) -> Side {
        Side::Host
    }

    fn producer(&self) -> Producer {
        Producer::host("console byte count, QEMU argv length, /proc/loadavg")
    }

    fn collect(&self, vm: &VmHandle, _deadline: Deadline) -> Vec<Collected> {
        let m = vm.machine();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let text = format!(
            "vm: {}\nconsole bytes received: {}\nqemu argv: {} arguments\nhost load: {}",
            m.name(),
            m.console().bytes_received(),
            m.argv().len(),
            load
        );
        vec![Collected::text(self.name(), self.producer(), text)]
    }
}

fn custom_collector_and_artifact(ctx: &TestContext) -> bootrig::Result<()> {
    ctx.add_collector(HostView);
    let vm = ctx.vm(Image::builtin("busybox"))?;
    let uname = vm.succeed("uname -a")?;
    ctx.add_artifact(
        "custom/guest-uname.txt",
        uname.clone().into_bytes(),
        Producer::harness("uname -a, saved by the custom_collector example"),
    )?;
    // Fails on purpose: the postmortem then runs HostView.
    check!(uname.contains("this-kernel-does-not-exist"));
    Ok(())
}

fn main() -> ExitCode {
    Suite::from_args()
        .test_with(
            "example::busybox::custom_collector_and_artifact",
            Marks::new()
                .requires(Requirement::Qemu)
                .timeout(Duration::from_secs(600)),
            custom_collector_and_artifact,
        )
        .run()
}
