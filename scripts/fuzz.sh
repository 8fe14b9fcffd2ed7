#!/usr/bin/env bash
# Fuzz campaigns.
#   scripts/fuzz.sh --seeds A..B [--count N] [--board virt|raspi4b] [--per-boot K] [--typed]
#                   [--no-build]
#       boots QEMU with K fuzz VMs (pv-guest `fuzz seed=S count=N`, 2 vCPUs each) beside a
#       victim VM per boot, for every seed S in A..B (default N 10000, K 2); reports each seed
#       that fails with the command line that reproduces it; exits 1 if any failed. --typed
#       types a line at the first fuzz VM of each boot (console input for CONSOLE_READ).
#   scripts/fuzz.sh --host [ARGS]   the host fuzzing of the parsers: runs fuzz/run.sh ARGS.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "fuzz: $*" >&2; exit 2; }

if [ "${1:-}" = --host ]; then
    shift
    [ -x fuzz/run.sh ] || die "host fuzzing is not here yet: fuzz/run.sh is missing (it runs the cargo-fuzz targets under fuzz/)"
    exec fuzz/run.sh "$@"
fi

seeds="" count=10000 board=virt per_boot=2 build=1 typed=
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds="${2:?--seeds needs A..B}"; shift 2 ;;
        --count) count="${2:?--count needs a number}"; shift 2 ;;
        --board) board="${2:?--board needs virt or raspi4b}"; shift 2 ;;
        --per-boot) per_boot="${2:?--per-boot needs a number}"; shift 2 ;;
        --no-build) build=0; shift ;;
        # Ctrl-] moves the console focus from the victim (first) to the first fuzz VM.
        --typed) typed='\x1dtyped at the fuzzer\r'; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
done
[[ "$seeds" =~ ^([0-9]+)\.\.([0-9]+)$ ]] || { usage >&2; die "--seeds must be A..B (decimal), not '$seeds'"; }
first="${BASH_REMATCH[1]}" last="${BASH_REMATCH[2]}"
[ "$first" -le "$last" ] || die "--seeds $seeds: A is above B"
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive number, not '$count'"
[[ "$per_boot" =~ ^[1-9]$ ]] || die "--per-boot must be 1..9, not '$per_boot'"
case "$board" in virt) board_args=(--smp 2) ;; raspi4b) board_args=(--board raspi4b) ;;
    *) die "--board must be virt or raspi4b, not '$board'" ;; esac

if [ "$build" = 1 ]; then scripts/build.sh || die "build failed"; fi
out="$ROOT/target/pvhyp/fuzz"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# QEMU TCG runs about 1000 calls a second per fuzz VM; leave room.
timeout=$((60 + count * per_boot / 250))

failed=() passed=0
seed="$first"
while [ "$seed" -le "$last" ]; do
    group=()
    while [ "${#group[@]}" -lt "$per_boot" ] && [ "$seed" -le "$last" ]; do group+=("$seed"); seed=$((seed + 1)); done
    manifest="$work/fuzz-${group[0]}.toml"
    {
        printf '[[vm]]\nname = "victim"\nmemory = "8M"\ncmdline = "victim rounds=20000 pages=64"\n'
        for s in "${group[@]}"; do
            printf '\n[[vm]]\nname = "fuzz-%s"\nmemory = "8M"\nvcpus = 2\ncmdline = "fuzz seed=%s count=%s"\n' "$s" "$s" "$count"
            # The first fuzz VM of a boot has a disk region and a channel to the victim.
            [ "$s" = "${group[0]}" ] && printf 'disk = { offset = 0, size = "1M" }\n'
        done
        printf '\n[[channel]]\nname = "wire"\nbetween = ["fuzz-%s", "victim"]\n' "${group[0]}"
    } >"$manifest"
    disk_args=()
    [ "$board" = virt ] && disk_args=(--disk "$work/disk-${group[0]}.img")
    log="$out/$board-seeds-${group[0]}-${group[-1]}.log"
    printf "%b" "$typed" | scripts/run.sh --no-build "${board_args[@]}" "${disk_args[@]}" \
        --manifest "$manifest" --timeout "$timeout" >"$log" 2>&1
    status=$?
    text="$work/boot.txt"
    # As the terminal shows it: the focused VM's partial line is hidden (CR, erase to the end
    # of the line) before another writer's whole line, which then starts the line (--typed).
    sed -e 's/\r\x1b\[K/\n/g' -e 's/\r//g' <"$log" >"$text"
    for s in "${group[@]}"; do
        if grep -Eq "^fuzz-$s: fuzz: seed=$s calls=$count .* ok$" "$text"; then
            passed=$((passed + 1))
        else
            failed+=("$s")
            echo "FAIL seed $s (boot exit $status, log $log):"
            grep -E "^fuzz-$s: fuzz: (FAILED|seed=)|VM fuzz-$s |panic" "$text" | head -5 | sed 's/^/    /'
            echo "    reproduce: scripts/fuzz.sh --seeds $s..$s --count $count --board $board --per-boot 1${typed:+ --typed}"
            echo "    (or a manifest with cmdline \"fuzz seed=$s count=$count trace=1\" to print every call,"
            echo "    \"watch=1\" to check the guarded region after every call)"
        fi
    done
    if ! grep -q "victim: victim: memory and FP/SIMD registers unchanged" "$text"; then
        failed+=("victim@${group[0]}")
        echo "FAIL the victim beside seeds ${group[*]} (log $log)"
    fi
    echo "seeds ${group[0]}..${group[-1]} on $board: done (${#failed[@]} failures so far)"
done
echo "fuzz: $passed seeds passed, ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
[ "${#failed[@]}" = 0 ]
