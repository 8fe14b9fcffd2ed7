//! Host tests of the stage-2 tables' life on the fake machine: the allowance, tables freed
//! with their last page, teardown, and the cache maintenance of executable pages.

use super::tests::{BASE, Mem, P, fresh, removal_sequence};
use super::*;
use crate::arch::CacheOp;
use crate::arch::fake::FakeMachine;

#[test]
fn a_table_is_unhooked_break_before_make_and_freed_with_its_last_page() {
    let mut mem = fresh(8);
    let ipa = BASE + 5 * (2 << 20) + 3 * P;
    mem.map(ipa, 1, MemPerms::RW).unwrap();
    assert_eq!(mem.table_frames(), 3, "root, level 2, level 3");
    FakeMachine::set_vttbr(mem.vttbr());
    FakeMachine::take_tlb_ops();
    let hyp_frames = FakeMachine::frames_of(Owner::Hyp);
    mem.unmap(ipa, 1).unwrap();
    // The page's own removal, then the tables' (both empty now): the level-2 and level-1
    // entries cleared, the non-leaf invalidation for their range, then the frames freed.
    let mut expected = removal_sequence(&[ipa]);
    expected.extend(removal_sequence(&[ipa & !((2 << 20) - 1)]));
    assert_eq!(FakeMachine::take_tlb_ops(), expected);
    assert_eq!(mem.table_frames(), 1);
    assert_eq!(FakeMachine::frames_of(Owner::Hyp), hyp_frames - 2);
    assert_eq!(mem.query(ipa), Err(Error::NotMapped));
    // A level-3 table that still holds a page stays.
    mem.map(ipa, 2, MemPerms::RW).unwrap();
    FakeMachine::take_tlb_ops();
    mem.unmap(ipa, 1).unwrap();
    assert_eq!(FakeMachine::take_tlb_ops(), removal_sequence(&[ipa]));
    assert_eq!(mem.table_frames(), 3);
    assert_eq!(mem.query(ipa + P), Ok(MemPerms::RW));
}

#[test]
fn one_page_in_each_of_many_2mib_regions_leaves_the_table_count_flat() {
    let mut mem = fresh(16);
    mem.map(BASE, 1, MemPerms::RW).unwrap();
    let tables = mem.table_frames();
    let hyp_frames = FakeMachine::frames_of(Owner::Hyp);
    for region in 1..3000u64 {
        let ipa = BASE + region * (2 << 20) + (region % 512) * P;
        mem.map(ipa, 1, MemPerms::RW).unwrap();
        mem.unmap(ipa, 1).unwrap();
    }
    assert_eq!(mem.table_frames(), tables);
    assert_eq!(FakeMachine::frames_of(Owner::Hyp), hyp_frames);
    assert_eq!(mem.pages_used(), 1);
}

