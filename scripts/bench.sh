#!/usr/bin/env bash
# Deterministic instruction counts of the hypervisor's hot paths. See --help.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() {
    cat <<'USAGE'
usage: scripts/bench.sh [options]

Boots pv-guest's `bench` program under QEMU with -icount shift=0 (one instruction per
nanosecond of virtual time, which the guest's counter follows) and reports how many
instructions each hot path costs, identically on every run: a table on the terminal with each
measure's budget, and optionally JSON and an SVG chart. Three boots: one VM alone (the one-VM
measures, and the hyp's boot_to_guest and per-VM overhead), two VMs yielding to each other
(vm_switch, and the event and channel round trips), and one VM with console =
"emulated-pl011" (console_trap_64b, from which console_trap_over_pv is derived). Every boot
also reports max_hold, the longest the hyp held a CPU for one guest exit; a fourth boot runs
the hold manifest (default tests/manifests/bench-hold.toml: pv-guest's `fuzz` program) for it
alone, and is skipped, saying so, while pv-guest has no such program. A fifth boot, on four
CPUs (virt -smp 4; raspi4b has its four), runs the smp manifest (default
tests/manifests/bench-smp.toml: four VMs, one pinned to each CPU) for smp_hypercall_4cpu and
smp_map_4cpu: the VMs make 10,000 ABI_VERSION calls each, then 10,000 MEM_MAP + MEM_UNMAP
pairs of one page, all at once and (the _alone twins) VM 0 alone. Under -icount QEMU runs the
CPUs one at a time and the clock counts them all, so each figure is the instructions of all
CPUs (spinning included) over all calls; the budgets are 1.2x this invocation's one-CPU
null_hypercall_abi_version and mem_map_1 + mem_unmap_1. The smp check (printed; --check-smp
makes it fail the run) says whether ABI_VERSION with four CPUs calling costs more than 1.2x
alone: a lock the CPUs share on the general path. With --no-icount that boot runs QEMU
multi-threaded (-accel tcg,thread=multi): nanoseconds of host time, not judged.
What a VM on the trap-and-emulate platform pays comes from two more boots: bench-guest (a bare
guest booted as a Linux VM with two vCPUs; default tests/manifests/bench-trap-linux.toml)
times gicd_read_trap, vtimer_to_handler and virtual_ipi (on GICv3 or GICv2, --gic), and
Debian's kernel (default tests/manifests/bench-linux-boot.toml; about 25 s, skipped by
--quick) gives linux_entry_to_init, from the VM's first entry to /init's first line. Both are
counted under -icount only (skipped with --no-icount). On virt one more boot, under run.sh
--iommu (default tests/manifests/bench-dma.toml), repeats mem_map_1 and mem_unmap_1 in a VM
that owns the PCI disk behind the SMMU: mem_unmap_1_device_owner against mem_unmap_1 is what
the SMMU's TLB maintenance (CMD_TLBI_S2_IPA + CMD_SYNC) adds to an unmap.

options:
  --board virt|raspi4b   machine (default virt: 1 CPU, cortex-a72; raspi4b: its 4 fixed
                         Cortex-A72, the 3 secondaries parked in WFI)
  --gic 2|3              GIC version on virt (default 3; raspi4b's is a GICv2)
  --cpu MODEL            CPU model on virt (default cortex-a72; `max` counts 1 tick a
                         instruction)
  --json FILE            write the measures as one JSON array
  --svg FILE             write a bar chart of the hot paths
  --iterations N         operations per timed batch (default 1000; 9 batches a measure)
  --quick                a few iterations a batch: checks the whole pipeline in seconds (the
                         figures are then rough; scripts/test.sh uses it)
  --no-icount            wall-clock nanoseconds instead: NOT deterministic
  --no-build             use the binaries already in target/pvhyp
  --hold-manifest FILE   the boot run for max_hold alone (its VMs' programs may fail: only
                         the hyp's figure counts); `none` skips it
  --smp-manifest FILE    the four-CPU boot (VMs running `bench smp vm=K of=4`); `none`
                         skips it
  --linux-manifest FILE  the bench-guest boot; `none` skips it
  --linux-boot-manifest FILE
                         the Linux boot for linux_entry_to_init (needs scripts/setup.sh's
                         target/linux/); `none` skips it
  --device-owner-manifest FILE
                         the boot under --iommu for mem_map_1_device_owner and
                         mem_unmap_1_device_owner (default tests/manifests/bench-dma.toml: the
                         bench VM owns the PCI disk 00:01.0; virt only); `none` skips it
  --smp-only             only the four-CPU boot (its relative budgets then unjudged)
  --check-smp            exit 1 when the smp check fails (scripts/test.sh has it as a case
                         to enable once ABI_VERSION takes no global lock)
  --trace                boot with exit tracing on (run.sh --trace): what a traced exit costs
                         is the difference from a run without
  --logs DIR             keep the console logs in DIR
  -h, --help             this text
Exit status: 0 when every run finished and reported (budgets missed do not fail it), 1 when a
run failed (or, with --check-smp, the smp check), 2 for a bad option.
USAGE
}

die() { echo "bench: $*" >&2; exit 2; }

board=virt gic=3 cpu="" json="" svg="" iterations="" quick=0 icount=1 build=1 logs=""
run_extra=()
hold_manifest=tests/manifests/bench-hold.toml
smp_manifest=tests/manifests/bench-smp.toml
linux_manifest=tests/manifests/bench-trap-linux.toml
linux_boot_manifest=tests/manifests/bench-linux-boot.toml
linux_boot_set=0
device_owner_manifest=tests/manifests/bench-dma.toml
report_extra=()
smp_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --board) board="${2:?--board needs a value}"; shift 2 ;;
        --gic) gic="${2:?--gic needs a value}"; shift 2 ;;
        --cpu) cpu="${2:?--cpu needs a value}"; shift 2 ;;
        --json) json="${2:?--json needs a file}"; shift 2 ;;
        --svg) svg="${2:?--svg needs a file}"; shift 2 ;;
        --iterations) iterations="${2:?--iterations needs a number}"; shift 2 ;;
        --quick) quick=1; shift ;;
        --no-icount) icount=0; shift ;;
        --no-build) build=0; shift ;;
        --trace) run_extra+=(--trace); shift ;;
        --logs) logs="${2:?--logs needs a directory}"; shift 2 ;;
        --hold-manifest) hold_manifest="${2:?--hold-manifest needs a file}"; shift 2 ;;
        --smp-manifest) smp_manifest="${2:?--smp-manifest needs a file}"; shift 2 ;;
        --linux-manifest) linux_manifest="${2:?--linux-manifest needs a file}"; shift 2 ;;
        --linux-boot-manifest) linux_boot_manifest="${2:?--linux-boot-manifest needs a file}"
                               linux_boot_set=1; shift 2 ;;
        --device-owner-manifest) device_owner_manifest="${2:?--device-owner-manifest needs a file}"
                                 shift 2 ;;
        --check-smp) report_extra+=(--check-smp); shift ;;
        --smp-only) smp_only=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done
