#!/usr/bin/env bash
# Builds the hypervisor Image (also kernel8.img for the Pi 4), the pv-guest ELF and pvpack.
# Prints nothing on success but cargo's own errors; outputs land in target/pvhyp/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/pvhyp"
mkdir -p "$OUT"
PROFILE="${PVHYP_PROFILE:-release}"
cargo_flags=(-q)
[ "$PROFILE" = release ] && cargo_flags+=(--release)

cargo build "${cargo_flags[@]}" -p hyp --target aarch64-unknown-none-softfloat
cargo build "${cargo_flags[@]}" -p pv-guest --target aarch64-unknown-none
cargo build -q --release -p pvpack -p mkimage

HYP_ELF="target/aarch64-unknown-none-softfloat/$PROFILE/hyp"
target/release/mkimage "$HYP_ELF" "$OUT/Image"
cp "$OUT/Image" "$OUT/kernel8.img"
cp "$HYP_ELF" "$OUT/hyp.elf"
cp "target/aarch64-unknown-none/$PROFILE/pv-guest" "$OUT/pv-guest.elf"
cp target/release/pvpack "$OUT/pvpack"
