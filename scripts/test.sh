#!/usr/bin/env bash
# Runs every check: host unit tests, lints, and the QEMU integration runs (2 at a time, each
# with its own timeout). Ends with one line "N passed, N failed"; exits non-zero on a failure.
#   scripts/test.sh          the suite CI runs (about 10 minutes at most on 2 cores)
#   scripts/test.sh --full   also the whole virt option matrix (CPU x GIC x memory)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
full=0
for arg in "$@"; do
    case "$arg" in
        --full) full=1 ;;
        -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "test: unknown option $arg" >&2; exit 2 ;;
    esac
done

passed=0 failed=0
failures=()
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"; }

scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
# Also the debug hypervisor (target/pvhyp/debug/) that the `--debug-hyp` cases boot.
scripts/build.sh --debug-hyp || { echo "FAIL build"; echo "0 passed, 1 failed"; exit 1; }

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

# --- Host unit tests: every test case counts. ---
if cargo test -q --workspace --no-fail-fast >"$results/cargo-test.log" 2>&1; then cargo_ok=1; else cargo_ok=0; fi
host_passed=$(grep -Eo '[0-9]+ passed' "$results/cargo-test.log" | awk '{s+=$1} END {print s+0}')
host_failed=$(grep -Eo '[0-9]+ failed' "$results/cargo-test.log" | awk '{s+=$1} END {print s+0}')
passed=$((passed + host_passed)); failed=$((failed + host_failed))
echo "ok   host unit tests: $host_passed passed, $host_failed failed"
if [ "$cargo_ok" = 0 ]; then
    grep -E '^(test .* FAILED|error|---- )' "$results/cargo-test.log" | head -40
    [ "$host_failed" -gt 0 ] || fail "cargo test (build error)"
    [ "$host_failed" = 0 ] || failures+=("host unit tests")
fi

# --- Lints: clippy on the host and on both bare-metal targets, and formatting. ---
lint() {
    local name="$1"; shift
    if "$@" >"$results/lint.log" 2>&1; then pass "$name"; else fail "$name"; tail -30 "$results/lint.log"; fi
}
lint "clippy (host, all targets)" cargo clippy -q --workspace --all-targets -- -D warnings
lint "clippy (hyp, aarch64-unknown-none-softfloat)" \
    cargo clippy -q -p hyp --target aarch64-unknown-none-softfloat -- -D warnings
lint "clippy (pv-guest, aarch64-unknown-none)" cargo clippy -q -p pv-guest --target aarch64-unknown-none -- -D warnings
lint "rustfmt" cargo fmt --all --check

# --- run.sh refuses what the fixed raspi4b hardware cannot honour (exit 2, a clear message). ---
refuses() {
    local name="$1" want="$2"; shift 2
    local out got
    out="$(scripts/run.sh --no-build "$@" </dev/null 2>&1)"; got=$?
    if [ "$got" = 2 ] && grep -qF -- "$want" <<<"$out"; then pass "$name"; else
        fail "$name (exit $got, expected 2 and \"$want\")"; echo "$out" | tail -5; fi
}
refuses "run.sh raspi4b refuses --mem" "fixed 2 GiB of RAM: --mem cannot be honoured" --board raspi4b --mem 1G
refuses "run.sh raspi4b refuses --gic 3" "GIC-400 (GICv2): --gic 3 cannot be honoured" --board raspi4b --gic 3
refuses "run.sh raspi4b refuses --disk" "RAM disk): --disk cannot be honoured" --board raspi4b --disk x.img
refuses "run.sh raspi4b refuses --iommu" "no SMMU: --iommu cannot be honoured" --board raspi4b --iommu

# --- sdcard.sh writes a Pi 4 boot partition (offline: the firmware download and the FAT image
# need the network once and are left to a real user's run). ---
sd="$results/sdcard"
if scripts/sdcard.sh "$sd" --no-build --no-firmware >"$results/sdcard.log" 2>&1 &&
    cmp -s "$sd/kernel8.img" target/pvhyp/kernel8.img &&
    cmp -s "$sd/bcm2711-rpi-4-b.dtb" "${PVHYP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvhyp}/dtb/bcm2711-rpi-4-b.dtb" &&
    [ -s "$sd/initrd.cpio" ] &&
    grep -qx 'kernel_address=0x80000' "$sd/config.txt" &&
    grep -qx 'initramfs initrd.cpio followkernel' "$sd/config.txt"; then
    pass "sdcard.sh writes kernel8.img, config.txt, the DTB and initrd.cpio"
else
    fail "sdcard.sh writes kernel8.img, config.txt, the DTB and initrd.cpio"; tail -5 "$results/sdcard.log"
fi

# --- bench.sh runs end to end and its JSON names every measure (a few iterations: nothing is
# timed or judged here; scripts/bench.sh is the benchmark). ---
if scripts/bench.sh --no-build --quick --json "$results/bench.json" >"$results/bench.log" 2>&1 &&
    target/release/benchreport --check-json "$results/bench.json" >>"$results/bench.log" 2>&1; then
    pass "bench.sh --quick: valid JSON with every measure"
else
    fail "bench.sh --quick: valid JSON with every measure"; tail -15 "$results/bench.log"
fi

# --- The general path takes no lock the CPUs share: ABI_VERSION costs four CPUs calling at
# once what it costs one alone, within 1.2x (bench.sh's smp check; 10,000 calls a VM, ~25 s).
# PVHYP_SMP_CHECK=0 skips it. ---
if [ "${PVHYP_SMP_CHECK:-1}" = 1 ]; then
    if scripts/bench.sh --no-build --smp-only --check-smp >"$results/smp-check.log" 2>&1; then
        pass "bench.sh smp check: ABI_VERSION on four CPUs at once costs what it costs alone"
    else
        fail "bench.sh smp check: ABI_VERSION on four CPUs at once costs what it costs alone"
        grep -E '^(smp|bench:)' "$results/smp-check.log" | tail -8
    fi
fi

# --- Host fuzzing: every target builds and runs 10 s from its seeds without a crash (long
# runs: fuzz/run.sh --seconds N, or scripts/fuzz.sh --host; crash inputs land in fuzz/artifacts/). ---
if fuzz/run.sh --seconds 10 >"$results/fuzz.log" 2>&1; then
    execs=$(awk '/^fuzz .* executions/ {s += $3} END {print s + 0}' "$results/fuzz.log")
    pass "host fuzzing: $(grep -c '^fuzz .*, ok$' "$results/fuzz.log") targets x 10 s, $execs executions, no crash"
else
    fail "host fuzzing: every target 10 s without a crash"; grep -v ', ok$' "$results/fuzz.log" | tail -40
fi

