#!/usr/bin/env bash
# Builds the hypervisor and pv-guest and boots them on QEMU. See --help.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PVHYP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvhyp}"

usage() {
    cat <<'USAGE'
usage: scripts/run.sh [options] [-- QEMU-ARGS...]

Boots the pvhyp hypervisor with its VMs on QEMU. With a terminal the console is interactive
(Ctrl-A x quits QEMU); without one the run ends when every VM has ended, or at the timeout.
Exit status: 0 if every VM exited with status 0; 1 if any failed or the hypervisor did not
finish; 124 on timeout; 2 for a bad option. A crash report (`hyp: crash:` lines: a VM killed by
a fault, or the hypervisor's own exception) is printed again after the run with its code
addresses resolved to function+offset (file:line) from the ELF files (llvm-nm, llvm-addr2line).

options:
  --board virt|raspi4b   machine to emulate (default virt); raspi4b is fixed hardware (4
                         Cortex-A72, 2 GiB, GIC-400) booted with the real Pi 4 device tree,
                         its console the mini UART (QEMU's second serial port)
  --cpu MODEL            CPU model on virt (default cortex-a72); e.g. cortex-a53, cortex-a57,
                         cortex-a76, neoverse-n1, max
  --gic 2|3              GIC version on virt (default 3)
  --smp N                CPUs on virt (default 1)
  --mem SIZE             RAM on virt, e.g. 256M, 1G, 5G (default 1G)
  --manifest FILE        the VMs to run (TOML, docs/MANIFEST.md); default: with a
                         terminal manifest/examples/interactive.toml (a shell; Ctrl-]
                         moves the console input between VMs), without one
                         manifest/examples/default.toml (VMs that end by themselves)
  --linux                boot tests/manifests/linux-shell.toml: a busybox shell in a Linux VM
                         (Debian's arm64 kernel) beside the PV shell; the same as --manifest
                         with that file. Any manifest with a kind = "linux" VM makes sure
                         scripts/setup.sh has fetched the kernel and built the initramfs
                         (target/linux/Image, target/linux/initrd.gz), even with --no-build
  --timeout SECONDS      stop QEMU after this long (default: 120 without a terminal, none with)
  --disk FILE            the disk image the VMs' disk regions (manifest key `disk`) lie on,
                         attached to QEMU virt as a virtio-blk device (virtio-mmio); created
                         (16 MiB, zeroed) if missing. Default, when a VM of the manifest has a
                         disk region: target/pvhyp/disk.img, created once and kept between
                         runs. raspi4b has no disk the hypervisor drives: its VMs' regions are
                         a RAM disk that does not persist, and --disk is refused
  --iommu                on virt: an SMMUv3 in front of the PCIe root bus (-M virt,iommu=smmuv3)
                         and a virtio-blk-pci disk behind it at 00:01.0 (stream ID 8), for the
                         VMs that the manifest key `devices` assigns it to; its image is
                         --pci-disk's, created (16 MiB, zeroed) if missing and kept between runs
  --pci-disk FILE        the image of --iommu's PCI disk (default target/pvhyp/pci-disk.img)
  --no-build             use the binaries already in target/pvhyp (scripts/test.sh does)
  --debug-hyp            boot the debug build of the hypervisor (debug assertions and
                         overflow checks on, e.g. the frame accounting after every hypercall)
                         from target/pvhyp/debug/, with the same guests and pvpack
                         (scripts/build.sh --debug-hyp builds it)
  --no-image-check       let pvpack pack images the hypervisor will refuse (pvpack
                         --no-image-check): only for tests of the hypervisor's own refusal
  --bootarg WORD         add WORD to the hypervisor's command line (/chosen/bootargs, QEMU's
                         -append; repeatable, merged with --trace's word). The hypervisor's
                         words: pvhyp.trace (what --trace adds), pvhyp.crash-test (fault at
                         boot with the console lock held), pvhyp.dma-probe (check at boot that
                         a PCI function no VM owns cannot DMA, virt --iommu), and with --debug-hyp
                         pvhyp.stack-overflow-test[=N] (overflow CPU N's stack, 0 by default)
  --trace                trace every CPU's last 256 guest exits (the hypervisor's command
                         line says pvhyp.trace); dumped decoded at the end of the run, one
                         `hyp: trace:` line an exit, oldest first, CPU by CPU, and on a
                         hypervisor panic or fault
  --json FILE            write the per-VM statistics the hypervisor prints at the end (its
                         `hyp: vmstats:` lines) to FILE as JSON: {"vms": [{"name": ..., ...}],
                         "summary": {...}} (null if it printed none); numbers as numbers
  --gdb                  start QEMU halted with a GDB server on 127.0.0.1:1234 and no
                         default timeout (scripts/gdb.sh starts it with the debugger)
  --gdb-port PORT        the same on another port
  -h, --help             this text
  -- ARGS               passed to QEMU as they are
USAGE
}

die() { echo "run: $*" >&2; exit 2; }

board=virt cpu="" gic="" smp="" mem="" manifest="" timeout="" build=1 gdb=0 gdb_port=1234 disk=""
debug_hyp=0 linux=0 iommu=0 pci_disk=""
trace=0 json=""
bootargs=()
pvpack_extra=()
qemu_extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --board) board="${2:?--board needs a value}"; shift 2 ;;
        --cpu) cpu="${2:?--cpu needs a value}"; shift 2 ;;
        --gic) gic="${2:?--gic needs a value}"; shift 2 ;;
        --smp) smp="${2:?--smp needs a value}"; shift 2 ;;
        --mem) mem="${2:?--mem needs a value}"; shift 2 ;;
        --manifest) manifest="${2:?--manifest needs a value}"; shift 2 ;;
        --linux) linux=1; shift ;;
        --timeout) timeout="${2:?--timeout needs a value}"; shift 2 ;;
        --disk) disk="${2:?--disk needs a value}"; shift 2 ;;
        --iommu) iommu=1; shift ;;
        --pci-disk) pci_disk="${2:?--pci-disk needs a value}"; shift 2 ;;
        --no-build) build=0; shift ;;
        --debug-hyp) debug_hyp=1; shift ;;
        --no-image-check) pvpack_extra+=(--no-image-check); shift ;;
        --gdb) gdb=1; shift ;;
        --gdb-port) gdb=1 gdb_port="${2:?--gdb-port needs a value}"; shift 2 ;;
        --trace) trace=1; shift ;;
        --bootarg)
            [[ "${2:-}" =~ ^[^[:space:]]+$ ]] || die "--bootarg needs one word (no spaces), not '${2:-}'"
            bootargs+=("$2"); shift 2 ;;
        --json) json="${2:?--json needs a file}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; qemu_extra=("$@"); break ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

