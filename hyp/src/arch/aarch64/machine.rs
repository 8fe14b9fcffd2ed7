//! The real `Machine`: frames from the frame allocator, TLB and cache maintenance
//! instructions.

use super::{cache, cpu};
use crate::arch::{CacheOp, Machine, TlbOp};
use crate::mm::frames;
use crate::mm::owner::Owner;
use aarch64_cpu::registers::{Readable, VTTBR_EL2, Writeable};
use core::arch::asm;

/// This CPU.
pub struct Aarch64;

impl Machine for Aarch64 {
    fn alloc_frame(owner: Owner) -> Option<u64> {
        frames::alloc_zeroed(owner, false)
    }

    fn alloc_reserved_frame(owner: Owner) -> Option<u64> {
        frames::alloc_zeroed(owner, true)
    }

    fn reserve_frames(count: usize) -> bool {
        frames::reserve(count)
    }

    fn release_frames(count: usize) {
        frames::release(count);
    }

    fn free_frame(owner: Owner, pa: u64) {
        frames::free(owner, pa);
    }

    fn frames_available() -> usize {
        frames::available()
    }

    fn tlb(op: TlbOp) {
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

    fn cache(op: CacheOp) {
        match op {
            CacheOp::Zero { pa } => cpu::zero_page(pa),
            CacheOp::CleanToPoc { pa } => cache::clean_to_poc(pa),
            CacheOp::SyncForExecution { pa } => cache::sync_for_execution(pa),
        }
    }

    fn vttbr() -> u64 {
        VTTBR_EL2.get()
    }

    fn set_vttbr(vttbr: u64) {
        VTTBR_EL2.set(vttbr);
        Self::tlb(TlbOp::Isb);
    }
}
