//! The instruction sequences the benchmarks time, written out so their instruction counts are
//! known exactly (compiled Rust around a call would add a varying, unknown amount).
//!
//! These belong with the program that depends on their exact shape rather than in `arch/`:
//! each function's doc states how many instructions it executes besides the call it makes.
//! SMCCC 1.2: a call may change x0..x17 and preserves x18..x30, so every HVC here declares
//! x0..x17 clobbered and keeps its own state in registers the allocator picks above them.

use core::arch::asm;

/// Runs `n` (>= 1) iterations of `add`, `subs`, `b.ne`: exactly 3n instructions.
pub fn calibration_loop(n: u64) {
    // SAFETY: register arithmetic only.
    unsafe {
        asm!(
            "1: add {acc}, {acc}, #1",
            "subs {n}, {n}, #1",
            "b.ne 1b",
            n = inout(reg) n.max(1) => _,
            acc = inout(reg) 0u64 => _,
            options(nomem, nostack),
        )
    };
}

/// Loop instructions besides the HVC in [`hvc_loop`]: `mov x0`, `mov x1`, `subs`, `b.ne`.
pub const HVC_LOOP_OVERHEAD: u64 = 4;

/// Runs `n` (>= 1) iterations of `mov x0, fid; mov x1, a1; hvc #0; subs; b.ne`: per iteration
/// [`HVC_LOOP_OVERHEAD`] instructions plus the call's round trip (the HVC, everything at EL2,
/// the ERET).
pub fn hvc_loop(fid: u32, a1: u64, n: u64) {
    // SAFETY: the hypervisor's calls named by the benchmarks (SMCCC_VERSION, ABI_VERSION,
    // VM_YIELD) change nothing in our memory; x0..x17 are declared clobbered as SMCCC allows.
    unsafe {
        asm!(
            "1: mov x0, {fid}",
            "mov x1, {a1}",
            "hvc #0",
            "subs {n}, {n}, #1",
            "b.ne 1b",
            fid = in(reg) u64::from(fid),
            a1 = in(reg) a1,
            n = inout(reg) n.max(1) => _,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        )
    };
}