case "$board" in
    virt) case "$gic" in 2|3) ;; *) die "--gic must be 2 or 3, not '$gic'" ;; esac
          machine=(--board virt --gic "$gic" --cpu "${cpu:-cortex-a72}" --smp 1)
          smp_machine=(--board virt --gic "$gic" --cpu "${cpu:-cortex-a72}" --smp 4) ;;
    raspi4b) [ -z "$cpu" ] || die "--board raspi4b has fixed Cortex-A72 CPUs"
             machine=(--board raspi4b) smp_machine=(--board raspi4b) ;;
    *) die "--board must be virt or raspi4b, not '$board'" ;;
esac
[ -z "$iterations" ] || [[ "$iterations" =~ ^[1-9][0-9]*$ ]] ||
    die "--iterations must be a positive number, not '$iterations'"
[ "$hold_manifest" = none ] || [ -f "$hold_manifest" ] || die "no manifest $hold_manifest"
[ "$smp_manifest" = none ] || [ -f "$smp_manifest" ] || die "no manifest $smp_manifest"
[ "$linux_manifest" = none ] || [ -f "$linux_manifest" ] || die "no manifest $linux_manifest"
[ "$linux_boot_manifest" = none ] || [ -f "$linux_boot_manifest" ] ||
    die "no manifest $linux_boot_manifest"
[ "$device_owner_manifest" = none ] || [ -f "$device_owner_manifest" ] ||
    die "no manifest $device_owner_manifest"
[ "$smp_only" = 0 ] || [ "$smp_manifest" != none ] ||
    die "--smp-only with --smp-manifest none runs nothing"

if [ "$build" = 1 ]; then
    scripts/setup.sh
    scripts/build.sh
fi
cargo build -q --release -p benchreport
report="$ROOT/target/release/benchreport"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -z "$logs" ] || mkdir -p "$logs"

# What the guests are told: the same for every VM, so the vm_switch partner yields as often.
args=""
[ "$quick" = 1 ] && args+=" quick"
[ "$icount" = 0 ] && args+=" wall"
[ -n "$iterations" ] && args+=" iterations=$iterations"
# sleep=off: measured paths never idle, but the console between them may wait on the host;
# without it, that wait would advance the virtual clock by real time and shift what follows.
qemu=()
[ "$icount" = 1 ] && qemu=(-icount shift=0,sleep=off)
# The four-CPU boot: one QEMU thread a CPU when not counting instructions (-icount runs the
# CPUs one at a time and refuses thread=multi).
smp_qemu=("${qemu[@]}")
[ "$icount" = 1 ] || smp_qemu=(-accel tcg,thread=multi)

if [ "$icount" = 1 ]; then
    echo "bench: $board, QEMU -icount shift=0: deterministic instruction counts"
    [ "${#run_extra[@]}" = 0 ] || echo "bench: exit tracing on"
else
    echo "bench: $board, wall clock (--no-icount): nanoseconds, NOT deterministic"
fi

