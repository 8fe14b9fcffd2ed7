//! What generic code needs from the machine, as a trait: the real implementation is in
//! `aarch64::machine`, a recording fake in `fake` (host tests), like Hafnium's arch/fake.

use crate::mm::owner::Owner;

/// One step of TLB maintenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbOp {
    /// `DSB ISHST`: table writes are visible to every walker before what follows.
    DsbIshst,
    /// `TLBI IPAS2E1IS`: forget stage-2 entries for this IPA (current VMID, inner shareable).
    TlbiIpas2e1is { ipa: u64 },
    /// `DSB ISH`: earlier TLB maintenance has completed everywhere.
    DsbIsh,
    /// `TLBI VMALLE1IS`: forget stage-1 entries of the current VMID (they may cache combined
    /// stage-1+2 results for the IPA just changed).
    TlbiVmalle1is,
    /// `TLBI VMALLS12E1IS`: forget every stage-1 and stage-2 entry of the current VMID.
    TlbiVmalls12e1is,
    /// `ISB`.
    Isb,
}

/// The machine operations memory management uses.
pub trait Machine {
    /// A zeroed frame, now owned by `owner`, addressable by the hyp at its physical address.
    fn alloc_frame(owner: Owner) -> Option<u64>;
    /// Scrubs the frame at `pa` and returns it to the pool; `owner` must own it.
    fn free_frame(owner: Owner, pa: u64);
    /// How many more frames `alloc_frame` can hand out.
    fn frames_available() -> usize;
    /// Issues one TLB maintenance step.
    fn tlb(op: TlbOp);
    /// The VTTBR_EL2 in force.
    fn vttbr() -> u64;
    /// Makes `vttbr` the stage-2 context.
    fn set_vttbr(vttbr: u64);
}