case "$board" in
    virt)
        cpu="${cpu:-cortex-a72}" gic="${gic:-3}" smp="${smp:-1}" mem="${mem:-1G}"
        case "$gic" in 2|3) ;; *) die "--gic must be 2 or 3, not '$gic'" ;; esac
        [[ "$smp" =~ ^[1-9][0-9]*$ ]] || die "--smp must be a positive number, not '$smp'"
        [[ "$mem" =~ ^[1-9][0-9]*[MG]$ ]] || die "--mem must look like 256M or 5G, not '$mem'"
        ;;
    raspi4b)
        # Fixed hardware: 4 Cortex-A72, 2 GiB, GICv2.
        [ -z "$cpu" ] || die "--board raspi4b has fixed Cortex-A72 CPUs: --cpu cannot be honoured"
        [ -z "$mem" ] || die "--board raspi4b has a fixed 2 GiB of RAM: --mem cannot be honoured"
        [ -z "$smp" ] || die "--board raspi4b has a fixed 4 CPUs: --smp cannot be honoured"
        [ -z "$gic" ] || [ "$gic" = 2 ] || die "--board raspi4b has a GIC-400 (GICv2): --gic $gic cannot be honoured"
        [ -z "$disk" ] || die "--board raspi4b has no disk the hypervisor drives (its VMs' disk regions are a RAM disk): --disk cannot be honoured"
        [ "$iommu" = 0 ] || die "--board raspi4b has no SMMU: --iommu cannot be honoured"
        ;;
    *) die "--board must be virt or raspi4b, not '$board'" ;;