# --- QEMU integration runs. ---
# Each line: name | expected exit status | run.sh arguments | patterns the output must contain
# (separated by ';;') | optional console input (printf escapes). Output lines are matched as fixed strings; "A>>>B" means A's first line
# comes before B's.
M=tests/manifests
cases=(
    "virt gicv3 cortex-a72, 2 guests|0|--gic 3|alpha: selftest: all;;beta: selftest: all;;hyp: summary: vms=2 ok=2 failed=0"
    "virt gicv2, 2 guests|0|--gic 2|alpha: selftest: all;;beta: selftest: all;;hyp: summary: vms=2 ok=2 failed=0"
    "virt cortex-a53|0|--cpu cortex-a53|alpha: selftest: all;;hyp: summary: vms=2 ok=2 failed=0"
    "virt max (SVE/SME trapped)|0|--cpu max|alpha: selftest: all;;hyp: summary: vms=2 ok=2 failed=0"
    "virt 5 GiB of RAM|0|--mem 5G|RAM 0x40000000..0x180000000 (5120 MiB);;hyp: summary: vms=2 ok=2 failed=0"
    "virt 256 MiB of RAM|0|--mem 256M|RAM 0x40000000..0x50000000 (256 MiB);;hyp: summary: vms=2 ok=2 failed=0"
    "virt 1 guest|0|--manifest $M/one.toml|solo: selftest: all;;hyp: summary: vms=1 ok=1 failed=0"
    "FP/SIMD state survives the other guest|0|--manifest $M/fpsimd.toml|fp-a: fpsimd: all 32 vector registers and FPCR intact;;fp-b: fpsimd: all 32 vector registers and FPCR intact;;hyp: summary: vms=2 ok=2 failed=0"
    "a failing guest fails the run|1|--manifest $M/exit-nonzero.toml|VM fails exited with status 3;;passes: selftest: all;;hyp: summary: vms=2 ok=1 failed=1;;run: 1 of 2 VMs failed"
    "a guest that never ends times out|124|--manifest $M/spin.toml --timeout 5|spinner: spinning forever;;run: timeout after 5 s"
    "memtest: map/unmap/protect/query/batch from a guest|0|--manifest $M/memtest.toml|mem: memtest: all;;hyp: summary: vms=1 ok=1 failed=0"
    "8 VMs at once|0|--manifest $M/eight.toml|st-1: selftest: all;;st-4: selftest: all;;mt-1: memtest: all;;mt-4: memtest: all;;hyp: summary: vms=8 ok=8 failed=0"
    "a guest that never yields cannot starve another|0|--manifest $M/starvation.toml|runner: selftest: all>>>hog: hog: done;;hog: hog: done after;;hyp: summary: vms=2 ok=2 failed=0"
    # Deterministic (-icount): without the whole slice it is owed, the victim runs 7% of the time.
    "a neighbour that yields just before its slice ends cannot starve the vCPU it hands the rest to|0|--manifest $M/yield-late.toml -- -icount shift=0,sleep=off|victim: hog: share ok;;late: hog: done after;;hyp: summary: vms=2 ok=2 failed=0"
    "SMP: 8 VMs on 4 CPUs (PSCI CPU_ON)|0|--smp 4 --manifest $M/eight.toml|cpus=4 up (3 started by PSCI CPU_ON);;st-1: selftest: all;;st-4: selftest: all;;mt-1: memtest: all;;mt-4: memtest: all;;hyp: summary: vms=8 ok=8 failed=0"
    "SMP: 8 VMs on 4 CPUs, GICv2|0|--smp 4 --gic 2 --manifest $M/eight.toml|cpus=4 up (3 started by PSCI CPU_ON);;st-4: selftest: all;;mt-4: memtest: all;;hyp: summary: vms=8 ok=8 failed=0"
    "SMP: 4 guests that never yield cannot starve a fifth on 4 CPUs|0|--smp 4 --manifest $M/smp-starvation.toml|cpus=4 up;;runner: selftest: all>>>hog-1: hog: done;;runner: selftest: all>>>hog-4: hog: done;;hog-2: hog: done after;;hyp: summary: vms=5 ok=5 failed=0"
    "virt -smp 1: one CPU up|0|--smp 1 --manifest $M/one.toml|cpus=1 up;;solo: selftest: all;;hyp: summary: vms=1 ok=1 failed=0"
    "SMP: a 4-vCPU guest (PSCI CPU_ON/OFF, AFFINITY_INFO) beside four 1-vCPU guests|0|--smp 4 --manifest $M/smp-vcpus.toml|cpus=4 up;;quad: smp: all 4 vCPUs ran their checks;;st-1: selftest: all;;st-4: selftest: all;;hyp: summary: vms=5 ok=5 failed=0"
    "virt -smp 1: a 2-vCPU guest time-shares one CPU|0|--smp 1 --manifest $M/smp-two.toml|cpus=1 up;;duo: smp: all 2 vCPUs ran their checks;;hyp: summary: vms=1 ok=1 failed=0"
    "SMP: concurrent mem.map/unmap from 3 vCPUs against a reader; selftest on 4 vCPUs|0|--smp 4 --manifest $M/smp-stress.toml|cpus=4 up;;stress: smp stress: all 4 vCPUs, no stale or foreign page;;st-quad: selftest: vCPU 3: all;;st-quad: selftest: all 4 vCPUs passed every check;;hyp: summary: vms=2 ok=2 failed=0"
    "virt -smp 1: the map/unmap stress check and a 4-vCPU selftest on one CPU|0|--smp 1 --manifest $M/smp-stress.toml|cpus=1 up;;stress: smp stress: all 4 vCPUs, no stale or foreign page;;st-quad: selftest: all 4 vCPUs passed every check;;hyp: summary: vms=2 ok=2 failed=0"
    "SMP: VMs pinned to CPU 1 and CPU 2 run there and finish|0|--smp 4 --manifest $M/pinned.toml|VM one: first runs on CPU 1;;VM two: first runs on CPU 2;;one: selftest: all;;two: smp stress: all 2 vCPUs, no stale or foreign page;;both: selftest: all 2 vCPUs passed every check;;free: selftest: all;;hyp: summary: vms=4 ok=4 failed=0"
    "a pin to a CPU the machine does not have is refused, the VM counted failed|1|--smp 2 --manifest $M/pin-refused.toml|VM nowhere: refused: pinned to CPUs 3, but CPU 3 is not up on this board;;VM fine: first runs on CPU 1;;fine: selftest: all;;hyp: summary: vms=2 ok=1 failed=1;;run: 1 of 2 VMs failed"
    "attack blocked, victim untouched, nothing leaked|0|--manifest $M/attack.toml|attacker: attack: all;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "a VM killed by a fault, the others finish|1|--manifest $M/crash.toml|VM crasher killed: stage-2 fault at IPA;;before: selftest: all;;after: selftest: all;;hyp: summary: vms=3 ok=2 failed=1"
    "both consoles: PV ring and emulated PL011|0|--manifest $M/consoles.toml|pv: hello from VM pv;;trapped: hello from VM trapped;;hyp: summary: vms=2 ok=2 failed=0"
    "virtual timer events (WFI and IRQ) beside a busy VM|0|--manifest $M/timer.toml|ticker: timer: 6 timer events;;ticker2: timer: 4 timer events;;hyp: summary: vms=3 ok=3 failed=0"
    "shell: typed input through the PV console|0|--manifest $M/shell.toml|sh: sh> vms;;sh: VM 0 \"sh\": index 0;;sh: mapped 4 zeroed pages;;sh: unknown command \"bogus\";;sh: bench finished with status 0;;other: selftest: all;;hyp: summary: vms=2 ok=2 failed=0|help\rvms\rmap 4\rbogus\rbench\rexit\r"
    "channel ping-pong; a third VM cannot reach the channel|0|--manifest $M/channel.toml|channel wire: pinger <-> ponger, 1 page(s), owned by the channel;;pinger: ping: 2000 round trips;;pinger: ping: all;;ponger: pong: all;;snooper: snoop: all;;hyp: summary: vms=3 ok=3 failed=0"
    "a channel ping-pong pair on one CPU cannot starve a third VM (directed yields stay in turn)|0|--smp 1 --manifest $M/channel-fair.toml|runner: selftest: all>>>pinger: ping: all;;hyp: summary: vms=3 ok=3 failed=0"
    "PSCI SYSTEM_RESET (fresh memory), CPU_OFF, SYSTEM_OFF|0|--manifest $M/psci.toml|VM resetter resets;;resetter: reset: restarted once; image fresh: true, memory fresh: true;;VM cpuoff exited with status 0;;VM sysoff exited with status 0;;hyp: summary: vms=3 ok=3 failed=0"
    "block: requests past the region and malformed ring entries refused|0|--manifest $M/blk-attack.toml --disk $results/attack.img|virtio-blk (Legacy virtio-mmio);;attacker: blk attack: all;;neighbour: blk: verified 256 KiB with seed 3: all match;;diskless: selftest: all;;hyp: summary: vms=3 ok=3 failed=0"
    "block: a fresh disk does not pass for a written one|1|--manifest $M/blk-verify.toml --disk $results/fresh.img -- -global virtio-mmio.force-legacy=false|virtio-blk (Modern virtio-mmio);;disk: blk: verify FAILED;;run: 2 of 2 VMs failed"
    "raspi4b block: RAM disk written and read back|0|--board raspi4b --manifest $M/blk-ram.toml|RAM disk of 5 MiB, zeroed at boot, which does not persist;;ram: blk: verified 1024 KiB with seed 5: all match;;hyp: summary: vms=1 ok=1 failed=0"
    "raspi4b (real Pi 4 DTB), 2 guests|0|--board raspi4b|on Raspberry Pi 4 Model B;;console Bcm2835Aux at 0xfe215040;;cpus=4 up (3 released from the spin table);;alpha: selftest: all;;beta: selftest: all;;hyp: summary: vms=2 ok=2 failed=0"
    "raspi4b FP/SIMD state survives the other guest|0|--board raspi4b --manifest $M/fpsimd.toml|fp-a: fpsimd: all 32 vector registers and FPCR intact;;fp-b: fpsimd: all 32 vector registers and FPCR intact;;hyp: summary: vms=2 ok=2 failed=0"
    "raspi4b attack blocked, victim untouched|0|--board raspi4b --manifest $M/attack.toml|attacker: attack: all;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=2 ok=2 failed=0"
    "raspi4b a 4-vCPU guest beside four 1-vCPU guests on 4 cores|0|--board raspi4b --manifest $M/smp-vcpus.toml|cpus=4 up;;quad: smp: all 4 vCPUs ran their checks;;st-4: selftest: all;;hyp: summary: vms=5 ok=5 failed=0"
    "raspi4b the map/unmap stress check and a 4-vCPU selftest on 4 cores|0|--board raspi4b --manifest $M/smp-stress.toml|cpus=4 up;;stress: smp stress: all 4 vCPUs, no stale or foreign page;;st-quad: selftest: all 4 vCPUs passed every check;;hyp: summary: vms=2 ok=2 failed=0"
    "raspi4b 8 VMs at once|0|--board raspi4b --manifest $M/eight.toml|st-1: selftest: all;;mt-4: memtest: all;;hyp: summary: vms=8 ok=8 failed=0"
    "raspi4b a failing guest fails the run|1|--board raspi4b --manifest $M/exit-nonzero.toml|VM fails exited with status 3;;passes: selftest: all;;hyp: summary: vms=2 ok=1 failed=1;;run: 1 of 2 VMs failed"
    "raspi4b a neighbour that yields just before its slice ends cannot starve the vCPU it hands the rest to|0|--board raspi4b --manifest $M/yield-late.toml -- -icount shift=0,sleep=off|victim: hog: share ok;;late: hog: done after;;hyp: summary: vms=2 ok=2 failed=0"
    "a VM whose long page calls are continued, and which resets holding all its memory, gets and leaves half of its CPU|0|--manifest $M/reset-hold.toml -- -icount shift=0,sleep=off|victim: hog: share ok;;resetter: reset: restarted 40 times; image fresh: true, memory fresh: true;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b a VM whose long page calls are continued, and which resets holding all its memory, gets and leaves half of its CPU|0|--board raspi4b --manifest $M/reset-hold.toml -- -icount shift=0,sleep=off|victim: hog: share ok;;resetter: reset: restarted 40 times; image fresh: true, memory fresh: true;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    # A Linux VM that leaves its timer interrupt pending and disabled, then powers off: the
    # physical one must not stay active for the next vCPU on its CPU (with -icount: the PV VM
    # hears each timer event within 3 ms of virtual time; in wall time, on GICv2 with several
    # CPUs, an idle CPU's UART write into a slow pipe holds QEMU's big lock, which CPU 0's GICv2
    # acknowledge waits for: one run in six or so had an event late, with or without the VM);
    # nor may a PV vCPU read what the Linux vCPU left in the GICv3 virtual interface.
    "a Linux VM's timer interrupt, left pending and disabled, does not hold the timer of the next vCPU on its CPU|0|--manifest $M/stuck-vtimer.toml -- -icount shift=0,sleep=off|bench-guest: stuck-vtimer: its timer interrupt pending, disabled;;ticks: timer: 6 timer events after 2 ms each (spinning, each within 3 ms), none early;;hyp: summary: vms=2 ok=2 failed=0"
    "raspi4b a Linux VM's timer interrupt, left pending and disabled, does not hold the timer of the next vCPU on its CPU|0|--board raspi4b --manifest $M/stuck-vtimer.toml -- -icount shift=0,sleep=off|bench-guest: stuck-vtimer: its timer interrupt pending, disabled;;ticks: timer: 6 timer events after 2 ms each (spinning, each within 3 ms), none early;;hyp: summary: vms=2 ok=2 failed=0"
    "a PV vCPU reads nothing of the GICv3 virtual interface a Linux vCPU left on its CPU|0|--manifest $M/icv-leak.toml|bench-guest: stuck-vtimer: its timer interrupt pending, disabled;;icv: ICV_PMR_EL1 0x0, ICV_IGRPEN1_EL1 0x0, ICV_AP1R0_EL1 0x0;;icv: nothing of another vCPU's interface is readable;;hyp: summary: vms=2 ok=2 failed=0"
    "exhaustion: one VM stopped at its own limits, the VM beside it then maps its whole quota|0|--manifest $M/exhaust.toml --disk $results/exhaust.img --timeout 120|attacker: exhaust: tables swept: ;;attacker: exhaust: tables held: ;;attacker: exhaust: events: ;;attacker: exhaust: channels: ;;attacker: exhaust: console: ;;attacker: exhaust: disk: wrote all 16384 KiB;;innocent: fill: all match;;attacker: exhaust: the other VM answered \"ok\";;attacker: exhaust: all;;hyp: summary: vms=2 ok=2 failed=0"
    "raspi4b exhaustion: one VM stopped at its own limits, the VM beside it then maps its whole quota|0|--board raspi4b --manifest $M/exhaust.toml --timeout 240|attacker: exhaust: tables swept: ;;attacker: exhaust: tables held: ;;attacker: exhaust: events: ;;attacker: exhaust: channels: ;;attacker: exhaust: console: ;;attacker: exhaust: disk: wrote all 16384 KiB;;innocent: fill: all match;;attacker: exhaust: the other VM answered \"ok\";;attacker: exhaust: all;;hyp: summary: vms=2 ok=2 failed=0"
    "PSCI SYSTEM_RESET of a VM holding most of RAM (torn down before it is rebuilt)|0|--manifest $M/reset-big.toml|big: reset: restarted once; image fresh: true, memory fresh: true;;hyp: summary: vms=1 ok=1 failed=0"
    "raspi4b block: a region the RAM disk cannot hold is refused at boot, the other VM's works|1|--board raspi4b --manifest $M/blk-ram-too-large.toml|VM huge: refused: its disk region (sectors 2048..8390656, 4096 MiB) needs 4104 MiB of RAM;;VM ram: its disk region's 1028 KiB of RAM taken for it at boot;;ram: blk: verified 1024 KiB with seed 6: all match;;hyp: summary: vms=2 ok=1 failed=1;;run: 1 of 2 VMs failed"
    "raspi4b block: a 384 MiB RAM disk region written whole and read back (its index once exhausted the hyp heap)|0|--board raspi4b --manifest $M/blk-ram-large.toml|VM big: its disk region's 393984 KiB of RAM taken for it at boot;;big: blk: verified 393216 KiB with seed 8: all match;;hyp: summary: vms=1 ok=1 failed=0"
    "a VM whose image is not an ELF is refused alone at boot, the other runs|1|--no-image-check --manifest $M/bad-image.toml|VM broken: refused: bad image: not an ELF file;;good: selftest: all;;hyp: summary: vms=2 ok=1 failed=1;;run: 1 of 2 VMs failed"
    "raspi4b a VM whose image is not an ELF is refused alone at boot, the other runs|1|--board raspi4b --no-image-check --manifest $M/bad-image.toml|VM broken: refused: bad image: not an ELF file;;good: selftest: all;;hyp: summary: vms=2 ok=1 failed=1;;run: 1 of 2 VMs failed"
    "ABI compatibility: the committed 1.4 guest binary passes its selftest|0|--manifest $M/fixture-1.4.toml|old-1-4: ABI 1.6 (hypervisor), built for 1.4;;old-1-4: selftest: all;;current: selftest: all;;hyp: summary: vms=2 ok=2 failed=0"
    "raspi4b ABI compatibility: the committed 1.4 guest binary passes its selftest|0|--board raspi4b --manifest $M/fixture-1.4.toml|old-1-4: ABI 1.6 (hypervisor), built for 1.4;;old-1-4: selftest: all;;current: selftest: all;;hyp: summary: vms=2 ok=2 failed=0"
    "a VM that resets itself 200 times leaks no frame and no heap|0|--manifest $M/reset-200.toml|resetter: reset: restarted 200 times; image fresh: true, memory fresh: true;;hyp: summary: vms=1 ok=1 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b a VM that resets itself 200 times leaks no frame and no heap|0|--board raspi4b --manifest $M/reset-200.toml|resetter: reset: restarted 200 times; image fresh: true, memory fresh: true;;hyp: summary: vms=1 ok=1 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b attack: no frame or heap leaked after it|0|--board raspi4b --manifest $M/attack.toml|attacker: attack: all;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    # The debug hyp checks every VM's frames against the whole owner map after each hypercall:
    # 256M of RAM keeps that walk short enough for the timeout.
    "debug hyp: 2 guests' selftest|0|--debug-hyp --mem 256M|alpha: selftest: all;;beta: selftest: all;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "debug hyp: memtest|0|--debug-hyp --mem 256M --manifest $M/memtest.toml|mem: memtest: all;;hyp: summary: vms=1 ok=1 failed=0 frames_leaked=0 heap_leaked=0"
    "debug hyp: attack blocked, victim untouched, nothing leaked|0|--debug-hyp --mem 256M --manifest $M/attack.toml|attacker: attack: all;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "debug hyp: SMP map/unmap stress on 4 CPUs|0|--debug-hyp --mem 256M --smp 4 --manifest $M/smp-stress.toml|cpus=4 up;;stress: smp stress: all 4 vCPUs, no stale or foreign page;;st-quad: selftest: all 4 vCPUs passed every check;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    # The fuzzer: 100,000 checked calls in all (seeds 1..8), a victim beside each pair.
    "fuzz: seeds 1, 2 (30,000 calls, shared pages corrupted in flight), victim untouched|0|--smp 2 --manifest $M/fuzz.toml --disk $results/fuzz-1.img|fuzz-a: fuzz: seed=1 calls=15000 ;;fuzz-b: fuzz: seed=2 calls=15000 ;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    "fuzz: seeds 3, 4 (30,000 calls), victim untouched|0|--smp 2 --manifest $M/fuzz-2.toml --disk $results/fuzz-2.img|fuzz-a: fuzz: seed=3 calls=15000 ;;fuzz-b: fuzz: seed=4 calls=15000 ;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b fuzz: seeds 5, 6 (20,000 calls), victim untouched|0|--board raspi4b --manifest $M/fuzz-pi.toml|fuzz-a: fuzz: seed=5 calls=10000 ;;fuzz-b: fuzz: seed=6 calls=10000 ;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b fuzz: seeds 7, 8 (20,000 calls), victim untouched|0|--board raspi4b --manifest $M/fuzz-pi-2.toml|fuzz-a: fuzz: seed=7 calls=10000 ;;fuzz-b: fuzz: seed=8 calls=10000 ;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    # Exit tracing (run.sh --trace: the hyp's bootargs say pvhyp.trace): every CPU's ring dumped
    # decoded, oldest first, after the vmstats lines and before the summary.
    "exit tracing: each CPU's last exits dumped decoded between the vmstats lines and the summary|0|--smp 2 --trace|exit tracing on (pvhyp.trace);;hyp: trace: cpu=0 recorded=;;hyp: trace: cpu=1 recorded=;;hyp: trace: cpu=0 seq=0 counter=;;kind=hypercall ec=0x16 function=0xc6000000 result=0x;;kind=sysreg ec=0x18;;hyp: vmstats: name=beta state=exited status=0>>>hyp: trace: cpu=0 recorded=;;hyp: trace: cpu=1 recorded=>>>hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0 exits="
    "exit tracing: a ring that wrapped keeps its last 256 (8 VMs on one CPU)|0|--trace --manifest $M/eight.toml|hyp: trace: cpu=0 recorded=;;kept=256;;hyp: summary: vms=8 ok=8 failed=0 frames_leaked=0 heap_leaked=0 exits="
    "exit tracing: a killing stage-2 fault traced, and counted in its VM's statistics|1|--trace --manifest $M/crash.toml|kind=stage2 ec=0x24 ipa=0x;;hyp: vmstats: name=crasher state=killed vcpus=1 ;;exits_other=0 faults=1 events=;;hyp: summary: vms=3 ok=2 failed=1 frames_leaked=0 heap_leaked=0 exits="
    # A channel notify hands the CPU to the woken peer: traced by vm::exit, with the x0 vm::run
    # noted (percpu::note_call), not that of an earlier call.
    "exit tracing: a call handed to another vCPU (a channel notify) recorded with its own ID and result|0|--trace --manifest $M/channel.toml|kind=hypercall ec=0x16 function=0xc6000061 result=0x0;;hyp: summary: vms=3 ok=3 failed=0"
    "raspi4b exit tracing on 4 cores|0|--board raspi4b --trace|exit tracing on (pvhyp.trace);;hyp: trace: cpu=0 recorded=;;hyp: trace: cpu=3 recorded=;;kind=hypercall ec=0x16 function=;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0 exits="
    "block: a region beyond the disk image refuses its VM alone at boot, the other's works|1|--manifest $M/blk-beyond-disk.toml --disk $results/beyond.img|VM far: refused: its disk region (sectors 65536..67584) is beyond the 32768-sector disk;;near: blk: verified 1024 KiB with seed 4: all match;;hyp: summary: vms=2 ok=1 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 2 VMs failed"
    "a channel names its peer by manifest index after an earlier VM was refused|1|--no-image-check --manifest $M/channel-after-refused.toml|VM broken: refused: bad image;;pinger: ping: all 204 checks passed;;ponger: pong: all 204 checks passed;;hyp: summary: vms=3 ok=2 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 3 VMs failed"
    # A VM stopped on every CPU (vm::sched): SYSTEM_RESET and SYSTEM_OFF with the other vCPUs
    # spinning (on, never off), and a fault killing a VM whose other vCPUs spin elsewhere.
    "SYSTEM_RESET 30 times and SYSTEM_OFF with the other vCPUs spinning, on 4 CPUs|0|--smp 4 --manifest $M/stop-reset.toml|sysoff: off: 2 other vCPU(s) spinning;;VM sysoff exited with status 0;;resetter: reset: 3 other vCPU(s) spinning;;resetter: reset: restarted 30 times; image fresh: true, memory fresh: true;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b SYSTEM_RESET 30 times and SYSTEM_OFF with the other vCPUs spinning|0|--board raspi4b --manifest $M/stop-reset.toml|sysoff: off: 2 other vCPU(s) spinning;;VM sysoff exited with status 0;;resetter: reset: 3 other vCPU(s) spinning;;resetter: reset: restarted 30 times; image fresh: true, memory fresh: true;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "a fault kills 5 VMs whose other vCPUs spin on other CPUs, the VM beside them passes|1|--smp 4 --manifest $M/stop-kill.toml|kill-1: smp kill: vCPU 3 faults while 3 vCPU(s) spin;;VM kill-1 killed: stage-2 fault;;VM kill-4 killed: stage-2 fault;;VM kill-5 killed: stage-2 fault;;bystander: selftest: all;;hyp: summary: vms=6 ok=1 failed=5 frames_leaked=0 heap_leaked=0;;run: 5 of 6 VMs failed"
    "raspi4b a fault kills 5 VMs whose other vCPUs spin on other cores, the VM beside them passes|1|--board raspi4b --manifest $M/stop-kill.toml|kill-1: smp kill: vCPU 3 faults while 3 vCPU(s) spin;;VM kill-1 killed: stage-2 fault;;VM kill-5 killed: stage-2 fault;;bystander: selftest: all;;hyp: summary: vms=6 ok=1 failed=5 frames_leaked=0 heap_leaked=0;;run: 5 of 6 VMs failed"
    # A kick is prompt (-icount: QEMU's virtual time, which the host's load does not stretch):
    # an event for a vCPU waiting, or running, on another CPU arrives within a tenth of a slice.
    "kicks: an event for a vCPU waiting or running on another CPU arrives at once (-icount)|0|--smp 4 --manifest $M/kick.toml -- -icount shift=0|kicker: smp kick: waiting: ;;kicker: smp kick: running: ;;kicker: smp kick: an event reaches a vCPU on another CPU at once;;hyp: summary: vms=1 ok=1 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b kicks (GICv2 SGIs): an event for a vCPU waiting or running on another core arrives at once (-icount)|0|--board raspi4b --manifest $M/kick.toml -- -icount shift=0|kicker: smp kick: waiting: ;;kicker: smp kick: running: ;;kicker: smp kick: an event reaches a vCPU on another CPU at once;;hyp: summary: vms=1 ok=1 failed=0 frames_leaked=0 heap_leaked=0"
    "debug hyp (lock order checked): 6 VMs' exits on 4 CPUs, 5 of them killed on every CPU|1|--debug-hyp --mem 256M --smp 4 --manifest $M/stop-kill.toml|cpus=4 up;;VM kill-2 killed: stage-2 fault;;bystander: selftest: all;;hyp: summary: vms=6 ok=1 failed=5 frames_leaked=0 heap_leaked=0;;run: 5 of 6 VMs failed"
    # Asynchronous block I/O: requests left in flight by a VM that restarts or is killed are
    # forgotten (the device finishes them into the hyp's bounce buffers), and VMs share the queue.
    "block: VMs restarting or killed with requests in flight, their neighbour's I/O goes on|1|--manifest $M/blk-inflight.toml --disk $results/inflight.img|restarter: blk: inflight: Ok(;;VM restarter resets;;VM killed killed: stage-2 fault;;restarter: blk inflight: all 1 checks passed;;restarter: blk: verified 256 KiB with seed 11: all match;;neighbour: blk: verified 1024 KiB with seed 12: all match;;hyp: summary: vms=3 ok=2 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 3 VMs failed"
    "block: two VMs doing I/O at once on two CPUs|0|--smp 2 --manifest $M/blk-two.toml --disk $results/two.img|one: blk: verified 2048 KiB with seed 13: all match;;two: blk: verified 2048 KiB with seed 14: all match;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "block: the device's interrupt on GICv2, 4 CPUs|0|--gic 2 --smp 4 --manifest $M/blk-two.toml --disk $results/two-gicv2.img|one: blk: verified 2048 KiB with seed 13: all match;;two: blk: verified 2048 KiB with seed 14: all match;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "raspi4b block: VMs restarting or killed after requests, on the RAM disk|1|--board raspi4b --manifest $M/blk-inflight.toml|VM restarter resets;;VM killed killed: stage-2 fault;;restarter: blk inflight: all 1 checks passed;;restarter: blk: verified 256 KiB with seed 11: all match;;neighbour: blk: verified 1024 KiB with seed 12: all match;;hyp: summary: vms=3 ok=2 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 3 VMs failed"
    # The hypervisor console (hyp>, typed into as the shell is): Ctrl-] cycles the focus through
    # the live VMs and hyp; a VM killed from it counts as failed (exit status 1).
    # Typed through a pipe at QEMU's pace: a host the other boots starve slows the whole
    # script (a run timed out at 60 s once so), hence the longer limit; each ends in seconds.
    "hyp> console: Ctrl-] to hyp, vms, bad commands, help, stats, kill; back to the shell (backspace edits its line)|1|--manifest $M/monitor.toml --timeout 150|hyp: console focus: spinner (Ctrl-] moves it)>>>hyp: console focus: hyp (type help; Ctrl-] moves it);;hyp> vms;;hyp: NAME     KIND  STATE    VCPUS  ON CPU  PAGES;;hyp: spinner  pv    running  1 ;;hyp> bogus;;hyp: unknown command \"bogus\" (try help);;hyp: kill NAME        stop VM NAME;;hyp> stats;;hyp: CPU  EXITS  IDLE    OF UPTIME  LOCK WAITS;;; lock waits: spins for a VM's or the run queue's lock;;hyp> trace on;;hyp: trace on: each CPU records;;hyp: trace: cpu=0 recorded=;;hyp: trace off;;hyp: no VM named \"nobody\";;hyp> kill spinner>>>VM spinner killed from the console;;hyp: console focus: sh (Ctrl-] moves it);;sh: VM 0 \"sh\": index 0;;VM sh exited with status 0;;hyp: vmstats: name=spinner state=killed vcpus=1 ;;hyp: summary: vms=2 ok=1 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 2 VMs failed|\x1d\x1dvms\rbogus\rhelp\rstats\rtrace on\rtrace dump\rtrace off\rkill nobody\rkill spinner\r\x1dvmx\x7fs\rexit\r"
    "hyp> console: kill then restart a VM, fresh from its image: its selftest passes again|1|--manifest $M/monitor-restart.toml --timeout 150|hyp: console focus: hyp (type help;;hyp> kill st;;hyp> restart st;;VM st restarts from the console;;hyp> vms;;st: selftest: all 76 checks passed;;VM spinner killed from the console;;hyp: vmstats: name=st state=exited status=0 vcpus=1 restarts=1 ;;hyp: vmstats: name=spinner state=killed;;hyp: summary: vms=2 ok=1 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 2 VMs failed|\x1d\x1dkill st\rrestart st\rvms\rkill spinner\r"
    "raspi4b hyp> console: Ctrl-] to hyp, vms, bad commands, help, stats, kill; back to the shell|1|--board raspi4b --manifest $M/monitor.toml --timeout 150|hyp: console focus: spinner (Ctrl-] moves it)>>>hyp: console focus: hyp (type help; Ctrl-] moves it);;hyp> vms;;hyp: NAME     KIND  STATE    VCPUS  ON CPU  PAGES;;hyp: spinner  pv    running  1 ;;hyp> bogus;;hyp: unknown command \"bogus\" (try help);;hyp: kill NAME        stop VM NAME;;hyp> stats;;hyp: CPU  EXITS  IDLE    OF UPTIME  LOCK WAITS;;; lock waits: spins for a VM's or the run queue's lock;;hyp> trace on;;hyp: trace on: each CPU records;;hyp: trace: cpu=0 recorded=;;hyp: trace off;;hyp: no VM named \"nobody\";;hyp> kill spinner>>>VM spinner killed from the console;;hyp: console focus: sh (Ctrl-] moves it);;sh: VM 0 \"sh\": index 0;;VM sh exited with status 0;;hyp: vmstats: name=spinner state=killed vcpus=1 ;;hyp: summary: vms=2 ok=1 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 2 VMs failed|\x1d\x1dvms\rbogus\rhelp\rstats\rtrace on\rtrace dump\rtrace off\rkill nobody\rkill spinner\r\x1dvmx\x7fs\rexit\r"
    "raspi4b hyp> console: kill then restart a VM on 4 cores: its selftest passes again|1|--board raspi4b --manifest $M/monitor-restart.toml --timeout 150|hyp: console focus: hyp (type help;;hyp> kill st;;hyp> restart st;;VM st restarts from the console;;hyp> vms;;st: selftest: all 76 checks passed;;VM spinner killed from the console;;hyp: vmstats: name=st state=exited status=0 vcpus=1 restarts=1 ;;hyp: vmstats: name=spinner state=killed;;hyp: summary: vms=2 ok=1 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 2 VMs failed|\x1d\x1dkill st\rrestart st\rvms\rkill spinner\r"
    # The focused VM's partial line: the shell's prompt shows before anything is typed (nothing
    # is: the run times out), the other VM's lines whole around it.
    "the PV shell's prompt shows before any input (the focused VM's partial line)|124|--manifest $M/shell.toml --timeout 15|sh: pv shell on VM sh;;sh: sh> ;;other: selftest: all 76 checks passed;;run: timeout after 15 s"
    # DMA isolation (SMMUv3, virt --iommu): the hyp finds the SMMU and the PCIe host bridge,
    # places the disk's BARs, and assigns it to the VM the manifest names; each run its own
    # image (QEMU locks it).
    "dma: the PCI disk assigned to one VM through the SMMU, its stream translating with a DMA table of that VM's RAM|0|--iommu --pci-disk $results/dma-assign.img --manifest $M/dma-assign.toml|SMMUv3 at 0x9050000: stage 2;;every one aborts; enabled;;PCI 00:01.0: vendor 1af4 device 1042;;VM owner: device 00:01.0 (1af4:1042) assigned: stream 8 translates with its DMA table (VMID 1: its RAM only), BAR1 at IPA 0x5000000000;;owner: selftest: all;;bystander: selftest: all;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    "dma: a device that is not there refuses its VM alone|1|--iommu --pci-disk $results/dma-refused.img --manifest $M/dma-refused.toml|VM ghost: refused: device 00:02.0: no such PCI function; the other VMs run;;bystander: selftest: all;;hyp: summary: vms=3 ok=2 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 3 VMs failed"
    "raspi4b dma: no SMMU, so a VM that assigns a device is refused at boot|1|--board raspi4b --manifest $M/dma-refused.toml|VM owner: refused: device 00:01.0: this board has no SMMU to confine its DMA;;bystander: selftest: all;;hyp: summary: vms=3 ok=1 failed=2 frames_leaked=0 heap_leaked=0;;run: 2 of 3 VMs failed"
    "dma: the SMMU stops the owner's device writing to an unmapped IPA, a read-only page, a page just unmapped, its own BAR and its channel's page (twice: the lines past the VM's limit are one summary; a full event queue is acknowledged); a non-owner cannot reach the BAR; the victim holds|1|--iommu --pci-disk $results/dma-attack.img --manifest $M/dma-attack.toml|owner: dma: read 4096 bytes with seed 9 just written: all match;;SMMU: F_TRANSLATION (event 0x10) from stream 8 of VM owner: write at 0x7e00000000 stopped;;SMMU: F_PERMISSION (event 0x13) from stream 8 of VM owner: write at 0x;;owner: dma: attack: device write to unmapped IPA 0x7e00000000: request failed: SMMU stopped it (its DMA at IPA 0x7e00000000);;: request failed: SMMU stopped it (its DMA at IPA 0x;;owner: dma: attack: device write to just-unmapped IPA;;owner: dma: read 4096 bytes with seed 9 after the attacks: all match;;owner: dma attack: all 9 checks passed;;owner: dma: attack: device write to its own BAR at IPA 0x5000001000: request failed: SMMU stopped it (its DMA at IPA 0x5000001000);;owner: dma: attack: device write to channel page at IPA 0x4000000000: request failed: SMMU stopped it (its DMA at IPA 0x4000000000);;owner: dma attack not RAM: all 5 checks passed;;owner: dma: completions came by interrupt: irqs=;;SPI 36 raises event 3;;SMMU: event queue overflowed (GERROR.EVENTQ_ABT_ERR): 1 or more events lost;;SMMU: VM owner: ;;more DMA faults suppressed>>>VM owner: device 00:01.0 released: stream 8 aborts, bus mastering off;;VM thief killed: stage-2 fault at IPA 0x5000001000;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=3 ok=2 failed=1 frames_leaked=0 heap_leaked=0;;run: 1 of 3 VMs failed"
    "hyp> console: a device-owning VM restarted after it ended gets its device again|0|--iommu --pci-disk $results/monitor-dma.img --manifest $M/monitor-dma.toml|owner: dma: wrote and flushed 4096 bytes with seed 7;;VM owner restarts from the console;;hyp: vmstats: name=owner state=exited status=0 vcpus=1 restarts=1 ;;hyp: summary: vms=1 ok=1 failed=0 frames_leaked=0 heap_leaked=0|\x1dkill owner\rrestart owner\r"
    "dma: a device-owning VM restarts: its device released (stream aborts) before its memory goes, assigned again after; its data read back|0|--iommu --pci-disk $results/dma-reset.img --manifest $M/dma-reset.toml|owner: dma: wrote and flushed 4096 bytes with seed 5;;VM owner resets;;VM owner: device 00:01.0 released: stream 8 aborts, bus mastering off;;VM owner: device 00:01.0 (1af4:1042) assigned: stream 8;;owner: dma: read 4096 bytes with seed 5 before the restart: all match;;owner: dma: completions came by interrupt: irqs=;;hyp: summary: vms=1 ok=1 failed=0 frames_leaked=0 heap_leaked=0"
    # Issue 14: Debian's arm64 kernel in a Linux VM (2 vCPUs, 256 MiB) beside a PV victim and attacker:
    # PSCI/SMCCC probed, its secondary brought up by CPU_ON, /init run, a timer sleep, SYSTEM_OFF.
    # Natively ~5 s of guest time; generous limits for a loaded machine.
    "linux: Debian's kernel on virt GICv3, 2 vCPUs on 2 CPUs, to /init and poweroff|0|--smp 2 --manifest $M/linux.toml --timeout 300|GICv3: CPU1: found redistributor 1;;psci: PSCIv1.1 detected in firmware.;;psci: SMC Calling Convention v1.2;;SMP: Total of 2 processors activated.;;linux: init: busybox up, 2 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;attacker: attack: all;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    # The newest CPU QEMU models (pointer authentication, SVE, SME, MTE, BTI, newer translation
    # controls): Linux sees only what the hyp virtualizes (vm::idregs::LINUX_GUEST).
    "linux: Debian's kernel on virt GICv3 with --cpu max, 2 vCPUs on 2 CPUs|0|--cpu max --smp 2 --manifest $M/linux.toml --timeout 300|GICv3: CPU1: found redistributor 1;;psci: PSCIv1.1 detected in firmware.;;psci: SMC Calling Convention v1.2;;SMP: Total of 2 processors activated.;;linux: init: busybox up, 2 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;attacker: attack: all;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    "linux: Debian's kernel on virt GICv2 (GICV mapped), 2 vCPUs on 2 CPUs|0|--gic 2 --smp 2 --manifest $M/linux.toml --timeout 300|psci: PSCIv1.1 detected in firmware.;;psci: SMC Calling Convention v1.2;;SMP: Total of 2 processors activated.;;linux: init: busybox up, 2 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;attacker: attack: all;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    "linux: Debian's kernel on virt GICv2, 2 vCPUs time-sharing 1 CPU|0|--gic 2 --smp 1 --manifest $M/linux.toml --timeout 300|psci: PSCIv1.1 detected in firmware.;;psci: SMC Calling Convention v1.2;;SMP: Total of 2 processors activated.;;linux: init: busybox up, 2 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;attacker: attack: all;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    "linux: Debian's kernel on raspi4b (GIC-400)|0|--board raspi4b --manifest $M/linux.toml --timeout 300|psci: PSCIv1.1 detected in firmware.;;psci: SMC Calling Convention v1.2;;SMP: Total of 2 processors activated.;;linux: init: busybox up, 2 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;attacker: attack: all;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    # What pvpack refuses at pack time: one line naming the manifest line, the VM and the problem.
    "linux: pvpack refuses a Linux VM whose image is not an arm64 Image|1|--manifest $M/linux-not-image.toml|pvpack: error: tests/manifests/linux-not-image.toml:5: VM \"linux\": image;;not an arm64 Image: no ARM\\x64 magic at 0x38"
    "linux: pvpack refuses a Linux VM too big for its memory|1|--manifest $M/linux-too-big.toml|pvpack: error: tests/manifests/linux-too-big.toml:7: VM \"linux\": memory too small: needs 37748736 bytes (36M)"
    "linux: pvpack refuses a Linux VM whose initrd is missing|1|--manifest $M/linux-no-initrd.toml|pvpack: error: tests/manifests/linux-no-initrd.toml:6: VM \"linux\": initrd;;No such file or directory"
    # What pvpack refuses, packed anyway (--no-image-check): the hyp refuses that VM alone.
    "linux: the hyp refuses a Linux VM whose image is not an arm64 Image|1|--no-image-check --manifest $M/linux-not-image.toml|VM linux: refused: its image: not an arm64 Image;;hyp: summary: vms=1 ok=0 failed=1 frames_leaked=0 heap_leaked=0"
    "linux: the hyp refuses a Linux VM whose kernel does not fit its memory|1|--no-image-check --manifest $M/linux-too-big.toml|VM linux: refused: its kernel, initrd and device tree: memory too small;;hyp: summary: vms=1 ok=0 failed=1 frames_leaked=0 heap_leaked=0"
    "debug hyp (lock order, frame accounting): Debian's kernel on virt GICv3, 2 vCPUs on 2 CPUs|0|--debug-hyp --smp 2 --manifest $M/linux.toml --timeout 400|psci: PSCIv1.1 detected in firmware.;;psci: SMC Calling Convention v1.2;;SMP: Total of 2 processors activated.;;linux: init: busybox up, 2 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;attacker: attack: all;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    # reboot from Linux (SYSTEM_RESET with its secondary on): stopped everywhere, rebuilt fresh,
    # /init again (told its restart count), twice, then it powers off.
    "linux: reboot starts it afresh twice (pvhyp.restart=N in its bootargs), then it powers off, beside a PV VM|0|--smp 2 --manifest $M/linux-reboot.toml --timeout 300|linux: init: rebooting (restart 0 so far);;VM linux resets;;VM linux: Linux starts again (restart 1)>>>VM linux: Linux starts again (restart 2);;linux: init: rebooting (restart 1 so far);;linux: init: restarted 2 times: powering off;;VM linux exited with status 0;;selftest: selftest: all;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    # Crash reports: the killed VM's syndrome, registers and backtrace (three calls deep in
    # pv-guest's crash program), then resolved by run.sh with the guest's ELF.
    "crash report: a killed VM's syndrome, registers and backtrace, symbolized|1|--manifest $M/crash.toml|hyp: crash: VM crasher: ESR 0x;;(data abort from a guest, translation fault on read;;FAR 0x7e00000000 IPA 0x7e00000000 ELR 0x;;hyp: crash:   x0 0x7e00000000 x1 0x;;sp_el1 0x;;hyp: crash:   #0 pc 0x;;hyp: crash:   #3 0x;;VM crasher killed: stage-2 fault at IPA>>>run: the crash report, symbolized:;;#0 pc 0x4;; pv_guest::programs::crash::crash_inner+0x;;#1 0x4;; pv_guest::programs::crash::crash_middle+0x;;(pv-guest/src/programs/crash.rs:;;#2 0x4;; pv_guest::programs::crash::crash_outer+0x;;#3 0x4;; pv_guest::programs::run+0x;;before: selftest: all;;after: selftest: all;;hyp: summary: vms=3 ok=2 failed=1"
    "raspi4b crash report: a killed VM's syndrome, registers and backtrace, symbolized|1|--board raspi4b --manifest $M/crash.toml|hyp: crash: VM crasher: ESR 0x;;FAR 0x7e00000000 IPA 0x7e00000000 ELR 0x;;hyp: crash:   x0 0x7e00000000 x1 0x;;hyp: crash:   #3 0x;;VM crasher killed: stage-2 fault at IPA>>>run: the crash report, symbolized:;; pv_guest::programs::crash::crash_inner+0x;; pv_guest::programs::crash::crash_middle+0x;; pv_guest::programs::crash::crash_outer+0x;;#3 0x4;; pv_guest::programs::run+0x;;hyp: summary: vms=3 ok=2 failed=1"
    # The hyp's own exception, taken with the console lock held (pvhyp.crash-test): reported
    # anyway, symbolized with the hyp's ELF, and the run fails.
    "crash report: the hyp's own exception at EL2 with the console lock held, symbolized; the run fails|1|-- -append pvhyp.crash-test|hyp: crash: hyp: exception at EL2 (kind 0): ESR 0x96000004 (data abort at EL2, translation fault on read, level 0) FAR 0xfffffffffffff000 ELR 0x;;hyp: crash:   x0 0x;;sp_el2 0x;;hyp: crash:   #0 pc 0x;;hyp: summary: vms=0 ok=0 failed=1 error=hyp;;run: the crash report, symbolized:>>>hyp::arch::aarch64::exception::fault_for_test+0x;;(hyp/src/arch/aarch64/exception.rs:;;run: the hypervisor stopped on an error"
    # The hyp's own stack overflow (pvhyp.stack-overflow-test, debug builds: recursion at boot):
    # caught by the guard below CPU 0's stack, reported from its emergency stack, and the run
    # fails, as for any fault of the hyp's own.
    "hyp stack overflow: the guard below CPU 0's stack, reported from the emergency stack; the run fails|1|--debug-hyp --trace --bootarg pvhyp.stack-overflow-test|hyp: stack overflow on CPU 0: SP 0x;;FAR 0x;;ESR 0x96000047>>>hyp: crash: hyp: exception at EL2 (kind 0): ESR 0x96000047 (data abort at EL2, translation fault on write, level 3);;hyp: crash:   #0 pc 0x>>>hyp: trace: cpu=0 recorded=;;hyp: summary: vms=0 ok=0 failed=1 error=hyp;;run: the crash report, symbolized:>>>hyp::arch::aarch64::exception::overflow_for_test+0x;;run: the hypervisor stopped on an error"
    "raspi4b hyp stack overflow: the guard below CPU 0's stack, reported from the emergency stack; the run fails|1|--board raspi4b --debug-hyp --bootarg pvhyp.stack-overflow-test|hyp: stack overflow on CPU 0: SP 0x;;FAR 0x;;ESR 0x96000047>>>hyp: crash: hyp: exception at EL2 (kind 0): ESR 0x96000047 (data abort at EL2, translation fault on write, level 3);;hyp: summary: vms=0 ok=0 failed=1 error=hyp;;run: the crash report, symbolized:>>>hyp::arch::aarch64::exception::overflow_for_test+0x;;run: the hypervisor stopped on an error"
    # ... and on a secondary CPU as it starts (its own guard and emergency stack): CPU 1 of
    # virt's two (PSCI CPU_ON), CPU 3 of the Pi's four (the spin table).
    "hyp stack overflow on a secondary CPU (1 of 2), reported from its own emergency stack|1|--smp 2 --debug-hyp --bootarg pvhyp.stack-overflow-test=1|hyp: stack overflow on CPU 1: SP 0x;;ESR 0x96000047>>>hyp: summary: vms=0 ok=0 failed=1 error=hyp;;hyp: crash: hyp: exception at EL2 (kind 0): ESR 0x96000047;;run: the crash report, symbolized:>>>hyp::arch::aarch64::exception::overflow_for_test+0x;;run: the hypervisor stopped on an error"
    "raspi4b hyp stack overflow on a secondary CPU (3 of 4), reported from its own emergency stack|1|--board raspi4b --debug-hyp --bootarg pvhyp.stack-overflow-test=3|hyp: stack overflow on CPU 3: SP 0x;;ESR 0x96000047>>>hyp: summary: vms=0 ok=0 failed=1 error=hyp;;hyp: crash: hyp: exception at EL2 (kind 0): ESR 0x96000047;;run: the crash report, symbolized:>>>hyp::arch::aarch64::exception::overflow_for_test+0x;;run: the hypervisor stopped on an error"
    "hyp stack overflow test naming a CPU the board does not run: one line says so, the run goes on|0|--smp 2 --debug-hyp --bootarg pvhyp.stack-overflow-test=7 --manifest $M/one.toml|pvhyp.stack-overflow-test=7: this board runs no CPU 7; no overflow test;;solo: selftest: all;;hyp: summary: vms=1 ok=1 failed=0"
    "crash report: a forged frame pointer ends the backtrace at the record it names, nothing read there|1|--manifest $M/crash-hostile-fp.toml|hyp: crash: VM hostile: ESR 0x;;hyp: crash:   #1 0x40001234;;hyp: crash:   backtrace ends: frame record not readable;;VM hostile killed: stage-2 fault at IPA 0x7e00000000;;after: selftest: all;;hyp: summary: vms=2 ok=1 failed=1"
    "crash report: a frame pointer into a shared channel page is not followed (not the VM's frame)|1|--manifest $M/crash-shared-fp.toml|hyp: crash: VM sharer: ESR 0x;;hyp: crash:   #0 pc 0x;;hyp: crash:   backtrace ends: frame record not readable;;VM sharer killed: stage-2 fault at IPA 0x7e00000000;;peer: exiting with status 0 as asked;;hyp: summary: vms=2 ok=1 failed=1"
    # A device's DMA left in flight when its VM exits: the teardown aborts its stream and turns its
    # bus mastering off before the VM's frames are freed (QEMU translated the whole read through
    # the SMMU when the device took the request, and an aborting STE records no event: no SMMU
    # line is expected); the VM beside it holds, a third maps 8 MiB afterwards and finds it all
    # zero (no DMA landed after the scrub), nothing leaks.
    "dma: a DMA in flight when its VM exits: the device released (stream aborts, bus mastering off) before the frames go; the victim holds, fresh frames are zero|0|--iommu --pci-disk $results/dma-abandon.img --manifest $M/dma-abandon.toml|owner: dma: abandon: 2097152 byte read into IPA;;queued; exiting without waiting;;VM owner exited with status 0>>>VM owner: device 00:01.0 released: stream 8 aborts, bus mastering off;;VM owner: device 00:01.0 released>>>scavenger: dma: scavenge: 2048 fresh pages mapped after 200 yields: 0 words not zero;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    # A second PCI disk (QEMU's null block driver, at 00:02.0) that no VM names: found, its BARs
    # placed, and left blocked (stream 16 aborting, decoding and bus mastering off).
    "dma: a second PCI device no VM names stays blocked: its stream aborts, bus mastering off, its DMA (the pvhyp.dma-probe self-check) aborted|0|--iommu --bootarg pvhyp.dma-probe --pci-disk $results/dma-second.img --manifest $M/dma-assign.toml -- -drive file=null-co://,if=none,format=raw,id=pd1 -device virtio-blk-pci,drive=pd1,disable-legacy=on,iommu_platform=on,addr=2|64 streams, every one aborts; enabled;;PCI 00:02.0: vendor 1af4 device 1042;;VM owner: device 00:01.0 (1af4:1042) assigned: stream 8;;PCI 00:02.0: no VM owns it: stream 16 aborts, bus mastering off;;PCI 00:02.0: DMA probe: the device's DMA was aborted (ring and buffer untouched, status 0x;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    # The same exception with tracing on (run.sh --bootarg joins pvhyp.crash-test to --trace's
    # word in the one -append): the rings are dumped after the report, and the run still fails.
    "exit tracing: the rings dumped on the hyp's own exception, after its symbolized report|1|--trace --bootarg pvhyp.crash-test|hyp: crash: hyp: exception at EL2 (kind 0): ESR 0x96000004;;hyp: crash:   #0 pc 0x>>>hyp: trace: cpu=0 recorded=;;hyp: trace: cpu=0 recorded=>>>hyp: summary: vms=0 ok=0 failed=1 error=hyp;;run: the crash report, symbolized:>>>hyp::arch::aarch64::exception::fault_for_test+0x;;run: the hypervisor stopped on an error"
    "raspi4b exit tracing: the rings dumped on the hyp's own exception, after its symbolized report|1|--board raspi4b --trace --bootarg pvhyp.crash-test|hyp: crash: hyp: exception at EL2 (kind 0): ESR 0x96000004;;hyp: crash:   #0 pc 0x>>>hyp: trace: cpu=0 recorded=;;hyp: trace: cpu=0 recorded=>>>hyp: summary: vms=0 ok=0 failed=1 error=hyp;;run: the crash report, symbolized:>>>hyp::arch::aarch64::exception::fault_for_test+0x;;run: the hypervisor stopped on an error"
    # bench-guest's two vCPUs on two CPUs: each WFIs on its own CPU while the other's SGI
    # arrives (once lost: a WFI after a list-register sync missed an SGI it held pending).
    "bench-guest's virtual IPI with its vCPUs on two CPUs: no SGI lost to a WFI|0|--smp 2 --manifest $M/bench-ipi-unpinned.toml|bench-linux: bench: name=virtual_ipi;;hyp: summary: vms=1 ok=1 failed=0"
)
if [ "$full" = 1 ]; then
    linux_patterns="psci: PSCIv1.1 detected in firmware.;;psci: SMC Calling Convention v1.2;;SMP: Total of 2 processors activated.;;linux: init: busybox up, 2 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;attacker: attack: all;;hyp: summary: vms=3 ok=3 failed=0 frames_leaked=0 heap_leaked=0"
    linux4_patterns="SMP: Total of 4 processors activated.;;linux: init: busybox up, 4 CPUs;;linux: init: work pinned to CPU 0 ran on CPU 0;;linux: init: work pinned to CPU 1 ran on CPU 1;;linux: init: work pinned to CPU 2 ran on CPU 2;;linux: init: work pinned to CPU 3 ran on CPU 3;;linux: init: slept 1 s;;VM linux exited with status 0;;victim: victim: memory and FP/SIMD registers unchanged;;hyp: summary: vms=2 ok=2 failed=0 frames_leaked=0 heap_leaked=0"
    # A 4-vCPU Linux VM on 4 CPUs: SGIs between all four, work pinned to each.
    for gic in 2 3; do
        cases+=("linux: Debian's kernel on virt gicv$gic, 4 vCPUs on 4 CPUs|0|--gic $gic --smp 4 --manifest $M/linux-4vcpu.toml --timeout 400|$linux4_patterns")
    done
    cases+=("linux: Debian's kernel on raspi4b, 4 vCPUs on 4 cores|0|--board raspi4b --manifest $M/linux-4vcpu.toml --timeout 400|$linux4_patterns")
    for cpu in cortex-a53 cortex-a57 cortex-a72 cortex-a76 neoverse-n1 max; do
        for gic in 2 3; do
            for mem in 256M 1G 5G; do
                cases+=("matrix $cpu gicv$gic $mem|0|--cpu $cpu --gic $gic --mem $mem|hyp: summary: vms=2 ok=2 failed=0")
            done
            # Linux on every CPU model of the matrix, GICv2 and GICv3 (2 vCPUs on 2 CPUs).
            cases+=("linux: Debian's kernel on $cpu gicv$gic, 2 vCPUs on 2 CPUs|0|--cpu $cpu --gic $gic --smp 2 --manifest $M/linux.toml --timeout 400|$linux_patterns")
        done
    done
