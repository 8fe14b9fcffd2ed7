//! Host tests of the DMA table on the fake machine, through the VM's memory: it holds exactly
//! the RAM leaves of the CPU table, whatever the guest does, and a refused call changes
//! neither.

use crate::addr::{Ipa, PAGE_SIZE, PhysAddr};
use crate::arch::Machine;
use crate::arch::fake::FakeMachine;
use crate::mm::owner::Owner;
use crate::vm::mem::{GuestMemory, PageCall, Pin, Progress};
use hypercall_abi::{Error, MemPerms};
use std::vec::Vec;

type Mem = GuestMemory<FakeMachine>;

const BASE: u64 = 0x8000_0000;
const P: u64 = PAGE_SIZE;
/// A channel's pages and a BAR, inside the range the random calls touch.
const CHANNEL: u64 = BASE + 40 * P;
const BAR: u64 = BASE + (3 << 20);
const BAR_PA: u64 = 0x1000_0000;

/// The VMID of these tests' VMs, marked as a device's (no other test uses it).
const VMID: u16 = 90;

fn fresh(quota_pages: u64) -> Mem {
    FakeMachine::limit_frames(None);
    super::super::set_dma_vmid(VMID, true);
    Mem::new(3, VMID, quota_pages * P).unwrap()
}

/// The SMMU invalidations asked for since the last call.
fn take_invalidations() -> Vec<(u16, u64, u64)> {
    super::super::SMMU_INVALIDATIONS.with(|log| core::mem::take(&mut *log.borrow_mut()))
}

/// The DMA table's leaves, checked equal to the CPU table's RAM leaves.
fn in_step(mem: &Mem) -> Vec<(u64, u64)> {
    let dma = mem.dma_leaves().expect("a DMA table");
    assert_eq!(dma, mem.ram_leaves(), "the DMA table is the RAM subset");
    for &(ipa, _) in &dma {
        assert!(!(CHANNEL..CHANNEL + 2 * P).contains(&ipa), "a channel page");
        assert!(!(BAR..BAR + 4 * P).contains(&ipa), "a BAR page");
    }
    dma
}

/// A VM with its image and a hyp-shared page, its DMA table, then a channel's two pages and a
/// 4-page BAR.
fn device_owner(quota_pages: u64) -> (Mem, [u64; 2]) {
    let mut mem = fresh(quota_pages);
    mem.map_pinned(BASE, 4, MemPerms::RW | MemPerms::EXEC, Pin::Image)
        .unwrap();
    mem.map_pinned(BASE + 8 * P, 1, MemPerms::READ, Pin::Hyp)
        .unwrap();
    mem.enable_dma().unwrap();
    let shared = [(); 2].map(|()| FakeMachine::alloc_frame(Owner::Shared(0)).unwrap());
    mem.map_shared(CHANNEL, &shared).unwrap();
    mem.map_device(Ipa::new(BAR), PhysAddr::new(BAR_PA), 4)
        .unwrap();
    (mem, shared)
}

#[test]
fn the_dma_table_holds_the_image_but_no_hyp_channel_or_bar_page() {
    let (mem, _) = device_owner(64);
    let dma = in_step(&mem);
    let ipas: Vec<u64> = dma.iter().map(|&(ipa, _)| ipa).collect();
    assert_eq!(ipas, [BASE, BASE + P, BASE + 2 * P, BASE + 3 * P]);
}

#[test]
fn the_dma_table_follows_random_maps_unmaps_and_protects() {
    let (mut mem, shared) = device_owner(2048);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let perms = [MemPerms::READ, MemPerms::RW, MemPerms::RW | MemPerms::EXEC];
    for _ in 0..3000 {
        let r = next();
        // Pages across three 2 MiB regions (tables come and go), now and then a long call.
        let ipa = BASE + (r % 1536) * P;
        let pages = if r >> 60 == 0 { 600 } else { 1 + (r >> 20) % 8 };
        let before = mem.ram_leaves();
        let result = match (r >> 12) % 4 {
            0 | 1 => mem.call(0, PageCall::Map(perms[(r >> 16) as usize % 3]), ipa, pages),
            2 => mem.call(0, PageCall::Unmap, ipa, pages),
            _ => mem.call(
                0,
                PageCall::Protect(perms[(r >> 24) as usize % 3]),
                ipa,
                pages,
            ),
        };
        let mut result = result;
        while let Ok(Progress::Continue { ipa, pages }) = result {
            let call = match (r >> 12) % 4 {
                0 | 1 => PageCall::Map(perms[(r >> 16) as usize % 3]),
                2 => PageCall::Unmap,
                _ => PageCall::Protect(perms[(r >> 24) as usize % 3]),
            };
            result = mem.call(0, call, ipa, pages);
        }
        let after = in_step(&mem);
        if result.is_err() {
            assert_eq!(after, before, "a refused call changes nothing");
        }
    }
    drop(mem);
    for pa in shared {
        FakeMachine::free_frame(Owner::Shared(0), pa);
    }
}

