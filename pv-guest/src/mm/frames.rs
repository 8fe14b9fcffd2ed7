//! Frames by request: pages of guest RAM got with `mem.map` at IPAs from a window set aside for
//! them, and given back with `mem.unmap` (which also returns them to the VM's quota).
//!
//! [`FrameAllocator`] is the logic, over any [`Conduit`] (host tests use a mock hypervisor);
//! on the target, [`Frames`] owns a mapped range and unmaps it when dropped.

use super::ipa_range::IpaRanges;
use hypercall_abi::{Conduit, Error, Hypervisor, MemPerms};

/// Free ranges remembered for reuse.
const FREE_RANGES: usize = 64;
/// How often `alloc` steps over IPAs someone else mapped (a program experimenting with raw
/// `mem.map` calls) before giving up.
const RETRIES: usize = 4;

/// Hands out mapped page ranges from an IPA window.
#[derive(Debug)]
pub struct FrameAllocator {
    ranges: IpaRanges<FREE_RANGES>,
}

impl FrameAllocator {
    /// The window `[base, end)`.
    pub const fn new(base: u64, end: u64) -> Self {
        FrameAllocator {
            ranges: IpaRanges::new(base, end),
        }
    }

    /// Maps `pages` fresh zeroed pages with `perms`; their IPA.
    pub fn alloc<C: Conduit>(
        &mut self,
        hv: &mut Hypervisor<C>,
        pages: u64,
        perms: MemPerms,
    ) -> Result<u64, Error> {
        for _ in 0..RETRIES {
            let ipa = self.ranges.reserve(pages).ok_or(Error::OutOfMemory)?;
            match hv.mem_map(ipa, pages, perms) {
                Ok(()) => return Ok(ipa),
                // Someone mapped part of it behind our back: leave it to them, try further on.
                Err(Error::AlreadyMapped) => {}
                Err(e) => {
                    self.ranges.release(ipa, pages);
                    return Err(e);
                }
            }
        }
        Err(Error::AlreadyMapped)
    }

    /// Unmaps a range [`alloc`](Self::alloc) returned; its IPAs become free for reuse.
    pub fn free<C: Conduit>(
        &mut self,
        hv: &mut Hypervisor<C>,
        ipa: u64,
        pages: u64,
    ) -> Result<(), Error> {
        hv.mem_unmap(ipa, pages)?;
        self.ranges.release(ipa, pages);
        Ok(())
    }

    /// Sets aside `pages` pages of IPA space without mapping them (for programs that map and
    /// unmap there themselves).
    pub fn reserve(&mut self, pages: u64) -> Option<u64> {
        self.ranges.reserve(pages)
    }

    /// Gives back IPA space from [`reserve`](Self::reserve); the caller has unmapped it.
    pub fn release(&mut self, ipa: u64, pages: u64) {
        self.ranges.release(ipa, pages);
    }
}

#[cfg(target_os = "none")]
mod target {
    use super::FrameAllocator;
    use crate::hv;
    use crate::mm::layout::{FRAMES_BASE, FRAMES_END};
    use hypercall_abi::mem::PAGE_SIZE;
    use hypercall_abi::{Error, MemPerms};
    use spin::Mutex;