fi

RUN_TIMEOUT=60
run_case() {
    local i="$1" spec="$2" name want args patterns input
    IFS='|' read -r name want args patterns input <<<"$spec"
    local out="$results/case-$i"
    # A case's own --timeout (run.sh takes the last one) is its limit here too.
    local limit="$RUN_TIMEOUT"
    [[ "$args" =~ --timeout\ ([0-9]+) ]] && limit="${BASH_REMATCH[1]}"
    # shellcheck disable=SC2086 # args are words by design
    printf "%b" "$input" | timeout $((limit + 10)) scripts/run.sh --no-build \
        --timeout "$RUN_TIMEOUT" $args >"$out.log" 2>&1
    local got=$?
    local verdict=ok why=""
    [ "$got" = "$want" ] || { verdict=FAIL; why="exit status $got, expected $want"; }
    local p
    while [ -n "$patterns" ]; do
        p="${patterns%%;;*}"
        [ "$p" = "$patterns" ] && patterns="" || patterns="${patterns#*;;}"
        if [[ "$p" == *'>>>'* ]]; then
            local first="${p%%>>>*}" second="${p#*>>>}" l1 l2
            l1=$(tr -d '\r' <"$out.log" | grep -nF -m1 -- "$first" | cut -d: -f1)
            l2=$(tr -d '\r' <"$out.log" | grep -nF -m1 -- "$second" | cut -d: -f1)
            [ -n "$l1" ] && [ -n "$l2" ] && [ "$l1" -lt "$l2" ] ||
                { verdict=FAIL; why="${why:+$why; }\"$first\" not before \"$second\""; }
            continue
        fi
        # Not a pipe into grep -q: with pipefail, a long log's tr dies of SIGPIPE and fails it.
        grep -qF -- "$p" <(tr -d '\r' <"$out.log") || { verdict=FAIL; why="${why:+$why; }missing \"$p\""; }
    done
    grep -q 'panic' "$out.log" && { verdict=FAIL; why="${why:+$why; }the hypervisor or a guest panicked"; }
    echo "$verdict|$name|$why" >"$out.result"
}