# run_one NAME MANIFEST [MACHINE QEMU]: MACHINE and QEMU name the arrays of run.sh's machine
# options and QEMU's (default: the one-CPU machine).
run_one() {
    local name="$1" manifest="$2"
    local -n board_args="${3:-machine}" qemu_args="${4:-qemu}"
    sed -E "s/^(cmdline = \"bench[^\"]*)\"/\\1$args\"/" "$manifest" >"$work/$name.toml"
    local log="$work/$name.log"
    if ! scripts/run.sh --no-build "${board_args[@]}" "${run_extra[@]}" \
        --manifest "$work/$name.toml" --timeout 600 -- "${qemu_args[@]}" </dev/null >"$log" 2>&1; then
        echo "bench: the $name run failed:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    [ -z "$logs" ] || cp "$log" "$logs/$name.log"
}
# run_in_place NAME MANIFEST: a boot whose manifest is used as it is (its images are named
# relative to it; it takes no bench arguments), on the one-CPU machine.
run_in_place() {
    local name="$1" manifest="$2" log="$work/$1.log"
    if ! scripts/run.sh --no-build "${machine[@]}" "${run_extra[@]}" --manifest "$manifest" \
        --timeout 600 -- "${qemu[@]}" </dev/null >"$log" 2>&1; then
        echo "bench: the $name run failed:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    [ -z "$logs" ] || cp "$log" "$logs/$name.log"
    logs_read+=("$log")
}
# run_device_owner: mem_map_1 and mem_unmap_1 in a VM that owns the PCI disk behind the SMMU
# (run.sh --iommu; the manifest's devices = ["00:01.0"]), for the SMMU maintenance an unmap adds.
# virt only: the Pi 4 has no SMMU (the measures are then reported not available).
run_device_owner() {
    if [ "$board" != virt ]; then
        echo "bench: mem_unmap_1_device_owner skipped: $board has no SMMU"
        return
    fi
    local device_machine=("${machine[@]}" --iommu --pci-disk "$work/pci-disk.img")
    run_one device-owner "$device_owner_manifest" device_machine
    logs_read+=("$work/device-owner.log")
}
logs_read=()
if [ "$smp_only" = 0 ]; then
    run_one solo tests/manifests/bench.toml
    run_one switch tests/manifests/bench-switch.toml
    run_one trap tests/manifests/bench-trap.toml
    logs_read+=("$work/solo.log" "$work/switch.log" "$work/trap.log")
    [ "$device_owner_manifest" = none ] || run_device_owner
    if [ "$linux_manifest" = none ]; then
        :
    elif [ "$icount" = 0 ]; then
        echo "bench: $linux_manifest skipped: bench-guest counts instructions under -icount only"
    else
        run_in_place trap-linux "$linux_manifest"
    fi
    if [ "$linux_boot_manifest" = none ]; then
        :
    elif [ "$icount" = 0 ]; then
        echo "bench: $linux_boot_manifest skipped: linux_entry_to_init is counted under -icount only"
    elif [ "$quick" = 1 ] && [ "$linux_boot_set" = 0 ]; then
        echo "bench: linux_entry_to_init skipped by --quick (--linux-boot-manifest runs it)"
    elif [ ! -f target/linux/Image ]; then
        echo "bench: linux_entry_to_init skipped: no target/linux/Image (scripts/setup.sh)"
    else
        run_in_place linux-boot "$linux_boot_manifest"
    fi
else
    hold_manifest=none
fi
if [ "$smp_manifest" != none ]; then
    run_one smp "$smp_manifest" smp_machine smp_qemu
    # Its clock counts all four CPUs (a CPU spinning on a lock for QEMU's whole turn of
    # another): max_hold comes from the one-CPU boots.
    sed -i '/max_hold: /d' "$work/smp.log"
    logs_read+=("$work/smp.log")
fi

# The max_hold boot: whatever its guests do, the hyp must finish the run and say max_hold.
# --quick shortens its programs' counts (count=N) to a few hundred calls.
if [ "$hold_manifest" != none ]; then
    if [ "$quick" = 1 ]; then
        sed -E 's/count=[0-9]+/count=300/g' "$hold_manifest" >"$work/hold.toml"
    else
        cp "$hold_manifest" "$work/hold.toml"
    fi
    scripts/run.sh --no-build "${machine[@]}" "${run_extra[@]}" --manifest "$work/hold.toml" --timeout 600 \
        -- "${qemu[@]}" </dev/null >"$work/hold.log" 2>&1 || true
    [ -z "$logs" ] || cp "$work/hold.log" "$logs/hold.log"
    if grep -q 'unknown program "fuzz"' "$work/hold.log"; then
        echo "bench: $hold_manifest skipped: pv-guest has no fuzz program yet (max_hold from" \
            "the bench programs alone)"
    elif grep -q 'max_hold: ' "$work/hold.log"; then
        logs_read+=("$work/hold.log")
    else
        echo "bench: the hold run ($hold_manifest) did not finish:" >&2
        tail -n 20 "$work/hold.log" >&2
        exit 1
    fi
fi

out=()
[ -n "$json" ] && out+=(--json "$json")
[ -n "$svg" ] && out+=(--svg "$svg")
"$report" --image target/pvhyp/Image --title "pvhyp on QEMU $board" "${out[@]}" \
    "${report_extra[@]}" "${logs_read[@]}"
