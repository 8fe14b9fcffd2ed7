//! pv-guest's own EL1 stage-1 translation: an identity map (VA = IPA) of the whole 39-bit IPA
//! space, built with `aarch64-paging` in pages got from `mem.map`.
//!
//! Stage 1 is not what protects anything here: stage 2 decides which IPAs exist. So the map
//! covers every IPA (1 GiB blocks: Device below [`DEVICE_END`], Normal read-write
//! execute-never above) and only the image, the boot-info page and the scratch window get
//! pages of their own: text read-execute, rodata and the boot-info page read-only, data and
//! bss read-write, all but text execute-never. An access to an IPA the VM has not mapped thus
//! reaches stage 2, where the hypervisor refuses it: exactly what the attack and memtest
//! programs probe.

use super::layout::{DEVICE_END, IPA_LIMIT, SCRATCH_BASE, SCRATCH_PAGES};
use aarch64_paging::descriptor::{El1Attributes as A, PhysicalAddress};
use aarch64_paging::paging::{Constraints, El1And0, MemoryRegion, Translation, VaRange};
use aarch64_paging::{MapError, Mapping};
use hypercall_abi::mem::PAGE_SIZE;

/// MAIR_EL1 index 0: Normal, inner and outer write-back read/write-allocate.
pub const MAIR_NORMAL_WB: u64 = 0xff;
/// MAIR_EL1 index 1: Device-nGnRE.
pub const MAIR_DEVICE_NGNRE: u64 = 0x04;
/// The MAIR_EL1 value the attributes below index.
pub const MAIR: u64 = MAIR_NORMAL_WB | MAIR_DEVICE_NGNRE << 8;

const NORMAL: A = A::VALID
    .union(A::ACCESSED)
    .union(A::INNER_SHAREABLE)
    .union(A::ATTRIBUTE_INDEX_0)
    .union(A::UXN);
/// Code: read-only, executable at EL1.
pub const TEXT: A = NORMAL.union(A::READ_ONLY);
/// Read-only data.
pub const RODATA: A = NORMAL.union(A::READ_ONLY).union(A::PXN);
/// Read-write data.
pub const DATA: A = NORMAL.union(A::PXN);
/// MMIO.
pub const DEVICE: A = A::VALID
    .union(A::ACCESSED)
    .union(A::ATTRIBUTE_INDEX_1)
    .union(A::UXN)
    .union(A::PXN);

/// Marks the blanket 1 GiB blocks (a software bit the MMU ignores). Pages mapped explicitly
/// lack it, so the library gives them entries of their own even where their attributes
/// otherwise match the block around them.
const BLANKET: A = A::SWFLAG_0;

/// Where the hypervisor put the image and the boot-info page (IPAs).
#[derive(Clone, Debug)]
pub struct ImageLayout {
    /// Start of text (the image's first page).
    pub text: u64,
    /// End of text, start of rodata.
    pub rodata: u64,
    /// End of rodata, start of data and bss.
    pub data: u64,
    /// End of the image.
    pub end: u64,
    /// The boot-info page.
    pub boot_info: u64,
    /// An emulated PL011's page, if the VM has one.
    pub pl011: Option<u64>,
}

/// The stage-1 tables of this regime.
pub type Stage1<T> = Mapping<T, El1And0>;

fn region(start: u64, end: u64) -> MemoryRegion {
    MemoryRegion::new(start as usize, end as usize)
}

/// Builds the identity map (not yet active).
pub fn build<T: Translation<A>>(translation: T, l: &ImageLayout) -> Result<Stage1<T>, MapError> {
    let mut m = Mapping::with_asid_and_va_range(translation, 0, 1, El1And0, VaRange::Lower);
    let id = |m: &mut Stage1<T>, start: u64, end: u64, flags: A, c: Constraints| {
        m.map_range(
            &region(start, end),
            PhysicalAddress(start as usize),
            flags,
            c,
        )
    };
    let pages = Constraints::NO_BLOCK_MAPPINGS;
    id(
        &mut m,
        0,
        DEVICE_END,
        DEVICE | BLANKET,
        Constraints::empty(),
    )?;
    id(
        &mut m,
        DEVICE_END,
        IPA_LIMIT,
        DATA | BLANKET,
        Constraints::empty(),
    )?;
    let scratch_end = SCRATCH_BASE + SCRATCH_PAGES * PAGE_SIZE;
    id(&mut m, SCRATCH_BASE, scratch_end, DATA, pages)?;
    id(&mut m, l.text, l.rodata, TEXT, pages)?;
    id(&mut m, l.rodata, l.data, RODATA, pages)?;
    id(&mut m, l.data, l.end, DATA, pages)?;
    id(&mut m, l.boot_info, l.boot_info + PAGE_SIZE, RODATA, pages)?;
    if let Some(pl011) = l.pl011 {
        id(&mut m, pl011, pl011 + PAGE_SIZE, DEVICE, pages)?;
    }
    Ok(m)
}

