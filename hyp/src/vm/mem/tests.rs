//! Host tests of guest memory on the fake machine: semantics, accounting, TLB sequences.

use super::*;
use crate::arch::fake::FakeMachine;
use std::vec;

pub(super) type Mem = GuestMemory<FakeMachine>;

pub(super) const BASE: u64 = 0x8000_0000;
pub(super) const P: u64 = PAGE_SIZE;

pub(super) fn fresh(quota_pages: u64) -> Mem {
    FakeMachine::limit_frames(None);
    let mem = Mem::new(3, 4, quota_pages * P).unwrap();
    FakeMachine::take_tlb_ops();
    FakeMachine::take_cache_ops();
    mem
}

pub(super) fn removal_sequence(ipas: &[u64]) -> Vec<TlbOp> {
    let mut ops = vec![TlbOp::DsbIshst];
    ops.extend(ipas.iter().map(|&ipa| TlbOp::TlbiIpas2e1is { ipa }));
    ops.extend([
        TlbOp::DsbIsh,
        TlbOp::TlbiVmalle1is,
        TlbOp::DsbIsh,
        TlbOp::Isb,
    ]);
    ops
}

#[test]
fn mapped_pages_are_zeroed_and_readable() {
    let mut mem = fresh(8);
    mem.map(BASE, 2, MemPerms::RW).unwrap();
    let mut buf = [0xffu8; 16];
    mem.read(BASE + P - 8, &mut buf).unwrap();
    assert_eq!(buf, [0; 16]);
    mem.write(BASE + P - 4, b"abcdefgh").unwrap();
    mem.read(BASE + P - 4, &mut buf[..8]).unwrap();
    assert_eq!(&buf[..8], b"abcdefgh");
    assert_eq!(mem.read(BASE + 2 * P - 4, &mut buf), Err(Error::BadAddress));
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 2);
}

#[test]
fn a_new_entry_needs_only_a_barrier() {
    let mut mem = fresh(8);
    mem.map(BASE, 3, MemPerms::RW).unwrap();
    assert_eq!(FakeMachine::take_tlb_ops(), [TlbOp::DsbIshst]);
}

#[test]
fn unmap_breaks_invalidates_and_returns_frames() {
    let mut mem = fresh(8);
    mem.map(BASE, 3, MemPerms::RW).unwrap();
    FakeMachine::take_tlb_ops();
    FakeMachine::set_vttbr(mem.vttbr());
    mem.unmap(BASE + P, 2).unwrap();
    assert_eq!(
        FakeMachine::take_tlb_ops(),
        removal_sequence(&[BASE + P, BASE + 2 * P])
    );
    assert_eq!(mem.pages_used(), 1);
    // The two frames scrubbed, kept at hand for the next maps.
    assert_eq!(mem.frames_held(), 3);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 3);
    assert_eq!(
        FakeMachine::take_cache_ops().len(),
        4,
        "zeroed and cleaned, each"
    );
    assert_eq!(mem.query(BASE + P), Err(Error::NotMapped));
    assert_eq!(mem.quota_left_bytes(), 7 * P);
}

#[test]
fn tlb_maintenance_runs_under_the_vms_own_vmid() {
    let mut mem = fresh(8);
    mem.map(BASE, 1, MemPerms::RW).unwrap();
    let other_vm = 0x0009_0000_4000_0000;
    FakeMachine::set_vttbr(other_vm);
    assert_eq!(mem.vttbr() >> 48, 4, "the VMID is in VTTBR[63:48]");
    FakeMachine::take_tlb_ops();
    mem.unmap(BASE, 1).unwrap();
    // The maintenance itself ran with our VMID; the other VM's context is back afterwards.
    let ops = FakeMachine::take_tlb_ops_with_vmid();
    let invalidations = ops
        .iter()
        .filter(|(_, op)| !matches!(op, TlbOp::DsbIshst | TlbOp::DsbIsh | TlbOp::Isb))
        .count();
    assert!(invalidations > 0, "{ops:?}");
    assert!(ops.iter().all(|&(vmid, _)| vmid == 4), "{ops:?}");
    assert_eq!(FakeMachine::vttbr(), other_vm);
}

