//! A VM's guest-physical memory: its stage-2 table, and the record of which frame backs each
//! guest page with which permissions. Generic over the machine, so the table building, the
//! quota and ownership accounting and the TLB maintenance sequences are tested on the host.
//!
//! Rules kept here, so the hardware (not only QEMU) is correct:
//! - new entries need only `DSB ISHST` before the guest can use them;
//! - a live entry is never changed in place: break-before-make, i.e. invalidate, complete the
//!   TLB maintenance, then write the new entry;
//! - after removing or changing entries, with the VM's VMID loaded: `DSB ISHST`,
//!   `TLBI IPAS2E1IS` per page, `DSB ISH`, `TLBI VMALLE1IS`, `DSB ISH`, `ISB`.

use crate::arch::{Machine, TlbOp};
use crate::mm::PAGE_SIZE;
use crate::mm::owner::Owner;
use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes};
use aarch64_paging::paging::{Constraints, MemoryRegion, PageTable, Stage2, Translation};
use alloc::collections::BTreeMap;
use core::marker::PhantomData;
use core::ptr::NonNull;
use hypercall_abi::{Error, MemPerms};

/// Stage-2 input size: 39-bit IPAs, starting at level 1 (T0SZ = 25, SL0 = 1), valid on every
/// CPU we support (a level-0 start is not on CPUs with 40-bit PAs such as cortex-a53).
pub const IPA_BITS: u32 = 39;
/// The level the stage-2 walk starts at.
pub const ROOT_LEVEL: usize = 1;
/// The first IPA beyond a guest's address space.
pub const IPA_LIMIT: u64 = 1 << IPA_BITS;

/// Stage-2 table pages: frames owned by the hyp; RAM is identity-mapped at EL2.
struct FrameTables<M>(PhantomData<M>);

impl<M: Machine> Translation<Stage2Attributes> for FrameTables<M> {
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        // Table allocation failure cannot be reported through aarch64-paging: the hyp keeps
        // enough RAM for tables (a VM's quota is checked before its pages are mapped).
        let pa = M::alloc_frame(Owner::Hyp).expect("out of memory for stage-2 tables");
        (
            NonNull::new(pa as *mut _).expect("RAM is not at 0"),
            PhysicalAddress(pa as usize),
        )
    }

    unsafe fn deallocate_table(&mut self, table: NonNull<PageTable<Stage2Attributes>>) {
        M::free_frame(Owner::Hyp, table.as_ptr() as u64);
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<Stage2Attributes>> {
        NonNull::new(pa.0 as *mut _).expect("RAM is not at 0")
    }
}

/// Who decides about a page the guest did not map itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// The guest's own (`MEM_MAP`): it may unmap and protect it.
    None,
    /// Its image: it may protect the pages (e.g. make code read-only) but not unmap them.
    Image,
    /// Pages the hyp shares with it (boot info, event page, console ring): neither.
    Hyp,
    /// A channel's pages: neither, and not the VM's frames (the channel owns them).
    Shared,
}

/// One guest page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    pa: u64,
    perms: MemPerms,
    /// Pages the guest did not map itself.
    pin: Pin,
}

fn attributes(perms: MemPerms) -> Stage2Attributes {
    let mut a = Stage2Attributes::VALID
        | Stage2Attributes::MEMATTR_NORMAL_INNER_WB
        | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
        | Stage2Attributes::SH_INNER
        | Stage2Attributes::ACCESS_FLAG;
    a |= if perms.contains(MemPerms::WRITE) {
        Stage2Attributes::S2AP_ACCESS_RW
    } else {
        Stage2Attributes::S2AP_ACCESS_RO
    };
    if !perms.contains(MemPerms::EXEC) {
        a |= Stage2Attributes::XN;
    }
    a
}

/// Checks a page range argument: aligned, non-empty, inside the IPA space, no wrap.
pub fn check_range(ipa: u64, pages: u64) -> Result<(), Error> {
    if pages == 0 {
        return Err(Error::InvalidParameters);
    }
    if !ipa.is_multiple_of(PAGE_SIZE) {
        return Err(Error::BadAddress);
    }
    let end = pages
        .checked_mul(PAGE_SIZE)
        .and_then(|len| ipa.checked_add(len));
    match end {
        Some(end) if end <= IPA_LIMIT => Ok(()),
        _ => Err(Error::BadAddress),
    }
}

/// A guest must at least be able to read what it maps.
fn check_perms(perms: MemPerms) -> Result<(), Error> {
    if perms.contains(MemPerms::READ) {
        Ok(())
    } else {
        Err(Error::InvalidParameters)
    }
}

/// A VM's memory.
pub struct GuestMemory<M: Machine> {
    owner: Owner,
    vmid: u16,
    stage2: Mapping<FrameTables<M>, Stage2>,
    pages: BTreeMap<u64, Page>,
    /// How many of `pages` are a channel's.
    shared_pages: u64,
    quota_pages: u64,
}

// SAFETY: the stage-2 tables are reachable only through this GuestMemory, which the scheduler
// lock serialises; the raw table pointers inside Mapping are not shared with any other owner.
unsafe impl<M: Machine> Send for GuestMemory<M> {}

