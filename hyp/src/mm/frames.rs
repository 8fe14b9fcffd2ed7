//! The frame allocator over all free RAM, and the hyp heap carved from it.
//!
//! RAM is identity-mapped at EL2, so a frame's physical address is also where the hyp reads it.

use super::PAGE_SIZE;
use super::regions::Range;
use buddy_system_allocator::{FrameAllocator, LockedHeap};
use spin::Mutex;

static FRAMES: Mutex<FrameAllocator<40>> = Mutex::new(FrameAllocator::new());

#[global_allocator]
static HEAP: LockedHeap<40> = LockedHeap::empty();

/// Bytes of RAM given to the hyp's own heap (VM bookkeeping, parsed manifest).
pub const HEAP_SIZE: u64 = 4 << 20;

/// Hands the free RAM to the allocator, keeping `HEAP_SIZE` of it for the heap. The heap
/// comes first: the frame allocator's own bookkeeping lives on it.
pub fn init(free: &[Range]) -> Result<(), &'static str> {
    let heap = free
        .iter()
        .find(|r| r.len() >= HEAP_SIZE)
        .ok_or("not enough RAM for the hyp heap")?;
    // SAFETY: the range is free RAM, identity-mapped, and from here on used only by the heap.
    unsafe { HEAP.lock().init(heap.start as usize, HEAP_SIZE as usize) };
    let heap_end = heap.start + HEAP_SIZE;
    let mut frames = FRAMES.lock();
    for r in free {
        let start = if r.start == heap.start {
            heap_end
        } else {
            r.start
        };
        if start < r.end {
            frames.add_frame((start / PAGE_SIZE) as usize, (r.end / PAGE_SIZE) as usize);
        }
    }
    Ok(())
}

/// A zeroed, page-aligned run of `pages` frames, or None when RAM is exhausted.
pub fn alloc_zeroed(pages: usize) -> Option<u64> {
    let first = FRAMES.lock().alloc(pages)?;
    let pa = first as u64 * PAGE_SIZE;
    // SAFETY: the frames are ours alone now and identity-mapped writable.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, pages * PAGE_SIZE as usize) };
    Some(pa)
}

/// Scrubs and returns frames got from `alloc_zeroed`.
pub fn free(pa: u64, pages: usize) {
    // SAFETY: the caller owned these frames and gives them up; nothing else maps them at EL2
    // other than the identity map, and no guest maps them any more.
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, pages * PAGE_SIZE as usize) };
    FRAMES.lock().dealloc((pa / PAGE_SIZE) as usize, pages);
}
