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

/// Arms this vCPU's virtual timer for the counter value `deadline` (ENABLE = 1, IMASK = 0).
pub fn arm(deadline: u64) {
    // SAFETY: the virtual timer is this VM's own.
    unsafe {
        asm!("msr cntv_cval_el0, {}", "msr cntv_ctl_el0, {}", "isb",
             in(reg) deadline, in(reg) 1u64, options(nomem, nostack))
    };
}

/// Disarms this vCPU's virtual timer.
pub fn disarm() {
    // SAFETY: as in `arm`.
    unsafe { asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
}
