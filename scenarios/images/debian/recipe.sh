#!/usr/bin/env bash
# debian: a Debian 12 systemd root filesystem built with mmdebstrap, written
# into an ext4 image with `mke2fs -d` (no mounts, no loop devices) and
# converted to qcow2. Booted directly with the kernel and initrd that
# initramfs-tools made inside it. Serial getty on ttyS0; user tester/tester
# with sudo; root/root.
set -euo pipefail
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
. "$here/../lib.sh"

mirror=${BOOTRIG_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"

step "mmdebstrap bookworm from $mirror (about a minute)"
mmdebstrap --variant=apt --quiet \
    --include=systemd-sysv,udev,dbus,kmod,linux-image-cloud-amd64,initramfs-tools,sudo,iproute2,procps,util-linux,e2fsprogs,less \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; printf "MODULES=most\nCOMPRESS=gzip\n" > "$1/etc/initramfs-tools/conf.d/bootrig.conf"' \
    --customize-hook='echo bootrig-guest > "$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1 localhost\n127.0.1.1 bootrig-guest\n" > "$1/etc/hosts"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo tester' \
    --customize-hook='echo tester:tester | chroot "$1" chpasswd' \
    --customize-hook='echo root:root | chroot "$1" chpasswd' \
    --customize-hook='mkdir -p "$1/etc/systemd/network"; printf "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n" > "$1/etc/systemd/network/80-dhcp.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd serial-getty@ttyS0.service' \
    --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service' \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*_Packages' \
    bookworm "$root" "$mirror" >&2

step "copying out the kernel and initrd"
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -n1)
[ -f "$kernel" ] && [ -f "$initrd" ] || die "no kernel/initrd in the rootfs"
cp "$kernel" "$out/vmlinuz"
cp "$initrd" "$out/initrd.img"
release=${kernel##*/vmlinuz-}

step "writing the root filesystem with mke2fs -d"
used=$(du -sm "$root" | cut -f1)
size=$(( used + 1024 ))
mke2fs -q -t ext4 -L bootrig-root -d "$root" "$work/disk.raw" "${size}M" >&2
qemu-img convert -O qcow2 "$work/disk.raw" "$out/disk.qcow2"

cat > "$out/image.json" <<JSON
{
  "description": "Debian 12 (bookworm) with systemd, kernel $release; serial getty on ttyS0; user tester/tester (sudo), root/root",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "append": "root=/dev/vda rw console=ttyS0 panic=-1 oops=panic loglevel=4 net.ifnames=0",
  "disk": "disk.qcow2",
  "login": { "user": "tester", "password": "tester" },
  "root_password": "root"
}
JSON
step "done: $(du -sh "$out" | cut -f1)"
