//! Range arithmetic for working out the free RAM: RAM minus everything that is in use (hyp
//! image, device tree, initrd, reserved memory), rounded inward to whole pages.

use super::PAGE_SIZE;

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// A range from a base and a size, saturating at the top of the address space.
    pub fn new(base: u64, size: u64) -> Self {
        Self {
            start: base,
            end: base.saturating_add(size),
        }
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Up to `N` disjoint, non-adjacent ranges of whole pages, kept sorted.
#[derive(Clone, Debug)]
pub struct RangeSet<const N: usize> {
    ranges: [Range; N],
    count: usize,
}

/// Too many fragments to track: the set holds `N` ranges already and the change needs one more.
/// The set is left as it was.
#[derive(Debug, PartialEq, Eq)]
pub struct TooFragmented;

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> RangeSet<N> {
    /// No ranges.
    pub const fn new() -> Self {
        Self {
            ranges: [Range { start: 0, end: 0 }; N],
            count: 0,
        }
    }

    pub fn as_slice(&self) -> &[Range] {
        &self.ranges[..self.count]
    }

    /// Adds a range, rounded inward to pages, merged with the ranges it overlaps or touches
    /// (two RAM banks that overlap must not hand out a frame twice). Needs a free slot only
    /// when the range touches none.
    pub fn add(&mut self, range: Range) -> Result<(), TooFragmented> {
        let mut start = range.start.next_multiple_of(PAGE_SIZE);
        let mut end = range.end & !(PAGE_SIZE - 1);
        if start >= end {
            return Ok(());
        }
        // The ranges it overlaps or touches are consecutive: [first, last).
        let first = self.as_slice().partition_point(|r| r.end < start);
        let last = self.as_slice().partition_point(|r| r.start <= end);
        if first == last && self.count == N {
            return Err(TooFragmented);
        }
        if first < last {
            start = start.min(self.ranges[first].start);
            end = end.max(self.ranges[last - 1].end);
        }
        // Replace ranges[first..last] by the one merged range.
        let removed = last - first;
        if removed == 0 {
            self.ranges.copy_within(first..self.count, first + 1);
        } else {
            self.ranges.copy_within(last..self.count, first + 1);
        }
        self.ranges[first] = Range { start, end };
        self.count = self.count + 1 - removed;
        Ok(())
    }

    /// Removes `hole` (rounded outward to pages) from every range. Shrinking or dropping
    /// ranges always succeeds; only a hole strictly inside one range splits it in two, and
    /// that needs a free slot: without one the set is left as it was and the caller must not
    /// hand out the hole's memory.
    pub fn remove(&mut self, hole: Range) -> Result<(), TooFragmented> {
        if hole.is_empty() {
            return Ok(());
        }
        let hole = Range {
            start: hole.start & !(PAGE_SIZE - 1),
            end: hole
                .end
                .checked_next_multiple_of(PAGE_SIZE)
                .unwrap_or(!(PAGE_SIZE - 1)),
        };
        // The ranges the hole overlaps are consecutive: [first, last).
        let first = self.as_slice().partition_point(|r| r.end <= hole.start);
        let last = self.as_slice().partition_point(|r| r.start < hole.end);
        if first >= last {
            return Ok(());
        }
        let (head, tail) = (self.ranges[first], self.ranges[last - 1]);
        let keep_head = head.start < hole.start;
        let keep_tail = tail.end > hole.end;
        let kept = usize::from(keep_head) + usize::from(keep_tail);
        let removed = last - first;
        if self.count - removed + kept > N {
            return Err(TooFragmented);
        }
        // ranges[first..last] become the kept pieces (0, 1 or 2 of them).
        let mut pieces = [Range { start: 0, end: 0 }; 2];
        let mut n = 0;
        if keep_head {
            pieces[n] = Range {
                start: head.start,
                end: hole.start,
            };
            n += 1;
        }
        if keep_tail {
            pieces[n] = Range {
                start: hole.end,
                end: tail.end,
            };
            n += 1;
        }
        self.ranges.copy_within(last..self.count, first + n);
        self.ranges[first..first + n].copy_from_slice(&pieces[..n]);
        self.count = self.count - removed + n;
        Ok(())
    }

    /// Takes the first page of the first non-empty range.
    pub fn take_page(&mut self) -> Option<u64> {
        let r = self.ranges[..self.count]
            .iter_mut()
            .find(|r| !r.is_empty())?;
        let page = r.start;
        r.start += PAGE_SIZE;
        Some(page)
    }

    /// Takes `len` bytes (whole pages) from the front of the first range that has them.
    pub fn take(&mut self, len: u64) -> Option<u64> {
        let r = self.ranges[..self.count]
            .iter_mut()
            .find(|r| r.len() >= len)?;
        let start = r.start;
        r.start += len.next_multiple_of(PAGE_SIZE);
        Some(start)
    }

    /// Bytes in all ranges.
    pub fn total(&self) -> u64 {
        self.as_slice().iter().map(Range::len).sum()
    }
}

/// Why the free RAM cannot be worked out without handing out memory that is in use: removing
/// `what` at `range` would need more than `fragments` free ranges.
#[derive(Debug, PartialEq, Eq)]
pub struct CannotReserve {
    pub what: &'static str,
    pub range: Range,
    pub fragments: usize,
}

impl core::fmt::Display for CannotReserve {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "memory map too fragmented: cannot keep {} {:#x}..{:#x} out of the free RAM (more than {} free ranges); stopping rather than hand it out",
            self.what, self.range.start, self.range.end, self.fragments
        )
    }
}

