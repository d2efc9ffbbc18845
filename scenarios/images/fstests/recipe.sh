#!/usr/bin/env bash
# The `fstests` image: the `debian` image's Debian 12 systemd guest (same
# mmdebstrap + mke2fs -d approach, no mounts) plus what fstests needs at
# run time: the filesystem tools, the programs its tests call, the
# libraries its built binaries link to, and the users it expects
# (fsgqa, fsgqa2, 123456-fsgqa). fstests itself is not in the image: the
# harness attaches a built tree as a read-only disk per run.
# Usage: recipe.sh OUTDIR
set -euo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
. "$here/../lib.sh"

command -v mmdebstrap >/dev/null || die "mmdebstrap missing (apt-get install mmdebstrap)"

# Package sources as in the debian recipe: the host's own, so the versions
# match the cache key; BOOTRIG_DEBIAN_MIRROR overrides them.
mirrors=()
if [ -n "${BOOTRIG_DEBIAN_MIRROR:-}" ]; then
    mirrors=("$BOOTRIG_DEBIAN_MIRROR")
elif grep -qs '^Suites:.*bookworm' /etc/apt/sources.list.d/debian.sources; then
    mirrors=(/etc/apt/sources.list.d/debian.sources)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"

nodocs=(
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)

# Everything in packages.txt (one list: what the cache key hashes is what
# gets installed).
include=$(grep -v '^#' "$here/packages.txt" | grep . | paste -sd, -)

step "mmdebstrap bookworm with fstests' runtime packages (a few minutes)"
mmdebstrap --mode="${BOOTRIG_MMDEBSTRAP_MODE:-unshare}" --variant=apt --quiet "${nodocs[@]}" \
    --include="$include,less" \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; printf "MODULES=list\nCOMPRESS=gzip\n" > "$1/etc/initramfs-tools/conf.d/bootrig.conf"; mkdir -p "$1/usr/share/initramfs-tools/modules.d"; printf "virtio_pci\nvirtio_blk\nvirtio_scsi\nvirtio_console\next4\n" > "$1/usr/share/initramfs-tools/modules.d/bootrig"' \
    --customize-hook='echo bootrig-fstests > "$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 bootrig-fstests\n::1 localhost ip6-localhost ip6-loopback\n" > "$1/etc/hosts"' \
    --customize-hook='echo LANG=C.UTF-8 > "$1/etc/default/locale"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo,adm,systemd-journal tester' \
    --customize-hook='echo tester:tester | chroot "$1" chpasswd' \
    --customize-hook='echo root:root | chroot "$1" chpasswd' \
    --customize-hook='chroot "$1" useradd -m fsgqa' \
    --customize-hook='chroot "$1" useradd -m fsgqa2' \
    --customize-hook='chroot "$1" useradd -m 123456-fsgqa' \
    --customize-hook='mkdir -p "$1/mnt/test" "$1/mnt/scratch" "$1/mnt/fstests" "$1/mnt/results"' \
    --customize-hook='mkdir -p "$1/etc/systemd/network"; printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/80-dhcp.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd serial-getty@ttyS0.service' \
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service lvm2-monitor.service lvm2-lvmpolld.socket dm-event.socket xfs_scrub_all.timer btrfs-scrub@.timer' \
    --customize-hook='rm -f "$1/etc/resolv.conf"; echo "nameserver 10.0.2.3" > "$1/etc/resolv.conf"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*_Packages "$1"/var/log/*.log' \
    bookworm "$root" "${mirrors[@]}" >&2 || die "mmdebstrap failed (messages above)"

for u in fsgqa fsgqa2 123456-fsgqa; do
    grep -q "^$u:" "$root/etc/passwd" || die "user $u was not created"
done

step "copying out the kernel and initrd"
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)
[ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel/initrd in the rootfs"
release=${kernel##*/vmlinuz-}
gzip -dc "$initrd" | cpio -t --quiet 2>/dev/null | grep '/virtio_blk\.ko' >/dev/null ||
    die "the initrd has no virtio_blk module (MODULES=list not applied?)"
cp "$kernel" "$out/vmlinuz"
cp "$initrd" "$out/initrd.img"

step "writing the root filesystem with mke2fs -d"
used=$(du -sm "$root" | cut -f1)
size=$(( used + 1024 ))   # ~1 GB free: fstests keeps temporary files in /tmp
mke2fs -q -t ext4 -L bootrig-root -d "$root" "$work/disk.raw" "${size}M" >&2
qemu-img convert -O qcow2 "$work/disk.raw" "$out/disk.qcow2"

cat > "$out/image.json" <<JSON
{
  "description": "Debian 12 (bookworm) for fstests, kernel $release: xfsprogs, e2fsprogs, btrfs-progs and fstests' runtime packages; users fsgqa, fsgqa2, 123456-fsgqa; root/root, tester/tester",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "append": "root=/dev/vda rw console=ttyS0 panic=-1 oops=panic loglevel=5 net.ifnames=0",
  "disk": "disk.qcow2",
  "login": { "user": "root", "password": "root" },
  "root_password": "root"
}
JSON
step "done: disk $(du -h "$out/disk.qcow2" | cut -f1) (${size} MB ext4), initrd $(du -h "$out/initrd.img" | cut -f1)"