pids=()
for i in "${!cases[@]}"; do
    run_case "$i" "${cases[$i]}" &
    pids+=($!)
    # Two QEMU boots at a time: one per core.
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
done
wait
for i in "${!cases[@]}"; do
    IFS='|' read -r verdict name why <"$results/case-$i.result"
    if [ "$verdict" = ok ]; then
        pass "qemu: $name"
    else
        fail "qemu: $name ($why)"
        sed 's/^/    | /' "$results/case-$i.log" | tail -15
    fi
done

# --- Typed input reaches the hyp's console while the only CPU never idles: typed seconds after
# the boot, when no line of the hyp's own is queued to send the CPU through the scheduler's look
# at the UART, which a slice's end must make; with one vCPU that never yields nor waits, and
# with two that only yield to each other (every switch their hand-over, which passes the rest
# of the CPU's slice on: a switch that armed a new slice would never let one end). ---
typed_late() { # MANIFEST GUEST_LINE FOCUS_LINE WHAT
    local log="$results/typed-late-$1.log"
    (sleep 4; printf '\035'; sleep 4) | scripts/run.sh --no-build --timeout 14 \
        --manifest "$M/$1.toml" >"$log" 2>&1
    if grep -qF "$2" "$log" && grep -qF "$3" <(tr -d '\r' <"$log"); then
        pass "qemu: typed input reaches the hyp's console while $4"
    else
        fail "qemu: typed input reaches the hyp's console while $4"
        tail -8 "$log" | sed 's/^/    | /'
    fi
}
typed_late spin-alone "spinning forever" "hyp: console focus: hyp (type help; Ctrl-] moves it)" \
    "a vCPU spins alone on one CPU"
