//! The EL2 physical timer (CNTHP): the hypervisor's scheduling tick. A guest that never
//! yields is interrupted when its slice ends, so no guest can starve another.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTHP_CTL_EL2, Readable, Writeable};
use core::arch::asm;

/// Slices per second.
const SLICES_PER_SECOND: u64 = 100;

/// Starts a fresh slice for the vCPU about to run.
pub fn arm_slice() {
    let ticks = CNTFRQ_EL0.get() / SLICES_PER_SECOND;
    // SAFETY: CNTHP_TVAL_EL2 only sets when the hyp's own timer fires.
    unsafe { asm!("msr cnthp_tval_el2, {}", in(reg) ticks, options(nomem, nostack)) };
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::SET + CNTHP_CTL_EL2::IMASK::CLEAR);
}

/// Stops the timer's interrupt until the next slice is armed.
pub fn disarm() {
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::CLEAR);
}
