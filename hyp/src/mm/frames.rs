//! The frame allocator over all free RAM, the owner of every frame, and the hyp heap.
//!
//! RAM is identity-mapped at EL2, so a frame's physical address is also where the hyp reads it.
//! Frames are zeroed when handed out and scrubbed when given back.

use super::PAGE_SIZE;
use super::owner::{Owner, OwnerMap};
use super::regions::Range;
use buddy_system_allocator::{FrameAllocator, LockedHeap};
use spin::Mutex;

struct Frames {
    free: FrameAllocator<40>,
    owners: Option<OwnerMap>,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames {
    free: FrameAllocator::new(),
    owners: None,
});

#[global_allocator]
static HEAP: LockedHeap<40> = LockedHeap::empty();

/// Heap for VM bookkeeping and the parsed manifest, on top of the owner map's 2 bytes a frame.
const HEAP_BASE_SIZE: u64 = 4 << 20;

/// Hands the free RAM to the allocator. The heap comes first (the allocator's bookkeeping and
/// the owner map live on it), sized for the owner map of all of `ram`.
pub fn init(free: &[Range], ram: Range) -> Result<(), &'static str> {
    let ram_frames = ram.len() / PAGE_SIZE;
    let heap_size = (HEAP_BASE_SIZE + ram_frames * 2).next_multiple_of(PAGE_SIZE);
    let heap = free
        .iter()
        .find(|r| r.len() >= heap_size)
        .ok_or("not enough RAM for the hyp heap")?;
    // SAFETY: the range is free RAM, identity-mapped, and from here on used only by the heap.
    unsafe { HEAP.lock().init(heap.start as usize, heap_size as usize) };
    let heap_end = heap.start + heap_size;
    let mut frames = FRAMES.lock();
    frames.owners = Some(OwnerMap::new(ram.start / PAGE_SIZE, ram_frames as usize));
    for r in free {
        let start = if r.start == heap.start {
            heap_end
        } else {
            r.start
        };
        if start < r.end {
            frames
                .free
                .add_frame((start / PAGE_SIZE) as usize, (r.end / PAGE_SIZE) as usize);
        }
    }
    Ok(())
}

/// A zeroed frame for `owner`, or None when RAM is exhausted.
pub fn alloc_zeroed(owner: Owner) -> Option<u64> {
    let mut frames = FRAMES.lock();
    let frame = frames.free.alloc(1)? as u64;
    if let Some(owners) = frames.owners.as_mut() {
        owners
            .transfer(frame, Owner::Free, owner)
            .expect("a free frame has no owner");
    }
    drop(frames);
    let pa = frame * PAGE_SIZE;
    zero(pa);
    Some(pa)
}

/// Scrubs and returns a frame; `owner` must own it (anything else is a hyp bug: it stops).
pub fn free(owner: Owner, pa: u64) {
    zero(pa);
    let frame = pa / PAGE_SIZE;
    let mut frames = FRAMES.lock();
    if let Some(owners) = frames.owners.as_mut() {
        owners
            .transfer(frame, owner, Owner::Free)
            .expect("frame freed by its owner");
    }
    frames.free.dealloc(frame as usize, 1);
}

/// The owner of the frame at `pa` (for the debug-build accounting check).
pub fn owner(pa: u64) -> Owner {
    FRAMES
        .lock()
        .owners
        .as_ref()
        .map_or(Owner::Hyp, |o| o.owner(pa / PAGE_SIZE))
}

/// How many frames `owner` holds (for the debug-build accounting check).
pub fn count(owner: Owner) -> usize {
    FRAMES.lock().owners.as_ref().map_or(0, |o| o.count(owner))
}

fn zero(pa: u64) {
    // SAFETY: the frame is identity-mapped RAM owned by the caller, not aliased by any live
    // Rust reference (guests' mappings are not Rust references).
    unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE_SIZE as usize) };
}
