#!/usr/bin/env bash
# fetch-kernel.sh DIR : a test kernel that is not the built-in images' one.
#
# Downloads Debian's generic kernel from bookworm-backports
# (linux-image-amd64, 6.12: virtio, ext4 and 9p are modules, shipped as
# .ko.xz) with `apt-get download` (no root, nothing installed) and unpacks
# it into DIR:
#   DIR/vmlinuz                 the kernel (bzImage)
#   DIR/modules/lib/modules/R/  its modules, as `make modules_install
#                               INSTALL_MOD_PATH=DIR/modules` lays them out
#   DIR/release                 the release R
# Cached: a second run with the same package version does nothing. Prints
# the release. Use it as:
#   bootrig run --kernel DIR/vmlinuz --modules DIR/modules scenarios/
# Needs bookworm-backports in the apt sources (scripts/install-deps.sh adds it).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(realpath "$1")
suite=${BOOTRIG_KERNEL_SUITE:-bookworm-backports}

# The meta package's candidate in the suite names the real package.
version=$(apt-cache madison linux-image-amd64 | awk -v s="$suite" '!v && $0 ~ s"/main" {v = $3} END {print v}')
[ -n "$version" ] || { echo "error: no linux-image-amd64 in $suite (apt-get update? $suite in the sources?)" >&2; exit 1; }
if [ -f "$dir/version" ] && [ "$(cat "$dir/version")" = "$version" ] && [ -f "$dir/vmlinuz" ]; then
    cat "$dir/release"
    exit 0
fi
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download -q -o APT::Sandbox::User=root "linux-image-amd64=$version" >&2
real=$(dpkg-deb -f linux-image-amd64_*.deb Depends | grep -o 'linux-image-[0-9][^ ,]*' | head -n1)
[ -n "$real" ] || { echo "error: cannot resolve the kernel package behind linux-image-amd64 $version" >&2; exit 1; }
apt-get download -q -o APT::Sandbox::User=root "$real" >&2
dpkg-deb -x "$(ls "$real"_*.deb | head -n1)" root
release=$(ls root/lib/modules | head -n1)
rm -rf "$dir/modules" "$dir/vmlinuz"
mkdir -p "$dir/modules/lib/modules"
mv "root/lib/modules/$release" "$dir/modules/lib/modules/$release"
mv "root/boot/vmlinuz-$release" "$dir/vmlinuz"
echo "$release" > "$dir/release"
echo "$version" > "$dir/version"
echo "$release"
