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
/// The most tables one new page entry can need: a level-2 and a level-3 table.
const MAX_NEW_TABLES: usize = 2;

/// Stage-2 table pages: frames owned by the hyp; RAM is identity-mapped at EL2.
struct FrameTables<M>(PhantomData<M>);

impl<M: Machine> Translation<Stage2Attributes> for FrameTables<M> {
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        // Table allocation failure cannot be reported through aarch64-paging: `set_entry`
        // checks that enough frames are left before it calls in here.
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

/// Stage-2 descriptor bits this module reads and writes directly (4 KiB granule, the
/// architectural layout aarch64-paging also uses). A guest page's whole record is its level-3
/// descriptor: the frame is the output address, the permissions are S2AP/XN, the pin is in the
/// software bits (ignored by the walkers).
mod desc {
    /// Valid.
    pub const VALID: u64 = 1 << 0;
    /// With VALID: a table (levels 1-2) or a page (level 3).
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// The output address, bits [47:12].
    pub const OA: u64 = 0x0000_ffff_ffff_f000;
    /// S2AP[1:0]: 0b11 is read-write.
    pub const S2AP: u64 = 0b11 << 6;
    /// Execute-never.
    pub const XN: u64 = 1 << 54;
    /// SWFLAG_0 and SWFLAG_1: the pin.
    pub const PIN_SHIFT: u32 = 55;
    pub const PIN: u64 = 0b11 << PIN_SHIFT;
    /// Entries per table.
    pub const ENTRIES: u64 = 512;
}

impl Pin {
    fn bits(self) -> u64 {
        let code: u64 = match self {
            Pin::None => 0,
            Pin::Image => 1,
            Pin::Hyp => 2,
            Pin::Shared => 3,
        };
        code << desc::PIN_SHIFT
    }

