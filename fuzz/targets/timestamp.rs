//! Fuzz target: see [`bootrig_fuzz::timestamp`].
fn main() {
    afl::fuzz!(|data: &[u8]| bootrig_fuzz::timestamp(data));
}