esac
[[ "$gdb_port" =~ ^[1-9][0-9]{0,4}$ ]] && [ "$gdb_port" -le 65535 ] ||
    die "--gdb-port must be a TCP port number, not '$gdb_port'"
# Without a terminal a default timeout, but not under --gdb: halted for a debugger, QEMU runs
# as long as the debugging does.
if [ -n "$timeout" ]; then
    [[ "$timeout" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds, not '$timeout'"
elif [ "$gdb" = 0 ] && { [ ! -t 0 ] || [ ! -t 1 ]; }; then
    timeout=120
fi
if [ "$linux" = 1 ]; then
    [ -z "$manifest" ] || die "--linux boots tests/manifests/linux-shell.toml: give it or --manifest, not both"
    manifest="$ROOT/tests/manifests/linux-shell.toml"
fi
if [ -z "$manifest" ]; then
    # With a terminal, a shell to type into; without one, VMs that end by themselves.
    if [ -t 0 ] && [ -t 1 ]; then
        manifest="$ROOT/manifest/examples/interactive.toml"
    else
        manifest="$ROOT/manifest/examples/default.toml"
    fi
fi
[ -f "$manifest" ] || die "no such manifest: $manifest"
# The disk image: asked for, or the default one when some VM has a disk region.
if [ "$board" = virt ] && [ -z "$disk" ] && grep -Eq '^[[:space:]]*disk[[:space:]]*=' "$manifest"; then
    disk="$ROOT/target/pvhyp/disk.img"
fi
[ -z "$pci_disk" ] || [ "$iommu" = 1 ] || die "--pci-disk is the image of --iommu's disk: give --iommu too"
if [ "$iommu" = 1 ]; then
    pci_disk="${pci_disk:-$ROOT/target/pvhyp/pci-disk.img}"
    if [ ! -e "$pci_disk" ]; then
        mkdir -p "$(dirname "$pci_disk")"
        truncate -s 16M "$pci_disk" || die "cannot create the PCI disk image $pci_disk"
    fi
fi
if [ -n "$disk" ] && [ ! -e "$disk" ]; then
    mkdir -p "$(dirname "$disk")"
    truncate -s 16M "$disk" || die "cannot create the disk image $disk"
fi

if [ "$build" = 1 ]; then
    "$ROOT/scripts/setup.sh"
    if [ "$debug_hyp" = 1 ]; then "$ROOT/scripts/build.sh" --debug-hyp; else "$ROOT/scripts/build.sh"; fi
fi
# A Linux VM's kernel and initramfs come from setup.sh's cache, linked into target/linux/.
if grep -Eq '^[[:space:]]*kind[[:space:]]*=[[:space:]]*"linux"' "$manifest" &&
    { [ ! -e "$ROOT/target/linux/Image" ] || [ ! -e "$ROOT/target/linux/initrd.gz" ]; }; then
    "$ROOT/scripts/setup.sh"
fi
OUT="$ROOT/target/pvhyp"
# The hypervisor's Image and kernel8.img: the release build, or the debug one beside it.
HYP="$OUT"
[ "$debug_hyp" = 0 ] || HYP="$OUT/debug"
hyp_hint="run without --no-build"
[ "$debug_hyp" = 0 ] || hyp_hint="run scripts/build.sh --debug-hyp, or run without --no-build"
[ -f "$HYP/Image" ] || die "${HYP#"$ROOT/"}/Image is missing: $hyp_hint"
[ "$board" != raspi4b ] || [ -f "$HYP/kernel8.img" ] ||
    die "${HYP#"$ROOT/"}/kernel8.img is missing: $hyp_hint"

# Each run packs its own initrd, so parallel runs never share one.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
case "$board" in
    virt) ram_bytes="$mem" ;;
    raspi4b) ram_bytes=2G ;;
