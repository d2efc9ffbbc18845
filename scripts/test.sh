#!/usr/bin/env bash
# The whole test suite: unit tests, and end-to-end tests that boot the
# built-in images in real QEMU. Installs what it needs first. `.ci/run`
# calls this with CI=true (then a VM test whose requirements are missing
# fails instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --workspace --all-targets
# Build the guest images up front, with progress, so a broken recipe
# fails here with its log rather than inside a test.
./target/debug/bootrig image build all
./target/debug/bootrig doctor
cargo test --workspace --no-fail-fast "$@"
# Every fuzz target briefly, resuming the queues of earlier runs (a crash
# fails the suite). BOOTRIG_FUZZ_SECONDS=0 skips this.
fuzz_seconds=${BOOTRIG_FUZZ_SECONDS:-15}
[ "$fuzz_seconds" = 0 ] || ./scripts/fuzz.sh "$fuzz_seconds"
