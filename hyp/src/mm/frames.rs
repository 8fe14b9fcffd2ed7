//! The frame allocator over all free RAM (the logic is `pool`'s), and the hyp heap.
//!
//! RAM is identity-mapped at EL2, so a frame's physical address is also where the hyp reads it.
//! Frames are handed out zeroed and scrubbed when given back. Allocation is O(1), a few dozen
//! instructions.

use super::owner::Owner;
pub use super::pool::FRAGMENTS;
use super::pool::{Pool, heap_blocks};
use super::regions::{Range, RangeSet};
use crate::addr::{PAGE_SIZE, PhysAddr};
use crate::arch::aarch64::machine::Aarch64;
use crate::arch::{CacheOp, Cpu, Machine, TlbOp};
use buddy_system_allocator::LockedHeap;
use spin::Mutex;

/// Set once by [`init`]. A `Once`, all zeros until then, so .bss: as an `Option` the pool's
/// `None` (a niche, not zero) put 1.1 KiB of .data in the Image.
static FRAMES: spin::Once<Mutex<Pool<Cpu>>> = spin::Once::new();

#[global_allocator]
static HEAP: LockedHeap<40> = LockedHeap::empty();

/// Heap for VM bookkeeping and the parsed manifest, on top of what the pool itself needs.
const HEAP_BASE_SIZE: u64 = 4 << 20;

/// Hands the free RAM to the allocator. The heap comes first (the pool's owner map and free
/// stack live on it), sized for all of `ram`; everything of `ram` not left in `free` is
/// recorded as the hyp's.
pub fn init(mut free: RangeSet<FRAGMENTS>, ram: Range) -> Result<(), &'static str> {
    let ram_frames = ram.len() / PAGE_SIZE;
    // The buddy heap serves each of the pool's arrays from a block of the next power of two,
    // aligned to its size: twice that much always holds one.
    let pool: u64 = heap_blocks(ram_frames)
        .iter()
        .map(|b| 2 * b.next_power_of_two())
        .sum();
    let heap_size = (HEAP_BASE_SIZE + pool).next_multiple_of(PAGE_SIZE);
    if FRAMES.is_completed() {
        return Err("the frame allocator is set up twice");
    }
    let heap = free
        .take(heap_size)
        .ok_or("not enough RAM for the hyp heap")?;
    // SAFETY: the range is free RAM, identity-mapped, and from here on used only by the heap.
    unsafe { HEAP.lock().init(heap as usize, heap_size as usize) };
    let pool = Pool::new(free, ram)?;
    FRAMES.call_once(|| Mutex::new(pool));
    Ok(())
}

#[inline(always)]
fn with<T>(default: T, f: impl FnOnce(&mut Pool<Cpu>) -> T) -> T {
    FRAMES.get().map_or(default, |frames| f(&mut frames.lock()))
}

/// A zeroed frame for `owner`, or None. Its own function, with the pool's hot path inline:
/// a guest's one-page map runs it every time.
#[inline(never)]
fn alloc_zeroed(owner: Owner) -> Option<u64> {
    with(None, |p| p.alloc(owner, false))
}

/// Up to `out.len()` zeroed frames for `owner`, in one round trip of the lock; how many.
#[inline(never)]
fn alloc_zeroed_many(owner: Owner, out: &mut [u64]) -> usize {
    with(0, |p| p.alloc_many(owner, out))
}

/// As `alloc_zeroed`, one of the frames set aside by `reserve`.
#[inline(never)]
fn alloc_reserved(owner: Owner) -> Option<u64> {
    with(None, |p| p.alloc(owner, true))
}

/// Sets `count` frames aside; false when fewer are available.
pub fn reserve(count: usize) -> bool {
    with(false, |p| p.reserve(count))
}

/// Gives back reserved frames.
pub fn release(count: usize) {
    with((), |p| p.release(count))
}

/// Scrubs and returns a frame; `owner` must own it (else it is logged and never reused).
pub fn free(owner: Owner, pa: u64) {
    with((), |p| p.free(owner, pa))
}

/// How many frames can still be allocated without a reservation.
pub fn available() -> usize {
    with(0, |p| p.available())
}

/// The owner of the frame at `pa` (for the accounting check).
pub fn owner(pa: PhysAddr) -> Owner {
    with(Owner::Hyp, |p| p.owner(pa.get()))
}

/// How many frames `owner` holds (for the accounting check).
pub fn count(owner: Owner) -> usize {
    with(0, |p| p.count(owner))
}

/// Bytes of the hyp heap in use, as the buddy heap serves them (for the summary's leak check).
pub fn heap_in_use() -> usize {
    HEAP.lock().stats_alloc_actual()
}

/// The real machine: frames from this pool, maintenance from the CPU's instructions.
impl Machine for Aarch64 {
    fn alloc_frame(owner: Owner) -> Option<u64> {
        alloc_zeroed(owner)
    }

    fn alloc_reserved_frame(owner: Owner) -> Option<u64> {
        alloc_reserved(owner)
    }

    fn alloc_frames(owner: Owner, out: &mut [u64]) -> usize {
        alloc_zeroed_many(owner, out)
    }

    fn return_unused_frames(owner: Owner, frames: &[u64]) {
        with((), |p| p.take_back_unused(owner, frames))
    }

    fn reserve_frames(count: usize) -> bool {
        reserve(count)
    }

    fn release_frames(count: usize) {
        release(count);
    }

    fn free_frame(owner: Owner, pa: u64) {
        free(owner, pa);
    }

    fn frames_available() -> usize {
        available()
    }

    fn tlb(op: TlbOp) {
        Aarch64::tlb(op);
    }

    fn cache(op: CacheOp) {
        Aarch64::cache(op);
    }

    fn vttbr() -> u64 {
        Aarch64::vttbr()
    }

    fn set_vttbr(vttbr: u64) {
        Aarch64::set_vttbr(vttbr);
    }
}
