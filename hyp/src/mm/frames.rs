//! The frame allocator over all free RAM, the owner of every frame, and the hyp heap.
//!
//! RAM is identity-mapped at EL2, so a frame's physical address is also where the hyp reads it.
//! Frames are handed out zeroed and scrubbed when given back. Allocation is O(1), a few dozen
//! instructions: never-used RAM is handed out from the front of its ranges (nothing is touched
//! at boot), and given-back frames form a list threaded through their first word.

use super::PAGE_SIZE;
use super::owner::{Owner, OwnerMap};
use super::regions::{Range, RangeSet};
use crate::arch::aarch64::cpu::zero_page;
use buddy_system_allocator::LockedHeap;
use spin::Mutex;

/// The free RAM's fragments the allocator tracks.
pub const FRAGMENTS: usize = 64;

struct Frames {
    /// RAM never handed out yet.
    fresh: RangeSet<FRAGMENTS>,
    /// The first scrubbed frame given back (0: none); each holds the next one's address.
    returned: u64,
    /// How many frames the `returned` list holds.
    returned_count: u64,
    owners: Option<OwnerMap>,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    fresh: RangeSet::new(),
    returned: 0,
    returned_count: 0,
    owners: None,
});

#[global_allocator]
static HEAP: LockedHeap<40> = LockedHeap::empty();

/// Heap for VM bookkeeping and the parsed manifest, on top of the owner map's 2 bytes a frame.
const HEAP_BASE_SIZE: u64 = 4 << 20;

/// Hands the free RAM to the allocator. The heap comes first (the owner map lives on it),
/// sized for the owner map of all of `ram`.
pub fn init(mut free: RangeSet<FRAGMENTS>, ram: Range) -> Result<(), &'static str> {
    let ram_frames = ram.len() / PAGE_SIZE;
    // The buddy heap serves the owner map from a block of the next power of two, aligned to
    // its size: twice that much always holds one.
    let owner_map = (ram_frames * 2).next_power_of_two();
    let heap_size = (HEAP_BASE_SIZE + 2 * owner_map).next_multiple_of(PAGE_SIZE);
    let heap = free
        .take(heap_size)
        .ok_or("not enough RAM for the hyp heap")?;
    // SAFETY: the range is free RAM, identity-mapped, and from here on used only by the heap.
    unsafe { HEAP.lock().init(heap as usize, heap_size as usize) };
    let owners = OwnerMap::new(ram.start / PAGE_SIZE, ram_frames as usize);
    let mut frames = FRAMES.lock();
    frames.fresh = free;
    frames.owners = Some(owners);
    Ok(())
}

/// A zeroed frame for `owner`, or None when RAM is exhausted.
pub fn alloc_zeroed(owner: Owner) -> Option<u64> {
    let mut frames = FRAMES.lock();
    let (pa, scrubbed) = match frames.returned {
        0 => (frames.fresh.take_page()?, false),
        pa => {
            // SAFETY: a returned frame is free RAM, identity-mapped; its first word links on.
            frames.returned = unsafe { core::ptr::read(pa as *const u64) };
            frames.returned_count -= 1;
            (pa, true)
        }
    };
    if let Some(owners) = frames.owners.as_mut() {
        owners
            .transfer(pa / PAGE_SIZE, Owner::Free, owner)
            .expect("a free frame has no owner");
    }
    drop(frames);
    if scrubbed {
        // SAFETY: the frame is ours now; only its link word is not zero.
        unsafe { core::ptr::write(pa as *mut u64, 0) };
    } else {
        zero_page(pa);
    }
    Some(pa)
}

/// Scrubs and returns a frame; `owner` must own it (anything else is a hyp bug: it stops).
pub fn free(owner: Owner, pa: u64) {
    let mut frames = FRAMES.lock();
    // Ownership first: a frame freed by the wrong owner is still in use and must not be
    // scrubbed.
    if let Some(owners) = frames.owners.as_mut() {
        owners
            .transfer(pa / PAGE_SIZE, owner, Owner::Free)
            .expect("frame freed by its owner");
    }
    zero_page(pa);
    // SAFETY: the frame is free now and identity-mapped; its first word links to the next.
    unsafe { core::ptr::write(pa as *mut u64, frames.returned) };
    frames.returned = pa;
    frames.returned_count += 1;
}

/// How many frames can still be allocated.
pub fn available() -> usize {
    let frames = FRAMES.lock();
    (frames.fresh.total() / PAGE_SIZE + frames.returned_count) as usize
}

/// The owner of the frame at `pa` (for the accounting check).
pub fn owner(pa: u64) -> Owner {
    FRAMES
        .lock()
        .owners
        .as_ref()
        .map_or(Owner::Hyp, |o| o.owner(pa / PAGE_SIZE))
}

/// How many frames `owner` holds (for the accounting check).
pub fn count(owner: Owner) -> usize {
    FRAMES.lock().owners.as_ref().map_or(0, |o| o.count(owner))
}

/// Bytes of the hyp heap in use, as the buddy heap serves them (for the summary's leak check).
pub fn heap_in_use() -> usize {
    HEAP.lock().stats_alloc_actual()
}