#[test]
fn protect_is_break_before_make() {
    let mut mem = fresh(8);
    mem.map(BASE, 2, MemPerms::RW).unwrap();
    FakeMachine::set_vttbr(mem.vttbr());
    FakeMachine::take_tlb_ops();
    mem.protect(BASE, 2, MemPerms::READ | MemPerms::EXEC)
        .unwrap();
    let mut expected = removal_sequence(&[BASE, BASE + P]);
    expected.push(TlbOp::DsbIshst);
    assert_eq!(FakeMachine::take_tlb_ops(), expected);
    assert_eq!(mem.query(BASE + P + 7), Ok(MemPerms::RX));
    let read_only_exec = mem
        .leaves()
        .filter(|&d| d & desc::S2AP == 1 << 6 && d & desc::XN == 0)
        .count();
    assert_eq!(read_only_exec, 2);
}

#[test]
fn range_arguments_are_checked() {
    let mut mem = fresh(8);
    assert_eq!(mem.map(BASE + 1, 1, MemPerms::RW), Err(Error::BadAddress));
    assert_eq!(
        mem.map(BASE, 0, MemPerms::RW),
        Err(Error::InvalidParameters)
    );
    assert_eq!(
        mem.map(IPA_LIMIT - P, 2, MemPerms::RW),
        Err(Error::BadAddress)
    );
    assert_eq!(mem.map(!(P - 1), 2, MemPerms::RW), Err(Error::BadAddress));
    assert_eq!(
        mem.map(BASE, u64::MAX, MemPerms::RW),
        Err(Error::BadAddress)
    );
    assert_eq!(
        mem.map(BASE, 1, MemPerms::WRITE),
        Err(Error::InvalidParameters)
    );
    assert_eq!(mem.query(IPA_LIMIT), Err(Error::BadAddress));
    assert_eq!(mem.unmap(BASE, 1), Err(Error::NotMapped));
    assert_eq!(mem.pages_used(), 0);
    assert!(
        FakeMachine::take_tlb_ops().is_empty(),
        "refused calls touch nothing"
    );
}

#[test]
fn quota_and_overlap_are_all_or_nothing() {
    let mut mem = fresh(4);
    mem.map(BASE + 2 * P, 1, MemPerms::RW).unwrap();
    assert_eq!(mem.map(BASE, 4, MemPerms::RW), Err(Error::OutOfMemory));
    assert_eq!(mem.map(BASE, 3, MemPerms::RW), Err(Error::AlreadyMapped));
    assert_eq!(mem.pages_used(), 1);
    mem.map(BASE, 2, MemPerms::RW).unwrap();
    assert_eq!(
        mem.unmap(BASE, 4),
        Err(Error::NotMapped),
        "one page of the range is not mapped"
    );
    assert_eq!(mem.pages_used(), 3);
}

#[test]
fn pinned_pages_cannot_be_unmapped_but_can_be_protected() {
    let mut mem = fresh(4);
    mem.map_pinned(BASE, 1, MemPerms::RX, Pin::Image).unwrap();
    mem.map(BASE + P, 1, MemPerms::RW).unwrap();
    mem.map_pinned(BASE + 2 * P, 1, MemPerms::READ, Pin::Hyp)
        .unwrap();
    assert_eq!(mem.unmap(BASE, 2), Err(Error::Denied));
    assert_eq!(mem.pages_used(), 3);
    mem.protect(BASE, 1, MemPerms::READ).unwrap();
    assert_eq!(
        mem.protect(BASE + P, 2, MemPerms::RW),
        Err(Error::Denied),
        "a page the hyp shares"
    );
    assert_eq!(mem.unmap(BASE + 2 * P, 1), Err(Error::Denied));
}

#[test]
fn a_map_the_free_frames_cannot_hold_is_refused_before_anything_changes() {
    let mut mem = fresh(64);
    mem.map(BASE, 1, MemPerms::RW).unwrap();
    FakeMachine::take_tlb_ops();
    let tables_before = FakeMachine::frames_of(Owner::Hyp);
    FakeMachine::limit_frames(Some(7));
    assert_eq!(mem.map(BASE + P, 8, MemPerms::RW), Err(Error::OutOfMemory));
    assert!(
        FakeMachine::take_tlb_ops().is_empty(),
        "nothing was written, so nothing to invalidate"
    );
    assert_eq!(FakeMachine::frames_available(), 7, "no frame was taken");
    mem.map(BASE + P, 7, MemPerms::RW).unwrap();
    FakeMachine::limit_frames(None);
    assert_eq!(mem.pages_used(), 8);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 8);
    assert_eq!(FakeMachine::frames_of(Owner::Hyp), tables_before);
}

