//! The frame pool's logic, generic over the machine so it is tested on the host: which frames
//! are free, who owns every frame, and the scrub a frame gets on its way back.
//!
//! Nothing about the pool is kept in the free frames themselves: a guest may still reach a
//! frame through a stale translation, so anything stored there could be forged. Never-used RAM
//! is handed out from the front of its ranges; given-back frames wait on a stack of frame
//! numbers on the hyp heap, sized at init for every free frame.

use super::PAGE_SIZE;
use super::owner::{Owner, OwnerMap};
use super::regions::{Range, RangeSet};
use crate::arch::{CacheOp, Machine};
use alloc::vec::Vec;
use core::marker::PhantomData;

/// The free RAM's fragments the pool tracks.
pub const FRAGMENTS: usize = 64;

/// The hyp heap's blocks the pool takes for RAM of `ram_frames` frames, in bytes: its owner
/// map (2 bytes a frame) and its stack of free frames (4 bytes a frame).
pub fn heap_blocks(ram_frames: u64) -> [u64; 2] {
    [ram_frames * 2, ram_frames * 4]
}

pub struct Pool<M> {
    /// RAM never handed out yet.
    fresh: RangeSet<FRAGMENTS>,
    /// Frame numbers of the scrubbed frames given back; its capacity, fixed at init, holds
    /// every frame the pool was given, so pushing never allocates.
    returned: Vec<u32>,
    /// Frames in `fresh` and `returned`.
    free: usize,
    /// Frames set aside for `alloc(.., true)`.
    reserved: usize,
    owners: OwnerMap,
    machine: PhantomData<fn() -> M>,
}