impl<M: Machine> GuestMemory<M> {
    /// Empty memory for VM `index` with stage-2 VMID `vmid` and a quota in bytes.
    pub fn new(index: u16, vmid: u16, quota_bytes: u64) -> Self {
        Self {
            owner: Owner::Vm(index),
            vmid,
            stage2: Mapping::new(FrameTables(PhantomData), ROOT_LEVEL, Stage2),
            pages: BTreeMap::new(),
            shared_pages: 0,
            quota_pages: quota_bytes / PAGE_SIZE,
        }
    }

    /// This VM's VTTBR_EL2: its VMID and its stage-2 root.
    pub fn vttbr(&self) -> u64 {
        (u64::from(self.vmid) << 48) | self.stage2.root_address().0 as u64
    }

    /// Pages counted against the quota: all but the channels' pages.
    pub fn pages_used(&self) -> u64 {
        self.pages.len() as u64 - self.shared_pages
    }

    /// The frames this VM owns (not the channels' it sees).
    pub fn frames(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages
            .values()
            .filter(|p| p.pin != Pin::Shared)
            .map(|p| p.pa)
    }

    /// Maps frames a shared object owns (a channel's) at `ipa`, one page each, read-write,
    /// never executable; the VM can neither unmap nor protect them, nor do they count
    /// against its quota.
    pub fn map_shared(&mut self, ipa: u64, frames: &[u64]) -> Result<(), Error> {
        check_range(ipa, frames.len() as u64)?;
        let end = ipa + frames.len() as u64 * PAGE_SIZE;
        if self.pages.range(ipa..end).next().is_some() {
            return Err(Error::AlreadyMapped);
        }
        for (i, &pa) in frames.iter().enumerate() {
            let page = ipa + i as u64 * PAGE_SIZE;
            self.stage2
                .map_range(
                    &MemoryRegion::new(page as usize, (page + PAGE_SIZE) as usize),
                    PhysicalAddress(pa as usize),
                    attributes(MemPerms::RW),
                    Constraints::NO_BLOCK_MAPPINGS,
                )
                .expect("a checked, unmapped range maps");
            self.pages.insert(
                page,
                Page {
                    pa,
                    perms: MemPerms::RW,
                    pin: Pin::Shared,
                },
            );
            self.shared_pages += 1;
        }
        M::tlb(TlbOp::DsbIshst);
        Ok(())
    }

    /// Quota not yet used, in bytes.
    pub fn quota_left_bytes(&self) -> u64 {
        (self.quota_pages - self.pages_used()) * PAGE_SIZE
    }

