#!/usr/bin/env bash
# Install everything bootrig's VM tests and image recipes need on Debian 12.
# Idempotent: a second run installs nothing. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# QEMU 10 comes from bookworm-backports; add the suite with the same URI as
# the main Debian source if it is not there yet.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    uri=${uri:-http://deb.debian.org/debian}
    echo "bootrig: adding bookworm-backports ($uri)" >&2
    $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -q
fi

need=()
# The second line: what building fstests on the host needs (bootrig fstests
# --fstests-src, tests/fstests.rs); e2fsprogs also gives debugfs/e2fsck,
# which read the results disk back.
# busybox-static and kmod (depmod): the initramfs and modules index built for
# a kernel of your own (--kernel, --modules). llvm: what cargo-afl's AFL++
# build was verified with (scripts/fuzz.sh).
for p in ovmf mmdebstrap busybox-static kmod llvm grub-pc-bin grub-efi-amd64-bin grub-common \
         xorriso mtools e2fsprogs cpio zstd python3-pexpect libxml2-utils chromium \
         build-essential autoconf automake libtool pkg-config xfslibs-dev uuid-dev \
         libattr1-dev libacl1-dev libaio-dev libgdbm-dev libcap-dev liburing-dev gawk; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ] || ! command -v qemu-system-x86_64 >/dev/null; then
    $SUDO apt-get update -q
fi
if [ "${#need[@]}" -gt 0 ]; then
    echo "bootrig: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# QEMU 10 from backports (the default 7.2 would also replace qemu-utils 10).
if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "bootrig: installing qemu-system-x86 from bookworm-backports" >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        -t bookworm-backports qemu-system-x86 qemu-utils
fi
# cargo-nextest runs the test suite (scripts/test.sh) and is tested itself.
# 0.9.91 at least: .config/nextest.toml uses test priorities.
nextest_ok() {
    local v
    v=$(cargo nextest --version 2>/dev/null | awk 'NR == 1 {print $2}') || return 1
    [ -n "$v" ] && [ "$(printf '%s\n' 0.9.91 "$v" | sort -V | head -n1)" = 0.9.91 ]
}
if ! nextest_ok; then
    echo "bootrig: installing cargo-nextest (cargo install, a few minutes)" >&2
    cargo install --locked cargo-nextest
fi