/// A page's stage-1 access, for [`set_page_access`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    pub exec: bool,
}

/// Changes one page's stage-1 write and execute permission (the page must be mapped page by
/// page: the image, the boot-info page or the scratch window). Safe to do on a live map: only
/// the read-only and execute-never bits change, and the library invalidates the TLB.
pub fn set_page_access<T: Translation<A>>(
    m: &mut Stage1<T>,
    va: u64,
    access: Access,
) -> Result<(), MapError> {
    let (mut set, mut clear) = (A::empty(), A::empty());
    *(if access.write { &mut clear } else { &mut set }) |= A::READ_ONLY;
    *(if access.exec { &mut clear } else { &mut set }) |= A::PXN;
    m.modify_range(&region(va, va + PAGE_SIZE), &|_, d| {
        if d.level() == 3 {
            d.modify_flags(set, clear)
        } else if d.is_table() {
            Ok(())
        } else {
            Err(()) // a block: the page has no entry of its own
        }
    })
}

#[cfg(target_os = "none")]
mod target {
    use super::*;
    use crate::mm::frames::{alloc_raw, free_raw};
    use aarch64_paging::paging::PageTable;
    use core::ptr::NonNull;
    use hypercall_abi::MemPerms;
    use spin::Mutex;

    /// Table pages are frames mapped with `mem.map`; VA = IPA.
    pub struct FrameTranslation;

    impl Translation<A> for FrameTranslation {
        fn allocate_table(&mut self) -> (NonNull<PageTable<A>>, PhysicalAddress) {
            let ipa = alloc_raw(1, MemPerms::RW)
                .unwrap_or_else(|e| panic!("mm: no page for a stage-1 table: {e}"));
            let ptr = NonNull::new(ipa as *mut PageTable<A>).expect("frames are never at 0");
            (ptr, PhysicalAddress(ipa as usize))
        }

        unsafe fn deallocate_table(&mut self, page_table: NonNull<PageTable<A>>) {
            let _ = free_raw(page_table.as_ptr() as u64, 1);
        }

        fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<A>> {
            NonNull::new(pa.0 as *mut PageTable<A>).expect("table addresses are never 0")
        }
    }

    struct Live(Stage1<FrameTranslation>);
    // SAFETY: the tables are reached only through the mutex below (secondary vCPUs only load
    // the published root, ROOT), and the raw pointers inside point at frames that belong to the
    // map for its whole life.
    unsafe impl Send for Live {}

    static STAGE1: Mutex<Option<Live>> = Mutex::new(None);

    /// The root of the live map, published for secondary vCPUs (0: the MMU is off).
    static ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    /// Builds the identity map and turns the MMU on with it.
    pub fn enable(layout: &ImageLayout) -> Result<(), MapError> {
        let m = build(FrameTranslation, layout)?;
        let root = m.root_address().0 as u64;
        crate::arch::mmu::enable(MAIR, root);
        ROOT.store(root, core::sync::atomic::Ordering::SeqCst);
        m.mark_active();
        *STAGE1.lock() = Some(Live(m));
        Ok(())
    }

    /// On a secondary vCPU: turns its MMU on with the tables vCPU 0 built (if it built any).
    pub fn enable_secondary() {
        let root = ROOT.load(core::sync::atomic::Ordering::SeqCst);
        if root != 0 {
            crate::arch::mmu::enable(MAIR, root);
        }
    }

    /// Whether [`enable`] ran.
    pub fn is_on() -> bool {
        STAGE1.lock().is_some()
    }

    /// [`set_page_access`] on the live map; `false` if the MMU is off or the page has no entry
    /// of its own.
    pub fn set_access(va: u64, access: Access) -> bool {
        match STAGE1.lock().as_mut() {
            Some(Live(m)) => set_page_access(m, va, access).is_ok(),
            None => false,
        }
    }
}

