//! A VM's guest-physical memory: its stage-2 table and the record of which frame backs each
//! guest page. Frames are fresh and zeroed when mapped and scrubbed when given back.

use crate::arch::aarch64::stage2::{IPA_BITS, ROOT_LEVEL};
use crate::mm::PAGE_SIZE;
use crate::mm::frames;
use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes};
use aarch64_paging::paging::{Constraints, MemoryRegion, PageTable, Stage2, Translation};
use alloc::collections::BTreeMap;
use core::ptr::NonNull;
use hypercall_abi::Error;

/// Stage-2 table pages come from the frame allocator; RAM is identity-mapped at EL2.
struct FrameTables;

impl Translation<Stage2Attributes> for FrameTables {
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        let pa = frames::alloc_zeroed(1).expect("out of memory for stage-2 tables");
        (
            NonNull::new(pa as *mut _).expect("RAM is not at 0"),
            PhysicalAddress(pa as usize),
        )
    }

    unsafe fn deallocate_table(&mut self, table: NonNull<PageTable<Stage2Attributes>>) {
        frames::free(table.as_ptr() as u64, 1);
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<Stage2Attributes>> {
        NonNull::new(pa.0 as *mut _).expect("RAM is not at 0")
    }
}

/// Access a guest has to one of its pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub write: bool,
    pub exec: bool,
}

impl Access {
    fn attributes(self) -> Stage2Attributes {
        let mut a = Stage2Attributes::VALID
            | Stage2Attributes::MEMATTR_NORMAL_INNER_WB
            | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
            | Stage2Attributes::SH_INNER
            | Stage2Attributes::ACCESS_FLAG;
        a |= if self.write {
            Stage2Attributes::S2AP_ACCESS_RW
        } else {
            Stage2Attributes::S2AP_ACCESS_RO
        };
        if !self.exec {
            a |= Stage2Attributes::XN;
        }
        a
    }
}

/// A VM's memory.
pub struct GuestMemory {
    stage2: Mapping<FrameTables, Stage2>,
    /// Guest page IPA -> backing frame PA.
    pages: BTreeMap<u64, u64>,
    quota_pages: u64,
}

// SAFETY: the stage-2 tables are reachable only through this GuestMemory, which the scheduler
// lock serialises; the raw table pointers inside Mapping are not shared with any other owner.
unsafe impl Send for GuestMemory {}

impl GuestMemory {
    pub fn new(quota_bytes: u64) -> Self {
        Self {
            stage2: Mapping::new(FrameTables, ROOT_LEVEL, Stage2),
            pages: BTreeMap::new(),
            quota_pages: quota_bytes / PAGE_SIZE,
        }
    }

    /// The physical address of the stage-2 root (for VTTBR_EL2).
    pub fn root_pa(&self) -> u64 {
        self.stage2.root_address().0 as u64
    }

    pub fn pages_used(&self) -> u64 {
        self.pages.len() as u64
    }

    /// Backs `[ipa, ipa + pages * 4K)` with fresh zeroed frames. Only at VM build time or for
    /// pages not mapped before, so no live entry changes and no TLB maintenance is needed
    /// beyond the barrier before the guest next runs.
    pub fn map_fresh(&mut self, ipa: u64, pages: u64, access: Access) -> Result<(), Error> {
        if !ipa.is_multiple_of(PAGE_SIZE) || pages == 0 {
            return Err(Error::InvalidParameters);
        }
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|len| ipa.checked_add(len));
        if end.is_none_or(|end| end > 1 << IPA_BITS) {
            return Err(Error::BadAddress);
        }
        if self.pages_used() + pages > self.quota_pages {
            return Err(Error::OutOfMemory);
        }
        for i in 0..pages {
            let page = ipa + i * PAGE_SIZE;
            if self.pages.contains_key(&page) {
                return Err(Error::AlreadyMapped);
            }
        }
        for i in 0..pages {
            let page = ipa + i * PAGE_SIZE;
            let pa = frames::alloc_zeroed(1).ok_or(Error::OutOfMemory)?;
            self.pages.insert(page, pa);
            self.stage2
                .map_range(
                    &MemoryRegion::new(page as usize, (page + PAGE_SIZE) as usize),
                    PhysicalAddress(pa as usize),
                    access.attributes(),
                    Constraints::NO_BLOCK_MAPPINGS,
                )
                .map_err(|_| Error::OutOfMemory)?;
        }
        Ok(())
    }

    /// The hyp's (identity) address of the byte at `ipa`, if that page is mapped.
    fn host_address(&self, ipa: u64) -> Option<u64> {
        let page = ipa & !(PAGE_SIZE - 1);
        self.pages.get(&page).map(|pa| pa + (ipa - page))
    }

    /// Copies guest memory at `ipa` into `buf`, page by page; fails if any page is unmapped.
    pub fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.copy(ipa, buf.len(), |host, done, n| {
            // SAFETY: `host` is an identity-mapped frame this VM owns, valid for n bytes.
            unsafe {
                core::ptr::copy_nonoverlapping(host as *const u8, buf[done..].as_mut_ptr(), n)
            }
        })
    }

    /// Copies `data` into guest memory at `ipa`; fails if any page is unmapped.
    pub fn write(&mut self, ipa: u64, data: &[u8]) -> Result<(), Error> {
        self.copy(ipa, data.len(), |host, done, n| {
            // SAFETY: as in `read`; the hyp writes only frames this VM owns.
            unsafe { core::ptr::copy_nonoverlapping(data[done..].as_ptr(), host as *mut u8, n) }
        })
    }

    fn copy(
        &self,
        ipa: u64,
        len: usize,
        mut chunk: impl FnMut(u64, usize, usize),
    ) -> Result<(), Error> {
        ipa.checked_add(len as u64).ok_or(Error::BadAddress)?;
        let mut done = 0;
        while done < len {
            let at = ipa + done as u64;
            let in_page = (PAGE_SIZE - at % PAGE_SIZE) as usize;
            let n = in_page.min(len - done);
            let host = self.host_address(at).ok_or(Error::BadAddress)?;
            chunk(host, done, n);
            done += n;
        }
        Ok(())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        for (_, pa) in core::mem::take(&mut self.pages) {
            frames::free(pa, 1);
        }
    }
}
