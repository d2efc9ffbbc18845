#!/bin/busybox sh
# /init of the initramfs bootrig builds for a user's kernel on a disk root
# (as virtme-ng does): load the modules that reach the root disk, mount the
# root named by root=, put the kernel's modules at /lib/modules/<release>
# (generated modules.dep + the host folder over 9p, read-only), switch_root.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /etc/bootrig/kernel.conf

fail() {
    echo "bootrig-initramfs: $*" >&2
    echo "bootrig-initramfs: cannot boot the root filesystem; powering off" >&2
    poweroff -f
}

for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m" || echo "bootrig-initramfs: insmod $m failed" >&2
done

root="" fstype="" flags="" mode=ro init=/sbin/init
for arg in $(cat /proc/cmdline); do
    case $arg in
        root=*) root=${arg#root=} ;;
        rootfstype=*) fstype=${arg#rootfstype=} ;;
        rootflags=*) flags=${arg#rootflags=} ;;
        ro) mode=ro ;;
        rw) mode=rw ;;
        init=*) init=${arg#init=} ;;
    esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"
# The disk appears once its driver probed it: up to 30 s under TCG.
i=0
while :; do
    case $root in
        LABEL=*|UUID=*) dev=$(findfs "$root" 2>/dev/null) ;;
        *) dev=$root ;;
    esac
    [ -n "$dev" ] && [ -b "$dev" ] && break
    i=$((i + 1))
    if [ $i -ge 300 ]; then
        loaded=$(tr '\n' ' ' < /lib/modules/load-order)
        fail "root device $root did not appear (is its driver built in or among the modules? modules loaded: ${loaded:-none})"
    fi
    sleep 0.1
done
mount ${fstype:+-t "$fstype"} -o "$mode${flags:+,$flags}" "$dev" /newroot ||
    fail "cannot mount $dev on / (filesystem built in or among the modules?)"

if [ -n "$MODULES_TAG" ]; then
    mods=/newroot/lib/modules
    [ -d "$mods" ] || fail "the root filesystem has no /lib/modules to mount the modules on"
    mount -t tmpfs -o mode=0755 bootrig-modules "$mods" || fail "cannot mount a tmpfs on /lib/modules"
    mkdir -p "$mods/$RELEASE/host"
    cp -a "/lib/modules/$RELEASE/." "$mods/$RELEASE/"
    mount -t 9p -o trans=virtio,version=9p2000.L,ro "$MODULES_TAG" "$mods/$RELEASE/host" ||
        fail "cannot mount the modules folder (9p share $MODULES_TAG)"
fi

mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot "$init"