# Ctrl-] moves the focus from the first VM to the second.
typed_late yield-pair "spinning forever, yielding" "hyp: console focus: yield-b (Ctrl-] moves it)" \
    "two vCPUs yield to each other on one CPU"

# --- The block device persists: one boot writes its regions (legacy virtio-mmio) and flushes,
# a second boot with the same disk image (modern virtio-mmio) reads them back. ---
disk="$results/persist.img"
if scripts/run.sh --no-build --timeout "$RUN_TIMEOUT" --disk "$disk" --manifest "$M/blk-write.toml" \
        </dev/null >"$results/persist-1.log" 2>&1 &&
    grep -qF "disk: blk: wrote 1024 KiB with seed 7 and flushed" "$results/persist-1.log" &&
    scripts/run.sh --no-build --timeout "$RUN_TIMEOUT" --disk "$disk" --manifest "$M/blk-verify.toml" \
        -- -global virtio-mmio.force-legacy=false </dev/null >"$results/persist-2.log" 2>&1 &&
    grep -qF "disk: blk: verified 1024 KiB with seed 7: all match" "$results/persist-2.log" &&
    grep -qF "other: blk: verified 1024 KiB with seed 9: all match" "$results/persist-2.log"; then
    pass "qemu: block: written, flushed, powered off, read back on the next boot"