#[test]
fn the_smmu_forgets_what_the_dma_table_loses_and_only_that() {
    let (mut mem, _) = device_owner(64);
    mem.map(BASE + 16 * P, 2, MemPerms::RW).unwrap();
    take_invalidations();
    mem.protect(BASE + 16 * P, 2, MemPerms::READ).unwrap();
    assert_eq!(take_invalidations(), [(VMID, BASE + 16 * P, 2)], "protect");
    // Its last page out of the level-3 table: the leaves, then the walk.
    mem.map(BASE + (6 << 20), 1, MemPerms::RW).unwrap();
    take_invalidations();
    mem.unmap(BASE + (6 << 20), 1).unwrap();
    assert_eq!(
        take_invalidations(),
        [(VMID, BASE + (6 << 20), 1), (VMID, BASE + (6 << 20), 1)],
        "unmap of a table's last page"
    );
    // A hyp-shared page is not in the DMA table: its change costs the SMMU nothing.
    mem.set_hyp_page_perms(BASE + 8 * P, MemPerms::RW).unwrap();
    assert_eq!(take_invalidations(), []);
    in_step(&mem);
}

#[test]
fn a_refused_map_changes_neither_table() {
    let (mut mem, _) = device_owner(64);
    mem.map(BASE + 16 * P, 2, MemPerms::RW).unwrap();
    let cpu = mem.ram_leaves();
    let tables = mem.table_frames();
    // Overlapping a mapped page; onto the channel; beyond the frames left.
    assert_eq!(
        mem.map(BASE + 15 * P, 3, MemPerms::RW),
        Err(Error::AlreadyMapped)
    );
    assert_eq!(mem.map(CHANNEL, 1, MemPerms::RW), Err(Error::AlreadyMapped));
    FakeMachine::limit_frames(Some(2));
    assert_eq!(
        mem.map(BASE + (8 << 20), 2, MemPerms::RW),
        Err(Error::OutOfMemory),
        "two pages and two tables each for both tables"
    );
    FakeMachine::limit_frames(None);
    assert_eq!(in_step(&mem), cpu);
    assert_eq!(mem.table_frames(), tables);
    // The channel and the BAR can be neither unmapped nor protected.
    assert_eq!(mem.unmap(CHANNEL, 1), Err(Error::Denied));
    assert_eq!(mem.protect(BAR, 1, MemPerms::READ), Err(Error::Denied));
    assert_eq!(in_step(&mem), cpu);
}

#[test]
fn the_dma_tables_count_against_the_allowance_and_all_go_back() {
    let hyp_frames = FakeMachine::frames_of(Owner::Hyp);
    let (mut mem, shared) = device_owner(256);
    // One page per 2 MiB: each needs a level-3 table in both tables.
    let mut mapped = 0;
    while mem
        .map(BASE + (4 + mapped) * (2 << 20), 1, MemPerms::RW)
        .is_ok()
    {
        mapped += 1;
    }
    let cpu_only = fresh(256);
    let mut alone = 0;
    let mut cpu_only = cpu_only;
    while cpu_only
        .map(BASE + (4 + alone) * (2 << 20), 1, MemPerms::RW)
        .is_ok()
    {
        alone += 1;
    }
    drop(cpu_only);
    assert!(
        mapped < alone,
        "{mapped} maps with a DMA table, {alone} without"
    );
    in_step(&mem);
    for i in 0..mapped {
        mem.unmap(BASE + (4 + i) * (2 << 20), 1).unwrap();
    }
    in_step(&mem);
    drop(mem);
    for pa in shared {
        FakeMachine::free_frame(Owner::Shared(0), pa);
    }
    assert_eq!(
        FakeMachine::frames_of(Owner::Hyp),
        hyp_frames,
        "every table freed"
    );
}
