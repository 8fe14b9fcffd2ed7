//! A fake machine for host tests: frames are heap pages (their address is their "physical"
//! address, as RAM is identity-mapped at EL2), ownership is checked, TLB and cache maintenance
//! recorded
//! with the VMID in force when each TLB operation was issued (TLB maintenance applies to the
//! current VMID, so the VMID is part of what was asked for).

use super::{CacheOp, Machine, TlbOp};
use crate::addr::PAGE_SIZE;
use crate::owner::Owner;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::collections::HashMap;
use std::vec::Vec;

#[derive(Default)]
struct State {
    owners: HashMap<u64, Owner>,
    /// Each TLB operation with the VMID (VTTBR[63:48]) in force when it was issued.
    tlb: Vec<(u16, TlbOp)>,
    cache: Vec<CacheOp>,
    vttbr: u64,
    /// Frames left before allocation fails (None: unlimited).
    budget: Option<usize>,
    /// Frames set aside by `reserve_frames`.
    reserved: usize,
    /// Calls of `alloc_frames`.
    batches: usize,
}

std::thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

const PAGE: Layout = match Layout::from_size_align(PAGE_SIZE as usize, PAGE_SIZE as usize) {
    Ok(l) => l,
    Err(_) => panic!("page layout"),
};

/// The fake machine.
pub struct FakeMachine;

impl FakeMachine {
    /// Takes the TLB operations issued since the last call.
    pub fn take_tlb_ops() -> Vec<TlbOp> {
        Self::take_tlb_ops_with_vmid()
            .into_iter()
            .map(|(_, op)| op)
            .collect()
    }

    /// Takes the TLB operations issued since the last call, each with the VMID it ran under.
    pub fn take_tlb_ops_with_vmid() -> Vec<(u16, TlbOp)> {
        STATE.with(|s| core::mem::take(&mut s.borrow_mut().tlb))
    }

    /// Takes the cache operations issued since the last call.
    pub fn take_cache_ops() -> Vec<CacheOp> {
        STATE.with(|s| core::mem::take(&mut s.borrow_mut().cache))
    }

    /// Frames each owner holds.
    pub fn frames_of(owner: Owner) -> usize {
        STATE.with(|s| s.borrow().owners.values().filter(|&&o| o == owner).count())
    }

    /// Calls of `alloc_frames` since the last call of this.
    pub fn take_frame_batches() -> usize {
        STATE.with(|s| core::mem::take(&mut s.borrow_mut().batches))
    }

    /// Frames reserved and not yet allocated.
    pub fn frames_reserved() -> usize {
        STATE.with(|s| s.borrow().reserved)
    }

    /// Makes `vttbr` current, as the scheduler would.
    pub fn set_vttbr(vttbr: u64) {
        <Self as Machine>::set_vttbr(vttbr);
    }

    /// Lets only `frames` more allocations succeed (reservations included).
    pub fn limit_frames(frames: Option<usize>) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.budget = frames;
            s.reserved = 0;
        });
    }

    fn take(owner: Owner, reserved: bool) -> Option<u64> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if reserved {
                s.reserved = s.reserved.checked_sub(1)?;
            } else if s.budget.is_some_and(|b| b <= s.reserved) {
                return None;
            }
            if let Some(b) = s.budget.as_mut() {
                *b -= 1;
            }
            // SAFETY: a non-zero-sized layout.
            let pa = unsafe { alloc_zeroed(PAGE) } as u64;
            s.owners.insert(pa, owner);
            Some(pa)
        })
    }
}

impl Machine for FakeMachine {
    fn alloc_frame(owner: Owner) -> Option<u64> {
        Self::take(owner, false)
    }

    fn alloc_reserved_frame(owner: Owner) -> Option<u64> {
        Self::take(owner, true)
    }

    fn alloc_frames(owner: Owner, out: &mut [u64]) -> usize {
        STATE.with(|s| s.borrow_mut().batches += 1);
        for (n, slot) in out.iter_mut().enumerate() {
            match Self::take(owner, false) {
                Some(pa) => *slot = pa,
                None => return n,
            }
        }
        out.len()
    }

    fn return_unused_frames(owner: Owner, frames: &[u64]) {
        for &pa in frames {
            let held = STATE.with(|s| s.borrow().owners.get(&pa) == Some(&owner));
            assert!(
                held,
                "frame {pa:#x} given back unused by {owner:?}, not its owner"
            );
            // SAFETY: a frame of PAGE bytes this fake allocated and has not freed (checked
            // just above), read as bytes.
            let bytes = unsafe { core::slice::from_raw_parts(pa as *const u8, PAGE.size()) };
            assert!(
                bytes.iter().all(|&b| b == 0),
                "frame {pa:#x} given back unused but written"
            );
            Self::free_frame(owner, pa);
            // Not scrubbed: the free above recorded nothing, and no cache operation is issued.
        }
    }

    fn reserve_frames(count: usize) -> bool {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let free = s.budget.unwrap_or(usize::MAX) - s.reserved;
            let ok = free >= count;
            if ok {
                s.reserved += count;
            }
            ok
        })
    }

    fn release_frames(count: usize) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.reserved = s
                .reserved
                .checked_sub(count)
                .expect("released more frames than reserved");
        });
    }

    fn free_frame(owner: Owner, pa: u64) {
        STATE.with(|s| {
            let actual = s.borrow_mut().owners.remove(&pa);
            assert_eq!(
                actual,
                Some(owner),
                "frame {pa:#x} freed by {owner:?}, owned by {actual:?}"
            );
            if let Some(b) = s.borrow_mut().budget.as_mut() {
                *b += 1;
            }
        });
        // SAFETY: allocated by alloc_frame with the same layout, freed once (checked above).
        unsafe { dealloc(pa as *mut u8, PAGE) };
    }

    fn frames_available() -> usize {
        STATE.with(|s| {
            let s = s.borrow();
            s.budget.unwrap_or(usize::MAX) - s.reserved
        })
    }

    fn tlb(op: TlbOp) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let vmid = (s.vttbr >> 48) as u16;
            s.tlb.push((vmid, op));
        });
    }

    fn cache(op: CacheOp) {
        // The zeroing the operation stands for, of a frame this fake handed out (the pool's
        // own tests zero made-up addresses, only recorded).
        if let CacheOp::Zero { pa } = op
            && STATE.with(|s| s.borrow().owners.contains_key(&pa))
        {
            // SAFETY: a frame of PAGE bytes this fake allocated and has not freed (checked
            // just above).
            unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE.size()) };
        }
        STATE.with(|s| s.borrow_mut().cache.push(op));
    }

    fn vttbr() -> u64 {
        STATE.with(|s| s.borrow().vttbr)
    }

    fn set_vttbr(vttbr: u64) {
        STATE.with(|s| s.borrow_mut().vttbr = vttbr);
    }
}