impl<M: Machine> Pool<M> {
    /// A pool of the frames in `free`, inside `ram`. Every other frame of `ram` (the hyp's
    /// image, heap, device tree, initrd, reserved memory) is recorded as the hyp's.
    pub fn new(free: RangeSet<FRAGMENTS>, ram: Range) -> Result<Self, &'static str> {
        let first = ram.start / PAGE_SIZE;
        let frames = ram.len() / PAGE_SIZE;
        if ram.end / PAGE_SIZE > u64::from(u32::MAX) {
            return Err("RAM beyond what the frame pool numbers (16 TiB)");
        }
        // Free first (a zeroed map: cheap), then every gap between the free ranges, which are
        // sorted, becomes the hyp's (they are few and small).
        let end = first + frames;
        let mut owners = OwnerMap::new_owned_by(first, frames as usize, Owner::Free);
        let mut at = first;
        let ranges = free.as_slice().iter().filter(|r| !r.is_empty());
        let bounds = ranges
            .map(|r| (r.start / PAGE_SIZE, r.end / PAGE_SIZE))
            .chain([(end, end)]);
        for (start, stop) in bounds {
            if start < at || stop > end {
                return Err("free RAM outside RAM");
            }
            owners
                .transfer_range(at, start, Owner::Free, Owner::Hyp)
                .map_err(|_| "free RAM outside RAM")?;
            at = stop;
        }
        Ok(Self {
            returned: Vec::with_capacity((free.total() / PAGE_SIZE) as usize),
            free: (free.total() / PAGE_SIZE) as usize,
            fresh: free,
            reserved: 0,
            owners,
            machine: PhantomData,
        })
    }

    /// Frames `alloc` can still hand out without a reservation.
    pub fn available(&self) -> usize {
        self.free - self.reserved
    }

    /// Sets `count` frames aside; false (nothing set aside) when fewer are available.
    pub fn reserve(&mut self, count: usize) -> bool {
        let ok = self.available() >= count;
        if ok {
            self.reserved += count;
        }
        ok
    }

    /// Gives back reserved frames that will not be allocated.
    pub fn release(&mut self, count: usize) {
        self.reserved -= count.min(self.reserved);
    }

    /// A zeroed frame for `owner` (one set aside earlier if `reserved`), or None. The hot
    /// path, on every page a guest maps: a scrubbed frame off the stack and its owner set.
    #[inline(always)]
    pub fn alloc(&mut self, owner: Owner, reserved: bool) -> Option<u64> {
        if reserved {
            self.reserved = self.reserved.checked_sub(1)?;
        } else if self.available() == 0 {
            return None;
        }
        if let Some(frame) = self.returned.pop() {
            self.free -= 1;
            let pa = u64::from(frame) * PAGE_SIZE;
            if self
                .owners
                .transfer(u64::from(frame), Owner::Free, owner)
                .is_ok()
            {
                return Some(pa);
            }
            // Only a hyp bug gets here; the frame is not handed out.
            refused("is not free", pa);
        }
        self.alloc_slow(owner)
    }

    /// Up to `out.len()` zeroed frames for `owner` at once (a batch of maps takes its frames
    /// in one round trip of the pool's lock); how many were written to the front of `out`.
    pub fn alloc_many(&mut self, owner: Owner, out: &mut [u64]) -> usize {
        for (n, slot) in out.iter_mut().enumerate() {
            match self.alloc(owner, false) {
                Some(pa) => *slot = pa,
                None => return n,
            }
        }
        out.len()
    }

    /// Takes back frames `alloc` gave `owner` that it never exposed (mapped nowhere, written
    /// by nobody): still as they were handed out, zeroed in DRAM, so not scrubbed again. A
    /// frame `owner` does not hold is refused as in `free`.
    pub fn take_back_unused(&mut self, owner: Owner, frames: &[u64]) {
        for &pa in frames {
            if self
                .owners
                .transfer(pa / PAGE_SIZE, owner, Owner::Free)
                .is_err()
            {
                refused("was given back by another owner than its own", pa);
                continue;
            }
            self.push_returned(pa);
        }
    }

    /// `alloc` when no scrubbed frame is waiting (or one was refused): the next one, else
    /// never-used RAM, cleaned on its way out.
    #[inline(never)]
    fn alloc_slow(&mut self, owner: Owner) -> Option<u64> {
        loop {
            let (pa, scrubbed) = match self.returned.pop() {
                Some(frame) => (u64::from(frame) * PAGE_SIZE, true),
                None => (self.fresh.take_page()?, false),
            };
            self.free -= 1;
            if self
                .owners
                .transfer(pa / PAGE_SIZE, Owner::Free, owner)
                .is_err()
            {
                refused("is not free", pa);
                continue;
            }
            if !scrubbed {
                // Never used since boot; DRAM may still hold what was there before it (a
                // previous run): clean the zeroes out to it, as a free does.
                M::cache(CacheOp::Zero { pa });
                M::cache(CacheOp::CleanToPoc { pa });
            }
            return Some(pa);
        }
    }

    /// Scrubs and takes back the frame at `pa` from `owner`. A frame `owner` does not hold (a
    /// hyp bug) is refused and logged, never reused.
    pub fn free(&mut self, owner: Owner, pa: u64) {
        // Ownership first: a frame freed by the wrong owner is still in use and must not be
        // scrubbed.
        if self
            .owners
            .transfer(pa / PAGE_SIZE, owner, Owner::Free)
            .is_err()
        {
            refused("was freed by another owner than its own", pa);
            return;
        }
        // Zero in DRAM, not only in the cache: the next owner may read it non-cacheable.
        M::cache(CacheOp::Zero { pa });
        M::cache(CacheOp::CleanToPoc { pa });
        self.push_returned(pa);
    }

    /// Puts the clean frame at `pa`, just made free in the owner map, on the stack.
    fn push_returned(&mut self, pa: u64) {
        if self.returned.len() < self.returned.capacity() {
            self.returned.push((pa / PAGE_SIZE) as u32);
            self.free += 1;
        } else {
            // More frames back than were ever free: impossible with the owner check before.
            refused("finds no room on the free stack", pa);
        }
    }

    /// The owner of the frame at `pa` (frames outside RAM are the hyp's).
    pub fn owner(&self, pa: u64) -> Owner {
        self.owners.owner(pa / PAGE_SIZE)
    }

    /// How many frames `owner` holds.
    pub fn count(&self, owner: Owner) -> usize {
        self.owners.count(owner)
    }
}

