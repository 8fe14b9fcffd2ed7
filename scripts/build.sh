#!/usr/bin/env bash
# Builds the hypervisor Image (also kernel8.img for the Pi 4), the pv-guest ELF, bench-guest's
# Image (a bare guest for Linux VMs) and pvpack.
# Prints nothing on success but cargo's own errors; outputs land in target/pvhyp/.
#   scripts/build.sh              the release build (PVHYP_PROFILE=dev for a debug one)
#   scripts/build.sh --debug-hyp  also a debug build of the hypervisor alone (debug assertions
#                                 and overflow checks on, the same guests), in
#                                 target/pvhyp/debug/ (scripts/run.sh --debug-hyp boots it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
debug_hyp=0
for arg in "$@"; do
    case "$arg" in
        --debug-hyp) debug_hyp=1 ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build: unknown option $arg" >&2; exit 2 ;;
    esac
done
OUT="$ROOT/target/pvhyp"
mkdir -p "$OUT"
PROFILE="${PVHYP_PROFILE:-release}"
cargo_flags=(-q)
[ "$PROFILE" = release ] && cargo_flags+=(--release)

cargo build "${cargo_flags[@]}" -p hyp --target aarch64-unknown-none-softfloat
cargo build "${cargo_flags[@]}" -p pv-guest --target aarch64-unknown-none
cargo build "${cargo_flags[@]}" -p bench-guest --target aarch64-unknown-none
cargo build -q --release -p pvpack -p mkimage

# Cargo's profile directory: `dev` builds land in debug/.
profile_dir() { if [ "$1" = dev ]; then echo debug; else echo "$1"; fi; }

# hyp_image ELF DIR: the Image (and the Pi's kernel8.img, the same bytes) and the ELF for GDB.
hyp_image() {
    mkdir -p "$2"
    target/release/mkimage "$1" "$2/Image"
    cp "$2/Image" "$2/kernel8.img"
    cp "$1" "$2/hyp.elf"
}

hyp_image "target/aarch64-unknown-none-softfloat/$(profile_dir "$PROFILE")/hyp" "$OUT"
cp "target/aarch64-unknown-none/$(profile_dir "$PROFILE")/pv-guest" "$OUT/pv-guest.elf"
cp target/release/pvpack "$OUT/pvpack"
# bench-guest boots as a Linux VM: a raw Image (its header is its first 64 bytes).
llvm-objcopy -O binary "target/aarch64-unknown-none/$(profile_dir "$PROFILE")/bench-guest" \
    "$OUT/bench-guest.img"

if [ "$debug_hyp" = 1 ]; then
    # The dev profile, but optimised a little: the debug-only checks (the frame accounting
    # after every hypercall walks the owner map) are slow enough unoptimised to time the
    # suite's cases out.
    # Frame pointers for its backtraces (.cargo/config.toml says why not the release hyp's).
    CARGO_PROFILE_DEV_OPT_LEVEL=1 CARGO_TARGET_AARCH64_UNKNOWN_NONE_SOFTFLOAT_RUSTFLAGS="-C force-frame-pointers=yes" \
        cargo build -q -p hyp --target aarch64-unknown-none-softfloat
    hyp_image target/aarch64-unknown-none-softfloat/debug/hyp "$OUT/debug"
fi
