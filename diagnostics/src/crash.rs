//! Kernel crash detection on console text (placeholder; being written).

/// A kernel crash report cut out of the console stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// One-line title in the style of syzkaller, e.g. `BUG: unable to handle page fault in ext4_map_blocks`.
    pub title: String,
    /// The report text, from its first line to its end marker.
    pub excerpt: String,
    /// Whether this report fails the test (a WARNING may be configured to only be recorded).
    pub fatal: bool,
}
