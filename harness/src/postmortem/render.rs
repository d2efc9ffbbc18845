//! The rendering stage: the stand-alone failure message, from the
//! verdict, the console snapshot, the collectors' outputs and the catalog.

use std::path::Path;

use bootrig_diagnostics::catalog::ArtifactCatalog;
use bootrig_diagnostics::layout::VmLayout;
use bootrig_diagnostics::metadata::Failure;
use bootrig_diagnostics::report::FailureReport;

use crate::postmortem::collector::Collected;

/// The failure message of test `test`: text outputs are shown by their
/// last lines, files are listed with the artifacts, collectors whose tool
/// the guest lacks get one line together.
pub(crate) fn failure_message(
    test: &str,
    failure: Failure,
    console_tail: &str,
    collected: &[(VmLayout, Collected)],
    folder: &Path,
    catalog: &ArtifactCatalog,
) -> String {
    let mut report = FailureReport::new(test, failure).console(console_tail);
    for (vm, c) in collected {
        let name = vm.name(&c.name);
        if let Some(tool) = &c.missing_tool {
            report = report.unavailable(name, tool.clone());
        } else if c.file.is_none() {
            report = report.collector(name, c.output.clone(), c.note.as_deref());
        }
    }
    report.artifacts_in(folder, catalog).render()
}
