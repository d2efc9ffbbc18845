#!/usr/bin/env bash
# The whole test suite: unit tests, and end-to-end tests that boot the
# built-in images in real QEMU. Installs what it needs first. `.ci/run`
# calls this with CI=true (then a VM test whose requirements are missing
# fails instead of skipping). Arguments go to `cargo nextest run` (a
# filter, `-E EXPR`, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --workspace --all-targets
# Build the guest images up front, with progress, so a broken recipe
# fails here with its log rather than inside a test.
./target/debug/bootrig image build all
./target/debug/bootrig doctor
# cargo-nextest runs the tests of every binary from one pool: VM tests two
# at a time (the `vms` group in .config/nextest.toml), whichever binary
# they are in, instead of one binary after the other. Doc tests apart
# (nextest does not run them).
status=0
cargo nextest run --workspace --no-fail-fast "$@" || status=$?
cargo test --workspace --doc || status=$?
# Every fuzz target briefly, resuming the queues of earlier runs (a crash
# fails the suite). BOOTRIG_FUZZ_SECONDS=0 skips this.
fuzz_seconds=${BOOTRIG_FUZZ_SECONDS:-15}
if [ "$fuzz_seconds" != 0 ]; then
    ./scripts/fuzz.sh "$fuzz_seconds" || status=$?
fi
exit $status