    fn of(descriptor: u64) -> Pin {
        match (descriptor & desc::PIN) >> desc::PIN_SHIFT {
            0 => Pin::None,
            1 => Pin::Image,
            2 => Pin::Hyp,
            _ => Pin::Shared,
        }
    }
}

/// The permissions a valid page descriptor grants (READ is always there: `check_perms`).
fn perms_of(descriptor: u64) -> MemPerms {
    let mut perms = MemPerms::READ;
    if descriptor & desc::S2AP == desc::S2AP {
        perms |= MemPerms::WRITE;
    }
    if descriptor & desc::XN == 0 {
        perms |= MemPerms::EXEC;
    }
    perms
}

/// The attributes of a page with `perms` and `pin` (without TABLE_OR_PAGE, which
/// aarch64-paging adds itself at level 3).
fn attributes(perms: MemPerms, pin: Pin) -> Stage2Attributes {
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
    a | Stage2Attributes::from_bits_retain(pin.bits() as usize)
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

/// Pointer to the descriptor slot `index` of the table at `table` (identity-mapped).
fn slot(table: u64, index: u64) -> *mut u64 {
    (table + index * 8) as *mut u64
}

/// Reads a descriptor of one of this VM's tables.
fn read_slot(at: *mut u64) -> u64 {
    // SAFETY: `at` is inside a stage-2 table frame this GuestMemory owns (from its root, or a
    // table descriptor in it), identity-mapped and 8-byte aligned; only the hyp writes it,
    // under the scheduler lock.
    unsafe { at.read_volatile() }
}

/// Writes a level-3 descriptor: one 64-bit store, single-copy atomic for the walkers.
fn write_slot(at: *mut u64, descriptor: u64) {
    // SAFETY: as in `read_slot`; the caller keeps break-before-make (a live entry is only
    // ever made invalid, or written while invalid).
    unsafe { at.write_volatile(descriptor) }
}

/// The level-3 table that covers `ipa` (< IPA_LIMIT) under `root`, if the tables exist.
fn l3_table(root: u64, ipa: u64) -> Option<u64> {
    let mut table = root;
    for level in ROOT_LEVEL..3 {
        let shift = 12 + 9 * (3 - level as u32);
        let d = read_slot(slot(table, (ipa >> shift) % desc::ENTRIES));
        if d & (desc::VALID | desc::TABLE_OR_PAGE) != desc::VALID | desc::TABLE_OR_PAGE {
            return None;
        }
        table = d & desc::OA;
    }
    Some(table)
}

/// Remembers the last level-3 table found, so pages of the same 2 MiB walk from the root once.
#[derive(Clone, Copy)]
struct Cursor {
    root: u64,
    /// `ipa >> 21` of the table below, and the table (0: none there).
    key: u64,
    table: u64,
}

impl Cursor {
    fn new(root: u64) -> Self {
        Self {
            root,
            key: u64::MAX,
            table: 0,
        }
    }

    /// The descriptor slot of page `ipa`, if its level-3 table exists.
    fn slot(&mut self, ipa: u64) -> Option<*mut u64> {
        let key = ipa >> 21;
        if key != self.key {
            self.table = l3_table(self.root, ipa).unwrap_or(0);
            self.key = key;
        }
        (self.table != 0).then(|| slot(self.table, (ipa >> 12) % desc::ENTRIES))
    }

    /// The descriptor of page `ipa` (0 if there is no level-3 table for it).
    fn get(&mut self, ipa: u64) -> u64 {
        self.slot(ipa).map_or(0, read_slot)
    }

    /// Forgets the tables seen (after aarch64-paging added some).
    fn reset(&mut self) {
        self.key = u64::MAX;
    }
}

/// The valid level-3 descriptors under `root`, in IPA order.
struct Leaves {
    root: u64,
    /// The next IPA to look at.
    next: u64,
}

impl Iterator for Leaves {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        const L1_SPAN: u64 = 1 << 30;
        const L2_SPAN: u64 = 1 << 21;
        let table = |d: u64| d & (desc::VALID | desc::TABLE_OR_PAGE) == 0b11;
        while self.next < IPA_LIMIT {
            let at = self.next;
            let l1 = read_slot(slot(self.root, (at >> 30) % desc::ENTRIES));
            if !table(l1) {
                self.next = (at & !(L1_SPAN - 1)) + L1_SPAN;
                continue;
            }
            let l2 = read_slot(slot(l1 & desc::OA, (at >> 21) % desc::ENTRIES));
            if !table(l2) {
                self.next = (at & !(L2_SPAN - 1)) + L2_SPAN;
                continue;
            }
            let d = read_slot(slot(l2 & desc::OA, (at >> 12) % desc::ENTRIES));
            self.next = at + PAGE_SIZE;
            if d & desc::VALID != 0 {
                return Some(d);
            }
        }
        None
    }
}

/// A VM's memory.
pub struct GuestMemory<M: Machine> {
    owner: Owner,
    vmid: u16,
    stage2: Mapping<FrameTables<M>, Stage2>,
    /// The stage-2 root table's address (identity-mapped).
    root: u64,
    /// The level-3 table last used. Tables are freed only with the VM, so it stays right
    /// across calls: consecutive pages of a batch walk from the root once per 2 MiB.
    cursor: Cursor,
    /// Pages mapped, but for the channels' (they do not count against the quota).
    used_pages: u64,
    quota_pages: u64,
}

// SAFETY: the stage-2 tables are reachable only through this GuestMemory, which the scheduler
// lock serialises; the raw table pointers inside Mapping are not shared with any other owner.
unsafe impl<M: Machine> Send for GuestMemory<M> {}

impl<M: Machine> GuestMemory<M> {
    /// Empty memory for VM `index` with stage-2 VMID `vmid` and a quota in bytes.
    pub fn new(index: u16, vmid: u16, quota_bytes: u64) -> Self {
        let stage2 = Mapping::new(FrameTables(PhantomData), ROOT_LEVEL, Stage2);
        let root = stage2.root_address().0 as u64;
        Self {
            owner: Owner::Vm(index),
            vmid,
            stage2,
            root,
            cursor: Cursor::new(root),
            used_pages: 0,
            quota_pages: quota_bytes / PAGE_SIZE,
        }
    }

    /// This VM's VTTBR_EL2: its VMID and its stage-2 root.
    pub fn vttbr(&self) -> u64 {
        (u64::from(self.vmid) << 48) | self.root
    }

    /// Pages counted against the quota: all but the channels' pages.
    pub fn pages_used(&self) -> u64 {
        self.used_pages
    }

    /// The frames this VM owns (not the channels' it sees), read from its stage-2 table.
    pub fn frames(&self) -> impl Iterator<Item = u64> + '_ {
        self.leaves()
            .filter(|&d| Pin::of(d) != Pin::Shared)
            .map(|d| d & desc::OA)
    }

    fn leaves(&self) -> Leaves {
        Leaves {
            root: self.root,
            next: 0,
        }
    }

    /// The descriptor of the page holding `ipa` (< IPA_LIMIT), if it is mapped.
    fn entry(&self, ipa: u64) -> Option<u64> {
        let table = l3_table(self.root, ipa)?;
        let d = read_slot(slot(table, (ipa >> 12) % desc::ENTRIES));
        (d & desc::VALID != 0).then_some(d)
    }

