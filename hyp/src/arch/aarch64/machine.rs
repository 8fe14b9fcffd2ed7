//! This CPU's maintenance instructions: TLB, cache, the stage-2 context. The `Machine` trait
//! over them and the frame pool is implemented in `mm::frames` (see `arch::interface`).

use super::{cache, cpu};
use crate::arch::{CacheOp, TlbOp};
use aarch64_cpu::registers::{Readable, VTTBR_EL2, Writeable};
use core::arch::asm;

/// This CPU.
pub struct Aarch64;

impl Aarch64 {
    /// Issues one TLB maintenance step.
    pub fn tlb(op: TlbOp) {
        // SAFETY: barriers and TLB invalidation change no memory and no state Rust relies on;
        // invalidating more translations than needed only costs time.
        unsafe {
            match op {
                TlbOp::DsbIshst => asm!("dsb ishst", options(nostack, preserves_flags)),
                TlbOp::TlbiIpas2e1is { ipa } => {
                    asm!("tlbi ipas2e1is, {}", in(reg) ipa >> 12, options(nostack, preserves_flags))
                }
                TlbOp::DsbIsh => asm!("dsb ish", options(nostack, preserves_flags)),
                TlbOp::TlbiVmalle1is => asm!("tlbi vmalle1is", options(nostack, preserves_flags)),
                TlbOp::TlbiVmalls12e1is => {
                    asm!("tlbi vmalls12e1is", options(nostack, preserves_flags))
                }
                TlbOp::Isb => asm!("isb", options(nostack, preserves_flags)),
            }
        }
    }

    /// Issues one cache maintenance operation.
    pub fn cache(op: CacheOp) {
        match op {
            CacheOp::Zero { pa } => cpu::zero_page(pa),
            CacheOp::CleanToPoc { pa } => cache::clean_to_poc(pa),
            CacheOp::SyncForExecution { pa } => cache::sync_for_execution(pa),
            CacheOp::InvalidateInstructionCache => cache::invalidate_instruction_cache(),
        }
    }

    /// The VTTBR_EL2 in force.
    pub fn vttbr() -> u64 {
        VTTBR_EL2.get()
    }

    /// Makes `vttbr` the stage-2 context.
    pub fn set_vttbr(vttbr: u64) {
        VTTBR_EL2.set(vttbr);
        Self::tlb(TlbOp::Isb);
    }
}