esac
"$OUT/pvpack" --manifest "$manifest" --default-image "$OUT/pv-guest.elf" --out "$work/initrd.cpio" \
    --mem "$ram_bytes" "${pvpack_extra[@]}" >/dev/null || exit 1

qemu=(qemu-system-aarch64 -nographic -nic none -no-reboot)
case "$board" in
    virt)
        machine="virt,virtualization=on,gic-version=$gic"
        [ "$iommu" = 0 ] || machine+=",iommu=smmuv3"
        qemu+=(-M "$machine" -cpu "$cpu" -smp "$smp" -m "$mem"
               -kernel "$HYP/Image" -initrd "$work/initrd.cpio")
        # The hypervisor drives the disk itself (virtio-mmio, legacy or modern transport).
        [ -z "$disk" ] || qemu+=(-drive "file=$disk,if=none,format=raw,id=hd0"
                                 -device virtio-blk-device,drive=hd0)
        # Behind the SMMU only with iommu_platform=on (else QEMU's virtio bypasses it); at a
        # fixed slot, so its stream ID is stable.
        [ "$iommu" = 0 ] || qemu+=(-drive "file=$pci_disk,if=none,format=raw,id=pd0"
            -device virtio-blk-pci,drive=pd0,disable-legacy=on,iommu_platform=on,addr=1)
        ;;
    raspi4b)
        dtb="$CACHE/dtb/bcm2711-rpi-4-b.dtb"
        [ -f "$dtb" ] || die "missing $dtb: run scripts/setup.sh"
        # QEMU's first serial port is the PL011, the second the mini UART the DTB's
        # stdout-path names (GPIO 14/15 on a real Pi 4).
        # Fixed hardware, stated anyway so the command line says what runs. No PSCI: the
        # hypervisor halts the board through the PM block, which makes QEMU exit.
        qemu=(qemu-system-aarch64 -nographic -nic none -no-reboot -M raspi4b -smp 4 -m 2G -dtb "$dtb"
              -kernel "$HYP/kernel8.img" -initrd "$work/initrd.cpio" -serial null -serial mon:stdio)
        ;;
