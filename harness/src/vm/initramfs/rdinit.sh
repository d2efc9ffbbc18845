#!/bin/sh
# rdinit= of the busybox image when bootrig boots a user's kernel: runs
# before the image's /init (exec'd at the end), from the archive bootrig
# appended to the image's initrd. Loads the user kernel's modules (the
# image's /init then finds an empty list), and puts the kernel's modules at
# /lib/modules/<release> (generated modules.dep + the host folder over 9p,
# read-only).
. /etc/bootrig/kernel.conf
for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m" || echo "bootrig: insmod $m failed"
done
: > /lib/modules/load-order
if [ -n "$MODULES_TAG" ]; then
    mkdir -p "/lib/modules/$RELEASE/host"
    mount -t 9p -o trans=virtio,version=9p2000.L,ro "$MODULES_TAG" "/lib/modules/$RELEASE/host" ||
        echo "bootrig: cannot mount the modules folder (9p share $MODULES_TAG)"
fi
exec /init "$@"