    /// Writes a new entry for page `ipa`, whose descriptor is invalid: directly when its
    /// level-3 table exists (the hot path), else through `add_tables_and_entry`.
    #[inline(always)]
    fn set_entry(
        &mut self,
        cursor: &mut Cursor,
        ipa: u64,
        pa: u64,
        attributes: Stage2Attributes,
    ) -> Result<(), Error> {
        let Some(at) = cursor.slot(ipa) else {
            return self.add_tables_and_entry(cursor, ipa, pa, attributes);
        };
        write_slot(
            at,
            (pa & desc::OA) | attributes.bits() as u64 | desc::TABLE_OR_PAGE,
        );
        Ok(())
    }

    /// `set_entry` where tables are missing: aarch64-paging adds them. Fails, writing nothing,
    /// when RAM cannot hold them: aarch64-paging has no way to report a failed table
    /// allocation, so the frames are counted first (every frame allocation for VMs happens
    /// under the scheduler lock, so the count still holds).
    #[inline(never)]
    fn add_tables_and_entry(
        &mut self,
        cursor: &mut Cursor,
        ipa: u64,
        pa: u64,
        attributes: Stage2Attributes,
    ) -> Result<(), Error> {
        if M::frames_available() < MAX_NEW_TABLES {
            return Err(Error::OutOfMemory);
        }
        self.stage2
            .map_range(
                &MemoryRegion::new(ipa as usize, (ipa + PAGE_SIZE) as usize),
                PhysicalAddress(pa as usize),
                attributes,
                Constraints::NO_BLOCK_MAPPINGS,
            )
            .expect("a checked, unmapped range maps");
        cursor.reset();
        Ok(())
    }

    /// Fails unless no page of the range is mapped.
    fn check_unmapped(cursor: &mut Cursor, ipa: u64, pages: u64) -> Result<(), Error> {
        for i in 0..pages {
            if cursor.get(ipa + i * PAGE_SIZE) & desc::VALID != 0 {
                return Err(Error::AlreadyMapped);
            }
        }
        Ok(())
    }

    /// Maps frames a shared object owns (a channel's) at `ipa`, one page each, read-write,
    /// never executable; the VM can neither unmap nor protect them, nor do they count
    /// against its quota.
    pub fn map_shared(&mut self, ipa: u64, frames: &[u64]) -> Result<(), Error> {
        check_range(ipa, frames.len() as u64)?;
        let mut cursor = self.cursor;
        Self::check_unmapped(&mut cursor, ipa, frames.len() as u64)?;
        let attributes = attributes(MemPerms::RW, Pin::Shared);
        for (i, &pa) in frames.iter().enumerate() {
            let page = ipa + i as u64 * PAGE_SIZE;
            if let Err(e) = self.set_entry(&mut cursor, page, pa, attributes) {
                // The frames stay the shared object's: only the entries go.
                for done in 0..i as u64 {
                    write_slot(
                        cursor.slot(ipa + done * PAGE_SIZE).expect("entry written"),
                        0,
                    );
                }
                self.cursor = cursor;
                return Err(e);
            }
        }
        self.cursor = cursor;
        M::tlb(TlbOp::DsbIshst);
        Ok(())
    }

    /// Quota not yet used, in bytes.
    pub fn quota_left_bytes(&self) -> u64 {
        (self.quota_pages - self.pages_used()) * PAGE_SIZE
    }