#[test]
fn running_out_of_frames_for_tables_is_refused_not_fatal() {
    let mut mem = fresh(64);
    mem.map(BASE, 1, MemPerms::RW).unwrap();
    let far = BASE + (1 << 30);
    // Enough for the page itself, not for the level-2 and level-3 tables a new GiB needs.
    FakeMachine::limit_frames(Some(2));
    assert_eq!(mem.map(far, 1, MemPerms::RW), Err(Error::OutOfMemory));
    let shared = [BASE];
    FakeMachine::limit_frames(Some(1));
    assert_eq!(mem.map_shared(far, &shared), Err(Error::OutOfMemory));
    FakeMachine::limit_frames(None);
    assert_eq!(mem.pages_used(), 1);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 1);
    let mut buf = [0u8; 1];
    assert_eq!(mem.read(far, &mut buf), Err(Error::BadAddress));
    mem.map(far, 1, MemPerms::RW).unwrap();
    mem.read(far, &mut buf).unwrap();
}

#[test]
fn memory_creation_fails_cleanly_without_frames() {
    FakeMachine::limit_frames(Some(0));
    assert!(Mem::new(3, 4, 16 * P).is_err());
    FakeMachine::limit_frames(None);
}

#[test]
fn every_frame_has_exactly_one_owner() {
    let mut a = fresh(16);
    let mut b = Mem::new(5, 6, 16 * P).unwrap();
    a.map(BASE, 5, MemPerms::RW).unwrap();
    b.map(BASE, 7, MemPerms::RW).unwrap();
    a.unmap(BASE, 2).unwrap();
    assert_eq!(
        FakeMachine::frames_of(Owner::Vm(3)),
        a.frames_held() as usize
    );
    assert_eq!(
        FakeMachine::frames_of(Owner::Vm(5)),
        b.frames_held() as usize
    );
    drop(a);
    drop(b);
    assert_eq!(
        FakeMachine::frames_of(Owner::Vm(3)) + FakeMachine::frames_of(Owner::Vm(5)),
        0
    );
    assert_eq!(
        FakeMachine::frames_of(Owner::Hyp),
        0,
        "stage-2 tables and roots are freed with the VM"
    );
}

#[test]
fn channel_pages_are_seen_but_not_owned() {
    let mut mem = fresh(4);
    let shared = [
        FakeMachine::alloc_frame(Owner::Shared(0)).unwrap(),
        FakeMachine::alloc_frame(Owner::Shared(0)).unwrap(),
    ];
    mem.map_shared(BASE, &shared).unwrap();
    mem.write(BASE + P + 8, b"ping").unwrap();
    let mut buf = [0u8; 4];
    mem.read(BASE + P + 8, &mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    assert_eq!(
        (mem.pages_used(), mem.quota_left_bytes()),
        (0, 4 * P),
        "not the VM's quota"
    );
    assert_eq!(mem.unmap(BASE, 1), Err(Error::Denied));
    assert_eq!(mem.protect(BASE, 1, MemPerms::READ), Err(Error::Denied));
    assert_eq!(mem.map(BASE, 1, MemPerms::RW), Err(Error::AlreadyMapped));
    assert_eq!(
        mem.map_shared(BASE + P, &shared[..1]),
        Err(Error::AlreadyMapped)
    );
    assert_eq!(mem.frames().count(), 0);
    drop(mem);
    assert_eq!(
        FakeMachine::frames_of(Owner::Shared(0)),
        2,
        "the channel keeps its frames"
    );
}

#[test]
fn the_record_lives_in_the_descriptors() {
    let mut mem = fresh(8);
    // Across a level-3 table boundary: the second page needs a new table.
    let edge = BASE + (2 << 20) - P;
    mem.map_pinned(edge, 2, MemPerms::RW, Pin::Image).unwrap();
    mem.map(edge + 2 * P, 1, MemPerms::RX).unwrap();
    let shared = [FakeMachine::alloc_frame(Owner::Shared(1)).unwrap()];
    mem.map_shared(BASE, &shared).unwrap();
    mem.protect(edge, 3, MemPerms::READ).unwrap();
    assert_eq!(mem.query(edge + P), Ok(MemPerms::READ));
    assert_eq!(mem.query(BASE), Ok(MemPerms::RW));
    assert_eq!(
        mem.unmap(edge, 1),
        Err(Error::Denied),
        "the pin survives protect"
    );
    assert_eq!(mem.unmap(edge, 4), Err(Error::NotMapped));
    mem.unmap(edge + 2 * P, 1).unwrap();
    assert_eq!(mem.query(edge + 2 * P), Err(Error::NotMapped));
    let frames: Vec<u64> = mem.frames().map(PhysAddr::get).collect();
    assert_eq!(frames.len() as u64, mem.pages_used());
    assert_eq!(mem.pages_used(), 2);
    assert!(
        frames
            .iter()
            .all(|&pa| pa != shared[0] && pa.is_multiple_of(P))
    );
    assert_eq!(
        FakeMachine::frames_of(Owner::Vm(3)) as u64,
        mem.frames_held()
    );
    mem.write(edge + P - 2, b"xyzw").unwrap();
    let mut buf = [0u8; 4];
    mem.read(edge + P - 2, &mut buf).unwrap();
    assert_eq!(&buf, b"xyzw");
    drop(mem);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 0);
    assert_eq!(FakeMachine::frames_of(Owner::Shared(1)), 1);
    FakeMachine::free_frame(Owner::Shared(1), shared[0]);
}

