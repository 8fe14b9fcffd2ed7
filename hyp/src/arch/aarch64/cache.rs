//! Data and instruction cache maintenance on whole frames, by line (line sizes from CTR_EL0).
//!
//! FEAT_S2FWB (`HCR_EL2.FWB`, stage-2 MemAttr 0b0110 "forced write-back") would let stage 2
//! force guests' accesses cacheable and make the clean to the point of coherency unnecessary;
//! it is not implemented (only `-cpu max` has it in our matrix), and under FWB the MemAttr we
//! use today would mean "keep stage 1's attribute".

use crate::addr::PAGE_SIZE;
use core::arch::asm;

const FRAME: u64 = PAGE_SIZE;

/// CTR_EL0: the cache type (line sizes, IDC, DIC).
fn ctr() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    ctr
}

/// The smallest data cache line, in bytes (CTR_EL0.DminLine: log2 of 4-byte words).
fn dcache_line() -> u64 {
    4 << ((ctr() >> 16) & 0xf)
}

/// The smallest instruction cache line, in bytes (CTR_EL0.IminLine).
fn icache_line() -> u64 {
    4 << (ctr() & 0xf)
}

/// Cleans and invalidates the frame at `pa` to the point of coherency, then waits for it.
pub fn clean_to_poc(pa: u64) {
    let line = dcache_line();
    let mut at = pa;
    // Four lines a step where a frame holds a whole number of steps (lines up to 1 KiB): this
    // runs on every frame freed.
    if 4 * line <= FRAME {
        while at < pa + FRAME {
            // SAFETY: DC CIVAC writes dirty lines back and drops them; it changes no memory
            // value. The four lines are inside the frame.
            unsafe {
                asm!(
                    "dc civac, {a}",
                    "add {a}, {a}, {l}",
                    "dc civac, {a}",
                    "add {a}, {a}, {l}",
                    "dc civac, {a}",
                    "add {a}, {a}, {l}",
                    "dc civac, {a}",
                    "add {a}, {a}, {l}",
                    a = inout(reg) at,
                    l = in(reg) line,
                    options(nostack, preserves_flags)
                )
            };
        }
    }
    while at < pa + FRAME {
        // SAFETY: as above, one line.
        unsafe { asm!("dc civac, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += line;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// Makes the frame at `pa` coherent for instruction fetch, as the architecture requires
/// after writing instructions: clean the data cache to the point of unification, invalidate
/// the instruction cache, by line, each completed by `DSB ISH`, then `ISB`.
pub fn sync_for_execution(pa: u64) {
    let dline = dcache_line();
    let mut at = pa;
    while at < pa + FRAME {
        // SAFETY: DC CVAU writes dirty lines back to the point of unification only.
        unsafe { asm!("dc cvau, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += dline;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
    let iline = icache_line();
    let mut at = pa;
    while at < pa + FRAME {
        // SAFETY: IC IVAU drops instruction cache lines of this (identity-mapped) address, in
        // the inner shareable domain; it changes no memory.
        unsafe { asm!("ic ivau, {}", in(reg) at, options(nostack, preserves_flags)) };
        at += iline;
    }
    // SAFETY: barriers.
    unsafe { asm!("dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// Invalidates every instruction cache line to the point of unification, inner shareable, and
/// waits for it: after it no stale instruction of any frame whose data reached the point of
/// coherency can be fetched.
pub fn invalidate_instruction_cache() {
    // SAFETY: IC IALLUIS drops instruction cache lines only; it changes no memory. Barriers.
    unsafe {
        asm!(
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}
