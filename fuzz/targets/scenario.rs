//! Fuzz target: see [`bootrig_fuzz::scenario`].
fn main() {
    afl::fuzz!(|data: &[u8]| bootrig_fuzz::scenario(data));
}