    static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::new(FRAMES_BASE, FRAMES_END));

    /// Maps `pages` fresh pages; their IPA (= VA: the stage-1 map is the identity).
    pub fn alloc_raw(pages: u64, perms: MemPerms) -> Result<u64, Error> {
        FRAMES.lock().alloc(&mut hv(), pages, perms)
    }

    /// Unmaps pages from [`alloc_raw`].
    pub fn free_raw(ipa: u64, pages: u64) -> Result<(), Error> {
        FRAMES.lock().free(&mut hv(), ipa, pages)
    }

    /// A mapped range of pages, unmapped when dropped.
    #[derive(Debug)]
    pub struct Frames {
        ipa: u64,
        pages: u64,
    }

    impl Frames {
        /// Maps `pages` fresh zeroed pages with `perms`.
        pub fn alloc(pages: u64, perms: MemPerms) -> Result<Frames, Error> {
            alloc_raw(pages, perms).map(|ipa| Frames { ipa, pages })
        }

        pub fn ipa(&self) -> u64 {
            self.ipa
        }

        /// The range as words. Only for pages mapped writable.
        pub fn words(&mut self) -> &mut [u64] {
            let len = (self.pages * PAGE_SIZE / 8) as usize;
            // SAFETY: the range is mapped (stage 2 by `mem.map`, stage 1 by the identity map) for
            // as long as `self` lives, belongs to nobody else, and the borrow ties the slice to
            // `self`.
            unsafe { core::slice::from_raw_parts_mut(self.ipa as *mut u64, len) }
        }
    }

    impl Drop for Frames {
        fn drop(&mut self) {
            if let Err(e) = free_raw(self.ipa, self.pages) {
                crate::println!("mm: unmapping {:#x} ({} pages): {e}", self.ipa, self.pages);
            }
        }
    }

    /// IPA space set aside (not mapped), given back when dropped.
    #[derive(Debug)]
    pub struct IpaWindow {
        pub ipa: u64,
        pub pages: u64,
    }

    impl IpaWindow {
        pub fn reserve(pages: u64) -> Option<IpaWindow> {
            FRAMES
                .lock()
                .reserve(pages)
                .map(|ipa| IpaWindow { ipa, pages })
        }

        /// The IPA of page `i` of the window.
        pub fn page(&self, i: u64) -> u64 {
            self.ipa + i * PAGE_SIZE
        }
    }

    impl Drop for IpaWindow {
        fn drop(&mut self) {
            FRAMES.lock().release(self.ipa, self.pages);
        }
    }
}

#[cfg(target_os = "none")]
pub use target::{Frames, IpaWindow, alloc_raw, free_raw};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::mock::MockHyp;
    use hypercall_abi::Call;
    use hypercall_abi::mem::PAGE_SIZE;

    const BASE: u64 = 0x2_0000_0000;

    fn setup(quota_pages: u64) -> (FrameAllocator, Hypervisor<MockHyp>) {
        (
            FrameAllocator::new(BASE, BASE + (1 << 30)),
            Hypervisor::new(MockHyp::with_quota(quota_pages * PAGE_SIZE)),
        )
    }

    #[test]
    fn maps_and_gives_back() {
        let (mut f, mut hv) = setup(8);
        let a = f.alloc(&mut hv, 3, MemPerms::RW).unwrap();
        let b = f.alloc(&mut hv, 5, MemPerms::READ).unwrap();
        assert_eq!((a, b), (BASE, BASE + 3 * PAGE_SIZE));
        assert_eq!(hv.conduit_mut().quota_left, 0);
        assert_eq!(f.alloc(&mut hv, 1, MemPerms::RW), Err(Error::OutOfMemory));
        f.free(&mut hv, a, 3).unwrap();
        assert_eq!(hv.conduit_mut().quota_left, 3 * PAGE_SIZE);
        // The freed IPAs are reused.
        assert_eq!(f.alloc(&mut hv, 2, MemPerms::RW), Ok(a));
        assert_eq!(hv.mem_query(a + PAGE_SIZE), Ok((MemPerms::RW, PAGE_SIZE)));
    }

    #[test]
    fn a_refused_map_leaves_nothing_reserved() {
        let (mut f, mut hv) = setup(1);
        assert_eq!(f.alloc(&mut hv, 2, MemPerms::RW), Err(Error::OutOfMemory));
        assert_eq!(f.alloc(&mut hv, 1, MemPerms::RW), Ok(BASE));
    }

    #[test]
    fn steps_over_pages_someone_else_mapped() {
        let (mut f, mut hv) = setup(8);
        hv.mem_map(BASE, 1, MemPerms::READ).unwrap();
        assert_eq!(f.alloc(&mut hv, 2, MemPerms::RW), Ok(BASE + 2 * PAGE_SIZE));
        let maps = hv
            .conduit_mut()
            .calls
            .iter()
            .filter(|c| matches!(c, Call::MemMap { .. }))
            .count();
        assert_eq!(maps, 3);
    }

    #[test]
    fn freeing_what_is_not_mapped_is_refused_and_keeps_the_range() {
        let (mut f, mut hv) = setup(8);
        let a = f.alloc(&mut hv, 1, MemPerms::RW).unwrap();
        assert_eq!(f.free(&mut hv, a, 2), Err(Error::NotMapped));
        f.free(&mut hv, a, 1).unwrap();
    }
}
