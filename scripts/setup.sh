#!/usr/bin/env bash
# Installs what building, running and testing need; idempotent and quiet when all is there.
#   - the Rust toolchain and targets pinned in rust-toolchain.toml
#   - a qemu-system-aarch64 that has the raspi4b machine (the only check, no version test);
#     if it lacks it, qemu-system-arm from bookworm-backports (QEMU 10 there today)
#   - cargo-fuzz (crates.io), which builds the host fuzz targets (fuzz/run.sh)
#   - gdb-multiarch (Debian), the debugger scripts/gdb.sh starts
#   - llvm-nm and llvm-addr2line (Debian's llvm), which resolve crash reports' addresses
#   - the real Raspberry Pi 4 device trees (from Debian's arm64 kernel package), into the cache
#   - the Linux guest: that package's kernel Image and a busybox initramfs (Debian's
#     busybox-static:arm64, scripts/linux-initrd.sh) into the cache, linked into target/linux/
#   - with --raspi-firmware (scripts/sdcard.sh asks for it; CI never does): the Pi 4's boot
#     firmware, start4.elf and fixup4.dat, from Debian's raspi-firmware package, into the cache
# Downloads are cached outside the clone (PVHYP_CACHE, default ~/.cache/pvhyp).
set -euo pipefail
raspi_firmware=0
for arg in "$@"; do
    case "$arg" in
        --raspi-firmware) raspi_firmware=1 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup: unknown option $arg" >&2; exit 2 ;;
    esac
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PVHYP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvhyp}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"  # absolute: target/linux/ links into it

say() { echo "setup: $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_quiet() { DEBIAN_FRONTEND=noninteractive as_root apt-get -q -o=Dpkg::Use-Pty=0 "$@" >/dev/null; }

ensure_rust() {
    cd "$ROOT"
    local installed
    installed="$(rustup target list --installed 2>/dev/null || true)"
    if ! grep -q aarch64-unknown-none-softfloat <<<"$installed" ||
        ! grep -q '^aarch64-unknown-none$' <<<"$installed"; then
        say "installing the pinned Rust toolchain and targets"
        rustup toolchain install >/dev/null 2>&1 || rustup show >/dev/null
    fi
}

qemu_has_raspi4b() {
    command -v qemu-system-aarch64 >/dev/null &&
        qemu-system-aarch64 -M help 2>/dev/null | grep -q '^raspi4b '
}

# The URIs of the machine's own Debian source, so no mirror host is written here.
debian_uris() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm([ \n]|$)/ && /URIs:/ {
                 match($0, /URIs:[^\n]*/); print substr($0, RSTART+6, RLENGTH-6); exit }' "$f"
    done | head -n1
    if [ -f /etc/apt/sources.list ]; then
        awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list
    fi
}

# Adds a deb822 source (file name, suite, components) on the machine's own Debian mirror.
ensure_source() {
    local file="/etc/apt/sources.list.d/pvhyp-$1.sources" suite="$2" components="$3" uris
    [ -f "$file" ] && return 0
    uris="$(debian_uris | head -n1 | xargs)"
    [ -n "$uris" ] || { say "error: no Debian bookworm apt source found to reuse"; exit 1; }
    say "adding $suite ($components) from $uris"
    as_root tee "$file" >/dev/null <<SRC
Types: deb
URIs: $uris
Suites: $suite
Components: $components
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    APT_UPDATED=""
}

APT_UPDATED=""
apt_update_once() { [ -n "$APT_UPDATED" ] || { apt_quiet update; APT_UPDATED=1; }; }

ensure_qemu() {
    qemu_has_raspi4b && return 0
    ensure_source bookworm-backports bookworm-backports "main non-free-firmware"
    apt_update_once
    say "installing qemu-system-arm from bookworm-backports"
    apt_quiet install -y --no-install-recommends -t bookworm-backports qemu-system-arm
    qemu_has_raspi4b || { say "error: qemu-system-aarch64 still lacks raspi4b"; exit 1; }
}

