#!/usr/bin/env bash
# Writes a Raspberry Pi 4 boot partition for pvhyp: the files into a directory, and optionally a
# partitioned FAT disk image to write to an SD card. See --help.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PVHYP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvhyp}"

usage() {
    cat <<'USAGE'
usage: scripts/sdcard.sh DIR [options]

Writes the boot partition files for a Raspberry Pi 4 into DIR (created if missing):
  kernel8.img            the hypervisor (target/pvhyp/kernel8.img from scripts/build.sh)
  config.txt             64-bit, kernel at 0x80000, mini UART on GPIO 14/15, the DTB, the initrd
  bcm2711-rpi-4-b.dtb    the Pi 4 device tree (Debian's, as scripts/run.sh --board raspi4b uses)
  initrd.cpio            the VMs: the manifest and guest images, packed by pvpack
  start4.elf fixup4.dat  the Pi 4 boot firmware (Debian's raspi-firmware package), and its
                         licence as raspi-firmware.copyright
Copy them onto the card's first (FAT) partition, or use --image and write the image to the
card (e.g. dd if=FILE of=/dev/sdX bs=4M conv=fsync). The console is the mini UART on GPIO 14
(TX) and 15 (RX) at 115200 baud; README.md, "Raspberry Pi 4", says more.

options:
  --manifest FILE   the VMs to run (TOML, docs/MANIFEST.md); default:
                    manifest/examples/default.toml
  --mem SIZE        RAM the VMs must fit in, checked by pvpack (default 1G, the smallest Pi 4)
  --image FILE      also make FILE, a 128 MiB disk image: an MBR with one bootable FAT32
                    partition holding DIR's files (installs fdisk, dosfstools, mtools if missing)
  --no-firmware     leave start4.elf and fixup4.dat out (keep a card's own, newer ones)
  --no-build        use the binaries already in target/pvhyp
  -h, --help        this text
USAGE
}

die() { echo "sdcard: $*" >&2; exit 2; }

dir="" image="" manifest="" mem=1G build=1 firmware=1
while [ $# -gt 0 ]; do
    case "$1" in
        --image) image="${2:?--image needs a file}"; shift 2 ;;
        --manifest) manifest="${2:?--manifest needs a file}"; shift 2 ;;
        --mem) mem="${2:?--mem needs a size}"; shift 2 ;;
        --no-firmware) firmware=0; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option: $1" ;;
        *) [ -z "$dir" ] || die "one directory only (got '$dir' and '$1')"; dir="$1"; shift ;;
    esac
done
[ -n "$dir" ] || { usage >&2; die "which directory? (scripts/sdcard.sh DIR)"; }
manifest="${manifest:-$ROOT/manifest/examples/default.toml}"
[ -f "$manifest" ] || die "no such manifest: $manifest"
[[ "$mem" =~ ^[1-9][0-9]*[MG]$ ]] || die "--mem must look like 1G or 512M, not '$mem'"

if [ "$firmware" = 1 ]; then
    "$ROOT/scripts/setup.sh" --raspi-firmware
elif [ "$build" = 1 ]; then
    "$ROOT/scripts/setup.sh"
fi
[ "$build" = 0 ] || "$ROOT/scripts/build.sh"
OUT="$ROOT/target/pvhyp"
for f in kernel8.img pv-guest.elf pvpack; do
    [ -f "$OUT/$f" ] || die "target/pvhyp/$f is missing: run without --no-build"
done
DTB="$CACHE/dtb/bcm2711-rpi-4-b.dtb"
[ -f "$DTB" ] || die "missing $DTB: run scripts/setup.sh"

mkdir -p "$dir"
cp "$OUT/kernel8.img" "$dir/kernel8.img"
cp "$DTB" "$dir/bcm2711-rpi-4-b.dtb"
"$OUT/pvpack" --manifest "$manifest" --default-image "$OUT/pv-guest.elf" \
    --out "$dir/initrd.cpio" --mem "$mem" >/dev/null || exit 1
cat >"$dir/config.txt" <<'CONFIG'
# pvhyp on a Raspberry Pi 4 (written by scripts/sdcard.sh).
# The hypervisor is a 64-bit arm64 Image; it starts at EL2 with x0 = the device tree.
arm_64bit=1
kernel=kernel8.img
# The Image's text_offset: the firmware's default for 64-bit kernels is 0x200000.
kernel_address=0x80000
# The console: the mini UART on GPIO 14 (TX) / 15 (RX), 115200 8N1, core clock held fixed.
enable_uart=1
# Debian's Pi 4 tree; the firmware fills in its memory node and /chosen.
device_tree=bcm2711-rpi-4-b.dtb
# The VMs (manifest and guest images), loaded after the kernel and named in /chosen.
initramfs initrd.cpio followkernel
CONFIG
files=(kernel8.img config.txt bcm2711-rpi-4-b.dtb initrd.cpio)
if [ "$firmware" = 1 ]; then
    fw="$CACHE/raspi-firmware"
    cp "$fw/start4.elf" "$fw/fixup4.dat" "$dir/"
    cp "$fw/copyright" "$dir/raspi-firmware.copyright"
    files+=(start4.elf fixup4.dat raspi-firmware.copyright)
fi

if [ -n "$image" ]; then
    if ! command -v sfdisk >/dev/null || ! command -v mkfs.vfat >/dev/null ||
        ! command -v mcopy >/dev/null; then
        echo "sdcard: installing fdisk, dosfstools and mtools" >&2
        sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
        DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -q -o=Dpkg::Use-Pty=0 \
            --no-install-recommends fdisk dosfstools mtools >/dev/null
    fi
    # 128 MiB, one bootable FAT32 (LBA) partition from 1 MiB: what the Pi's boot ROM and
    # firmware look for on a card.
    size_mib=128 start_sectors=2048
    rm -f "$image"
    truncate -s "${size_mib}M" "$image"
    echo "start=$start_sectors, type=c, bootable" | sfdisk -q "$image"
    mkfs.vfat -F 32 -n PVHYP --offset "$start_sectors" "$image" \
        $((size_mib * 1024 - start_sectors / 2)) >/dev/null
    mcopy -i "$image@@$((start_sectors * 512))" "${files[@]/#/$dir/}" ::
    echo "sdcard: wrote $image (${size_mib} MiB): dd it to the card"
fi
echo "sdcard: wrote ${files[*]} into $dir"
