//! The EL2 physical timer (CNTHP): the hypervisor's scheduling tick. A guest that never
//! yields is interrupted when its slice ends, so no guest can starve another.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTHP_CTL_EL2, CNTPCT_EL0, Readable, Writeable};
use core::arch::asm;

/// Slices per second.
const SLICES_PER_SECOND: u64 = 100;

/// A slice in counter ticks, set by [`init`] (every CPU's EL2 set-up, before its first slice):
/// CNTFRQ_EL0 never changes, and the division is not for every switch's path.
static SLICE_TICKS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Finds the slice's length in ticks.
pub fn init() {
    let ticks = (CNTFRQ_EL0.get() / SLICES_PER_SECOND).max(1);
    SLICE_TICKS.store(ticks, core::sync::atomic::Ordering::Relaxed);
}

/// Starts a fresh slice for the vCPU about to run.
#[inline(always)]
pub fn arm_slice() {
    let ticks = SLICE_TICKS.load(core::sync::atomic::Ordering::Relaxed);
    debug_assert_ne!(ticks, 0, "a slice armed before timer::init");
    // SAFETY: CNTHP_TVAL_EL2 only sets when the hyp's own timer fires.
    unsafe { asm!("msr cnthp_tval_el2, {}", in(reg) ticks, options(nomem, nostack)) };
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::SET + CNTHP_CTL_EL2::IMASK::CLEAR);
}

/// Stops the timer's interrupt until the next slice is armed.
pub fn disarm() {
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::CLEAR);
}

/// The physical count (guests' virtual count plus their CNTVOFF).
pub fn counter() -> u64 {
    CNTPCT_EL0.get()
}

/// Whether a guest's CNTV_CTL lets its timer interrupt: enabled and not masked.
pub fn is_armed(cntv_ctl: u64) -> bool {
    cntv_ctl & 0b11 == 0b01
}

/// Idles the CPU until `deadline` (a physical count) or one slice from now, whichever is
/// first, or until another interrupt: the hyp's timer is set, then WFI.
pub fn wait_until(deadline: Option<u64>) {
    let slice_end = counter() + CNTFRQ_EL0.get() / SLICES_PER_SECOND;
    let wake = deadline.map_or(slice_end, |d| d.min(slice_end));
    // SAFETY: CNTHP_CVAL_EL2 only sets when the hyp's own timer fires.
    unsafe { asm!("msr cnthp_cval_el2, {}", in(reg) wake, options(nomem, nostack)) };
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::SET + CNTHP_CTL_EL2::IMASK::CLEAR);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    aarch64_cpu::asm::wfi();
}