    /// Backs `[ipa, ipa + pages)` with fresh zeroed frames. All or nothing.
    pub fn map(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<(), Error> {
        self.map_pages(ipa, pages, perms, Pin::None)
    }

    /// As `map`, for pages the guest did not ask for: its image, or pages the hyp shares.
    pub fn map_pinned(
        &mut self,
        ipa: u64,
        pages: u64,
        perms: MemPerms,
        pin: Pin,
    ) -> Result<(), Error> {
        self.map_pages(ipa, pages, perms, pin)
    }

    fn map_pages(&mut self, ipa: u64, pages: u64, perms: MemPerms, pin: Pin) -> Result<(), Error> {
        check_range(ipa, pages)?;
        check_perms(perms)?;
        if pages > self.quota_pages - self.pages_used() {
            return Err(Error::OutOfMemory);
        }
        if self
            .pages
            .range(ipa..ipa + pages * PAGE_SIZE)
            .next()
            .is_some()
        {
            return Err(Error::AlreadyMapped);
        }
        for i in 0..pages {
            let page = ipa + i * PAGE_SIZE;
            let Some(pa) = M::alloc_frame(self.owner) else {
                // Host RAM ran out: undo this call's pages (never mapped live, no TLB work).
                self.forget(ipa, i);
                return Err(Error::OutOfMemory);
            };
            self.stage2
                .map_range(
                    &MemoryRegion::new(page as usize, (page + PAGE_SIZE) as usize),
                    PhysicalAddress(pa as usize),
                    attributes(perms),
                    Constraints::NO_BLOCK_MAPPINGS,
                )
                .expect("a checked, unmapped range maps");
            self.pages.insert(page, Page { pa, perms, pin });
        }
        // New entries: only make the table writes visible to the walkers.
        M::tlb(TlbOp::DsbIshst);
        Ok(())
    }

    /// Fails unless every page of the range is mapped, with none of the `denied` pins.
    fn check_mapped(&self, ipa: u64, pages: u64, denied: &[Pin]) -> Result<(), Error> {
        check_range(ipa, pages)?;
        let end = ipa + pages * PAGE_SIZE;
        if self.pages.range(ipa..end).count() as u64 != pages {
            return Err(Error::NotMapped);
        }
        if self
            .pages
            .range(ipa..end)
            .any(|(_, p)| denied.contains(&p.pin))
        {
            return Err(Error::Denied);
        }
        Ok(())
    }

    /// Invalidates the range's entries and completes the TLB maintenance for them.
    fn break_entries(&mut self, ipa: u64, pages: u64) {
        let region = MemoryRegion::new(ipa as usize, (ipa + pages * PAGE_SIZE) as usize);
        self.stage2
            .modify_range(&region, &|_, d| {
                d.set(PhysicalAddress(0), Stage2Attributes::empty())
            })
            .expect("mapped pages have level-3 entries");
        self.invalidate_tlb(ipa, pages);
    }

    /// The stage-2 TLB maintenance after removing or changing entries, with this VM's VMID.
    fn invalidate_tlb(&self, ipa: u64, pages: u64) {
        let previous = M::vttbr();
        let ours = self.vttbr();
        if previous != ours {
            M::set_vttbr(ours);
        }
        M::tlb(TlbOp::DsbIshst);
        for i in 0..pages {
            M::tlb(TlbOp::TlbiIpas2e1is {
                ipa: ipa + i * PAGE_SIZE,
            });
        }
        M::tlb(TlbOp::DsbIsh);
        M::tlb(TlbOp::TlbiVmalle1is);
        M::tlb(TlbOp::DsbIsh);
        M::tlb(TlbOp::Isb);
        if previous != ours {
            M::set_vttbr(previous);
        }
    }

    /// Drops pages never made visible to the guest (no TLB maintenance needed).
    fn forget(&mut self, ipa: u64, pages: u64) {
        if pages == 0 {
            return;
        }
        let region = MemoryRegion::new(ipa as usize, (ipa + pages * PAGE_SIZE) as usize);
        let _ = self.stage2.modify_range(&region, &|_, d| {
            d.set(PhysicalAddress(0), Stage2Attributes::empty())
        });
        for i in 0..pages {
            if let Some(p) = self.pages.remove(&(ipa + i * PAGE_SIZE)) {
                M::free_frame(self.owner, p.pa);
            }
        }
    }

    /// Removes the range's pages and returns their frames, scrubbed. All or nothing.
    pub fn unmap(&mut self, ipa: u64, pages: u64) -> Result<(), Error> {
        self.check_mapped(ipa, pages, &[Pin::Image, Pin::Hyp, Pin::Shared])?;
        self.break_entries(ipa, pages);
        for i in 0..pages {
            let page = self
                .pages
                .remove(&(ipa + i * PAGE_SIZE))
                .expect("checked mapped");
            M::free_frame(self.owner, page.pa);
        }
        Ok(())
    }

    /// Changes the range's permissions, break-before-make. All or nothing.
    pub fn protect(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<(), Error> {
        check_perms(perms)?;
        self.check_mapped(ipa, pages, &[Pin::Hyp, Pin::Shared])?;
        self.break_entries(ipa, pages);
        for i in 0..pages {
            let page_ipa = ipa + i * PAGE_SIZE;
            let page = self.pages.get_mut(&page_ipa).expect("checked mapped");
            page.perms = perms;
            let pa = page.pa;
            self.stage2
                .map_range(
                    &MemoryRegion::new(page_ipa as usize, (page_ipa + PAGE_SIZE) as usize),
                    PhysicalAddress(pa as usize),
                    attributes(perms),
                    Constraints::NO_BLOCK_MAPPINGS,
                )
                .expect("an invalidated entry can be written");
        }
        M::tlb(TlbOp::DsbIshst);
        Ok(())
    }

    /// The permissions of the page holding `ipa`.
    pub fn query(&self, ipa: u64) -> Result<MemPerms, Error> {
        if ipa >= IPA_LIMIT {
            return Err(Error::BadAddress);
        }
        self.pages
            .get(&(ipa & !(PAGE_SIZE - 1)))
            .map(|p| p.perms)
            .ok_or(Error::NotMapped)
    }

    /// The hyp's (identity) address of the byte at `ipa`, if that page is mapped.
    fn host_address(&self, ipa: u64) -> Option<u64> {
        let page = ipa & !(PAGE_SIZE - 1);
        self.pages.get(&page).map(|p| p.pa + (ipa - page))
    }

    /// Copies guest memory at `ipa` into `buf`; fails if any page is unmapped.
    pub fn read(&self, ipa: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.copy(ipa, buf.len(), |host, done, n| {
            // SAFETY: `host` is an identity-mapped frame this VM owns, valid for n bytes; the
            // guest may change it concurrently only through its own mapping (plain bytes).
            unsafe {
                core::ptr::copy_nonoverlapping(host as *const u8, buf[done..].as_mut_ptr(), n)
            }
        })
    }

    /// Copies `data` into guest memory at `ipa` (whatever the guest's permissions: the hyp
    /// writes boot info into read-only pages); fails if any page is unmapped.
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

impl<M: Machine> Drop for GuestMemory<M> {
    fn drop(&mut self) {
        for (_, page) in core::mem::take(&mut self.pages) {
            if page.pin != Pin::Shared {
                M::free_frame(self.owner, page.pa);
            }
        }
        // The stage-2 tables are freed by Mapping's own drop (FrameTables::deallocate_table).
    }
}

#[cfg(test)]
mod tests;
