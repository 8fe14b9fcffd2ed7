#!/usr/bin/env bash
# Boots pvhyp on QEMU halted with its GDB server (scripts/run.sh --gdb-port) and attaches
# gdb-multiarch with the hypervisor's and the guests' symbols. See --help.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/pvhyp"

usage() {
    cat <<'USAGE'
usage: scripts/gdb.sh [options] [run.sh options] [-- QEMU-ARGS...]

Starts QEMU halted at reset with its GDB server (scripts/run.sh --gdb-port: the same build,
boards and VMs as run.sh, e.g. --board raspi4b, --manifest FILE, --debug-hyp, --no-build) and
gdb-multiarch connected to it, with the hypervisor's symbols (target/pvhyp/hyp.elf, or
debug/hyp.elf with --debug-hyp), the guests' (target/pvhyp/pv-guest.elf) and pvhyp's commands
(scripts/gdbinit). Quitting gdb kills QEMU. The VMs' console is not this terminal: it goes to
a file (tail -f it) and has no input; without --manifest the VMs are
manifest/examples/default.toml (alpha and beta, which end by themselves).

  break hyp_main                  the hypervisor once entry.S has turned the MMU on (at its
                                  link address)
  break-boot primary_entry        entry.S before it turns the MMU on (at its load address)
  break guest_main                a guest function: every PV guest is linked at the same
                                  address, so this stops in every VM
  break-vm beta guest_main        ... in VM beta only (by VMID: break-vm 2 guest_main)
  which-vm                        the hypervisor or which VM the selected CPU is in
  continue, bt, info threads      (one thread per CPU), p $VTTBR_EL2, ...

options:
  --port PORT     the GDB server's TCP port on 127.0.0.1 (default: a free one)
  --console FILE  where QEMU's and run.sh's output goes (default target/pvhyp/gdb-console.log)
  --ex CMD        a gdb command to run once connected (repeatable, in order)
  --batch         run the --ex commands and quit, as gdb -batch does (also PVHYP_GDB_BATCH=1);
                  with no --timeout, QEMU is stopped after 120 s
  -h, --help      this text
Every other option goes to scripts/run.sh (see scripts/run.sh --help). Exit status: gdb's.
USAGE
}

die() { echo "gdb: $*" >&2; exit 2; }

port="" console="$OUT/gdb-console.log" batch="${PVHYP_GDB_BATCH:-0}"
gdb_commands=() run_args=()
board=virt manifest="$ROOT/manifest/examples/default.toml" hyp_elf="$OUT/hyp.elf"
build=1 timeout_given=0 qemu_args=0
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        --console) console="${2:?--console needs a value}"; shift 2 ;;
        --ex) gdb_commands+=("${2:?--ex needs a gdb command}"); shift 2 ;;
        --batch) batch=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --gdb|--gdb-port) die "$1 is what gdb.sh passes to run.sh itself: choose the port with --port" ;;
        # What gdb.sh must know of run.sh's options: the board, the VMs, which build.
        --board) board="${2:?--board needs a value}"; run_args+=("$1" "$2"); shift 2 ;;
        --manifest) manifest="${2:?--manifest needs a value}"; run_args+=("$1" "$2"); shift 2 ;;
        --debug-hyp) hyp_elf="$OUT/debug/hyp.elf"; run_args+=("$1"); shift ;;
        --no-build) build=0; run_args+=("$1"); shift ;;
        --timeout) timeout_given=1; run_args+=("$1" "${2:?--timeout needs a value}"); shift 2 ;;
        --cpu|--gic|--smp|--mem|--disk) run_args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
        --) qemu_args=1; run_args+=("$@"); break ;;
        *) run_args+=("$1"); shift ;;
    esac
done
case "$batch" in 0|1) ;; *) die "PVHYP_GDB_BATCH must be 0 or 1, not '$batch'" ;; esac
# Where the bootloader puts the hypervisor's Image: RAM base + text_offset (0x80000).
case "$board" in
    virt) load_pa=0x40080000 ;;
    raspi4b) load_pa=0x80000 ;;
    *) die "--board must be virt or raspi4b, not '$board'" ;;
esac
[ -f "$manifest" ] || die "no such manifest: $manifest"
manifest="$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")"
if [ -n "$port" ]; then
    [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] && [ "$port" -le 65535 ] ||
        die "--port must be a TCP port number, not '$port'"
fi
# Without --no-build, run.sh's setup.sh installs it.
[ "$build" = 1 ] || command -v gdb-multiarch >/dev/null ||
    die "gdb-multiarch is missing: run scripts/setup.sh"
[ "$batch" = 0 ] || [ "$timeout_given" = 1 ] || run_args+=(--timeout 120)

