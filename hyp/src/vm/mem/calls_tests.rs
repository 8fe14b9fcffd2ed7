//! Host tests of chunked page calls: bounded chunks, the whole call checked up front, what is
//! set aside for it, and other vCPUs kept out until it is done.

use super::*;
use crate::arch::fake::FakeMachine;
use crate::mm::owner::Owner;
use hypercall_abi::MemPerms;

type Mem = GuestMemory<FakeMachine>;

const BASE: u64 = 0x8000_0000;
const P: u64 = PAGE_SIZE;
const MAP: PageCall = PageCall::Map(MemPerms::RW);

fn fresh(quota_pages: u64) -> Mem {
    FakeMachine::limit_frames(None);
    let mem = Mem::new(3, 4, quota_pages * P).unwrap();
    FakeMachine::take_tlb_ops();
    mem
}

/// Issues `call` from `vcpu` as the guest would, again and again while it continues; the
/// result and how many chunks it took.
fn run(
    mem: &mut Mem,
    vcpu: usize,
    call: PageCall,
    ipa: u64,
    pages: u64,
) -> (Result<(), Error>, u64) {
    let (mut ipa, mut pages, mut chunks) = (ipa, pages, 1);
    loop {
        match mem.call(vcpu, call, ipa, pages) {
            Ok(Progress::Done) => return (Ok(()), chunks),
            Ok(Progress::Continue { ipa: i, pages: p }) => {
                assert_eq!(i, ipa + CHUNK_PAGES * P, "a whole chunk done");
                assert_eq!(p, pages - CHUNK_PAGES);
                (ipa, pages) = (i, p);
                chunks += 1;
            }
            Ok(Progress::Busy) => panic!("no other call under way"),
            Err(e) => return (Err(e), chunks),
        }
    }
}

#[test]
fn a_large_map_goes_in_chunks_and_ends_as_one_call() {
    let mut mem = fresh(2000);
    assert_eq!(run(&mut mem, 0, MAP, BASE, 1300), (Ok(()), 3));
    assert_eq!(mem.pages_used(), 1300);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 1300);
    assert_eq!(FakeMachine::frames_reserved(), 0);
    assert_eq!(mem.continued_by(), None);
    assert_eq!(mem.query(BASE + 1299 * P), Ok(MemPerms::RW));
    assert_eq!(
        run(&mut mem, 0, PageCall::Protect(MemPerms::READ), BASE, 1300),
        (Ok(()), 3)
    );
    assert_eq!(mem.query(BASE + 1299 * P), Ok(MemPerms::READ));
    FakeMachine::take_tlb_ops();
    assert_eq!(run(&mut mem, 0, PageCall::Unmap, BASE, 1300), (Ok(()), 3));
    assert_eq!((mem.pages_used(), mem.table_frames()), (0, 1));
    let invalidations = FakeMachine::take_tlb_ops()
        .iter()
        .filter(|op| **op == TlbOp::TlbiVmalle1is)
        .count();
    // One removal sequence per chunk, and one per table freed (three level 3, one level 2).
    assert_eq!(invalidations, 3 + 3);
}

#[test]
fn the_whole_call_is_checked_before_the_first_chunk() {
    let mut mem = fresh(2000);
    mem.map(BASE + 1200 * P, 1, MemPerms::RW).unwrap();
    FakeMachine::take_tlb_ops();
    assert_eq!(mem.call(0, MAP, BASE, 1300), Err(Error::AlreadyMapped));
    assert_eq!(
        mem.call(0, MAP, BASE + 1300 * P, 2000),
        Err(Error::OutOfMemory)
    );
    FakeMachine::limit_frames(Some(1000));
    assert_eq!(
        mem.call(0, MAP, BASE + 2 * (1 << 30), 1000),
        Err(Error::OutOfMemory)
    );
    FakeMachine::limit_frames(None);
    assert_eq!(
        mem.call(0, PageCall::Unmap, BASE + 1200 * P, 600),
        Err(Error::NotMapped)
    );
    assert_eq!(mem.pages_used(), 1);
    assert!(FakeMachine::take_tlb_ops().is_empty(), "nothing changed");
    assert_eq!(mem.continued_by(), None);
}

