#!/usr/bin/env bash
# The built-in smoke suite: builds bootrig and a default busybox guest (on
# first use), boots it in QEMU and runs scenarios/smoke. Installs what it
# needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build -q -p bootrig
exec ./target/debug/bootrig run scenarios/smoke "$@"