#[cfg(target_os = "none")]
pub use target::{enable, enable_secondary, is_on, set_access};

#[cfg(test)]
mod tests {
    use super::*;
    use aarch64_paging::paging::PageTable;
    use core::ptr::NonNull;

    /// Tables on the host heap; "physical" = the pointer.
    struct HostTranslation;

    impl Translation<A> for HostTranslation {
        fn allocate_table(&mut self) -> (NonNull<PageTable<A>>, PhysicalAddress) {
            let ptr = NonNull::from(Box::leak(Box::new(PageTable::<A>::EMPTY)));
            (ptr, PhysicalAddress(ptr.as_ptr() as usize))
        }

        unsafe fn deallocate_table(&mut self, page_table: NonNull<PageTable<A>>) {
            // SAFETY: allocated by `allocate_table` above as a leaked Box, freed once.
            drop(unsafe { Box::from_raw(page_table.as_ptr()) });
        }

        fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<A>> {
            NonNull::new(pa.0 as *mut PageTable<A>).unwrap()
        }
    }

    const LAYOUT: ImageLayout = ImageLayout {
        text: 0x4000_0000,
        rodata: 0x4000_5000,
        data: 0x4000_8000,
        end: 0x4002_2000,
        boot_info: 0x4002_2000,
        pl011: None,
    };

    /// (flags, level) of the entry that maps `va`.
    fn lookup(m: &Stage1<HostTranslation>, va: u64) -> (A, usize) {
        let mut found = None;
        m.walk_range(&region(va, va + 1), &mut |mr, d, level| {
            if d.is_valid() && (level == 3 || !d.flags().contains(A::TABLE_OR_PAGE)) {
                let block = PAGE_SIZE << (9 * (3 - level));
                let base = mr.start().0 as u64 & !(block - 1);
                assert_eq!(d.output_address().0 as u64, base, "identity");
                found = Some((d.flags() - A::TABLE_OR_PAGE, level));
            }
            Ok(())
        })
        .unwrap();
        found.expect("mapped")
    }

    #[test]
    fn image_sections_get_their_permissions() {
        let m = build(HostTranslation, &LAYOUT).unwrap();
        assert_eq!(lookup(&m, 0x4000_0000), (TEXT, 3));
        assert_eq!(lookup(&m, 0x4000_4ff8), (TEXT, 3));
        assert_eq!(lookup(&m, 0x4000_5000), (RODATA, 3));
        assert_eq!(lookup(&m, 0x4000_8000), (DATA, 3));
        assert_eq!(lookup(&m, 0x4002_1fff), (DATA, 3));
        assert_eq!(lookup(&m, 0x4002_2000), (RODATA, 3));
    }

    #[test]
    fn everything_else_is_blocks() {
        let m = build(HostTranslation, &LAYOUT).unwrap();
        assert_eq!(lookup(&m, 0x0900_0000), (DEVICE | BLANKET, 1));
        assert_eq!(lookup(&m, 0x4800_0000).0, DATA | BLANKET);
        assert_eq!(lookup(&m, 0x1_0000_0000), (DATA | BLANKET, 1));
        assert_eq!(lookup(&m, IPA_LIMIT - 8), (DATA | BLANKET, 1));
        assert_eq!(lookup(&m, SCRATCH_BASE + 0x1000), (DATA, 3));
    }

    #[test]
    fn page_access_changes_on_a_live_map() {
        let mut m = build(HostTranslation, &LAYOUT).unwrap();
        m.mark_active();
        let rw = Access {
            write: true,
            exec: false,
        };
        set_page_access(&mut m, 0x4000_5000, rw).unwrap();
        assert_eq!(lookup(&m, 0x4000_5000).0, DATA);
        assert_eq!(lookup(&m, 0x4000_6000).0, RODATA);
        let rwx = Access {
            write: true,
            exec: true,
        };
        set_page_access(&mut m, SCRATCH_BASE, rwx).unwrap();
        assert_eq!(lookup(&m, SCRATCH_BASE).0, NORMAL);
        // A page inside a block has no entry of its own.
        assert!(set_page_access(&mut m, 0x1_0000_0000, rw).is_err());
        m.mark_inactive();
    }
}