else
    fail "qemu: block: written, flushed, powered off, read back on the next boot"
    tail -8 "$results/persist-1.log" "$results/persist-2.log" 2>/dev/null | sed 's/^/    | /'
fi

# --- DMA persists through the SMMU: one boot's VM writes the PCI disk it owns by DMA into its
# own memory and flushes, a second boot with the same image reads it back (virt --iommu). ---
pci_disk="$results/dma-persist.img"
if scripts/run.sh --no-build --timeout "$RUN_TIMEOUT" --iommu --pci-disk "$pci_disk" \
        --manifest "$M/dma-write.toml" </dev/null >"$results/dma-persist-1.log" 2>&1 &&
    grep -qF "owner: dma: wrote and flushed 4096 bytes with seed 7" "$results/dma-persist-1.log" &&
    scripts/run.sh --no-build --timeout "$RUN_TIMEOUT" --iommu --pci-disk "$pci_disk" \
        --manifest "$M/dma-verify.toml" </dev/null >"$results/dma-persist-2.log" 2>&1 &&
    grep -qF "owner: dma: read 4096 bytes with seed 7 from the last boot: all match" "$results/dma-persist-2.log"; then
    pass "qemu: dma: written by DMA through the SMMU, flushed, read back on the next boot"
else
    fail "qemu: dma: written by DMA through the SMMU, flushed, read back on the next boot"
    tail -8 "$results/dma-persist-1.log" "$results/dma-persist-2.log" 2>/dev/null | sed 's/^/    | /'
