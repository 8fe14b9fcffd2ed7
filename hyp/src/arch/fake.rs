//! A fake machine for host tests: frames are heap pages (their address is their "physical"
//! address, as RAM is identity-mapped at EL2), ownership is checked, TLB maintenance recorded.

use super::{Machine, TlbOp};
use crate::mm::owner::Owner;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::RefCell;
use std::collections::HashMap;
use std::vec::Vec;

#[derive(Default)]
struct State {
    owners: HashMap<u64, Owner>,
    tlb: Vec<TlbOp>,
    vttbr: u64,
    /// Frames left before allocation fails (None: unlimited).
    budget: Option<usize>,
}

std::thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

const PAGE: Layout = match Layout::from_size_align(4096, 4096) {
    Ok(l) => l,
    Err(_) => panic!("page layout"),
};

/// The fake machine.
pub struct FakeMachine;

impl FakeMachine {
    /// Takes the TLB operations issued since the last call.
    pub fn take_tlb_ops() -> Vec<TlbOp> {
        STATE.with(|s| core::mem::take(&mut s.borrow_mut().tlb))
    }

    /// Frames each owner holds.
    pub fn frames_of(owner: Owner) -> usize {
        STATE.with(|s| s.borrow().owners.values().filter(|&&o| o == owner).count())
    }

    /// Makes `vttbr` current, as the scheduler would.
    pub fn set_vttbr(vttbr: u64) {
        <Self as Machine>::set_vttbr(vttbr);
    }

    /// Lets only `frames` more allocations succeed.
    pub fn limit_frames(frames: Option<usize>) {
        STATE.with(|s| s.borrow_mut().budget = frames);
    }
}

impl Machine for FakeMachine {
    fn alloc_frame(owner: Owner) -> Option<u64> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(b) = s.budget.as_mut() {
                *b = b.checked_sub(1)?;
            }
            // SAFETY: a non-zero-sized layout.
            let pa = unsafe { alloc_zeroed(PAGE) } as u64;
            s.owners.insert(pa, owner);
            Some(pa)
        })
    }

    fn free_frame(owner: Owner, pa: u64) {
        STATE.with(|s| {
            let actual = s.borrow_mut().owners.remove(&pa);
            assert_eq!(
                actual,
                Some(owner),
                "frame {pa:#x} freed by {owner:?}, owned by {actual:?}"
            );
        });
        // SAFETY: allocated by alloc_frame with the same layout, freed once (checked above).
        unsafe { dealloc(pa as *mut u8, PAGE) };
    }

    fn frames_available() -> usize {
        STATE.with(|s| s.borrow().budget.unwrap_or(usize::MAX))
    }

    fn tlb(op: TlbOp) {
        STATE.with(|s| s.borrow_mut().tlb.push(op));
    }

    fn vttbr() -> u64 {
        STATE.with(|s| s.borrow().vttbr)
    }

    fn set_vttbr(vttbr: u64) {
        STATE.with(|s| s.borrow_mut().vttbr = vttbr);
    }
}