/// One call `fid(a1)` and its x0, as bare as [`hvc_loop`]'s: two `mov`, the HVC. For the
/// round-trip measures, whose doorbells would otherwise time the guest library's register
/// marshalling (zeroing and filling 18 registers: about 100 instructions a call) besides the
/// hypervisor's path.
#[inline(always)]
pub fn call(fid: u32, a1: u64) -> u64 {
    let x0: u64;
    // SAFETY: the round trips' calls (CHANNEL_NOTIFY) change nothing in our memory; x0..x17
    // are declared clobbered as SMCCC allows.
    unsafe {
        asm!(
            "mov x0, {fid}",
            "mov x1, {a1}",
            "hvc #0",
            fid = in(reg) u64::from(fid),
            a1 = in(reg) a1,
            out("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        )
    };
    x0
}

/// Loop instructions besides the HVC in [`hvc_loop_until`]: two `mov`, `subs`, `b.eq`, the
/// counter's `mrs`, `cmp`, `b.lo`.
pub const HVC_LOOP_UNTIL_OVERHEAD: u64 = 7;

/// Makes up to `n` (>= 1) calls `fid(a1)`, stopping early once the counter has reached
/// `deadline`: per call [`HVC_LOOP_UNTIL_OVERHEAD`] instructions plus its round trip. Returns
/// the calls left (0 when all `n` were made).
pub fn hvc_loop_until(fid: u32, a1: u64, n: u64, deadline: u64) -> u64 {
    let left: u64;
    // SAFETY: as in `hvc_loop` (ABI_VERSION changes nothing in our memory); x0..x17 are
    // declared clobbered as SMCCC allows.
    unsafe {
        asm!(
            "1: mov x0, {fid}",
            "mov x1, {a1}",
            "hvc #0",
            "subs {n}, {n}, #1",
            "b.eq 2f",
            "mrs {t}, cntvct_el0",
            "cmp {t}, {deadline}",
            "b.lo 1b",
            "2:",
            fid = in(reg) u64::from(fid),
            a1 = in(reg) a1,
            deadline = in(reg) deadline,
            n = inout(reg) n.max(1) => left,
            t = out(reg) _,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        )
    };
    left
}

/// Loop instructions besides the two HVCs in [`map_unmap_loop_until`]: seven `mov`, two
/// `cbnz`, `subs`, `b.eq`, the counter's `mrs`, `cmp`, `b.lo`.
pub const MAP_UNMAP_LOOP_UNTIL_OVERHEAD: u64 = 14;

/// Up to `n` (>= 1) pairs of `map` then `unmap` (`MEM_MAP` and `MEM_UNMAP` of the one page at
/// `ipa`, as `mem_map_1` and `mem_unmap_1` time them), stopping early once the counter has
/// reached `deadline`: per pair [`MAP_UNMAP_LOOP_UNTIL_OVERHEAD`] instructions plus the two
/// calls' round trips. Stops at the first call that fails. Returns the pairs left (0 when all
/// `n` were made) and the last call's x0 (non-zero: it failed).
pub fn map_unmap_loop_until(
    map: u32,
    unmap: u32,
    ipa: u64,
    perms: u64,
    n: u64,
    deadline: u64,
) -> (u64, u64) {
    let (left, x0): (u64, u64);
    // SAFETY: the caller maps a page nothing of ours lives in (a reserved IPA window) and
    // unmaps it again; x0..x17 are declared clobbered as SMCCC allows.
    unsafe {
        asm!(
            "1: mov x0, {map}",
            "mov x1, {ipa}",
            "mov x2, #1",
            "mov x3, {perms}",
            "hvc #0",
            "cbnz x0, 2f",
            "mov x0, {unmap}",
            "mov x1, {ipa}",
            "mov x2, #1",
            "hvc #0",
            "cbnz x0, 2f",
            "subs {n}, {n}, #1",
            "b.eq 2f",
            "mrs {t}, cntvct_el0",
            "cmp {t}, {deadline}",
            "b.lo 1b",
            "2:",
            map = in(reg) u64::from(map),
            unmap = in(reg) u64::from(unmap),
            ipa = in(reg) ipa,
            perms = in(reg) perms,
            deadline = in(reg) deadline,
            n = inout(reg) n.max(1) => left,
            t = out(reg) _,
            out("x0") x0, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        )
    };
    (left, x0)
}

/// Instructions inside [`timed_hvc`]'s window besides the HVC: one `mrs`, four `mov`, the
/// `isb` before the second `mrs`. [`timed_nop`] has the same window with a `nop` for the HVC,
/// so it measures `TIMED_WINDOW_OVERHEAD + 1`.
pub const TIMED_WINDOW_OVERHEAD: u64 = 6;

/// One call, timed by the counter read right around it: the ticks between the two reads and
/// the result x0, x1. See [`TIMED_WINDOW_OVERHEAD`].
pub fn timed_hvc(fid: u32, a1: u64, a2: u64, a3: u64) -> (u64, u64, u64) {
    let (t0, t1, x0, x1): (u64, u64, u64, u64);
    // SAFETY: the caller passes a call whose effect on our memory is what it intends (the
    // benchmarks map and unmap pages nothing of ours lives in); x0..x17 are declared clobbered.
    unsafe {
        asm!(
            "isb",
            "mrs {t0}, cntvct_el0",
            "mov x0, {fid}",
            "mov x1, {a1}",
            "mov x2, {a2}",
            "mov x3, {a3}",
            "hvc #0",
            "isb",
            "mrs {t1}, cntvct_el0",
            fid = in(reg) u64::from(fid),
            a1 = in(reg) a1,
            a2 = in(reg) a2,
            a3 = in(reg) a3,
            t0 = out(reg) t0,
            t1 = out(reg) t1,
            out("x0") x0, out("x1") x1, out("x2") _, out("x3") _, out("x4") _,
            out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _,
            out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _,
            out("x17") _,
            options(nostack),
        )
    };
    (t1.wrapping_sub(t0), x0, x1)
}

/// [`timed_hvc`]'s window with a `nop` in place of the HVC: the window's own cost.
pub fn timed_nop() -> u64 {
    let (t0, t1): (u64, u64);
    // SAFETY: register moves and counter reads only.
    unsafe {
        asm!(
            "isb",
            "mrs {t0}, cntvct_el0",
            "mov x0, {z}",
            "mov x1, {z}",
            "mov x2, {z}",
            "mov x3, {z}",
            "nop",
            "isb",
            "mrs {t1}, cntvct_el0",
            z = in(reg) 0u64,
            t0 = out(reg) t0,
            t1 = out(reg) t1,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _,
            options(nomem, nostack),
        )
    };
    t1.wrapping_sub(t0)
}

/// Longest [`pad`].
pub const PAD_MAX: u64 = 15;

/// Executes `3 + min(n, PAD_MAX)` instructions (a branch into a slide of `nop`s): shifts where
/// the next timed window starts relative to the counter's ticks (cortex-a72's counter ticks
/// once per 16 instructions), so per-call windows, padded by varying amounts, sample every
/// phase of a tick and average out instead of always rounding the same way.
pub fn pad(n: u64) {
    // SAFETY: the branch lands inside the slide below (n <= PAD_MAX < 16 nops back from its
    // end); register arithmetic only.
    unsafe {
        asm!(
            "adr {t}, 2f",
            "sub {t}, {t}, {n}, lsl #2",
            "br {t}",
            ".rept 16",
            "nop",
            ".endr",
            "2:",
            n = in(reg) n.min(PAD_MAX),
            t = out(reg) _,
            options(nomem, nostack),
        )
    };
}

/// The next pad length from a linear congruential sequence (deterministic run to run).
pub fn next_pad(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*seed >> 60) % (PAD_MAX + 1)
}