fi

# --- The console queue under a flood: eight VMs (six PV, two emulated PL011) write 400
# numbered 64-byte lines each at once, far more than the hyp's queue holds (writers wait for
# room); every line must come out once, whole (never cut into by another VM's), in order. ---
flood_check='
import re, sys
log, count, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
filler = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
seen = {n: 0 for n in names}
done = set()
for raw in open(log, errors="replace"):
    line = raw.rstrip("\r\n")
    if "lines: " not in line:
        continue
    name, _, rest = line.partition(": ")
    assert name in seen, f"a line no VM wrote whole: {line!r}"
    if rest == f"lines: all {count} written":
        done.add(name)
        continue
    m = re.fullmatch(r"lines: (\d{5})/%05d %s" % (count, filler), rest)
    assert m, f"not whole: {line!r}"
    assert int(m.group(1)) == seen[name], f"{name}: line {m.group(1)} where {seen[name]} was due"
    seen[name] += 1
for n in names:
    assert seen[n] == count and n in done, f"{n}: {seen[n]} of {count} lines"
'
for board in virt raspi4b; do
    log="$results/flood-$board.log"
    smp=(); [ "$board" = virt ] && smp=(--smp 4)
    if scripts/run.sh --no-build --board "$board" "${smp[@]}" --timeout "$RUN_TIMEOUT" \
            --manifest "$M/console-flood.toml" </dev/null >"$log" 2>&1 &&
        grep -qF "hyp: summary: vms=8 ok=8 failed=0" "$log" &&
        python3 -c "$flood_check" "$log" 400 flood-1 flood-2 flood-3 flood-4 flood-5 flood-6 \
            trap-1 trap-2 >"$results/flood-$board.check" 2>&1; then
        pass "qemu: $board: 8 VMs x 400 console lines at once, each once, whole, in order"
    else
        fail "qemu: $board: 8 VMs x 400 console lines at once, each once, whole, in order"
        tail -n 8 "$log" "$results/flood-$board.check" 2>/dev/null | sed 's/^/    | /'
    fi
