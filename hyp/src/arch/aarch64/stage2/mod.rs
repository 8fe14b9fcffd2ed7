//! Stage 2 on AArch64: the translation regime's shape (IPA size, start level), VTCR_EL2, a
//! VM's VTTBR_EL2, the table format and its walks (`table`), and the TLB maintenance
//! sequences.
//!
//! The layers: this module knows the architecture's rules (descriptor bits, how a walk goes,
//! which maintenance a change needs) and nothing of policy; `vm::mem` decides what is
//! mapped (quota, ownership, pins, all-or-nothing) and gives the table frames it allocated.
//! Nothing here imports `vm` or `mm`: the tables'
//! frames come from the caller, the maintenance instructions through the `Machine` trait.

pub mod table;

use crate::addr::{Ipa, PAGE_SIZE};
use crate::arch::{Machine, TlbOp};

/// Stage-2 input size: 39-bit IPAs, starting at level 1 (T0SZ = 25, SL0 = 1), valid on every
/// CPU we support (a level-0 start is not on CPUs with 40-bit PAs such as cortex-a53).
pub const IPA_BITS: u32 = 39;
/// The level the stage-2 walk starts at.
pub const ROOT_LEVEL: usize = 1;
/// The first IPA beyond a guest's address space.
pub const IPA_LIMIT: u64 = 1 << IPA_BITS;

/// The TLB maintenance after removing or changing the entries of `pages` pages from `ipa`
/// (or unhooking the table that maps them), to run with the VM's VMID loaded: `DSB ISHST`
/// (the writes reach the walkers), `TLBI IPAS2E1IS` per page (the non-leaf form also drops
/// walk caches), `DSB ISH`, `TLBI VMALLE1IS` (combined stage-1+2 entries may cache the old
/// translation), `DSB ISH`, `ISB`. A new entry where none was valid needs none of this: an
/// invalid entry is never held in a TLB (the Arm ARM: an entry that gives a Translation
/// fault is not cached), so `DSB ISHST` alone publishes it, and no `ISB` is needed: the hyp
/// does not translate through stage 2 itself, and the `ERET` back to the guest synchronizes
/// its context.
pub fn invalidate<M: Machine>(ipa: Ipa, pages: u64) {
    M::tlb(TlbOp::DsbIshst);
    for i in 0..pages {
        M::tlb(TlbOp::TlbiIpas2e1is {
            ipa: ipa.get() + i * PAGE_SIZE,
        });
    }
    M::tlb(TlbOp::DsbIsh);
    M::tlb(TlbOp::TlbiVmalle1is);
    M::tlb(TlbOp::DsbIsh);
    M::tlb(TlbOp::Isb);
}

/// Forgets every stage-1 and stage-2 translation of the VMID loaded.
pub fn invalidate_all<M: Machine>() {
    for op in [
        TlbOp::DsbIshst,
        TlbOp::TlbiVmalls12e1is,
        TlbOp::DsbIsh,
        TlbOp::Isb,
    ] {
        M::tlb(op);
    }
}

/// Sets this CPU's stage-2 translation control, shared by all VMs.
#[cfg(target_os = "none")]
pub fn init_vtcr() {
    use aarch64_cpu::asm::barrier;
    use aarch64_cpu::registers::*;
    VTCR_EL2.write(
        VTCR_EL2::RES1::SET
            + VTCR_EL2::PS.val(super::cpu::pa_range_capped())
            + VTCR_EL2::TG0::Granule4KB
            + VTCR_EL2::SH0::Inner
            + VTCR_EL2::ORGN0::NormalWBRAWA
            + VTCR_EL2::IRGN0::NormalWBRAWA
            + VTCR_EL2::SL0.val(match ROOT_LEVEL {
                1 => 1,
                _ => 0,
            })
            + VTCR_EL2::T0SZ.val(64 - u64::from(IPA_BITS)),
    );
    barrier::isb(barrier::SY);
}

/// Makes `vttbr` the current stage-2 context.
#[cfg(target_os = "none")]
pub fn load(vttbr: u64) {
    use aarch64_cpu::asm::barrier;
    use aarch64_cpu::registers::{VTTBR_EL2, Writeable};
    VTTBR_EL2.set(vttbr);
    barrier::isb(barrier::SY);
}

/// Forgets every stage-1 and stage-2 translation of the VM whose VTTBR is `vttbr` (before a
/// VMID is reused, or after its tables were replaced); leaves that VTTBR loaded.
#[cfg(target_os = "none")]
pub fn flush_vm(vttbr: u64) {
    load(vttbr);
    invalidate_all::<crate::arch::Cpu>();
}