/// The free RAM, and how many RAM banks were left out of it.
pub struct FreeRam<const N: usize> {
    pub ranges: RangeSet<N>,
    /// Banks there was no room for: safe (that RAM is only unused), but worth a warning.
    pub banks_left_out: usize,
}

/// `ram` minus every range of `in_use` (each named for the error). Fails closed: a range in
/// use that cannot be removed is an error, never free memory.
pub fn free_ram<const N: usize>(
    ram: impl IntoIterator<Item = Range>,
    in_use: impl IntoIterator<Item = (&'static str, Range)>,
) -> Result<FreeRam<N>, CannotReserve> {
    let mut ranges = RangeSet::<N>::new();
    let banks_left_out = ram.into_iter().filter(|&r| ranges.add(r).is_err()).count();
    for (what, range) in in_use {
        ranges
            .remove(range)
            .map_err(|TooFragmented| CannotReserve {
                what,
                range,
                fragments: N,
            })?;
    }
    Ok(FreeRam {
        ranges,
        banks_left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtracts_holes_and_rounds_to_pages() {
        let mut set = RangeSet::<8>::default();
        set.add(Range::new(0x4000_0000, 0x4000_0000)).unwrap();
        set.remove(Range::new(0x4000_0000, 0x10_0000)).unwrap(); // device tree at the start
        set.remove(Range::new(0x4020_0123, 0x1000)).unwrap(); // an unaligned hole spans 2 pages
        assert_eq!(
            set.as_slice(),
            &[
                Range {
                    start: 0x4010_0000,
                    end: 0x4020_0000
                },
                Range {
                    start: 0x4020_2000,
                    end: 0x8000_0000
                },
            ]
        );
        assert_eq!(set.total(), 0x4000_0000 - 0x10_0000 - 0x2000);
    }

    #[test]
    fn hole_covering_everything_or_nothing() {
        let mut set = RangeSet::<4>::default();
        set.add(Range::new(0x1000, 0x3000)).unwrap();
        set.remove(Range::new(0x9000, 0x1000)).unwrap();
        assert_eq!(set.total(), 0x3000);
        set.remove(Range::new(0, u64::MAX)).unwrap();
        assert_eq!(set.total(), 0);
    }

    #[test]
    fn hands_out_pages_and_runs_from_the_front() {
        let mut set = RangeSet::<4>::default();
        set.add(Range::new(0x1000, 0x1000)).unwrap();
        set.add(Range::new(0x8000, 0x4000)).unwrap();
        assert_eq!(
            set.take(0x2000),
            Some(0x8000),
            "the first range is too small"
        );
        assert_eq!(set.take_page(), Some(0x1000));
        assert_eq!(set.take_page(), Some(0xa000));
        assert_eq!(set.take_page(), Some(0xb000));
        assert_eq!(set.take_page(), None);
        assert_eq!(set.total(), 0);
    }

    #[test]
    fn refuses_more_fragments_than_it_holds() {
        let mut set = RangeSet::<2>::default();
        set.add(Range::new(0, 0x10000)).unwrap();
        set.remove(Range::new(0x2000, 0x1000)).unwrap();
        let before = set.as_slice().to_vec();
        assert_eq!(set.remove(Range::new(0x5000, 0x1000)), Err(TooFragmented));
        assert_eq!(
            set.as_slice(),
            &before[..],
            "a refused removal changes nothing"
        );
        assert_eq!(set.add(Range::new(0x20000, 0x1000)), Err(TooFragmented));
    }

    #[test]
    fn shrinking_and_dropping_need_no_free_slot() {
        let mut set = RangeSet::<2>::default();
        set.add(Range::new(0x1_0000, 0x1_0000)).unwrap();
        set.add(Range::new(0x4_0000, 0x1_0000)).unwrap();
        // Full: cutting the ends of ranges, or a hole across both, still works.
        set.remove(Range::new(0x1_0000, 0x1000)).unwrap();
        set.remove(Range::new(0x4_f000, 0x2000)).unwrap();
        set.remove(Range::new(0x1_f000, 0x2_2000)).unwrap();
        assert_eq!(
            set.as_slice(),
            &[Range::new(0x1_1000, 0xe000), Range::new(0x4_1000, 0xe000)]
        );
        set.remove(Range::new(0, 0x4_8000)).unwrap();
        assert_eq!(set.as_slice(), &[Range::new(0x4_8000, 0x7000)]);
        // A split needs the slot that is free now.
        set.remove(Range::new(0x4_a000, 0x1000)).unwrap();
        assert_eq!(set.total(), 0x6000);
    }

    #[test]
    fn overlapping_or_touching_banks_merge() {
        let mut set = RangeSet::<2>::default();
        set.add(Range::new(0x1_0000, 0x1_0000)).unwrap();
        set.add(Range::new(0x4_0000, 0x1_0000)).unwrap();
        // Full, but a bank that overlaps both joins them instead of counting a frame twice.
        set.add(Range::new(0x1_8000, 0x3_0000)).unwrap();
        assert_eq!(set.as_slice(), &[Range::new(0x1_0000, 0x4_0000)]);
        set.add(Range::new(0x5_0000, 0x1000)).unwrap();
        assert_eq!(set.as_slice(), &[Range::new(0x1_0000, 0x4_1000)]);
        assert_eq!(set.total(), 0x4_1000);
    }

    #[test]
    fn a_reserved_range_that_cannot_be_removed_fails_closed() {
        // One bank and three holes strictly inside it: the third needs a fourth range.
        let ram = [Range::new(0x4000_0000, 0x100_0000)];
        let holes = [
            ("the hyp image", Range::new(0x4020_0000, 0x2_0000)),
            ("the device tree", Range::new(0x4060_0000, 0x1000)),
            ("reserved memory", Range::new(0x40a0_0000, 0x1000)),
        ];
        let err = free_ram::<3>(ram, holes).err().expect("must fail closed");
        assert_eq!(
            err,
            CannotReserve {
                what: "reserved memory",
                range: Range::new(0x40a0_0000, 0x1000),
                fragments: 3
            }
        );
        assert!(
            err.to_string()
                .starts_with("memory map too fragmented: cannot keep reserved memory 0x40a00000..0x40a01000 out of the free RAM")
        );
        // With room for the pieces, none of the holes' pages is free.
        let free = free_ram::<4>(ram, holes).expect("fits");
        assert_eq!(free.banks_left_out, 0);
        for (_, hole) in holes {
            assert!(
                free.ranges
                    .as_slice()
                    .iter()
                    .all(|r| hole.end <= r.start || hole.start >= r.end)
            );
        }
        assert_eq!(free.ranges.total(), 0x100_0000 - 0x2_0000 - 0x2000);
    }

    #[test]
    fn ram_banks_without_room_are_left_out_not_an_error() {
        let ram = [
            Range::new(0x1_0000, 0x1000),
            Range::new(0x3_0000, 0x1000),
            Range::new(0x5_0000, 0x1000),
        ];
        let free = free_ram::<2>(ram, []).unwrap();
        assert_eq!(free.banks_left_out, 1);
        assert_eq!(free.ranges.total(), 0x2000);
    }

    #[test]
    fn matches_a_page_bitmap_on_random_edits() {
        // Random adds and removes against a plain bitmap of 256 pages.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let mut set = RangeSet::<6>::default();
            let mut pages = [false; 256];
            for _ in 0..40 {
                let a = next() % 255;
                let len = (next() % 24 + 1).min(256 - a);
                let r = Range::new(a * PAGE_SIZE, len * PAGE_SIZE);
                let span = a as usize..(a + len) as usize;
                if next() % 3 == 0 {
                    if set.add(r).is_ok() {
                        pages[span].fill(true);
                    }
                } else if set.remove(r).is_ok() {
                    pages[span].fill(false);
                }
                let listed: u64 = pages.iter().filter(|&&p| p).count() as u64;
                assert_eq!(set.total(), listed * PAGE_SIZE);
                for w in set.as_slice().windows(2) {
                    assert!(w[0].end < w[1].start, "sorted, disjoint, not touching");
                }
                for r in set.as_slice() {
                    assert!((r.start / PAGE_SIZE..r.end / PAGE_SIZE).all(|p| pages[p as usize]));
                }
            }
        }
    }
}
