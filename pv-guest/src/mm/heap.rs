//! The heap: a buddy allocator (`buddy_system_allocator`) that starts empty and, when it runs
//! out, maps another naturally aligned chunk with `mem.map` at the next heap IPA.

use super::layout::{HEAP_BASE, HEAP_END};

/// The smallest chunk the heap grows by.
pub const CHUNK: u64 = 64 * 1024;
/// Buddy orders: blocks up to 2^(ORDER-1) bytes.
pub const ORDER: usize = 32;

/// Where the next chunk goes for an allocation of `size` bytes aligned to `align`: a chunk of
/// a power-of-two size, at least [`CHUNK`], aligned to its size at or above `next` (so the
/// buddy allocator sees it as one free block). `None` past the heap window.
pub fn next_chunk(next: u64, size: usize, align: usize) -> Option<(u64, u64)> {
    let bytes = (size as u64)
        .checked_next_power_of_two()?
        .max(align as u64)
        .max(CHUNK);
    if bytes > 1 << (ORDER - 1) {
        return None;
    }
    let start = next.checked_next_multiple_of(bytes)?;
    (start >= HEAP_BASE && start.checked_add(bytes)? <= HEAP_END).then_some((start, bytes))
}

#[cfg(target_os = "none")]
mod target {
    use super::*;
    use crate::hv;
    use buddy_system_allocator::{Heap, LockedHeapWithRescue};
    use core::alloc::Layout;
    use core::sync::atomic::{AtomicU64, Ordering};
    use hypercall_abi::MemPerms;
    use hypercall_abi::mem::PAGE_SIZE;

    #[global_allocator]
    static HEAP: LockedHeapWithRescue<ORDER> = LockedHeapWithRescue::new(grow);

    /// The IPA above every chunk mapped so far.
    static NEXT: AtomicU64 = AtomicU64::new(HEAP_BASE);
    /// Bytes the heap has mapped.
    static MAPPED: AtomicU64 = AtomicU64::new(0);

    /// Called with the heap locked when an allocation does not fit: map one more chunk.
    fn grow(heap: &mut Heap<ORDER>, layout: &Layout) {
        let Some((start, bytes)) =
            next_chunk(NEXT.load(Ordering::Relaxed), layout.size(), layout.align())
        else {
            return;
        };
        if hv()
            .mem_map(start, bytes / PAGE_SIZE, MemPerms::RW)
            .is_err()
        {
            return; // the allocation fails: out of quota
        }
        NEXT.store(start + bytes, Ordering::Relaxed);
        MAPPED.fetch_add(bytes, Ordering::Relaxed);
        // SAFETY: [start, start + bytes) was just mapped RW (stage 2 by mem.map, stage 1 by the
        // identity map), above every chunk added before, and nothing else uses the heap window.
        unsafe { heap.add_to_heap(start as usize, (start + bytes) as usize) };
    }

    /// Bytes of RAM the heap has mapped so far.
    pub fn mapped_bytes() -> u64 {
        MAPPED.load(Ordering::Relaxed)
    }
}

#[cfg(target_os = "none")]
pub use target::mapped_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_naturally_aligned_powers_of_two() {
        assert_eq!(next_chunk(HEAP_BASE, 8, 8), Some((HEAP_BASE, CHUNK)));
        assert_eq!(
            next_chunk(HEAP_BASE + CHUNK, 100_000, 8),
            Some((HEAP_BASE + 2 * CHUNK, 131_072))
        );
        let (start, bytes) = next_chunk(HEAP_BASE + CHUNK, 1 << 20, 16).unwrap();
        assert_eq!((start % bytes, bytes), (0, 1 << 20));
        assert_eq!(
            next_chunk(HEAP_BASE, 16, 1 << 17),
            Some((HEAP_BASE, 1 << 17))
        );
    }

    #[test]
    fn stays_inside_the_window() {
        assert_eq!(
            next_chunk(HEAP_END - CHUNK, 8, 8),
            Some((HEAP_END - CHUNK, CHUNK))
        );
        assert_eq!(next_chunk(HEAP_END, 8, 8), None);
        assert_eq!(next_chunk(HEAP_BASE, usize::MAX, 8), None);
        assert_eq!(next_chunk(HEAP_BASE, (1 << 31) + 1, 8), None);
    }
}
