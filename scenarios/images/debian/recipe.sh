#!/usr/bin/env bash
# debian: a Debian 12 systemd root filesystem built with mmdebstrap, written
# into an ext4 image with `mke2fs -d` (no mounts, no loop devices) and
# converted to qcow2. Booted directly with the kernel and initrd that
# initramfs-tools made inside it. Serial getty on ttyS0; user tester/tester
# with sudo; root/root; systemd-networkd DHCP on en*/eth*.
# Usage: recipe.sh OUTDIR
set -euo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
. "$here/../lib.sh"

command -v mmdebstrap >/dev/null || die "mmdebstrap missing (apt-get install mmdebstrap)"

# Package sources: the host's own (bookworm + updates + security), so the
# packages match the versions apt-cache policy reports for the cache key.
# BOOTRIG_DEBIAN_MIRROR (a URI: that suite only, or a sources file) replaces
# them; with neither, mmdebstrap uses deb.debian.org plus -updates/-security.
mirrors=()
if [ -n "${BOOTRIG_DEBIAN_MIRROR:-}" ]; then
    mirrors=("$BOOTRIG_DEBIAN_MIRROR")
elif grep -qs '^Suites:.*bookworm' /etc/apt/sources.list.d/debian.sources; then
    mirrors=(/etc/apt/sources.list.d/debian.sources)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"

# No docs, man pages or translations: a smaller disk, a faster mke2fs.
nodocs=(
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
)

step "mmdebstrap bookworm (about a minute)"
# The initramfs-tools config goes in before the kernel is installed, so the
# initrd built by its postinst has the virtio drivers: MODULES=list with the
# list in modules.d (not the /etc/initramfs-tools/modules conffile), so the
# generic kernel's initrd stays small.
# /etc/resolv.conf: QEMU user networking's DNS (no systemd-resolved).
# --mode=unshare: mmdebstrap's /proc, /dev mounts live in a private mount
# namespace, never in the host's (BOOTRIG_MMDEBSTRAP_MODE=root if user
# namespaces are unavailable).
mmdebstrap --mode="${BOOTRIG_MMDEBSTRAP_MODE:-unshare}" --variant=apt --quiet "${nodocs[@]}" \
    --include=systemd-sysv,udev,dbus,kmod,linux-image-amd64,initramfs-tools,sudo,iproute2,procps,util-linux,e2fsprogs,less \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; printf "MODULES=list\nCOMPRESS=gzip\n" > "$1/etc/initramfs-tools/conf.d/bootrig.conf"; mkdir -p "$1/usr/share/initramfs-tools/modules.d"; printf "virtio_pci\nvirtio_blk\nvirtio_scsi\nvirtio_console\next4\n" > "$1/usr/share/initramfs-tools/modules.d/bootrig"' \
    --customize-hook='echo bootrig-guest > "$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 bootrig-guest\n::1 localhost ip6-localhost ip6-loopback\n" > "$1/etc/hosts"' \
    --customize-hook='echo LANG=C.UTF-8 > "$1/etc/default/locale"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo,adm,systemd-journal tester' \
    --customize-hook='echo tester:tester | chroot "$1" chpasswd' \
    --customize-hook='echo root:root | chroot "$1" chpasswd' \
    --customize-hook='mkdir -p "$1/etc/systemd/network"; printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/80-dhcp.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd serial-getty@ttyS0.service' \
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service' \
    --customize-hook='rm -f "$1/etc/resolv.conf"; echo "nameserver 10.0.2.3" > "$1/etc/resolv.conf"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*_Packages "$1"/var/log/*.log' \
    bookworm "$root" "${mirrors[@]}" >&2 || die "mmdebstrap failed (messages above)"

step "copying out the kernel and initrd"
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)
[ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel/initrd in the rootfs"
release=${kernel##*/vmlinuz-}
# The disk must be reachable from the initrd.
gzip -dc "$initrd" | cpio -t --quiet 2>/dev/null | grep '/virtio_blk\.ko' >/dev/null ||
    die "the initrd has no virtio_blk module (MODULES=list not applied?)"
cp "$kernel" "$out/vmlinuz"
cp "$initrd" "$out/initrd.img"

step "writing the root filesystem with mke2fs -d"
used=$(du -sm "$root" | cut -f1)
size=$(( used + 1024 ))   # ~1 GB free for tests
mke2fs -q -t ext4 -L bootrig-root -d "$root" "$work/disk.raw" "${size}M" >&2
qemu-img convert -O qcow2 "$work/disk.raw" "$out/disk.qcow2"

# net.ifnames=0: the NIC is eth0, as in the busybox image.
cat > "$out/image.json" <<JSON
{
  "description": "Debian 12 (bookworm) with systemd, kernel $release; serial getty on ttyS0; user tester/tester (sudo), root/root",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "append": "root=/dev/vda rw console=ttyS0 panic=-1 oops=panic loglevel=5 net.ifnames=0",
  "disk": "disk.qcow2",
  "login": { "user": "tester", "password": "tester" },
  "root_password": "root"
}
JSON
step "done: disk $(du -h "$out/disk.qcow2" | cut -f1) (${size} MB ext4), initrd $(du -h "$out/initrd.img" | cut -f1)"
