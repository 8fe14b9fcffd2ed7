//! The generic timer's virtual counter.

use core::arch::asm;

/// CNTVCT_EL0: the virtual count.
pub fn ticks() -> u64 {
    let t: u64;
    // SAFETY: reading the virtual counter has no side effect (the ISB orders the read).
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
    t
}

/// CNTFRQ_EL0: ticks per second.
pub fn frequency() -> u64 {
    let f: u64;
    // SAFETY: reading the counter frequency has no side effect.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
    f
}
