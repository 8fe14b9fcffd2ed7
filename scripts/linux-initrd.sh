#!/usr/bin/env bash
# Builds the Linux guest's initramfs: a gzipped newc cpio holding a static arm64 busybox as
# /bin/busybox (with /bin/sh linked to it; /init installs the other applet links at boot, since
# an arm64 busybox cannot list them on the build host) and scripts/linux-init as /init.
#   scripts/linux-initrd.sh BUSYBOX OUT.gz
# scripts/setup.sh runs it (with Debian's busybox-static:arm64) and caches the result.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BUSYBOX OUT.gz" >&2; exit 2; }
busybox="$1" out="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A static AArch64 ELF: "\x7fELF", 64-bit (class 2), e_machine 183 (0xb7).
[ "$(od -An -tx1 -N5 "$busybox" | tr -d ' ')" = 7f454c4602 ] &&
    [ "$(od -An -tx1 -j18 -N2 "$busybox" | tr -d ' ')" = b700 ] ||
    { echo "linux-initrd: $busybox is not an AArch64 ELF64 binary" >&2; exit 1; }
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/sys" "$stage/tmp" "$stage/root"
install -m 0755 "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
install -m 0755 "$ROOT/scripts/linux-init" "$stage/init"
# Sorted names and a fixed mtime: the same inputs give the same archive.
find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet) |
    gzip -n -9 >"$out.tmp"
mv "$out.tmp" "$out"
