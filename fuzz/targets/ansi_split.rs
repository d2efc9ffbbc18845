//! Fuzz target: see [`bootrig_fuzz::ansi_split`].
fn main() {
    afl::fuzz!(|data: &[u8]| bootrig_fuzz::ansi_split(data));
}
