#!/usr/bin/env bash
# busybox: Debian's generic kernel + a busybox initramfs that loads the
# virtio modules and drops to a coloured root shell on ttyS0 (no login).
# Usage: recipe.sh OUTDIR
set -euo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
. "$here/../lib.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Modules for the devices the harness attaches (virtio disk/net/rng/console,
# virtio-scsi) and for ext4 on scratch disks. Dependencies are added; the
# ones built into the kernel are skipped. 9p: host folders shared into the guest.
MODULES="virtio_pci virtio_blk virtio_net virtio_rng virtio_console virtio_scsi ext4 crc32c_generic 9pnet_virtio 9p"

step "downloading linux-image-amd64 and busybox-static"
release=$(fetch_kernel "$work/k" amd64)
fetch_debs "$work/bb" busybox-static
dpkg-deb -x "$(ls "$work"/bb/busybox-static_*.deb | head -n1)" "$work/bb/root"

step "assembling the initramfs (kernel $release)"
moddir="$work/k/root/lib/modules/$release"
init="$work/init"
mkdir -p "$init"/{bin,dev,proc,sys,tmp,root,etc,lib/modules,mnt}
cp "$work/bb/root/bin/busybox" "$init/bin/busybox"
for applet in $("$init/bin/busybox" --list); do
    [ -e "$init/bin/$applet" ] || ln -s busybox "$init/bin/$applet"
done
# PID 1 is a shell script, not busybox init, so the plain poweroff/reboot/
# halt (which signal init) would do nothing: the login shell's profile
# makes them act at once (ash runs applets directly, so no PATH wrappers).
cat > "$init/etc/profile" <<'PROFILE'
poweroff() { busybox poweroff -f "$@"; }
reboot() { busybox reboot -f "$@"; }
halt() { busybox halt -f "$@"; }
PROFILE

# Modules, decompressed, plus their load order for /init.
files=$(module_order "$moddir" $MODULES)
: > "$init/lib/modules/load-order"
for f in $files; do
    name=$(basename "${f%.ko*}").ko
    module_cat "$f" > "$init/lib/modules/$name"
    echo "$name" >> "$init/lib/modules/load-order"
done
echo "modules: $(tr '\n' ' ' < "$init/lib/modules/load-order")" >&2

echo "bootrig-busybox" > "$init/etc/hostname"
cat > "$init/init" <<'INIT'
#!/bin/sh
# PID 1 of the bootrig busybox image.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
for m in $(cat /lib/modules/load-order); do
    insmod /lib/modules/$m || echo "bootrig: insmod $m failed"
done
hostname -F /etc/hostname
ip link set lo up
echo "bootrig busybox image: kernel $(uname -r), modules loaded"
export HOME=/root PATH=/bin
# A coloured prompt, as real distributions have: the harness must cope.
# Bytes: ESC[1;32m busybox ESC[0m :<cwd># (\[ \] print nothing).
export PS1='\[\033[1;32m\]busybox\[\033[0m\]:\w# '
# A root shell on the console with a controlling tty (job control, ^C);
# a new one if it exits.
while true; do
    setsid cttyhack sh -l
    echo "bootrig: shell exited; starting a new one"
done
INIT
chmod +x "$init/init"
(cd "$init" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -9) > "$out/initrd.img"
cp "$work/k/root/boot/vmlinuz-$release" "$out/vmlinuz"

# panic=-1: reboot at once after a panic, which the harness's -no-reboot
# turns into a QEMU exit (after the report is on the console).
# oops=panic: an oops is fatal too, so a crashed guest never lingers.
cat > "$out/image.json" <<JSON
{
  "description": "Debian $release kernel with a busybox initramfs; root shell on ttyS0, no login",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "append": "console=ttyS0 panic=-1 oops=panic loglevel=5",
  "shell_prompt": "busybox:[^\\\\n]*# \$"
}
JSON
step "done: kernel $(du -h "$out/vmlinuz" | cut -f1), initramfs $(du -h "$out/initrd.img" | cut -f1)"
