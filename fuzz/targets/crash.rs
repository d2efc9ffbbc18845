//! Fuzz target: see [`bootrig_fuzz::crash`].
fn main() {
    afl::fuzz!(|data: &[u8]| bootrig_fuzz::crash(data));
}