#[test]
fn a_map_under_way_holds_its_quota_frames_and_tables() {
    let mut mem = fresh(1100);
    FakeMachine::limit_frames(Some(1100));
    assert_eq!(
        mem.call(0, MAP, BASE, 1000),
        Ok(Progress::Continue {
            ipa: BASE + 512 * P,
            pages: 488
        })
    );
    assert_eq!(
        mem.quota_left_bytes(),
        100 * P,
        "the whole call's quota is taken"
    );
    // 1000 pages and 3 tables set aside; 512 pages and 2 tables taken.
    assert_eq!(FakeMachine::frames_reserved(), 1003 - 514);
    assert_eq!(FakeMachine::frames_available(), 97);
    // Another VM cannot take what the call set aside (there are 585 frames, 96 not reserved).
    let mut other = Mem::new(5, 6, 200 * P).unwrap();
    assert_eq!(other.map(BASE, 200, MemPerms::RW), Err(Error::OutOfMemory));
    assert_eq!(mem.call(0, MAP, BASE + 512 * P, 488), Ok(Progress::Done));
    assert_eq!(FakeMachine::frames_reserved(), 0);
    other.map(BASE, 90, MemPerms::RW).unwrap();
    drop(other);
    FakeMachine::limit_frames(None);
}

#[test]
fn other_vcpus_wait_while_a_call_is_under_way() {
    let mut mem = fresh(2000);
    assert!(matches!(
        mem.call(0, MAP, BASE, 1300),
        Ok(Progress::Continue { .. })
    ));
    // Another vCPU would map into the range still to do: it waits, nothing changes.
    assert_eq!(mem.call(1, MAP, BASE + 1000 * P, 1), Ok(Progress::Busy));
    assert_eq!(mem.call(1, PageCall::Unmap, BASE, 1), Ok(Progress::Busy));
    assert_eq!(mem.query(BASE + 1000 * P), Err(Error::NotMapped));
    assert_eq!(run(&mut mem, 0, MAP, BASE + 512 * P, 788), (Ok(()), 2));
    assert_eq!(mem.call(1, PageCall::Unmap, BASE, 1), Ok(Progress::Done));
}

#[test]
fn a_call_given_up_keeps_what_it_did_and_gives_back_the_rest() {
    let mut mem = fresh(2000);
    assert!(matches!(
        mem.call(0, MAP, BASE, 1300),
        Ok(Progress::Continue { .. })
    ));
    // The same vCPU issues another call instead of the rest (its arguments changed).
    assert_eq!(
        mem.call(0, MAP, BASE + 512 * P, 700),
        Ok(Progress::Continue {
            ipa: BASE + 1024 * P,
            pages: 188
        })
    );
    mem.abandon_pending();
    assert_eq!(FakeMachine::frames_reserved(), 0);
    assert_eq!(mem.pages_used(), 1024);
    assert_eq!(mem.quota_left_bytes(), (2000 - 1024) * P);
    assert_eq!(mem.query(BASE + 1023 * P), Ok(MemPerms::RW));
    assert_eq!(mem.query(BASE + 1024 * P), Err(Error::NotMapped));
}

#[test]
fn tearing_down_gives_back_what_a_call_set_aside() {
    let mut mem = fresh(2000);
    assert!(matches!(
        mem.call(0, MAP, BASE, 1300),
        Ok(Progress::Continue { .. })
    ));
    mem.clear();
    assert_eq!(FakeMachine::frames_reserved(), 0);
    assert_eq!(mem.continued_by(), None);
    assert_eq!(mem.quota_left_bytes(), 2000 * P);
}