    /// Backs `[ipa, ipa + pages)` with fresh zeroed frames. All or nothing.
    pub fn map(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<(), Error> {
        self.map_pinned(ipa, pages, perms, Pin::None)
    }

    /// As `map`, for pages the guest did not ask for: its image, or pages the hyp shares.
    pub fn map_pinned(
        &mut self,
        ipa: u64,
        pages: u64,
        perms: MemPerms,
        pin: Pin,
    ) -> Result<(), Error> {
        check_range(ipa, pages)?;
        check_perms(perms)?;
        if pages > self.quota_pages - self.pages_used() {
            return Err(Error::OutOfMemory);
        }
        let mut cursor = self.cursor;
        Self::check_unmapped(&mut cursor, ipa, pages)?;
        let attributes = attributes(perms, pin);
        for i in 0..pages {
            let mapped = M::alloc_frame(self.owner)
                .ok_or(Error::OutOfMemory)
                .and_then(|pa| {
                    self.set_entry(&mut cursor, ipa + i * PAGE_SIZE, pa, attributes)
                        .inspect_err(|_| M::free_frame(self.owner, pa))
                });
            if let Err(e) = mapped {
                // Host RAM ran out: undo this call's pages (never mapped live, no TLB work).
                self.forget(&mut cursor, ipa, i);
                self.cursor = cursor;
                return Err(e);
            }
        }
        self.cursor = cursor;
        self.used_pages += pages;
        // New entries: only make the table writes visible to the walkers.
        M::tlb(TlbOp::DsbIshst);
        Ok(())
    }

    /// Fails unless every page of the range is mapped, with none of the `denied` pins.
    fn check_mapped(
        cursor: &mut Cursor,
        ipa: u64,
        pages: u64,
        denied: &[Pin],
    ) -> Result<(), Error> {
        check_range(ipa, pages)?;
        let mut refused = false;
        for i in 0..pages {
            let d = cursor.get(ipa + i * PAGE_SIZE);
            if d & desc::VALID == 0 {
                return Err(Error::NotMapped);
            }
            refused |= denied.contains(&Pin::of(d));
        }
        if refused {
            return Err(Error::Denied);
        }
        Ok(())
    }

    /// Invalidates the range's entries (all mapped) and completes the TLB maintenance for
    /// them. Only VALID is cleared: the walkers ignore the rest of an invalid descriptor, which
    /// still holds the frame, permissions and pin for `unmap` and `protect` to finish with.
    fn break_entries(&mut self, cursor: &mut Cursor, ipa: u64, pages: u64) {
        for i in 0..pages {
            let at = cursor.slot(ipa + i * PAGE_SIZE).expect("checked mapped");
            write_slot(at, read_slot(at) & !desc::VALID);
        }
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

    /// Clears the range's descriptors (invalid, or never made visible to the guest: no TLB
    /// maintenance needed) and frees their frames.
    fn forget(&mut self, cursor: &mut Cursor, ipa: u64, pages: u64) {
        for i in 0..pages {
            let at = cursor.slot(ipa + i * PAGE_SIZE).expect("entry written");
            let d = read_slot(at);
            write_slot(at, 0);
            M::free_frame(self.owner, d & desc::OA);
        }
    }

    /// Removes the range's pages and returns their frames, scrubbed. All or nothing.
    pub fn unmap(&mut self, ipa: u64, pages: u64) -> Result<(), Error> {
        let mut cursor = self.cursor;
        Self::check_mapped(
            &mut cursor,
            ipa,
            pages,
            &[Pin::Image, Pin::Hyp, Pin::Shared],
        )?;
        self.break_entries(&mut cursor, ipa, pages);
        self.forget(&mut cursor, ipa, pages);
        self.cursor = cursor;
        self.used_pages -= pages;
        Ok(())
    }

    /// Changes the range's permissions, break-before-make. All or nothing.
    pub fn protect(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<(), Error> {
        check_perms(perms)?;
        let mut cursor = self.cursor;
        Self::check_mapped(&mut cursor, ipa, pages, &[Pin::Hyp, Pin::Shared])?;
        self.break_entries(&mut cursor, ipa, pages);
        for i in 0..pages {
            let at = cursor.slot(ipa + i * PAGE_SIZE).expect("checked mapped");
            let d = read_slot(at);
            let attributes = attributes(perms, Pin::of(d)).bits() as u64;
            write_slot(at, (d & desc::OA) | attributes | desc::TABLE_OR_PAGE);
        }
        self.cursor = cursor;
        M::tlb(TlbOp::DsbIshst);
        Ok(())
    }

    /// The permissions of the page holding `ipa`.
    pub fn query(&self, ipa: u64) -> Result<MemPerms, Error> {
        if ipa >= IPA_LIMIT {
            return Err(Error::BadAddress);
        }
        self.entry(ipa).map(perms_of).ok_or(Error::NotMapped)
    }

    /// The hyp's (identity) address of the byte at `ipa`, if that page is mapped.
    fn host_address(&self, ipa: u64) -> Option<u64> {
        if ipa >= IPA_LIMIT {
            return None;
        }
        self.entry(ipa)
            .map(|d| (d & desc::OA) + (ipa & (PAGE_SIZE - 1)))
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
        for d in self.leaves() {
            if Pin::of(d) != Pin::Shared {
                M::free_frame(self.owner, d & desc::OA);
            }
        }
        // The stage-2 tables are freed by Mapping's own drop (FrameTables::deallocate_table).
    }
}

#[cfg(test)]
mod tests;
