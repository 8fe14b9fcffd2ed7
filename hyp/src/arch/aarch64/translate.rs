//! What crash reports read: a guest's virtual addresses through the guest's own translation,
//! stage 1 and stage 2, while its EL1 state and its VTTBR_EL2 are loaded on this CPU (the
//! hardware walks the tables; a fault on the way is reported in PAR_EL1, never taken), and the
//! hyp's own stacks.

use crate::addr::PhysAddr;
use core::arch::asm;

/// PAR_EL1.F: the translation failed.
const PAR_FAILED: u64 = 1;
/// PAR_EL1.PA (bits 51:12) of a successful translation.
const PAR_PA: u64 = 0x000f_ffff_ffff_f000;
const PAGE_OFFSET: u64 = 0xfff;

/// The physical address the loaded guest's EL1 would read at `va` (AT S12E1R), if it may.
/// PAR_EL1 is the guest's register: it is restored before returning.
pub fn guest_read_pa(va: u64) -> Option<PhysAddr> {
    let par: u64;
    // SAFETY: AT S12E1R at EL2 only writes PAR_EL1 (faults of the walk land there too, with
    // stage 2 and stage 1 both the loaded guest's); the guest's PAR_EL1 is saved and put back.
    unsafe {
        asm!(
            "mrs {saved}, par_el1",
            "at s12e1r, {va}",
            "isb",
            "mrs {par}, par_el1",
            "msr par_el1, {saved}",
            va = in(reg) va,
            saved = out(reg) _,
            par = out(reg) par,
            options(nostack, preserves_flags),
        )
    };
    if par & PAR_FAILED != 0 {
        return None;
    }
    Some(PhysAddr::new((par & PAR_PA) | (va & PAGE_OFFSET)))
}

/// SP_EL0 and SP_EL1 of the guest loaded on this CPU.
pub fn guest_stack_pointers() -> (u64, u64) {
    let (sp_el0, sp_el1): (u64, u64);
    // SAFETY: reading the EL1/EL0 stack pointers at EL2 has no side effect.
    unsafe {
        asm!(
            "mrs {0}, sp_el0",
            "mrs {1}, sp_el1",
            out(reg) sp_el0,
            out(reg) sp_el1,
            options(nomem, nostack, preserves_flags),
        )
    };
    (sp_el0, sp_el1)
}

/// The word at `va` if it lies in a mapped part of the EL2 stacks, not a guard (for the hyp's own backtrace: a frame
/// pointer gone wrong must not fault the crash report), else None.
pub fn read_hyp_stack_word(va: u64) -> Option<u64> {
    if !crate::percpu::in_stack(va, 8) || !va.is_multiple_of(8) {
        return None;
    }
    // SAFETY: `va` is an aligned word inside a mapped part of the static EL2 stacks; a stack
    // another CPU writes meanwhile gives a stale word, which the walk's checks bound.
    Some(unsafe { (va as *const u64).read_volatile() })
}

/// This function's caller's frame pointer (x29), where a walk of the hyp's frames starts.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let fp: u64;
    // SAFETY: reading x29 has no side effect.
    unsafe { asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags)) };
    fp
}