done

# --- scripts/gdb.sh in batch mode: gdb-multiarch on QEMU's GDB server stops in hyp_main (its
# backtrace shows it), then in guest_main of VM beta only (VMID 2: VM alpha, VMID 1, runs the
# same code first), and QEMU ends with gdb (killed by it, not at its timeout). ---
for board in virt raspi4b; do
    log="$results/gdb-$board.log" console="$results/gdb-$board-console.log"
    if timeout 150 scripts/gdb.sh --batch --no-build --board "$board" --timeout "$RUN_TIMEOUT" \
            --console "$console" --ex 'break hyp_main' --ex continue --ex bt \
            --ex 'break-vm beta guest_main' --ex continue --ex bt --ex which-vm \
            </dev/null >"$log" 2>&1 &&
        grep -qE '^#[0-9]+ +(0x[0-9a-f]+ in )?hyp::hyp_main ' "$log" &&
        grep -qE '^#[0-9]+ +(0x[0-9a-f]+ in )?pv_guest::guest_main ' "$log" &&
        grep -qF 'in VM beta (VMID 2) at EL1' "$log" &&
        grep -qF 'VM beta: VMID 2,' "$console" &&
        grep -qF 'Terminated via GDBstub' "$console" && ! grep -qF 'run: timeout' "$console"; then
        pass "gdb: $board: breaks in hyp_main and in one VM's guest_main (batch)"
    else
        fail "gdb: $board: breaks in hyp_main and in one VM's guest_main (batch)"
        tail -n 12 "$log" "$console" 2>/dev/null | sed 's/^/    | /'
    fi
done

# --- run.sh --json: the vmstats lines as JSON (every VM, numbers as numbers), the summary's
# appended totals equal to the VMs' sums; tracing is off unless asked. ---
json_check='
import json, sys
d = json.load(open(sys.argv[1]))
vms = {vm["name"]: vm for vm in d["vms"]}
assert sorted(vms) == ["busy", "ticker", "ticker2"], sorted(vms)
for vm in vms.values():
    assert vm["state"] == "exited" and vm["status"] == 0, vm
    assert vm["hypercalls"] > 0 and vm["exits"] >= vm["hypercalls"], vm
    assert 0 < vm["mapped_pages"] <= vm["quota_pages"], vm
# The ticker waits (WFI) for each of its 6 timer events.
assert vms["ticker"]["events"] >= 6 and vms["ticker"]["exits_wfi"] > 0, vms["ticker"]
s = d["summary"]
assert (s["vms"], s["ok"], s["failed"]) == (3, 3, 0), s
for key in ("exits", "hypercalls", "faults"):
    assert s[key] == sum(vm[key] for vm in vms.values()), key
'
if ! command -v python3 >/dev/null; then
    fail "run.sh --json: python3 (which this check reads the JSON with) is not installed"
elif scripts/run.sh --no-build --timeout "$RUN_TIMEOUT" --manifest "$M/timer.toml" \
        --json "$results/stats.json" </dev/null >"$results/json.log" 2>&1 &&
    python3 -c "$json_check" "$results/stats.json" >>"$results/json.log" 2>&1 &&
    ! grep -q '^hyp: trace:' "$results/json.log"; then
    pass "run.sh --json: per-VM statistics as JSON, the summary's totals their sums, no trace unless asked"
else
    fail "run.sh --json: per-VM statistics as JSON, the summary's totals their sums, no trace unless asked"
    tail -8 "$results/json.log" "$results/stats.json" 2>/dev/null | sed 's/^/    | /'
fi

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
