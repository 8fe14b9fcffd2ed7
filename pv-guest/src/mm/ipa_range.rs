//! IPA space bookkeeping: which page ranges of a window are handed out. No memory is involved
//! here, only addresses; the frame allocator maps and unmaps what this hands out.
//!
//! Ranges come first from the free list (first fit) and otherwise from the top of what was ever
//! used (a bump pointer). Released ranges merge with their neighbours; a range released right
//! below the bump pointer lowers it. If the free list is full, a released range is dropped: that
//! leaks IPA space (of which there is plenty), never memory.

use hypercall_abi::mem::PAGE_SIZE;

/// A free range: first IPA and page count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Free {
    ipa: u64,
    pages: u64,
}

/// The page ranges handed out from `[base, end)`, with room for `N` free ranges.
#[derive(Debug)]
pub struct IpaRanges<const N: usize> {
    end: u64,
    next: u64,
    free: [Free; N],
    len: usize,
}

impl<const N: usize> IpaRanges<N> {
    /// A window `[base, end)`; both page-aligned.
    pub const fn new(base: u64, end: u64) -> Self {
        assert!(base.is_multiple_of(PAGE_SIZE) && end.is_multiple_of(PAGE_SIZE) && base <= end);
        IpaRanges {
            end,
            next: base,
            free: [Free { ipa: 0, pages: 0 }; N],
            len: 0,
        }
    }

    /// Hands out `pages` pages (at least 1); `None` if the window has no such range left.
    pub fn reserve(&mut self, pages: u64) -> Option<u64> {
        if pages == 0 {
            return None;
        }
        if let Some(i) = self.free[..self.len].iter().position(|f| f.pages >= pages) {
            let f = &mut self.free[i];
            let ipa = f.ipa;
            f.ipa += pages * PAGE_SIZE;
            f.pages -= pages;
            if f.pages == 0 {
                self.remove(i);
            }
            return Some(ipa);
        }
        let bytes = pages.checked_mul(PAGE_SIZE)?;
        if bytes > self.end - self.next {
            return None;
        }
        let ipa = self.next;
        self.next += bytes;
        Some(ipa)
    }

    /// Takes back a range [`reserve`](Self::reserve) handed out.
    pub fn release(&mut self, ipa: u64, pages: u64) {
        if pages == 0 {
            return;
        }
        let end = ipa + pages * PAGE_SIZE;
        let mut range = Free { ipa, pages };
        // Merge with the free ranges just below and just above.
        let mut i = 0;
        while i < self.len {
            let f = self.free[i];
            if f.ipa + f.pages * PAGE_SIZE == range.ipa
                || range.ipa + range.pages * PAGE_SIZE == f.ipa
            {
                range = Free {
                    ipa: range.ipa.min(f.ipa),
                    pages: range.pages + f.pages,
                };
                self.remove(i);
            } else {
                i += 1;
            }
        }
        debug_assert!(end <= self.next);
        if range.ipa + range.pages * PAGE_SIZE == self.next {
            self.next = range.ipa;
        } else if self.len < N {
            self.free[self.len] = range;
            self.len += 1;
        }
    }

    #[cfg(test)]
    /// Pages handed out now (the window's used part minus the free ranges).
    pub fn reserved_pages(&self, base: u64) -> u64 {
        let free: u64 = self.free[..self.len].iter().map(|f| f.pages).sum();
        (self.next - base) / PAGE_SIZE - free
    }

    fn remove(&mut self, i: usize) {
        self.free[i] = self.free[self.len - 1];
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x2_0000_0000;
    const P: u64 = PAGE_SIZE;

    #[test]
    fn bumps_then_reuses_released_ranges() {
        let mut r = IpaRanges::<4>::new(BASE, BASE + 100 * P);
        assert_eq!(r.reserve(2), Some(BASE));
        assert_eq!(r.reserve(3), Some(BASE + 2 * P));
        assert_eq!(r.reserve(1), Some(BASE + 5 * P));
        r.release(BASE, 2);
        assert_eq!(r.reserved_pages(BASE), 4);
        // First fit from the free list, splitting it.
        assert_eq!(r.reserve(1), Some(BASE));
        assert_eq!(r.reserve(1), Some(BASE + P));
        // The free list is empty again: bump.
        assert_eq!(r.reserve(1), Some(BASE + 6 * P));
    }

    #[test]
    fn releasing_the_top_lowers_the_bump_pointer_and_merges() {
        let mut r = IpaRanges::<4>::new(BASE, BASE + 100 * P);
        let a = r.reserve(2).unwrap();
        let b = r.reserve(2).unwrap();
        let c = r.reserve(2).unwrap();
        r.release(b, 2);
        r.release(c, 2); // merges with b, then reaches the top
        assert_eq!(r.reserved_pages(BASE), 2);
        assert_eq!(r.reserve(4), Some(b));
        r.release(a, 2);
        r.release(b, 4);
        assert_eq!(r.reserved_pages(BASE), 0);
        assert_eq!(r.reserve(1), Some(BASE));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut r = IpaRanges::<2>::new(BASE, BASE + 4 * P);
        assert_eq!(r.reserve(0), None);
        assert_eq!(r.reserve(5), None);
        assert_eq!(r.reserve(u64::MAX), None);
        assert_eq!(r.reserve(4), Some(BASE));
        assert_eq!(r.reserve(1), None);
    }

    #[test]
    fn a_full_free_list_drops_ranges_but_stays_consistent() {
        let mut r = IpaRanges::<1>::new(BASE, BASE + 100 * P);
        let v: Vec<u64> = (0..6).map(|_| r.reserve(1).unwrap()).collect();
        r.release(v[0], 1);
        r.release(v[2], 1); // no room: dropped (leaked IPA space)
        r.release(v[4], 1); // dropped too
        assert_eq!(r.reserve(1), Some(v[0]));
        assert_eq!(r.reserve(1), Some(BASE + 6 * P));
    }
}