#[test]
fn a_refused_unmap_leaves_every_entry_live() {
    let mut mem = fresh(8);
    mem.map(BASE, 2, MemPerms::RW).unwrap();
    mem.map_pinned(BASE + 2 * P, 1, MemPerms::READ, Pin::Hyp)
        .unwrap();
    FakeMachine::take_tlb_ops();
    assert_eq!(mem.unmap(BASE, 3), Err(Error::Denied));
    assert!(FakeMachine::take_tlb_ops().is_empty());
    assert_eq!(mem.leaves().count(), 3);
}

/// Two pages of a device's registers, outside anything the fake machine allocates.
const GICV: u64 = 0x0804_0000;

#[test]
fn device_pages_are_mapped_device_memory_and_nobodys_frames() {
    let mut mem = fresh(4);
    mem.map(BASE + 2 * P, 1, MemPerms::RW).unwrap();
    let tables = mem.table_frames();
    FakeMachine::take_tlb_ops();
    mem.map_device(Ipa::new(BASE), PhysAddr::new(GICV), 2)
        .unwrap();
    assert_eq!(FakeMachine::take_tlb_ops(), [TlbOp::DsbIshst]);
    for i in 0..2 {
        let d = Cursor::new(mem.root).query(Ipa::new(BASE + i * P)).unwrap();
        assert_eq!(output(d).get(), GICV + i * P);
        // MemAttr[3:0], bits [5:2] (without FEAT_S2FWB).
        assert_eq!(d & 0b1111 << 2, 0b0001 << 2, "Device-nGnRE");
        assert_eq!(d & desc::S2AP, desc::S2AP, "read-write");
        assert_ne!(d & desc::XN, 0, "never executable");
    }
    assert_eq!(mem.table_frames(), tables, "in the RAM page's tables");
    assert_eq!(
        (mem.pages_used(), mem.quota_left_bytes()),
        (1, 3 * P),
        "not the VM's quota"
    );
    assert_eq!(mem.frames().count(), 1, "not the VM's frames");
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 1);
    assert!(FakeMachine::take_cache_ops().is_empty(), "never zeroed");
    // No page call of the guest's reaches them, nor does the hyp copy to or from them.
    assert_eq!(mem.unmap(BASE, 1), Err(Error::Denied));
    assert_eq!(mem.unmap(BASE, 3), Err(Error::Denied));
    assert_eq!(mem.protect(BASE + P, 1, MemPerms::READ), Err(Error::Denied));
    assert_eq!(mem.query(BASE), Err(Error::Denied));
    assert_eq!(
        mem.map(BASE + P, 1, MemPerms::RW),
        Err(Error::AlreadyMapped)
    );
    assert_eq!(
        mem.set_hyp_page_perms(BASE, MemPerms::RW),
        Err(Error::NotMapped)
    );
    assert_eq!(mem.write(BASE, b"x"), Err(Error::BadAddress));
    assert_eq!(mem.read(BASE + P, &mut [0; 1]), Err(Error::BadAddress));
    assert!(FakeMachine::take_tlb_ops().is_empty(), "refused whole");
    // Torn down with the VM without a free: the fake machine panics at a frame it never
    // handed out.
    mem.clear();
    assert_eq!(mem.leaves().count(), 0);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 0);
    mem.map_device(Ipa::new(BASE), PhysAddr::new(GICV), 2)
        .unwrap();
    drop(mem);
    assert_eq!(FakeMachine::frames_of(Owner::Hyp), 0);
}