esac
[ "$gdb" = 0 ] || qemu+=(-gdb "tcp:127.0.0.1:$gdb_port" -S)
# The hypervisor reads its options from /chosen/bootargs, which QEMU fills from -append.
# One -append for all of them: QEMU keeps only the last.
[ "$trace" = 0 ] || bootargs=(pvhyp.trace "${bootargs[@]}")
[ ${#bootargs[@]} = 0 ] || qemu+=(-append "${bootargs[*]}")
[ "$gdb" = 0 ] || [ "$debug_hyp" = 0 ] || echo "run: debug hypervisor: gdb target/pvhyp/debug/hyp.elf" >&2
qemu+=("${qemu_extra[@]}")

# symbolize_crash_report LOG: the run's `hyp: crash:` lines again, after the run (a filter on
# the live output would hold back the focused VM's partial line), every address in the hyp's
# code (its ELF) or in a crashed PV guest's (the built pv-guest, or the VM's own `image`; every
# PV guest is linked at the same address, so the report's VM name picks the ELF) followed by
# `function+offset (file:line)`; other values as they were, and a Linux VM's left alone.
# Never fails the run: without llvm-nm and llvm-addr2line it says so once and resolves nothing.
symbolize_crash_report() {
    grep -q '^hyp: crash: ' <(tr -d '\r' <"$1") || return 0
    if ! command -v llvm-nm >/dev/null || ! command -v llvm-addr2line >/dev/null; then
        echo "run: crash report not symbolized: llvm-nm or llvm-addr2line missing (scripts/setup.sh installs them)"
        return 0
    fi
    local hyp_elf="$HYP/hyp.elf" guest_elf="$ROOT/target/aarch64-unknown-none/release/pv-guest"
    local vm_elfs
    # Each PV VM's ELF, "name=path" words: the built pv-guest for a VM without an `image` (its
    # own image, relative to the manifest, for one with; none for `kind = "linux"`).
    vm_elfs="$(awk -v guest_elf="$guest_elf" -v dir="$(dirname "$manifest")/" '
        function flush() { if (name != "" && !linux) print name "=" elf; name = ""; linux = 0; elf = guest_elf }
        BEGIN { elf = guest_elf }
        /^[[:space:]]*\[\[vm\]\]/ { flush(); invm = 1; next }
        /^[[:space:]]*\[/ { flush(); invm = 0; next }
        invm && /^[[:space:]]*name[[:space:]]*=/ { n = $0; sub(/^[^"]*"/, "", n); sub(/".*/, "", n); name = n }
        invm && /^[[:space:]]*image[[:space:]]*=/ { i = $0; sub(/^[^"]*"/, "", i); sub(/".*/, "", i); elf = (i ~ /^\//) ? i : dir i }
        invm && /^[[:space:]]*kind[[:space:]]*=[[:space:]]*"linux"/ { linux = 1 }
        END { flush() }' "$manifest" | tr '\n' ' ')"
    echo "run: the crash report, symbolized:"
    tr -d '\r' <"$1" | grep '^hyp: crash: ' |
        timeout 60 awk -v hyp_elf="$hyp_elf" -v vm_elfs="$vm_elfs" \
            -v root="$ROOT/" '
        # A hex number (mawk has no strtonum; addresses stay below 2^53, exact in a double).
        function hexval(h,   v, i) {
            sub(/^0x/, "", h); v = 0
            for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
            return v
        }
        # The escapes of a Rust legacy symbol llvm-nm leaves in its demangled name.
        function rust_escapes(n) {
            sub(/^_\$/, "$", n); gsub(/\$LT\$/, "<", n); gsub(/\$GT\$/, ">", n); gsub(/\$u20\$/, " ", n)
            gsub(/\$RF\$/, "\\&", n); gsub(/\$BP\$/, "*", n); gsub(/\$C\$/, ",", n); gsub(/\.\./, "::", n)
            return n
        }
        # Function symbols of `elf`, by address: start, size and name (its hash dropped).
        function load(elf,   cmd, line, f, n) {
            if (elf in loaded) return
            loaded[elf] = 1; n = 0
            cmd = "llvm-nm -n -S -C --defined-only \"" elf "\" 2>/dev/null"
            while ((cmd | getline line) > 0) {
                split(line, f, " ")
                if (f[3] != "t" && f[3] != "T") continue
                n++; start[elf, n] = hexval(f[1]); size[elf, n] = hexval(f[2])
                sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", line); sub(/::h[0-9a-f]+$/, "", line)
                if (index(line, "$")) line = rust_escapes(line)
                sym[elf, n] = line
            }
            close(cmd); count[elf] = n
        }
        # A number in hex (mawk prints only 32 bits with %x).
        function tohex(v,   h) {
            h = ""
            do { h = substr("0123456789abcdef", v % 16 + 1, 1) h; v = int(v / 16) } while (v > 0)
            return "0x" h
        }
        # "name+0xoff (file:line)" of `addr` in `elf`, or "" outside its functions. A return
        # address (`ret`) is looked up one byte back, in its call: a call that ends a function
        # returns to the first byte of the next.
        function resolve(elf, hex, ret,   a, look, lo, hi, mid, i, cmd, line, where) {
            load(elf); a = hexval(hex); look = ret ? a - 1 : a; lo = 1; hi = count[elf]; i = 0
            while (lo <= hi) {
                mid = int((lo + hi) / 2)
                if (start[elf, mid] <= look) { i = mid; lo = mid + 1 } else hi = mid - 1
            }
            if (i == 0 || look >= start[elf, i] + size[elf, i]) return ""
            cmd = "timeout 10 llvm-addr2line -i -e \"" elf "\" " tohex(look) " 2>/dev/null"
            where = "?"
            while ((cmd | getline line) > 0) where = line
            close(cmd)
            if (index(where, root) == 1) where = substr(where, length(root) + 1)
            return sprintf("%s+0x%x (%s)", sym[elf, i], a - start[elf, i], where)
        }
        BEGIN {
            nvm = split(vm_elfs, words, " ")
            for (i = 1; i <= nvm; i++) {
                eq = index(words[i], "="); vm_name[i] = substr(words[i], 1, eq - 1); vm_elf[i] = substr(words[i], eq + 1)
            }
        }
        /^hyp: crash: VM [^ :]+:/ {
            name = $4; sub(/:$/, "", name)
            elf = ""
            for (i = 1; i <= nvm; i++) if (vm_name[i] == name) elf = vm_elf[i]
        }
        /^hyp: crash: hyp[: ]/ { elf = hyp_elf }
        {
            out = ""; rest = $0; ret = $0 ~ /^hyp: crash:   #[0-9]+ 0x/
            while (elf != "" && match(rest, /0x[0-9a-f]+/)) {
                hex = substr(rest, RSTART, RLENGTH)
                r = resolve(elf, hex, ret)
                out = out substr(rest, 1, RSTART + RLENGTH - 1) (r == "" ? "" : " " r)
                rest = substr(rest, RSTART + RLENGTH)
            }
            print out rest
        }' || echo "run: the crash report could not be symbolized"
}

log="$work/console.log"
set +e
if [ -n "$timeout" ]; then
    if [ -t 0 ]; then
        timeout --foreground "$timeout" "${qemu[@]}" | tee "$log"
    else
        # Without a terminal, input (if any) comes from stdin: a pipe can drive the shell.
        # QEMU's own messages (a device's warning, its exit on a signal) come after its run,
        # whole: written as they came they could cut into a line of the guests' in a log
        # that holds both (a script's 2>&1), where its tests look for that line.
        timeout "$timeout" "${qemu[@]}" 2>"$work/qemu.err" | tee "$log"
    fi
else
    "${qemu[@]}" | tee "$log"
fi
status=${PIPESTATUS[0]}
set -e
[ ! -s "$work/qemu.err" ] || cat "$work/qemu.err" >&2
symbolize_crash_report "$log"
if [ "$status" = 124 ]; then
    echo "run: timeout after $timeout s"
    exit 124
fi
[ "$status" = 0 ] || { echo "run: QEMU exited with status $status"; exit 1; }
summary="$(tr -d '\r' <"$log" | grep -E '^hyp: summary: ' | tail -n1 || true)"
# fields_json "key=value ...": a JSON object of the fields, numbers as numbers (values never
# hold a space or a quote: VM names are [A-Za-z0-9_-]).
fields_json() {
    local word key value sep="" out="{"
    for word in $1; do
        key="${word%%=*}" value="${word#*=}"
        if [[ "$value" =~ ^-?[0-9]+$ ]]; then out+="$sep\"$key\": $value"
        else out+="$sep\"$key\": \"$value\""; fi
        sep=", "
    done
    printf '%s}' "$out"
}
if [ -n "$json" ]; then
    {
        printf '{"vms": ['
        sep=""
        while IFS= read -r line; do
            printf '%s\n  %s' "$sep" "$(fields_json "${line#hyp: vmstats: }")"
            sep=","
        done < <(tr -d '\r' <"$log" | grep -E '^hyp: vmstats: ' || true)
        if [ -n "$summary" ]; then
            printf '\n],\n"summary": %s}\n' "$(fields_json "${summary#hyp: summary: }")"
        else
            printf '\n],\n"summary": null}\n'
        fi
    } >"$json" || die "cannot write $json"
fi
if [[ "$summary" =~ (^|\ )error=hyp($|\ ) ]]; then
    echo "run: the hypervisor stopped on an error (its log says which)"
    exit 1
fi
if [[ "$summary" =~ vms=([0-9]+)\ ok=([0-9]+)\ failed=([0-9]+) ]]; then
    vms=${BASH_REMATCH[1]} ok=${BASH_REMATCH[2]} failed=${BASH_REMATCH[3]}
    if [ "$failed" = 0 ] && [ "$ok" = "$vms" ] && [ "$vms" -gt 0 ]; then
        exit 0
    fi
    echo "run: $failed of $vms VMs failed"
    exit 1
fi
echo "run: the hypervisor printed no summary line: it did not finish"
exit 1
