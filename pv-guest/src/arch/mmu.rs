//! Turning on the EL1 stage-1 MMU, and the cache maintenance that writing code needs.
//!
//! Under pvhyp a guest starts with stage 1 off and memory behaving as Normal cacheable
//! (HCR_EL2.DC); the hypervisor traps the writes below (HCR_EL2.TVM) and, on the SCTLR_EL1
//! write that sets M, lets this vCPU's own translation take over.

#[cfg(target_os = "none")]
use core::arch::asm;

/// TCR_EL1.T0SZ: a 39-bit VA space (64 - 25), walked from level 1.
const TCR_T0SZ_39_BITS: u64 = 25;
/// TCR_EL1.IRGN0 = ORGN0 = 0b01: table walks are write-back read/write-allocate cacheable.
const TCR_IRGN0_WBWA: u64 = 0b01 << 8;
const TCR_ORGN0_WBWA: u64 = 0b01 << 10;
/// TCR_EL1.SH0 = 0b11: inner shareable.
const TCR_SH0_INNER: u64 = 0b11 << 12;
/// TCR_EL1.TG0 = 0b00: 4 KiB granule.
const TCR_TG0_4K: u64 = 0b00 << 14;
/// TCR_EL1.T1SZ: unused (EPD1), but kept in range.
const TCR_T1SZ: u64 = 25 << 16;
/// TCR_EL1.EPD1: no walks through TTBR1_EL1.
const TCR_EPD1: u64 = 1 << 23;
/// TCR_EL1.TG1 = 0b10: 4 KiB granule.
const TCR_TG1_4K: u64 = 0b10 << 30;
/// TCR_EL1.IPS: bits 34:32.
const TCR_IPS_SHIFT: u32 = 32;
/// The largest IPS without 52-bit descriptors: 0b101, 48 bits.
const IPS_48_BITS: u64 = 0b101;

/// SCTLR_EL1.M: stage-1 translation on.
const SCTLR_M: u64 = 1 << 0;
/// SCTLR_EL1.C: data accesses cacheable.
const SCTLR_C: u64 = 1 << 2;
/// SCTLR_EL1.I: instruction fetches cacheable.
const SCTLR_I: u64 = 1 << 12;
/// SCTLR_EL1.WXN: writable implies execute-never. Its reset value is UNKNOWN; pv-guest clears
/// it, since its map never makes code writable (only the attack program does, on purpose).
const SCTLR_WXN: u64 = 1 << 19;

/// The TCR_EL1 value for a physical address range field (ID_AA64MMFR0_EL1.PARange).
pub fn tcr(pa_range: u64) -> u64 {
    TCR_T0SZ_39_BITS
        | TCR_IRGN0_WBWA
        | TCR_ORGN0_WBWA
        | TCR_SH0_INNER
        | TCR_TG0_4K
        | TCR_T1SZ
        | TCR_EPD1
        | TCR_TG1_4K
        | pa_range.min(IPS_48_BITS) << TCR_IPS_SHIFT
}

/// Programs MAIR_EL1, TCR_EL1 and TTBR0_EL1 = `root`, then sets SCTLR_EL1.{M,C,I} (and
/// clears WXN), keeping its other bits.
#[cfg(target_os = "none")]
pub fn enable(mair: u64, root: u64) {
    let mmfr0: u64;
    // SAFETY: reading an ID register has no side effect.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
    let tcr = tcr(mmfr0 & 0xf);
    // SAFETY: `root` is a complete identity map of everything this code touches (the caller
    // built it: the image with its permissions, the stack, the tables, the boot-info page), so
    // execution and every pointer carry on unchanged once translation starts. The barriers make
    // the table writes visible to the walker and drop any stale translation first.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {root}",
            "dsb ishst",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "mrs {tmp}, sctlr_el1",
            "orr {tmp}, {tmp}, {bits}",
            "bic {tmp}, {tmp}, {wxn}",
            "msr sctlr_el1, {tmp}",
            "isb",
            mair = in(reg) mair,
            tcr = in(reg) tcr,
            root = in(reg) root,
            bits = in(reg) SCTLR_M | SCTLR_C | SCTLR_I,
            wxn = in(reg) SCTLR_WXN,
            tmp = out(reg) _,
            options(nostack)
        );
    }
}

/// Whether SCTLR_EL1.M is set.
#[cfg(target_os = "none")]
pub fn is_enabled() -> bool {
    let sctlr: u64;
    // SAFETY: reading SCTLR_EL1 has no side effect.
    unsafe { asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack)) };
    sctlr & SCTLR_M != 0
}

/// Makes instructions just written at `va` visible to instruction fetch.
#[cfg(target_os = "none")]
pub fn sync_icache(va: u64) {
    // SAFETY: cache maintenance by VA on a mapped line; no architectural state but the caches
    // changes.
    unsafe {
        asm!(
            "dc cvau, {va}",
            "dsb ish",
            "ic ivau, {va}",
            "dsb ish",
            "isb",
            va = in(reg) va,
            options(nostack)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcr_fields() {
        let t = tcr(0b010); // 40-bit PAs (Cortex-A53)
        assert_eq!(t & 0x3f, 25);
        assert_eq!((t >> 8) & 0xff, 0b0011_0101); // IRGN0, ORGN0 WBWA; SH0 inner; TG0 4K
        assert_eq!((t >> 23) & 1, 1);
        assert_eq!((t >> 32) & 0b111, 0b010);
        assert_eq!((tcr(0b110) >> 32) & 0b111, IPS_48_BITS);
    }
}
