#!/usr/bin/env bash
# iso: a hybrid BIOS + UEFI ISO made with grub-mkrescue. GRUB talks on the
# serial port and boots the busybox image's kernel and initramfs, so the
# result is a root shell on ttyS0 under SeaBIOS and OVMF alike.
set -euo pipefail
out=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
. "$here/../lib.sh"

command -v grub-mkrescue >/dev/null || die "grub-mkrescue missing (apt-get install grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools)"
[ -d /usr/lib/grub/i386-pc ] || die "/usr/lib/grub/i386-pc missing (apt-get install grub-pc-bin)"
[ -d /usr/lib/grub/x86_64-efi ] || die "/usr/lib/grub/x86_64-efi missing (apt-get install grub-efi-amd64-bin)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "building the busybox kernel and initramfs"
mkdir -p "$work/bb"
bash "$here/../busybox/recipe.sh" "$work/bb" | sed 's/^step: /step: busybox: /'

step "writing the GRUB tree"
tree="$work/tree"
mkdir -p "$tree/boot/grub"
cp "$work/bb/vmlinuz" "$tree/boot/vmlinuz"
cp "$work/bb/initrd.img" "$tree/boot/initrd.img"
cat > "$tree/boot/grub/grub.cfg" <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
menuentry "bootrig busybox" {
    echo "bootrig: GRUB loading the kernel"
    linux /boot/vmlinuz console=ttyS0,115200 panic=-1 oops=panic loglevel=4
    initrd /boot/initrd.img
}
CFG

step "grub-mkrescue (BIOS + UEFI)"
grub-mkrescue -o "$out/boot.iso" "$tree" -- -volid BOOTRIG >&2 2>"$work/mkrescue.log" || {
    cat "$work/mkrescue.log" >&2; die "grub-mkrescue failed"; }

# The kernel is kept next to the ISO (for the harness's KVM probe only).
cp "$work/bb/vmlinuz" "$out/vmlinuz-probe"
cat > "$out/image.json" <<'JSON'
{
  "description": "hybrid BIOS/UEFI GRUB ISO (grub-mkrescue), serial GRUB, busybox root shell",
  "iso": "boot.iso",
  "firmware": ["bios", "uefi"],
  "probe_kernel": "vmlinuz-probe",
  "shell_prompt": "busybox:[^\\n]*# $"
}
JSON
step "done: $(du -sh "$out/boot.iso" | cut -f1)"