#[test]
fn device_mappings_are_checked_whole() {
    let mut mem = fresh(4);
    mem.map(BASE + P, 1, MemPerms::RW).unwrap();
    let gicv = PhysAddr::new(GICV);
    assert_eq!(
        mem.map_device(Ipa::new(BASE), gicv, 2),
        Err(Error::AlreadyMapped)
    );
    assert_eq!(mem.leaves().count(), 1, "nothing mapped");
    assert_eq!(
        mem.map_device(Ipa::new(BASE), PhysAddr::new(GICV + 8), 1),
        Err(Error::BadAddress)
    );
    assert_eq!(
        mem.map_device(Ipa::new(BASE), PhysAddr::new(1 << 48), 1),
        Err(Error::BadAddress)
    );
    assert_eq!(
        mem.map_device(Ipa::new(BASE + 8), gicv, 1),
        Err(Error::BadAddress)
    );
    assert_eq!(
        mem.map_device(Ipa::new(IPA_LIMIT - P), gicv, 2),
        Err(Error::BadAddress)
    );
    assert_eq!(
        mem.map_device(Ipa::new(BASE), gicv, 0),
        Err(Error::InvalidParameters)
    );
    // The tables a mapping needs count against the allowance.
    FakeMachine::limit_frames(Some(1));
    assert_eq!(
        mem.map_device(Ipa::new(BASE + L2_SPAN), gicv, 1),
        Err(Error::OutOfMemory)
    );
    FakeMachine::limit_frames(None);
    mem.map_device(Ipa::new(BASE + L2_SPAN), gicv, 1).unwrap();
    assert_eq!(mem.table_frames(), 5);
}

#[test]
fn a_guests_whole_ram_is_mapped_at_boot_with_one_icache_invalidation() {
    // Across a 2 MiB boundary, and beyond one run of frames from the pool.
    let pages = 600;
    let start = BASE + L3_SPAN - 40 * P;
    let mut mem = fresh(pages + 1);
    FakeMachine::take_frame_batches();
    mem.map_ram_at_boot(Ipa::new(start), pages).unwrap();
    assert_eq!(FakeMachine::take_frame_batches(), 10, "64 frames at a time");
    assert_eq!(
        FakeMachine::take_cache_ops(),
        [CacheOp::InvalidateInstructionCache],
        "no sync per page"
    );
    assert_eq!(FakeMachine::take_tlb_ops(), [TlbOp::DsbIshst]);
    assert_eq!(mem.pages_used(), pages);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)) as u64, pages);
    assert_eq!(
        mem.table_frames(),
        1 + 1 + 3,
        "root, one level 2, three level 3"
    );
    assert_eq!(mem.query(start), Ok(MemPerms::RW | MemPerms::EXEC));
    assert_eq!(
        mem.query(start + (pages - 1) * P),
        Ok(MemPerms::RW | MemPerms::EXEC)
    );
    assert_eq!(mem.query(start + pages * P), Err(Error::NotMapped));
    assert_eq!(
        mem.unmap(start, 1),
        Err(Error::Denied),
        "pinned as the image"
    );
    // Code written into it is made coherent for fetch, page by page.
    mem.write_executable(Ipa::new(start + P - 4), &[0xaa; 8])
        .unwrap();
    let synced = FakeMachine::take_cache_ops();
    assert_eq!(synced.len(), 2);
    assert!(
        synced
            .iter()
            .all(|op| matches!(op, CacheOp::SyncForExecution { .. }))
    );
    let mut word = [0; 8];
    mem.read(start + P - 4, &mut word).unwrap();
    assert_eq!(word, [0xaa; 8]);
    assert_eq!(
        mem.write_executable(Ipa::new(start + pages * P - 4), &[0; 8]),
        Err(Error::BadAddress)
    );
    // All or nothing: beyond the quota, over a mapped page, or more than RAM holds.
    assert_eq!(
        mem.map_ram_at_boot(Ipa::new(BASE + L2_SPAN), 2),
        Err(Error::OutOfMemory)
    );
    let mut other = fresh(64);
    other.map(BASE + 8 * P, 1, MemPerms::RW).unwrap();
    assert_eq!(
        other.map_ram_at_boot(Ipa::new(BASE), 16),
        Err(Error::AlreadyMapped)
    );
    FakeMachine::limit_frames(Some(10));
    assert_eq!(
        other.map_ram_at_boot(Ipa::new(BASE + L2_SPAN), 16),
        Err(Error::OutOfMemory)
    );
    FakeMachine::limit_frames(None);
    assert_eq!(other.pages_used(), 1);
    drop(other);
    drop(mem);
    assert_eq!(FakeMachine::frames_of(Owner::Vm(3)), 0);
    assert_eq!(FakeMachine::frames_of(Owner::Hyp), 0);
}

