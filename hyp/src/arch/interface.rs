//! What generic code needs from the machine, as a trait: frames by owner, and the TLB and
//! cache maintenance instructions. A recording fake is in `fake` (host tests), like Hafnium's
//! arch/fake. The real implementation joins two layers, so it lives in the upper one: `mm`
//! implements it for the real CPU (`mm::frames`) from its frame pool and `aarch64::machine`'s
//! instructions. So `arch` imports nothing of `mm`, and `mm` uses `arch` (below it) only for
//! this trait and the instructions; the `Owner` type both name is a leaf (`crate::owner`).

use crate::owner::Owner;

/// One step of TLB maintenance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbOp {
    /// `DSB ISHST`: table writes are visible to every walker before what follows.
    DsbIshst,
    /// `TLBI IPAS2E1IS`: forget stage-2 entries for this IPA at every level, table entries
    /// (walk caches) included (current VMID, inner shareable).
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

/// One cache maintenance operation on a whole 4 KiB frame (identity-mapped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOp {
    /// Zero the frame (`DC ZVA` by block, where allowed).
    Zero { pa: u64 },
    /// Clean and invalidate the frame to the point of coherency (`DC CIVAC` by line, then
    /// `DSB ISH`): DRAM holds what the caches hold, for an observer that bypasses them (a
    /// guest mapping the frame non-cacheable at stage 1).
    CleanToPoc { pa: u64 },
    /// Make the frame coherent for instruction fetch: `DC CVAU` by line, `DSB ISH`,
    /// `IC IVAU` by line, `DSB ISH`, `ISB` (line sizes from CTR_EL0).
    SyncForExecution { pa: u64 },
    /// `IC IALLUIS`, `DSB ISH`, `ISB`: forget every instruction cache line (inner
    /// shareable), for frames already clean to the point of coherency (as the pool hands
    /// them out) about to be mapped executable in bulk.
    InvalidateInstructionCache,
}

/// The machine operations memory management uses.
pub trait Machine {
    /// A zeroed frame, now owned by `owner`, addressable by the hyp at its physical address;
    /// None when no frame is left beyond those reserved.
    fn alloc_frame(owner: Owner) -> Option<u64>;
    /// Up to `out.len()` frames as `alloc_frame` gives them, in one go; how many were written
    /// to the front of `out`.
    fn alloc_frames(owner: Owner, out: &mut [u64]) -> usize;
    /// Takes back frames `alloc_frames` gave `owner` and nobody ever used (mapped nowhere,
    /// still zeroed): no scrub.
    fn return_unused_frames(owner: Owner, frames: &[u64]);
    /// As `alloc_frame`, taking one of the frames `reserve_frames` set aside.
    fn alloc_reserved_frame(owner: Owner) -> Option<u64>;
    /// Sets `count` frames aside for later `alloc_reserved_frame`s; false (nothing set aside)
    /// when fewer are available.
    fn reserve_frames(count: usize) -> bool;
    /// Gives back `count` reserved frames that will not be allocated.
    fn release_frames(count: usize);
    /// Scrubs the frame at `pa` and returns it to the pool; `owner` must own it.
    fn free_frame(owner: Owner, pa: u64);
    /// How many more frames `alloc_frame` can hand out (those reserved excluded).
    fn frames_available() -> usize;
    /// Issues one TLB maintenance step.
    fn tlb(op: TlbOp);
    /// Issues one cache maintenance operation.
    fn cache(op: CacheOp);
    /// The VTTBR_EL2 in force.
    fn vttbr() -> u64;
    /// Makes `vttbr` the stage-2 context.
    fn set_vttbr(vttbr: u64);
}
