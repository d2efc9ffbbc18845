#!/usr/bin/env bash
# busybox: Debian's cloud kernel + a busybox initramfs that loads the
# virtio modules and drops to a coloured root shell on ttyS0.
set -euo pipefail
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
. "$here/../lib.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "downloading linux-image-cloud-amd64 and busybox-static"
release=$(fetch_kernel "$work/k" cloud-amd64)
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
# Modules the harness's devices need, in dependency order.
: > "$init/lib/modules/load-order"
for f in $(module_order "$moddir" virtio_pci virtio_blk virtio_net virtio_rng virtio_console virtio_scsi); do
    cp "$f" "$init/lib/modules/"
    basename "$f" >> "$init/lib/modules/load-order"
done
echo "bootrig-busybox" > "$init/etc/hostname"
cat > "$init/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
for m in $(cat /lib/modules/load-order); do insmod /lib/modules/$m 2>/dev/null; done
hostname -F /etc/hostname
ip link set lo up 2>/dev/null
echo "bootrig busybox image: kernel $(uname -r), modules loaded"
export HOME=/root PATH=/bin
# A coloured prompt, as real distributions have: the harness must cope.
export PS1='\[\033[1;32m\]busybox\[\033[0m\]:\w# '
while true; do
    setsid cttyhack sh -l
    echo "shell exited; starting a new one"
done
INIT
chmod +x "$init/init"
(cd "$init" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initrd.img"
cp "$work/k/root/boot/vmlinuz-$release" "$out/vmlinuz"

cat > "$out/image.json" <<JSON
{
  "description": "Debian $release kernel with a busybox initramfs; root shell on ttyS0, no login",
  "kernel": "vmlinuz",
  "initrd": "initrd.img",
  "append": "console=ttyS0 panic=-1 oops=panic loglevel=4",
  "shell_prompt": "busybox:[^\\\\n]*# \$"
}
JSON
step "done: $(du -sh "$out" | cut -f1)"