/// The host address of a hyp page as its leaf says it now.
fn leaf_address(mem: &Mem, ipa: u64) -> Option<u64> {
    mem.entry(ipa).map(|d| output(d).get() + ipa % P)
}

#[test]
fn shared_pages_are_found_without_a_walk_until_the_memory_is_cleared() {
    let mut mem = fresh(16);
    mem.map_pinned(BASE, 4, MemPerms::RW, Pin::Hyp).unwrap();
    for page in 0..4 {
        let ipa = BASE + page * P + 8;
        assert!(
            mem.hyp_pages.iter().any(|k| k.page == ipa / P),
            "page {page} remembered"
        );
        assert_eq!(mem.host_address(ipa), leaf_address(&mem, ipa));
    }
    mem.write_u32(BASE + P + 128, 0x1234_5678).unwrap();
    let mut buf = [MaybeUninit::uninit(); 6];
    assert_eq!(
        mem.read_in_page(BASE + P + 126, &mut buf).unwrap(),
        [0, 0, 0x78, 0x56, 0x34, 0x12]
    );
    // The same IPAs again after a clear, once the old frames went to other pages first: every
    // access goes to the new frames, none to what the first mapping held.
    let old = mem.host_address(BASE).unwrap();
    mem.clear();
    let mut buf = [MaybeUninit::uninit(); 4];
    assert_eq!(mem.read_in_page(BASE, &mut buf), Err(Error::BadAddress));
    assert_eq!(mem.write_u32(BASE + 3 * P, 1), Err(Error::BadAddress));
    mem.map(BASE + 64 * P, 4, MemPerms::RW).unwrap();
    mem.map_pinned(BASE, 4, MemPerms::RW, Pin::Hyp).unwrap();
    assert_ne!(
        leaf_address(&mem, BASE),
        Some(old),
        "the test needs another frame"
    );
    for page in 0..4 {
        let ipa = BASE + page * P;
        assert_eq!(mem.host_address(ipa), leaf_address(&mem, ipa));
    }
    assert_eq!(mem.read_in_page(BASE + P + 128, &mut buf).unwrap(), [0; 4]);
}

#[test]
fn a_guests_own_page_is_walked_every_time() {
    let mut mem = fresh(8);
    mem.map(BASE, 1, MemPerms::RW).unwrap();
    assert!(mem.hyp_pages.iter().all(|k| k.page == u64::MAX));
    mem.write(BASE, b"old").unwrap();
    mem.unmap(BASE, 1).unwrap();
    assert_eq!(mem.write_u32(BASE, 1), Err(Error::BadAddress));
    mem.map(BASE, 1, MemPerms::RW).unwrap();
    let mut buf = [MaybeUninit::uninit(); 3];
    assert_eq!(mem.read_in_page(BASE, &mut buf).unwrap(), [0; 3]);
}

#[test]
fn in_page_reads_and_word_writes_check_their_bounds() {
    let mut mem = fresh(8);
    mem.map(BASE, 2, MemPerms::RW).unwrap();
    let mut buf = [MaybeUninit::uninit(); 8];
    assert_eq!(
        mem.read_in_page(BASE + P - 4, &mut buf),
        Err(Error::BadAddress)
    );
    assert_eq!(
        mem.read_in_page(BASE + 2 * P, &mut buf),
        Err(Error::BadAddress)
    );
    assert!(mem.read_in_page(BASE + P - 8, &mut buf).is_ok());
    assert_eq!(mem.write_u32(BASE + 2, 7), Err(Error::BadAddress));
    assert_eq!(mem.write_u32(BASE + 2 * P, 7), Err(Error::BadAddress));
    mem.write_u32(BASE + P - 4, 7).unwrap();
    let mut word = [MaybeUninit::uninit(); 4];
    assert_eq!(
        mem.read_in_page(BASE + P - 4, &mut word).unwrap(),
        [7, 0, 0, 0]
    );
}
