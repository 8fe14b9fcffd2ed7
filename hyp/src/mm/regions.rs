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

/// Up to `N` disjoint ranges, kept sorted.
#[derive(Clone, Debug)]
pub struct RangeSet<const N: usize> {
    ranges: [Range; N],
    count: usize,
}

/// Too many fragments to track.
#[derive(Debug, PartialEq, Eq)]
pub struct TooFragmented;

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self {
            ranges: [Range { start: 0, end: 0 }; N],
            count: 0,
        }
    }
}

impl<const N: usize> RangeSet<N> {
    pub fn as_slice(&self) -> &[Range] {
        &self.ranges[..self.count]
    }

    /// Adds a range, rounded inward to pages; merging is not needed for RAM banks.
    pub fn add(&mut self, range: Range) -> Result<(), TooFragmented> {
        let start = range.start.next_multiple_of(PAGE_SIZE);
        let end = range.end & !(PAGE_SIZE - 1);
        if start >= end {
            return Ok(());
        }
        if self.count == N {
            return Err(TooFragmented);
        }
        // Insertion into the sorted list (a handful of RAM banks: no sort routine needed).
        let at = self.ranges[..self.count].partition_point(|r| r.start < start);
        self.ranges.copy_within(at..self.count, at + 1);
        self.ranges[at] = Range { start, end };
        self.count += 1;
        Ok(())
    }

    /// Removes `hole` (rounded outward to pages) from every range.
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
        let mut out = Self::default();
        for r in self.as_slice() {
            if hole.end <= r.start || hole.start >= r.end {
                out.add(*r)?;
                continue;
            }
            out.add(Range {
                start: r.start,
                end: hole.start.max(r.start),
            })?;
            out.add(Range {
                start: hole.end.min(r.end),
                end: r.end,
            })?;
        }
        *self = out;
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
        assert_eq!(set.remove(Range::new(0x5000, 0x1000)), Err(TooFragmented));
    }
}