# Ends QEMU (and run.sh, or the build it is doing) with gdb.
run_pid=""
stop_qemu() {
    local qemu_pid i
    qemu_pid="$(cat "$work/qemu.pid" 2>/dev/null || true)"
    if [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null; then
        # run.sh ends by itself once QEMU is gone.
        for ((i = 0; i < 50; i++)); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    # Still building, or not ending: its whole process group.
    kill -- -"$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
    run_pid=""
}
cleanup() {
    [ -z "$run_pid" ] || stop_qemu
    rm -rf "$work"
}
# QEMU tells its PID, so it can be ended with gdb whatever state run.sh is in.
work="$(mktemp -d)"
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 129' HUP
[ "$qemu_args" = 1 ] || run_args+=(--)
run_args+=(-pidfile "$work/qemu.pid")

# The kernel's TCP tables, for a port's state without connecting to it (a connection would
# be QEMU's one debugger).
tcp_tables=()
for t in /proc/net/tcp /proc/net/tcp6; do [ ! -r "$t" ] || tcp_tables+=("$t"); done
[ "${#tcp_tables[@]}" -gt 0 ] || die "no /proc/net/tcp to see which ports are free (Linux only)"
# sockets_on PORT STATE: the inodes of the sockets on PORT in STATE (0A: listening; "": any).
sockets_on() {
    awk -v port="$(printf ':%04X' "$1")" -v state="$2" \
        'FNR > 1 && substr($2, length($2) - 4) == port && (state == "" || $4 == state) { print $10 }' \
        "${tcp_tables[@]}"
}
port_taken() { [ -n "$(sockets_on "$1" "")" ]; }
# qemu_listening PORT: our QEMU (not another program that took the port) listens on PORT.
qemu_listening() {
    local qemu_pid inode fd
    qemu_pid="$(cat "$work/qemu.pid" 2>/dev/null || true)"
    [ -n "$qemu_pid" ] || return 1
    for inode in $(sockets_on "$1" 0A); do
        for fd in /proc/"$qemu_pid"/fd/*; do
            [ "$(readlink "$fd")" != "socket:[$inode]" ] || return 0
        done
    done
    return 1
}
free_port() {
    local p i start=$((20000 + RANDOM % 20000))
    for ((i = 0; i < 200; i++)); do
        p=$((start + i))
        port_taken "$p" || { echo "$p"; return 0; }
    done
    die "no free TCP port found from $start on: choose one with --port"
}

# A clear message now, rather than QEMU's when it cannot listen.
[ -z "$port" ] || ! port_taken "$port" || die "port $port is in use: choose another with --port"
mkdir -p "$(dirname "$console")"
# A chosen port is tried once; a free one again if another program took it meanwhile.
for attempt in 1 2 3; do
    run_port="$port"
    [ -n "$run_port" ] || run_port="$(free_port)" || exit 2
    [ "$build" = 0 ] || echo "gdb: building, then starting QEMU (output: ${console#"$ROOT/"})" >&2
    # Its own process group: Ctrl-C in gdb interrupts the target, it must not end QEMU.
    set -m
    "$ROOT/scripts/run.sh" --gdb-port "$run_port" "${run_args[@]}" </dev/null >"$console" 2>&1 &
    run_pid=$!
    set +m
    while ! qemu_listening "$run_port"; do
        if ! kill -0 "$run_pid" 2>/dev/null; then
            wait "$run_pid" 2>/dev/null || true
            run_pid=""
            break
        fi
        sleep 0.1
    done
    [ -z "$run_pid" ] || break
    if [ -n "$port" ] || [ "$attempt" = 3 ] || ! grep -q 'Address already in use' "$console"; then
        echo "gdb: QEMU did not start; the end of ${console#"$ROOT/"}:" >&2
        tail -n 8 "$console" | sed 's/^/    | /' >&2
        exit 1
    fi
done
command -v gdb-multiarch >/dev/null || die "gdb-multiarch is missing: run scripts/setup.sh"

gdb_args=(-q)
[ "$batch" = 0 ] || gdb_args+=(-nx -batch)
gdb_args+=(-ex "with confirm off -- add-symbol-file $OUT/pv-guest.elf"
           -ex "source $ROOT/scripts/gdbinit"
           -ex "target remote 127.0.0.1:$run_port")
for c in "${gdb_commands[@]}"; do gdb_args+=(-ex "$c"); done
if [ "$batch" = 0 ]; then
    cat >&2 <<EOF
gdb: QEMU ($board) is halted at reset, its GDB server on 127.0.0.1:$run_port; the VMs' console:
gdb:   tail -f ${console#"$ROOT/"}
gdb: e.g. break hyp_main, break-vm NAME guest_main, continue; help user-defined (pvhyp's
gdb: commands); quit ends QEMU too.
EOF
fi
set +e
PVHYP_MANIFEST="$manifest" PVHYP_LOAD_PA="$load_pa" PVHYP_KILL_ON_QUIT=1 gdb-multiarch "${gdb_args[@]}" "$hyp_elf"
status=$?
set -e
exit "$status"