/// A frame the pool will not reuse (a hyp bug): said once, and the frame stays out.
#[cold]
#[inline(never)]
fn refused(what: &str, pa: u64) {
    error!("frame pool: frame {pa:#x} {what}; not reused");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::fake::FakeMachine;

    const RAM: u64 = 0x4000_0000;
    const P: u64 = PAGE_SIZE;

    /// 16 frames of RAM; frames 2..6 and 10..12 free, the rest the hyp's.
    fn pool() -> Pool<FakeMachine> {
        let mut free = RangeSet::default();
        free.add(Range::new(RAM + 2 * P, 4 * P)).unwrap();
        free.add(Range::new(RAM + 10 * P, 2 * P)).unwrap();
        FakeMachine::take_cache_ops();
        Pool::new(free, Range::new(RAM, 16 * P)).unwrap()
    }

    #[test]
    fn every_frame_not_given_to_the_pool_is_the_hyps() {
        let p = pool();
        assert_eq!(p.count(Owner::Hyp), 10);
        assert_eq!(p.count(Owner::Free), 6);
        for frame in [0, 1, 6, 9, 12, 15] {
            assert_eq!(p.owner(RAM + frame * P), Owner::Hyp, "frame {frame}");
        }
        assert_eq!(p.owner(RAM + 3 * P), Owner::Free);
        assert_eq!(p.available(), 6);
    }

    #[test]
    fn frames_are_scrubbed_to_dram_on_free_not_on_reuse() {
        let mut p = pool();
        let a = p.alloc(Owner::Vm(1), false).unwrap();
        assert_eq!(
            FakeMachine::take_cache_ops(),
            [CacheOp::Zero { pa: a }, CacheOp::CleanToPoc { pa: a }],
            "a never-used frame is cleaned once"
        );
        p.free(Owner::Vm(1), a);
        assert_eq!(
            FakeMachine::take_cache_ops(),
            [CacheOp::Zero { pa: a }, CacheOp::CleanToPoc { pa: a }]
        );
        assert_eq!(p.alloc(Owner::Vm(2), false), Some(a));
        assert!(
            FakeMachine::take_cache_ops().is_empty(),
            "a scrubbed frame is handed out as it is"
        );
        assert_eq!(p.owner(a), Owner::Vm(2));
    }

    #[test]
    fn nothing_is_handed_out_twice_nor_beyond_the_free_ram() {
        let mut p = pool();
        let mut got: Vec<u64> = (0..6)
            .map(|_| p.alloc(Owner::Vm(1), false).unwrap())
            .collect();
        assert_eq!(p.alloc(Owner::Vm(1), false), None);
        for &pa in &got {
            p.free(Owner::Vm(1), pa);
        }
        let again: Vec<u64> = (0..6)
            .map(|_| p.alloc(Owner::Vm(3), false).unwrap())
            .collect();
        got.sort();
        let mut sorted = again.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert!(got.iter().all(|&pa| p.owner(pa) == Owner::Vm(3)));
    }

    #[test]
    fn a_wrong_free_is_refused_and_never_reused() {
        let mut p = pool();
        let a = p.alloc(Owner::Vm(1), false).unwrap();
        p.free(Owner::Vm(2), a);
        p.free(Owner::Vm(1), RAM);
        assert_eq!(p.owner(a), Owner::Vm(1));
        assert_eq!(p.owner(RAM), Owner::Hyp);
        FakeMachine::take_cache_ops();
        let rest: Vec<u64> = core::iter::from_fn(|| p.alloc(Owner::Vm(3), false)).collect();
        assert_eq!(rest.len(), 5);
        assert!(!rest.contains(&a) && !rest.contains(&RAM));
    }

    #[test]
    fn frames_taken_at_once_come_back_unused_without_a_scrub() {
        let mut p = pool();
        let mut out = [0; 8];
        assert_eq!(p.alloc_many(Owner::Vm(1), &mut out), 6, "all there is");
        assert!(out[..6].iter().all(|&pa| p.owner(pa) == Owner::Vm(1)));
        assert_eq!(p.available(), 0);
        FakeMachine::take_cache_ops();
        p.take_back_unused(Owner::Vm(1), &out[..4]);
        assert!(FakeMachine::take_cache_ops().is_empty(), "never exposed");
        assert_eq!(p.available(), 4);
        assert!(out[..4].iter().all(|&pa| p.owner(pa) == Owner::Free));
        // Another owner's frames are refused and stay out.
        p.take_back_unused(Owner::Vm(2), &out[4..6]);
        assert_eq!(p.owner(out[4]), Owner::Vm(1));
        assert_eq!(p.alloc_many(Owner::Vm(3), &mut out[..5]), 4);
    }

    #[test]
    fn reserved_frames_are_kept_for_their_reservation() {
        let mut p = pool();
        assert!(!p.reserve(7));
        assert!(p.reserve(4));
        assert_eq!(p.available(), 2);
        assert!(p.alloc(Owner::Vm(1), false).is_some());
        assert!(p.alloc(Owner::Vm(1), false).is_some());
        assert_eq!(p.alloc(Owner::Vm(1), false), None, "the rest is reserved");
        assert!(p.alloc(Owner::Vm(2), true).is_some());
        p.release(3);
        assert_eq!(p.alloc(Owner::Vm(2), true), None, "nothing reserved left");
        assert_eq!(p.available(), 3);
    }
}