# Debian's arm64 kernel package gives two things: the real Pi device trees and the Linux
# guest's kernel (boot/vmlinuz-*, a raw uncompressed arm64 Image). QEMU dumps its own trees.
DTB_DIR="$CACHE/dtb"
PI_DTBS=(bcm2711-rpi-4-b.dtb bcm2711-rpi-400.dtb bcm2711-rpi-cm4-io.dtb)
LINUX_DIR="$CACHE/linux"
ensure_arm64_apt() {
    if ! dpkg --print-foreign-architectures | grep -q arm64; then
        as_root dpkg --add-architecture arm64
        APT_UPDATED=""
    fi
    apt_update_once
}
# Downloads the arm64 package $1 into a new temporary directory and unpacks it under x/ there;
# prints the directory.
fetch_arm64_deb() {
    local tmp
    tmp="$(mktemp -d)"
    chmod 755 "$tmp"  # apt-get download writes as _apt where it can
    (cd "$tmp" && apt-get download -q "$1" >/dev/null 2>&1 && dpkg-deb -x ./*.deb x) ||
        { rm -rf "$tmp"; say "error: could not download $1"; exit 1; }
    echo "$tmp"
}
# "ARMd" (0x644d5241 little-endian) at offset 0x38: the arm64 Image header's magic.
is_arm64_image() { [ "$(od -An -tx1 -j56 -N4 "$1" | tr -d ' ')" = 41524d64 ]; }
ensure_kernel_package() {
    local missing=0 d
    for d in "${PI_DTBS[@]}"; do [ -f "$DTB_DIR/$d" ] || missing=1; done
    [ -f "$LINUX_DIR/Image" ] || missing=1
    [ "$missing" = 0 ] && return 0
    ensure_arm64_apt
    local pkg tmp image
    pkg="$(apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
    [ -n "$pkg" ] || { say "error: cannot name Debian's current arm64 kernel package"; exit 1; }
    say "fetching the Pi device trees and the Linux guest's kernel from $pkg"
    tmp="$(fetch_arm64_deb "$pkg")"
    mkdir -p "$DTB_DIR" "$LINUX_DIR"
    for d in "${PI_DTBS[@]}"; do
        cp "$(find "$tmp/x" -path "*broadcom/$d" | head -n1)" "$DTB_DIR/$d"
    done
    image="$(find "$tmp/x/boot" -name 'vmlinuz-*' | head -n1)"
    [ -n "$image" ] && is_arm64_image "$image" ||
        { rm -rf "$tmp"; say "error: $pkg has no boot/vmlinuz-* with the arm64 Image magic"; exit 1; }
    cp "$image" "$LINUX_DIR/Image.tmp"
    mv "$LINUX_DIR/Image.tmp" "$LINUX_DIR/Image"
    dpkg-deb -f "$tmp"/*.deb Package Version >"$LINUX_DIR/Image.version"
    rm -rf "$tmp"
}

# The Linux guest's initramfs: Debian's static arm64 busybox (cached as it came) and
# scripts/linux-init, packed by scripts/linux-initrd.sh; rebuilt (without a download) when one
# of those changes. Then linked into target/linux/, where tests/manifests/linux*.toml name them.
ensure_linux_guest() {
    if [ ! -f "$LINUX_DIR/busybox" ]; then
        ensure_arm64_apt
        say "fetching busybox-static:arm64 for the Linux guest's initramfs"
        local tmp
        tmp="$(fetch_arm64_deb busybox-static:arm64)"
        mkdir -p "$LINUX_DIR"
        cp "$tmp/x/bin/busybox" "$LINUX_DIR/busybox.tmp"
        mv "$LINUX_DIR/busybox.tmp" "$LINUX_DIR/busybox"
        dpkg-deb -f "$tmp"/*.deb Package Version >"$LINUX_DIR/busybox.version"
        rm -rf "$tmp"
    fi
    local stamp
    stamp="$(cat "$ROOT/scripts/linux-initrd.sh" "$ROOT/scripts/linux-init" "$LINUX_DIR/busybox" | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$LINUX_DIR/initrd.gz" ] || [ "$(cat "$LINUX_DIR/initrd.gz.stamp" 2>/dev/null)" != "$stamp" ]; then
        say "building the Linux guest's initramfs"
        "$ROOT/scripts/linux-initrd.sh" "$LINUX_DIR/busybox" "$LINUX_DIR/initrd.gz"
        echo "$stamp" >"$LINUX_DIR/initrd.gz.stamp"
    fi
    local dir="$ROOT/target/linux" f
    mkdir -p "$dir"
    for f in Image initrd.gz; do
        [ "$(readlink "$dir/$f" 2>/dev/null)" = "$LINUX_DIR/$f" ] || ln -sfn "$LINUX_DIR/$f" "$dir/$f"
    done
}

ensure_qemu_dtbs() {
    local gic
    for gic in 2 3; do
        [ -f "$DTB_DIR/qemu-virt-gicv$gic.dtb" ] && continue
        mkdir -p "$DTB_DIR"
        qemu-system-aarch64 -M "virt,virtualization=on,gic-version=$gic,dumpdtb=$DTB_DIR/qemu-virt-gicv$gic.dtb" \
            -cpu cortex-a72 -m 1G -display none -nic none >/dev/null 2>&1 ||
            { say "error: QEMU could not dump its virt device tree"; exit 1; }
    done
    if [ ! -f "$DTB_DIR/qemu-raspi4b.dtb" ]; then
        qemu-system-aarch64 -M "raspi4b,dumpdtb=$DTB_DIR/qemu-raspi4b.dtb" \
            -dtb "$DTB_DIR/bcm2711-rpi-4-b.dtb" -display none -nic none >/dev/null 2>&1 ||
            { say "error: QEMU could not dump its raspi4b device tree"; exit 1; }
    fi
}

# The Pi 4's boot firmware for scripts/sdcard.sh: start4.elf (the VideoCore firmware that loads
# config.txt, the DTB, kernel8.img and the initramfs) and fixup4.dat, plus the package's
# copyright file (the Broadcom licence the files are distributed under).
FIRMWARE_DIR="$CACHE/raspi-firmware"
FIRMWARE_FILES=(start4.elf fixup4.dat)
ensure_raspi_firmware() {
    local missing=0 f tmp
    for f in "${FIRMWARE_FILES[@]}" copyright; do [ -f "$FIRMWARE_DIR/$f" ] || missing=1; done
    [ "$missing" = 0 ] && return 0
    if ! apt-cache show raspi-firmware >/dev/null 2>&1; then
        # raspi-firmware is in bookworm's non-free-firmware component (not in backports).
        ensure_source bookworm-non-free-firmware bookworm non-free-firmware
        apt_update_once
    fi
    say "fetching the Raspberry Pi boot firmware (Debian package raspi-firmware)"
    tmp="$(mktemp -d)"
    chmod 755 "$tmp"  # apt-get download writes as _apt where it can
    (cd "$tmp" && apt-get download -q raspi-firmware >/dev/null 2>&1 && dpkg-deb -x ./*.deb x) ||
        { rm -rf "$tmp"; say "error: could not download raspi-firmware"; exit 1; }
    mkdir -p "$FIRMWARE_DIR"
    for f in "${FIRMWARE_FILES[@]}"; do
        cp "$tmp/x/usr/lib/raspi-firmware/$f" "$FIRMWARE_DIR/$f"
    done
    cp "$tmp/x/usr/share/doc/raspi-firmware/copyright" "$FIRMWARE_DIR/copyright"
    dpkg-deb -f "$tmp"/*.deb Version >"$FIRMWARE_DIR/VERSION"
    rm -rf "$tmp"
}

# GNU cpio: the manifest tests check our archives against it (they would skip without it).
ensure_cpio() {
    command -v cpio >/dev/null && return 0
    apt_update_once
    say "installing cpio"
    apt_quiet install -y --no-install-recommends cpio
}

# gdb-multiarch for scripts/gdb.sh (and its check in scripts/test.sh): the host's own gdb
# knows only the host's architecture.
ensure_gdb_multiarch() {
    command -v gdb-multiarch >/dev/null && return 0
    apt_update_once
    say "installing gdb-multiarch"
    apt_quiet install -y --no-install-recommends gdb-multiarch
}

# llvm-nm and llvm-addr2line: scripts/run.sh resolves a crash report's addresses with them.
ensure_llvm_symbolizer() {
    command -v llvm-nm >/dev/null && command -v llvm-addr2line >/dev/null && return 0
    apt_update_once
    say "installing llvm (llvm-nm, llvm-addr2line)"
    apt_quiet install -y --no-install-recommends llvm
}

# cargo-fuzz for the host fuzz targets (fuzz/run.sh), from crates.io; a pinned version, built
# with the pinned toolchain.
CARGO_FUZZ_VERSION=0.13.2
ensure_cargo_fuzz() {
    cargo fuzz --version >/dev/null 2>&1 && return 0
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    local log
    log="$(mktemp)"
    (cd "$ROOT" && cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz) >"$log" 2>&1 ||
        { tail -20 "$log" >&2; rm -f "$log"; say "error: could not install cargo-fuzz"; exit 1; }
    rm -f "$log"
}

ensure_rust
ensure_cargo_fuzz
ensure_qemu
ensure_cpio
ensure_gdb_multiarch
ensure_llvm_symbolizer
ensure_kernel_package
ensure_linux_guest
ensure_qemu_dtbs
[ "$raspi_firmware" = 0 ] || ensure_raspi_firmware
