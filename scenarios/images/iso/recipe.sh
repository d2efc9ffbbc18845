#!/usr/bin/env bash
# iso: a hybrid BIOS + UEFI ISO made with grub-mkrescue. GRUB talks on the
# serial port and boots the busybox image's kernel and initramfs, so the
# result is a root shell on ttyS0 under SeaBIOS and OVMF alike.
# Usage: recipe.sh OUTDIR
set -euo pipefail
[ $# -eq 1 ] && [ -d "$1" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
. "$here/../lib.sh"

command -v grub-mkrescue >/dev/null || die "grub-mkrescue missing (apt-get install grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools)"
command -v xorriso >/dev/null || die "xorriso missing (apt-get install xorriso)"
command -v mformat >/dev/null || die "mtools missing (apt-get install mtools)"
[ -d /usr/lib/grub/i386-pc ] || die "/usr/lib/grub/i386-pc missing (apt-get install grub-pc-bin)"
[ -d /usr/lib/grub/x86_64-efi ] || die "/usr/lib/grub/x86_64-efi missing (apt-get install grub-efi-amd64-bin)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "building the busybox kernel and initramfs"
mkdir -p "$work/bb"
bash "$here/../busybox/recipe.sh" "$work/bb" | sed 's/^step: /step: busybox: /'
# The same kernel command line and prompt as the busybox image.
json_field() { sed -n "s/^ *\"$1\": \"\\(.*\\)\",\\?\$/\\1/p" "$work/bb/image.json"; }
append=$(json_field append)
prompt=$(json_field shell_prompt)
[ -n "$append" ] && [ -n "$prompt" ] || die "cannot read append/shell_prompt from the busybox image.json"

step "writing the GRUB tree"
tree="$work/tree"
mkdir -p "$tree/boot/grub"
cp "$work/bb/vmlinuz" "$tree/boot/vmlinuz"
cp "$work/bb/initrd.img" "$tree/boot/initrd.img"
# GRUB on the serial port (the harness reads ttyS0), 1 s menu. Under UEFI
# the "console" terminal is the firmware's ConOut, which OVMF already copies
# to the serial port: every line would come twice (and the menu frame in
# CP437 bytes), so there GRUB writes to the serial port only.
cat > "$tree/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
if [ "\$grub_platform" = efi ]; then
    terminal_output serial
else
    terminal_output serial console
fi
set timeout=1
set default=0
menuentry "bootrig busybox" {
    echo "bootrig: GRUB loading the kernel"
    linux /boot/vmlinuz ${append/console=ttyS0/console=ttyS0,115200}
    initrd /boot/initrd.img
}
CFG

step "grub-mkrescue (BIOS + UEFI)"
grub-mkrescue -o "$out/boot.iso" "$tree" -- -volid BOOTRIG >"$work/mkrescue.log" 2>&1 || {
    cat "$work/mkrescue.log" >&2; die "grub-mkrescue failed"; }
cat "$work/mkrescue.log" >&2

# The kernel is kept next to the ISO for the harness's KVM probe only.
cp "$work/bb/vmlinuz" "$out/vmlinuz-probe"
cat > "$out/image.json" <<JSON
{
  "description": "hybrid BIOS/UEFI GRUB ISO (grub-mkrescue), serial GRUB, busybox root shell",
  "iso": "boot.iso",
  "firmware": ["bios", "uefi"],
  "probe_kernel": "vmlinuz-probe",
  "shell_prompt": "$prompt"
}
JSON
step "done: boot.iso $(du -h "$out/boot.iso" | cut -f1)"
