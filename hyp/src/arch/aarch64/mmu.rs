//! The hypervisor's own EL2 stage-1 tables, built once the device tree has named the RAM and
//! the devices: the image at its link address with per-section permissions (but the guards
//! around the CPUs' stacks, left unmapped), RAM identity-mapped non-executable, and the devices
//! the hyp drives identity-mapped as Device-nGnRE.

use aarch64_paging::descriptor::{El23Attributes, PhysicalAddress};
use aarch64_paging::paging::{Constraints, El2, MemoryRegion, PageTable, RootTable, Translation};
use core::arch::asm;
use core::ptr::NonNull;

const TABLE_POOL_PAGES: usize = 64;

#[repr(C, align(4096))]
struct TablePage([u8; 4096]);

/// Table pages for the EL2 tables, in the image so they need no allocator.
static mut TABLE_POOL: [TablePage; TABLE_POOL_PAGES] =
    [const { TablePage([0; 4096]) }; TABLE_POOL_PAGES];

/// Hands out pages of TABLE_POOL; `image_offset` is link address minus load address.
struct PoolTranslation {
    next: usize,
    image_offset: usize,
}

impl Translation<El23Attributes> for PoolTranslation {
    fn allocate_table(&mut self) -> (NonNull<PageTable<El23Attributes>>, PhysicalAddress) {
        assert!(self.next < TABLE_POOL_PAGES, "EL2 table pool exhausted");
        // SAFETY: each index is handed out once, so no two tables alias; the pool is zeroed .bss.
        let page = unsafe { &raw mut TABLE_POOL[self.next] };
        self.next += 1;
        let va = page as usize;
        (
            NonNull::new(page.cast()).expect("static"),
            PhysicalAddress(va - self.image_offset),
        )
    }

    unsafe fn deallocate_table(&mut self, _table: NonNull<PageTable<El23Attributes>>) {
        // The hyp's tables live as long as the hyp.
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<El23Attributes>> {
        NonNull::new((pa.0 + self.image_offset) as *mut _).expect("non-null")
    }
}

/// What the EL2 address space must contain.
pub struct Layout<'a> {
    pub image_offset: usize,
    pub ram: &'a [(u64, u64)],
    pub devices: &'a [(u64, u64)],
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

fn symbol(s: &u8) -> usize {
    s as *const u8 as usize
}

const NORMAL: El23Attributes = El23Attributes::VALID
    .union(El23Attributes::ATTRIBUTE_INDEX_0)
    .union(El23Attributes::INNER_SHAREABLE)
    .union(El23Attributes::ACCESSED);
const DEVICE: El23Attributes = El23Attributes::VALID
    .union(El23Attributes::ATTRIBUTE_INDEX_1)
    .union(El23Attributes::ACCESSED)
    .union(El23Attributes::XN);

/// Builds the final tables and switches to them. The running code and stack keep their
/// addresses (the image stays at its link address), so the switch is seamless.
pub fn switch_to_final_tables(layout: &Layout) {
    // SAFETY: linker-script symbols; only their addresses are used.
    let (start, text_end, rodata_end, end) = unsafe {
        (
            symbol(&__image_start),
            symbol(&__text_end),
            symbol(&__rodata_end),
            symbol(&__image_end),
        )
    };
    let pa = |va: usize| PhysicalAddress(va - layout.image_offset);
    // Built before it is live, so a `RootTable`: `Mapping`'s maintenance of live tables (and the
    // unwrap in it) is not needed.
    let mut map = RootTable::new(
        PoolTranslation {
            next: 0,
            image_offset: layout.image_offset,
        },
        1,
        El2,
    );
    // A failure names the range, not the `MapError` (whose Debug and Display are 1 KiB of the
    // Image for a boot that has already gone wrong).
    let mut map_range = |what: &str, from: usize, to: usize, pa: PhysicalAddress, attrs| {
        let region = MemoryRegion::new(from, to);
        if map
            .map_range(&region, pa, attrs, Constraints::empty())
            .is_err()
        {
            panic!("{what} {from:#x}..{to:#x}: the hyp's EL2 tables cannot map it");
        }
    };
    let image_map = [
        (start, text_end, NORMAL | El23Attributes::READ_ONLY),
        (
            text_end,
            rodata_end,
            NORMAL | El23Attributes::READ_ONLY | El23Attributes::XN,
        ),
    ];
    let data = NORMAL | El23Attributes::XN;
    // Of the stacks' slots only their parts (percpu::STACK_PARTS) are mapped: the rest guards.
    let stacks = (&raw const crate::percpu::HYP_STACKS) as usize;
    let slot = core::mem::size_of::<crate::percpu::Stack>();
    let stacks_end = stacks + slot * crate::percpu::MAX_CPUS;
    let stack_parts = (0..crate::percpu::MAX_CPUS).flat_map(|cpu| {
        crate::percpu::STACK_PARTS.map(|(from, to)| {
            let base = stacks + cpu * slot;
            (base + from, base + to, data)
        })
    });
    let data_map = [(rodata_end, stacks, data)]
        .into_iter()
        .chain(stack_parts)
        .chain([(stacks_end, end, data)]);
    for (from, to, attrs) in image_map.into_iter().chain(data_map) {
        map_range("hyp image", from, to, pa(from), attrs);
    }
    // RAM, minus the image itself: no writable alias of the hyp's code.
    let (image_pa_start, image_pa_end) = (
        (start - layout.image_offset) as u64,
        (end - layout.image_offset) as u64,
    );
    for &(base, size) in layout.ram {
        let end = base + size;
        for (from, to) in [
            (base, end.min(image_pa_start)),
            (base.max(image_pa_end), end),
        ] {
            if from < to {
                let (from, to) = (from as usize, to as usize);
                let pa = PhysicalAddress(from);
                map_range("RAM", from, to, pa, NORMAL | El23Attributes::XN);
            }
        }
    }
    for &(base, size) in layout.devices {
        let (from, to) = (base as usize, (base + size) as usize);
        map_range("device", from, to, PhysicalAddress(from), DEVICE);
    }
    let root = map.to_physical().0;
    // SAFETY: the new tables map the image, stack and all RAM at the addresses in use now, so
    // execution continues unchanged; stale boot-table entries are invalidated right after.
    unsafe {
        asm!(
            "dsb ishst",
            "msr ttbr0_el2, {root}",
            "isb",
            "tlbi alle2",
            "dsb ish",
            "isb",
            root = in(reg) root,
            options(nostack)
        );
    }
    // The mapping stays in force for the hyp's lifetime.
    core::mem::forget(map);
}
