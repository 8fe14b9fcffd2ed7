#!/usr/bin/env bash
# Builds the host fuzz targets and runs each for a while: coverage-guided (cargo fuzz,
# libFuzzer) on the pinned stable toolchain, so no sanitizer; overflow and debug checks are on.
#   fuzz/run.sh [--seconds N] [TARGET...]   N seconds per target (default 60); default: all
#   fuzz/run.sh --list                      the targets
# Prints per target the executions done and the result; exits 1 if a target crashed (the
# input that did it is kept in fuzz/artifacts/TARGET/), 2 on bad usage or a missing tool.
# Corpora grow in fuzz/corpus/TARGET/ (not committed): seeded from fuzz/seeds/TARGET/, the
# cached device trees (scripts/setup.sh) and, when scripts/build.sh has run, the pv-guest ELF
# and pvpack's archives of the example manifests. fuzz/dict/TARGET.dict: the words of a format.
set -euo pipefail
FUZZ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ")"
CACHE="${PVHYP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvhyp}"
ALL=(devtree manifest cpio elf hypercall esr virtqueue)

seconds=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds)
            [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: --seconds takes a whole number of seconds" >&2; exit 2; }
            seconds="$2"; shift ;;
        --list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
        *)
            [[ " ${ALL[*]} " == *" $1 "* ]] || { echo "fuzz: no target $1 (fuzz/run.sh --list)" >&2; exit 2; }
            targets+=("$1") ;;
    esac
    shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
cargo fuzz --version >/dev/null 2>&1 || { echo "fuzz: cargo-fuzz is missing: run scripts/setup.sh" >&2; exit 2; }

cd "$ROOT"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Every target at once (one cargo run); a no-op when nothing changed.
if ! cargo fuzz build --fuzz-dir "$FUZZ" --sanitizer none --debug-assertions >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "fuzz: build failed" >&2
    exit 1
fi
BIN="$FUZZ/target/$(rustc -vV | awk '/^host:/ {print $2}')/release"

# Big-endian and little-endian integers of a file.
be32() { echo $((16#$(od -An -tx1 -v -j "$2" -N4 "$1" | tr -d ' \n'))); }
le() { od -An --endian=little -tu"$3" -v -j "$2" -N"$3" "$1" | tr -d ' '; }

# A device tree cut to its blocks: QEMU pads its own to 1 MiB, which only slows the fuzzer.
compact_dtb() {
    local src="$1" dst="$2" end struct strings
    struct=$(($(be32 "$src" 8) + $(be32 "$src" 36)))
    strings=$(($(be32 "$src" 12) + $(be32 "$src" 32)))
    end=$((struct > strings ? struct : strings))
    [ "$end" -le "$(be32 "$src" 4)" ] || return 0
    {
        head -c 4 "$src"
        printf "$(printf '\\%03o' $((end >> 24 & 255)) $((end >> 16 & 255)) $((end >> 8 & 255)) $((end & 255)))"
        head -c "$end" "$src" | tail -c +9
    } >"$dst"
}

# An ELF cut after the file data of its last program header: the loader reads nothing else.
loadable_elf() {
    local src="$1" dst="$2" phoff entsize count i ph end=0 seg
    phoff=$(le "$src" 32 8); entsize=$(le "$src" 54 2); count=$(le "$src" 56 2)
    for ((i = 0; i < count; i++)); do
        ph=$((phoff + i * entsize))
        seg=$(($(le "$src" $((ph + 8)) 8) + $(le "$src" $((ph + 32)) 8)))
        [ "$seg" -le "$end" ] || end=$seg
    done
    head -c $((end > phoff + count * entsize ? end : phoff + count * entsize)) "$src" >"$dst"
}

# Seeds from outside fuzz/seeds, written once into the corpus.
seed() {
    local corpus="$FUZZ/corpus/$1" f name
    mkdir -p "$corpus"
    case "$1" in
        devtree)
            for f in "$CACHE"/dtb/*.dtb; do
                name="$corpus/$(basename "$f")"
                if [ -f "$f" ] && [ ! -f "$name" ]; then compact_dtb "$f" "$name"; fi
            done ;;
        elf)
            f="$ROOT/target/pvhyp/pv-guest.elf"
            if [ -f "$f" ]; then loadable_elf "$f" "$corpus/pv-guest.elf"; fi ;;
        cpio | manifest)
            if [ "$1" = cpio ]; then cp "$ROOT/manifest/tests/fixtures/gnu-newc.cpio" "$corpus/"; fi
            # pvpack's archives of the example manifests, with the small seed ELF as the image.
            if [ -x "$ROOT/target/pvhyp/pvpack" ]; then
                for f in "$ROOT"/manifest/examples/*.toml "$ROOT"/tests/manifests/*.toml; do
                    # Not the Linux VMs': their archives hold a 32 MB kernel.
                    case "$f" in */linux*.toml) continue ;; esac
                    name="$corpus/$(basename "$f" .toml).cpio"
                    [ -f "$name" ] && continue
                    "$ROOT/target/pvhyp/pvpack" --manifest "$f" --default-image "$FUZZ/seeds/elf/minimal.elf" \
                        --out "$name" >/dev/null 2>&1 || rm -f "$name"
                done
            fi ;;
    esac
}

crashed=0
for t in "${targets[@]}"; do
    seed "$t" || echo "fuzz: seeding $t failed; it runs on what it has" >&2
    mkdir -p "$FUZZ/artifacts/$t" "$FUZZ/seeds/$t"
    options=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1 -artifact_prefix="$FUZZ/artifacts/$t/")
    if [ -f "$FUZZ/dict/$t.dict" ]; then options+=(-dict="$FUZZ/dict/$t.dict"); fi
    status=0
    "$BIN/$t" "$FUZZ/corpus/$t" "$FUZZ/seeds/$t" "${options[@]}" >"$log" 2>&1 || status=$?
    execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
    if [ "$status" = 0 ]; then
        echo "fuzz $t: ${execs:-0} executions in ${seconds} s, ok"
    else
        crashed=1
        input=$(grep -o "Test unit written to .*" "$log" | tail -n1 | sed 's/Test unit written to //')
        echo "fuzz $t: CRASH after ${execs:-?} executions (libFuzzer exit $status); input: ${input:-none}"
        grep -E "panicked at|^ +[0-9]+: |SUMMARY|ERROR" "$log" | head -30 | sed 's/^/    /'
        echo "    reproduce: $BIN/$t ${input:-INPUT}"
    fi
done
exit "$crashed"