#[test]
fn tables_beyond_the_allowance_are_refused() {
    let quota = 256;
    let mut mem = fresh(quota);
    let allowance = table_allowance(quota);
    assert_eq!(allowance, TABLES_MIN + quota / PAGES_PER_TABLE);
    // One page per 2 MiB, all in one GiB: a level-2 table, then a level-3 table each.
    let mut mapped = 0;
    let result = loop {
        let ipa = BASE + mapped * (2 << 20);
        match mem.map(ipa, 1, MemPerms::RW) {
            Ok(()) => mapped += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(result, Error::OutOfMemory);
    assert_eq!(mapped, allowance - 1);
    assert_eq!(mem.table_frames(), allowance + 1);
    assert!(mem.quota_left_bytes() > 0, "the quota was not what ran out");
    // Into a table that exists, mapping goes on.
    mem.map(BASE + P, 1, MemPerms::RW).unwrap();
    // One table freed: a map across two 2 MiB regions without tables needs one too many and
    // is refused whole; one that needs one table maps.
    mem.unmap(BASE + (mapped - 1) * (2 << 20), 1).unwrap();
    let edge = BASE + mapped * (2 << 20);
    FakeMachine::take_tlb_ops();
    assert_eq!(
        mem.map(edge - 2 * P, 4, MemPerms::RW),
        Err(Error::OutOfMemory)
    );
    assert!(FakeMachine::take_tlb_ops().is_empty());
    assert_eq!(mem.query(edge - 2 * P), Err(Error::NotMapped));
    mem.map(edge - 2 * P, 2, MemPerms::RW).unwrap();
}

#[test]
fn a_page_is_made_coherent_for_fetch_before_it_is_first_executable() {
    let mut mem = fresh(8);
    mem.map(BASE, 2, MemPerms::RW).unwrap();
    assert!(FakeMachine::take_cache_ops().is_empty(), "not executable");
    mem.map(BASE + 2 * P, 1, MemPerms::RX).unwrap();
    let frame = |mem: &Mem, ipa: u64| mem.host_address(ipa).unwrap();
    assert_eq!(
        FakeMachine::take_cache_ops(),
        [CacheOp::SyncForExecution {
            pa: frame(&mem, BASE + 2 * P)
        }]
    );
    mem.protect(BASE, 2, MemPerms::RX).unwrap();
    assert_eq!(
        FakeMachine::take_cache_ops(),
        [
            CacheOp::SyncForExecution {
                pa: frame(&mem, BASE)
            },
            CacheOp::SyncForExecution {
                pa: frame(&mem, BASE + P)
            }
        ]
    );
    mem.protect(BASE, 3, MemPerms::READ | MemPerms::EXEC)
        .unwrap();
    mem.protect(BASE, 3, MemPerms::READ).unwrap();
    assert!(
        FakeMachine::take_cache_ops().is_empty(),
        "already executable, or not executable"
    );
}

#[test]
fn clear_forgets_the_vmids_translations_and_frees_everything_but_the_root() {
    let mut mem = fresh(64);
    mem.map(BASE, 5, MemPerms::RW).unwrap();
    mem.map(BASE + (3 << 30), 2, MemPerms::RW).unwrap();
    let shared = [FakeMachine::alloc_frame(Owner::Shared(2)).unwrap()];
    mem.map_shared(BASE + (9 << 20), &shared).unwrap();
    let other = 0x0007_0000_0000_0000;
    FakeMachine::set_vttbr(other);
    FakeMachine::take_tlb_ops();
    mem.clear();
    assert_eq!(
        FakeMachine::take_tlb_ops_with_vmid(),
        [
            TlbOp::DsbIshst,
            TlbOp::TlbiVmalls12e1is,
            TlbOp::DsbIsh,
            TlbOp::Isb
        ]
        .map(|op| (4, op)),
        "under the VM's own VMID"
    );
    assert_eq!(FakeMachine::vttbr(), other);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 0);
    assert_eq!(FakeMachine::frames_of(Owner::Hyp), 1, "the root stays");
    assert_eq!(FakeMachine::frames_of(Owner::Shared(2)), 1);
    assert_eq!((mem.pages_used(), mem.table_frames()), (0, 1));
    assert_eq!(mem.quota_left_bytes(), 64 * P);
    assert_eq!(mem.query(BASE), Err(Error::NotMapped));
    mem.map(BASE, 64, MemPerms::RW).unwrap();
    drop(mem);
    assert_eq!(FakeMachine::frames_of(Owner::Hyp), 0);
    FakeMachine::free_frame(Owner::Shared(2), shared[0]);
}

#[test]
fn a_vm_larger_than_half_the_free_frames_is_rebuilt_in_place() {
    let mut mem = fresh(700);
    FakeMachine::limit_frames(Some(1000));
    mem.map(BASE, 700, MemPerms::RW).unwrap();
    // A second copy beside it does not fit: a reset must tear down first.
    let mut beside = Mem::new(5, 6, 700 * P).unwrap();
    assert_eq!(beside.map(BASE, 700, MemPerms::RW), Err(Error::OutOfMemory));
    drop(beside);
    mem.clear();
    mem.map(BASE, 700, MemPerms::RW).unwrap();
    assert_eq!(mem.pages_used(), 700);
    FakeMachine::limit_frames(None);
}
