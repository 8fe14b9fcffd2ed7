//! A VM's guest-physical memory: its stage-2 table, and the record of which frame backs each
//! guest page with which permissions. Generic over the machine, so the table building, the
//! quota and ownership accounting and the TLB and cache maintenance sequences are tested on
//! the host.
//!
//! Rules kept here, so the hardware (not only QEMU) is correct:
//! - a call is checked whole before anything changes (range, quota, overlap, the frames and
//!   the table allowance it needs), so it cannot fail half-way;
//! - new entries need only `DSB ISHST` before the guest can use them;
//! - a live entry is never changed in place: break-before-make, i.e. invalidate, complete the
//!   TLB maintenance, then write the new entry;
//! - after removing or changing entries, with the VM's VMID loaded: `DSB ISHST`,
//!   `TLBI IPAS2E1IS` per page, `DSB ISH`, `TLBI VMALLE1IS`, `DSB ISH`, `ISB`; a table whose
//!   last entry went is unhooked the same way (the non-leaf `TLBI IPAS2E1IS` also drops the
//!   walk caches) before its frame is freed;
//! - a page is made coherent for instruction fetch before it is first mapped executable.
//! - a VM whose device does DMA has a second table, its DMA table (`vm::device::mirror`),
//!   holding the RAM leaves: written in the same call, broken with the CPU table's and
//!   invalidated in the SMMU's TLB before the make or the frame's reuse.
//!
//! The table format, the walks and the maintenance sequences are the architecture's
//! (`arch::stage2`); this module is the policy over them and has no `unsafe`.

#![forbid(unsafe_code)]

use crate::addr::{Ipa, PAGE_SIZE, PhysAddr};
use crate::arch::stage2::table::{
    Cursor, L2_SPAN, L3_SPAN, Leaves, Stage2Error, desc, device_leaf, frame_atomics, is_table,
    leaf, live_up, output, perms_of, read_frame, read_frame_bytes, read_frame_words, read_slot,
    slot, software_bits, tables_needed, unhook_empty_l3, write_frame, write_frame_u32, write_slot,
};
use crate::arch::stage2::{invalidate, invalidate_all};
use crate::arch::{CacheOp, Machine, TlbOp};
use crate::mm::owner::Owner;
use crate::vm::device::mirror::{DmaTable, is_mirrored};
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use hypercall_abi::{Error, MemPerms};

pub mod calls;
pub use crate::arch::stage2::{IPA_BITS, IPA_LIMIT};
pub use calls::{PageCall, Progress};

/// Every VM may hold this many level-2 and level-3 tables whatever its quota...
pub const TABLES_MIN: u64 = 32;
/// ... and one more per this many pages of quota: its whole quota mapped with one page in 8
/// of every 2 MiB it touches (docs/MANIFEST.md).
pub const PAGES_PER_TABLE: u64 = 64;

/// Frames a VM keeps at hand for its next maps, taken from the pool this many at a time.
pub const STASH_FRAMES: usize = 16;

/// Pages the hyp shares with the guest ([`Pin::Hyp`]) whose host address is remembered
/// ([`GuestMemory::host_address`]): a VM's four (boot info, event page, console ring, block
/// ring), consecutive, so each has its own entry.
const HYP_PAGES_KNOWN: usize = 4;

/// A [`HypPageMemo`] entry that holds no page.
const NO_HYP_PAGE: HypPageMemo = HypPageMemo {
    page: u64::MAX,
    host: 0,
};

/// A shared page's host frame, known from its mapping: a `Pin::Hyp` page is neither unmapped
/// nor moved until the memory is cleared (the guest may do neither; `clear` forgets them).
#[derive(Clone, Copy)]
struct HypPageMemo {
    /// Its IPA's page number (`u64::MAX`: none).
    page: u64,
    host: u64,
}

/// The stage-2 tables (level 2 and 3, beside the root) a VM with this quota may hold.
pub fn table_allowance(quota_pages: u64) -> u64 {
    TABLES_MIN + quota_pages / PAGES_PER_TABLE
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
    /// A device's registers (`map_device`): not RAM, nobody's frames; the guest can neither
    /// unmap, protect nor query them, nor the hyp read or write them as guest memory.
    Device,
}

impl Pin {
    /// Its code in a leaf's software bits.
    const fn code(self) -> u64 {
        match self {
            Pin::None => 0,
            Pin::Image => 1,
            Pin::Hyp => 2,
            Pin::Shared => 3,
            Pin::Device => 4,
        }
    }

    /// The pin of a leaf this module wrote.
    fn of(descriptor: u64) -> Pin {
        match software_bits(descriptor) {
            0 => Pin::None,
            1 => Pin::Image,
            2 => Pin::Hyp,
            3 => Pin::Shared,
            _ => Pin::Device,
        }
    }

    /// A set of pins as a mask of their codes (bit `code`; Device's: every code `of` reads as
    /// Device), for a test by shift and mask.
    const fn mask(pins: &[Pin]) -> u64 {
        let mut mask = 0;
        let mut i = 0;
        while i < pins.len() {
            mask |= match pins[i] {
                Pin::Device => 0xf0,
                p => 1 << p.code(),
            };
            i += 1;
        }
        mask
    }

    /// Whether a leaf this module wrote is the VM's RAM (its own pages and its image): what
    /// its DMA table holds.
    pub fn is_ram(descriptor: u64) -> bool {
        matches!(Pin::of(descriptor), Pin::None | Pin::Image)
    }

    /// Whether the page's frame is the VM's: counted against its quota, given back with it.
    fn owns_frame(self) -> bool {
        !matches!(self, Pin::Shared | Pin::Device)
    }
}

/// The leaf of a guest page of frame `pa`.
fn page_leaf(pa: u64, perms: MemPerms, pin: Pin) -> u64 {
    leaf(PhysAddr::new(pa), perms, pin.code())
}

/// What a refused table operation means to the guest.
impl From<Stage2Error> for Error {
    fn from(e: Stage2Error) -> Self {
        match e {
            Stage2Error::NoTable | Stage2Error::NotMapped => Error::NotMapped,
            Stage2Error::Occupied => Error::AlreadyMapped,
        }
    }
}

/// Checks a page range argument: aligned, non-empty, inside the IPA space, no wrap.
pub fn check_range(ipa: u64, pages: u64) -> Result<(), Error> {
    if pages == 0 {
        return Err(Error::InvalidParameters);
    }
    let start = Ipa::new(ipa);
    if !start.is_page_aligned() {
        return Err(Error::BadAddress);
    }
    match start.add_pages(pages) {
        Some(end) if end.get() <= IPA_LIMIT => Ok(()),
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
    /// The stage-2 root table's address (identity-mapped).
    root: u64,
    /// The level-3 table last used: consecutive pages of a batch walk from the root once per
    /// 2 MiB.
    cursor: Cursor,
    /// Pages mapped, but for the channels' (they do not count against the quota).
    used_pages: u64,
    quota_pages: u64,
    /// Level-2 and level-3 tables held (the root is not counted), and the most allowed.
    tables: u64,
    table_allowance: u64,
    /// A page call split into chunks, under way.
    pending: Option<calls::Pending>,
    /// Frames at hand for the next one-page maps, `stash[..stashed]`: already the VM's in the
    /// owner map, zeroed and clean in DRAM, mapped nowhere. Taken from the pool a stash at a
    /// time, and the frames of pages it unmaps scrubbed back into it, so most maps and unmaps
    /// take no lock. Never beyond the quota (mapped pages plus stashed frames; a map of
    /// several pages gives the stash back first), and given back with the memory (`clear`).
    stash: [u64; STASH_FRAMES],
    stashed: usize,
    /// The SMMU's copy of the RAM leaves, while a device of the VM's does DMA
    /// (`vm::device::mirror`): every change to a RAM leaf goes there too.
    dma: Option<DmaTable>,
    /// The shared pages' host frames, by page number modulo their count: the console ring's
    /// three looks a `CONSOLE_WRITE`, and the event page's, walk no table.
    hyp_pages: [HypPageMemo; HYP_PAGES_KNOWN],
    machine: PhantomData<fn() -> M>,
}

impl<M: Machine> GuestMemory<M> {
    /// Empty memory for VM `index` with stage-2 VMID `vmid` and a quota in bytes; fails when
    /// no frame is left for its root table.
    pub fn new(index: u16, vmid: u16, quota_bytes: u64) -> Result<Self, Error> {
        let owner = Owner::Vm(index);
        let root = M::alloc_frame(Owner::Hyp).ok_or(Error::OutOfMemory)?;
        let quota_pages = quota_bytes / PAGE_SIZE;
        Ok(Self {
            owner,
            vmid,
            root,
            cursor: Cursor::new(root),
            used_pages: 0,
            quota_pages,
            tables: 0,
            table_allowance: table_allowance(quota_pages),
            pending: None,
            stash: [0; STASH_FRAMES],
            stashed: 0,
            dma: None,
            hyp_pages: [NO_HYP_PAGE; HYP_PAGES_KNOWN],
            machine: PhantomData,
        })
    }

    /// This VM's VTTBR_EL2: its VMID and its stage-2 root.
    pub fn vttbr(&self) -> u64 {
        (u64::from(self.vmid) << 48) | self.root
    }

    /// Pages counted against the quota: all but the channels' pages.
    pub fn pages_used(&self) -> u64 {
        self.used_pages
    }

    /// The frames the VM holds in the owner map: its pages', and those at hand for its next
    /// maps.
    pub fn frames_held(&self) -> u64 {
        self.used_pages + self.stashed as u64
    }

    /// Frames holding this VM's stage-2 tables, the root included.
    pub fn table_frames(&self) -> u64 {
        self.tables + 1 + self.dma_tables()
    }

    /// Frames holding the DMA table, its root included (none without one).
    fn dma_tables(&self) -> u64 {
        self.dma.as_ref().map_or(0, |dma| dma.tables() + 1)
    }

    /// Builds the DMA table a device of the VM's will translate with (the SMMU's S2TTB, its
    /// root's address): the RAM leaves mapped so far, copied, its tables charged to the
    /// table allowance. Fails changing nothing.
    pub fn enable_dma(&mut self) -> Result<u64, Error> {
        if let Some(dma) = &self.dma {
            return Ok(dma.root());
        }
        let root = M::alloc_frame(Owner::Hyp).ok_or(Error::OutOfMemory)?;
        let mut dma = DmaTable::new(self.vmid, root);
        let mut leaves = self.leaves();
        let mut copied = Ok(());
        while let Some(leaf) = leaves.next() {
            let ipa = leaves.next - PAGE_SIZE;
            if is_mirrored(leaf) {
                copied = dma.put(ipa, leaf, || M::alloc_frame(Owner::Hyp));
                if copied.is_err() {
                    break;
                }
            }
        }
        let within = self.tables + dma.tables() < self.table_allowance;
        if copied.is_err() || !within {
            dma.free(|t| M::free_frame(Owner::Hyp, t));
            return Err(Error::OutOfMemory);
        }
        M::tlb(TlbOp::DsbIshst);
        self.dma = Some(dma);
        Ok(root)
    }

    /// The DMA table's leaves (for tests: the RAM subset of the CPU table's).
    #[cfg(test)]
    pub fn dma_leaves(&self) -> Option<alloc::vec::Vec<(u64, u64)>> {
        let dma = self.dma.as_ref()?;
        let mut leaves = dma.leaves();
        let mut all = alloc::vec::Vec::new();
        while let Some(d) = leaves.next() {
            all.push((leaves.next - PAGE_SIZE, d));
        }
        Some(all)
    }

    /// The CPU table's RAM leaves, as `dma_leaves`.
    #[cfg(test)]
    pub fn ram_leaves(&self) -> alloc::vec::Vec<(u64, u64)> {
        let mut leaves = self.leaves();
        let mut all = alloc::vec::Vec::new();
        while let Some(d) = leaves.next() {
            if is_mirrored(d) {
                all.push((leaves.next - PAGE_SIZE, d));
            }
        }
        all
    }

    /// The frames this VM owns (not the channels' it sees), read from its stage-2 table.
    pub fn frames(&self) -> impl Iterator<Item = PhysAddr> + '_ {
        self.leaves()
            .filter(|&d| Pin::of(d).owns_frame())
            .map(output)
    }

    fn leaves(&self) -> Leaves {
        Leaves {
            root: self.root,
            next: 0,
        }
    }

    /// The descriptor of the page holding `ipa` (< IPA_LIMIT), if it is mapped RAM (a
    /// device's page is not guest memory to the hyp).
    fn entry(&self, ipa: u64) -> Option<u64> {
        Cursor::new(self.root)
            .query(Ipa::new(ipa))
            .ok()
            .filter(|&d| Pin::of(d) != Pin::Device)
    }

    /// Quota pages left: neither mapped nor promised to a map under way.
    fn quota_left_pages(&self) -> u64 {
        self.quota_pages - self.used_pages - calls::promised_pages(&self.pending)
    }

    /// Quota not yet used, in bytes.
    pub fn quota_left_bytes(&self) -> u64 {
        self.quota_left_pages() * PAGE_SIZE
    }

    /// A frame for `owner`, from the frames a map under way set aside if `reserved`.
    fn take_frame(&mut self, owner: Owner, reserved: bool) -> Option<u64> {
        if !reserved {
            return M::alloc_frame(owner);
        }
        let pa = M::alloc_reserved_frame(owner)?;
        calls::took_reserved(&mut self.pending, owner == Owner::Hyp);
        Some(pa)
    }

    /// Writes `leaf` for page `ipa`, whose descriptor is unused: directly when its level-3
    /// table exists (the hot path), else after `add_tables`.
    #[inline(always)]
    fn put_leaf(
        &mut self,
        cursor: &mut Cursor,
        ipa: u64,
        leaf: u64,
        reserved: bool,
    ) -> Result<(), Error> {
        match cursor.map(Ipa::new(ipa), leaf) {
            Err(Stage2Error::NoTable) => {
                self.add_tables(cursor, ipa, reserved)?;
                cursor.map(Ipa::new(ipa), leaf).map_err(Error::from)?;
            }
            done => done.map_err(Error::from)?,
        }
        if self.dma.is_some() && is_mirrored(leaf) {
            return self.put_dma_leaf(cursor, ipa, leaf, reserved);
        }
        Ok(())
    }

    /// Copies the RAM leaf just written for page `ipa` into the DMA table. Its tables were
    /// counted with the map's, so this fails only on a hyp bug: then the CPU table's leaf
    /// goes too and the page is as before the call.
    #[inline(never)]
    fn put_dma_leaf(
        &mut self,
        cursor: &mut Cursor,
        ipa: u64,
        leaf: u64,
        reserved: bool,
    ) -> Result<(), Error> {
        let Some(mut dma) = self.dma.take() else {
            return Ok(());
        };
        let put = dma.put(ipa, leaf, || self.take_frame(Owner::Hyp, reserved));
        self.dma = Some(dma);
        if put.is_err() {
            error!("stage 2: a DMA table counted for IPA {ipa:#x} is missing");
            let _ = cursor.break_entry(Ipa::new(ipa));
            self.invalidate_tlb(ipa, 1);
            let _ = cursor.unmap(Ipa::new(ipa));
            return Err(Error::OutOfMemory);
        }
        Ok(())
    }

    /// Adds the level-2 and level-3 tables page `ipa` lacks. The caller counted the frames and
    /// the allowance first, so this fails only on a hyp bug (then an empty level-2 table may
    /// stay, held until the VM is torn down).
    #[inline(never)]
    fn add_tables(&mut self, cursor: &mut Cursor, ipa: u64, reserved: bool) -> Result<(), Error> {
        let l1 = slot(self.root, ipa / L2_SPAN);
        let mut d1 = read_slot(l1);
        if !is_table(d1) {
            let table = self
                .take_frame(Owner::Hyp, reserved)
                .ok_or(Error::OutOfMemory)?;
            self.tables += 1;
            d1 = table | desc::TABLE;
            write_slot(l1, d1);
        }
        let l2 = slot(d1 & desc::OA, ipa / L3_SPAN);
        if !is_table(read_slot(l2)) {
            let table = self
                .take_frame(Owner::Hyp, reserved)
                .ok_or(Error::OutOfMemory)?;
            self.tables += 1;
            write_slot(l2, table | desc::TABLE);
            live_up(l1);
        }
        cursor.reset();
        Ok(())
    }

    /// Fails unless no page of the range is mapped (a range with no level-3 table is skipped
    /// whole).
    fn check_unmapped(cursor: &mut Cursor, ipa: u64, pages: u64) -> Result<(), Error> {
        let mut i = 0;
        while i < pages {
            let at = ipa + i * PAGE_SIZE;
            match cursor.slot(at) {
                Some(s) if read_slot(s) & desc::VALID != 0 => return Err(Error::AlreadyMapped),
                Some(_) => i += 1,
                None => i += desc::ENTRIES - (at / PAGE_SIZE) % desc::ENTRIES,
            }
        }
        Ok(())
    }

    /// Checks a map of `pages` new pages at `ipa` whole, before anything changes; the tables
    /// it would add.
    fn check_map(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<u64, Error> {
        check_range(ipa, pages)?;
        check_perms(perms)?;
        // Its frames come from the pool: the stash goes back, so that the pages mapped and
        // the frames at hand stay within the quota.
        self.return_stash();
        if pages > self.quota_left_pages() {
            return Err(Error::OutOfMemory);
        }
        let tables = self.check_new_entries(ipa, pages)?;
        match self.dma.as_mut() {
            None => Ok(tables),
            Some(dma) => {
                let all = tables + dma.tables_needed(ipa, pages);
                let promised = calls::promised_tables(&self.pending);
                if self.tables + self.dma_tables() + promised + all > self.table_allowance {
                    return Err(Error::OutOfMemory);
                }
                Ok(all)
            }
        }
    }

    /// The overlap and table checks of a map; the tables it would add.
    fn check_new_entries(&mut self, ipa: u64, pages: u64) -> Result<u64, Error> {
        let mut cursor = self.cursor;
        let checked = Self::check_unmapped(&mut cursor, ipa, pages)
            .map(|()| tables_needed(self.root, &mut cursor, ipa, pages));
        self.cursor = cursor;
        let tables = checked?;
        let promised = calls::promised_tables(&self.pending);
        if self.tables + self.dma_tables() + promised + tables > self.table_allowance {
            return Err(Error::OutOfMemory);
        }
        Ok(tables)
    }

    /// Whether RAM has the frames a map of `pages` pages and `tables` tables takes. A map of
    /// one page into an existing table needs no count: its one allocation is the check.
    fn frames_for(pages: u64, tables: u64) -> Result<(), Error> {
        let needed = pages + tables;
        if needed > 1 && (M::frames_available() as u64) < needed {
            return Err(Error::OutOfMemory);
        }
        Ok(())
    }

    /// Maps frames a shared object owns (a channel's) at `ipa`, one page each, read-write,
    /// never executable; the VM can neither unmap nor protect them, nor do they count
    /// against its quota.
    pub fn map_shared(&mut self, ipa: impl Into<Ipa>, frames: &[u64]) -> Result<(), Error> {
        self.map_not_owned(ipa.into().get(), frames.len() as u64, |i| {
            page_leaf(frames[i as usize], MemPerms::RW, Pin::Shared)
        })
    }

    /// Maps `pages` pages of a device's registers from `pa` (page-aligned MMIO, never RAM:
    /// a board's address, such as the GICV frames of a Linux VM's GICC) at `ipa`, as
    /// Device-nGnRE memory, read-write, never executable. The frames are nobody's: never
    /// allocated, zeroed or freed, not counted against the quota (the tables the mapping
    /// needs are); the guest's page calls refuse them and the hyp never copies to or from
    /// them. Their entries go with the VM's memory (`clear`). All or nothing.
    pub fn map_device(&mut self, ipa: Ipa, pa: PhysAddr, pages: u64) -> Result<(), Error> {
        let beyond = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|bytes| pa.get().checked_add(bytes));
        if !pa.get().is_multiple_of(PAGE_SIZE) || beyond.is_none_or(|end| end > desc::OA + 1) {
            return Err(Error::BadAddress);
        }
        self.map_not_owned(ipa.get(), pages, |i| {
            device_leaf(PhysAddr::new(pa.get() + i * PAGE_SIZE), Pin::Device.code())
        })
    }

    /// Maps `pages` pages at `ipa` whose frames are not the VM's, page `i` with leaf
    /// `leaf_of(i)`. All or nothing.
    fn map_not_owned(
        &mut self,
        ipa: u64,
        pages: u64,
        leaf_of: impl Fn(u64) -> u64,
    ) -> Result<(), Error> {
        check_range(ipa, pages)?;
        let tables = self.check_new_entries(ipa, pages)?;
        if (M::frames_available() as u64) < tables {
            return Err(Error::OutOfMemory);
        }
        let mut cursor = self.cursor;
        for i in 0..pages {
            let page = ipa + i * PAGE_SIZE;
            if let Err(e) = self.put_leaf(&mut cursor, page, leaf_of(i), false) {
                self.cursor = cursor;
                self.remove(ipa, i);
                return Err(e);
            }
        }
        self.cursor = cursor;
        M::tlb(TlbOp::DsbIshst);
        Ok(())
    }

    /// Backs `[ipa, ipa + pages)` with fresh zeroed frames. All or nothing.
    #[inline(always)]
    pub fn map(&mut self, ipa: impl Into<Ipa>, pages: u64, perms: MemPerms) -> Result<(), Error> {
        let ipa = ipa.into().get();
        self.map_pinned(ipa, pages, perms, Pin::None)
    }

    /// As `map`, for pages the guest did not ask for: its image, or pages the hyp shares. The
    /// hot case inline (one page into an existing table: one walk for the check and the
    /// store), the rest out of line.
    #[inline(always)]
    pub fn map_pinned(
        &mut self,
        ipa: impl Into<Ipa>,
        pages: u64,
        perms: MemPerms,
        pin: Pin,
    ) -> Result<(), Error> {
        let ipa = ipa.into().get();
        let mapped = self.map_unpublished(ipa, pages, perms, pin);
        if mapped.is_ok() {
            self.publish();
            if pin == Pin::Hyp {
                for page in ipa / PAGE_SIZE..ipa / PAGE_SIZE + pages {
                    if let Some(d) = self.entry(page * PAGE_SIZE) {
                        self.hyp_pages[page as usize % HYP_PAGES_KNOWN] = HypPageMemo {
                            page,
                            host: output(d).get(),
                        };
                    }
                }
            }
        }
        mapped
    }

    /// One page of a batch, as `map`, but for the barrier that makes its entry visible to the
    /// walkers: the caller issues one `publish` for all of them before the guest runs again
    /// (until then an access to the page, from any vCPU, finds what it would have found before
    /// the call).
    #[inline(always)]
    pub fn map_page_unpublished(&mut self, ipa: Ipa, perms: MemPerms) -> Result<(), Error> {
        self.map_unpublished(ipa.get(), 1, perms, Pin::None)
    }

    /// `DSB ISHST`: the new entries written so far reach every walker before what follows (a
    /// new entry where none was valid needs no TLB invalidation).
    pub fn publish(&self) {
        M::tlb(TlbOp::DsbIshst);
    }

    /// Gives the stashed frames back to the pool.
    fn return_stash(&mut self) {
        if self.stashed != 0 {
            M::return_unused_frames(self.owner, &self.stash[..self.stashed]);
            self.stashed = 0;
        }
    }

    /// A fresh zeroed frame of the VM's for a page it is about to map, the quota checked (so
    /// a stashed frame is in it): off the stash, else a stash from the pool at once.
    #[inline(always)]
    fn fresh_frame(&mut self) -> Option<u64> {
        match self.stashed.checked_sub(1) {
            Some(left) => {
                self.stashed = left;
                self.stash.get(left).copied()
            }
            None => self.refill_stash(),
        }
    }

    /// Takes as many frames as the stash holds and the quota leaves from the pool in one go;
    /// the first of them.
    #[inline(never)]
    fn refill_stash(&mut self) -> Option<u64> {
        let want = (STASH_FRAMES as u64).min(self.quota_left_pages()) as usize;
        let got = M::alloc_frames(self.owner, &mut self.stash[..want]);
        self.stashed = got.checked_sub(1)?;
        self.stash.get(self.stashed).copied()
    }

    /// Gives back the frame of a page just removed (its translations invalidated): scrubbed
    /// into the stash if it has room, else to the pool (which scrubs it).
    fn release_frame(&mut self, pa: u64) {
        match self.stash.get_mut(self.stashed) {
            Some(slot) => {
                // Zero in DRAM, not only in the cache, as the pool does: the next page it backs
                // may be read non-cacheable.
                M::cache(CacheOp::Zero { pa });
                M::cache(CacheOp::CleanToPoc { pa });
                *slot = pa;
                self.stashed += 1;
            }
            None => M::free_frame(self.owner, pa),
        }
    }

    /// `map_pinned` without the barrier.
    #[inline(always)]
    fn map_unpublished(
        &mut self,
        ipa: u64,
        pages: u64,
        perms: MemPerms,
        pin: Pin,
    ) -> Result<(), Error> {
        if pages != 1 || check_range(ipa, 1).is_err() || check_perms(perms).is_err() {
            return self.map_general(ipa, pages, perms, pin);
        }
        if self.dma.is_some() {
            return self.map_page_with_dma(ipa, perms, pin);
        }
        if self.quota_left_pages() == 0 {
            return Err(Error::OutOfMemory);
        }
        let entry = match self.cursor.vacant(Ipa::new(ipa)) {
            Ok(entry) => entry,
            Err(Stage2Error::NoTable) => return self.map_general(ipa, pages, perms, pin),
            Err(e) => return Err(e.into()),
        };
        // Its one allocation is the only thing that can fail, before anything is written.
        let pa = self.fresh_frame().ok_or(Error::OutOfMemory)?;
        if perms.contains(MemPerms::EXEC) {
            M::cache(CacheOp::SyncForExecution { pa });
        }
        entry.fill(page_leaf(pa, perms, pin));
        self.used_pages += 1;
        Ok(())
    }

    /// `map_unpublished` of one checked page for a VM with a DMA table: as its hot case, with
    /// the DMA table's entry found before anything is written (the general path when either
    /// table lacks the level-3 table).
    #[cold]
    #[inline(never)]
    fn map_page_with_dma(&mut self, ipa: u64, perms: MemPerms, pin: Pin) -> Result<(), Error> {
        if self.quota_left_pages() == 0 {
            return Err(Error::OutOfMemory);
        }
        let entry = match self.cursor.vacant(Ipa::new(ipa)) {
            Ok(entry) => entry,
            Err(Stage2Error::NoTable) => return self.map_general(ipa, 1, perms, pin),
            Err(e) => return Err(e.into()),
        };
        let leaf_bits = page_leaf(0, perms, pin);
        let mirror = match self.dma.as_mut() {
            Some(dma) if is_mirrored(leaf_bits) => match dma.vacant(ipa) {
                Ok(mirror) => Some(mirror),
                Err(_) => return self.map_general(ipa, 1, perms, pin),
            },
            _ => None,
        };
        let pa = self.fresh_frame().ok_or(Error::OutOfMemory)?;
        if perms.contains(MemPerms::EXEC) {
            M::cache(CacheOp::SyncForExecution { pa });
        }
        let leaf = page_leaf(pa, perms, pin);
        entry.fill(leaf);
        if let Some(mirror) = mirror {
            mirror.fill(leaf);
        }
        self.used_pages += 1;
        Ok(())
    }

    /// Backs `[ipa, ipa + pages)` with fresh zeroed frames, read-write-execute and pinned as
    /// the image (the guest may protect them, not unmap them): the whole RAM of a guest that
    /// owns its memory (a Linux VM), at boot. As `map_pinned`, checked whole first, but a
    /// run of frames at a time from the pool, and one instruction-cache invalidation for the
    /// whole range instead of a sync for fetch per page (the pool's frames are zeroed and
    /// clean to the point of coherency). What the hyp writes into these pages afterwards is
    /// made coherent for fetch by `write_executable`. Fails changing nothing.
    pub fn map_ram_at_boot(&mut self, ipa: Ipa, pages: u64) -> Result<(), Error> {
        const RUN: usize = 64;
        const RWX: MemPerms = MemPerms::RW.union(MemPerms::EXEC);
        let ipa = ipa.get();
        let tables = self.check_map(ipa, pages, RWX)?;
        Self::frames_for(pages, tables)?;
        let mut cursor = self.cursor;
        let mut frames = [0; RUN];
        let mut done = 0;
        while done < pages {
            let want = (pages - done).min(RUN as u64) as usize;
            let got = M::alloc_frames(self.owner, &mut frames[..want]);
            let mut mapped = 0;
            for &pa in &frames[..got] {
                let at = ipa + (done + mapped) * PAGE_SIZE;
                let leaf = page_leaf(pa, RWX, Pin::Image);
                if self.put_leaf(&mut cursor, at, leaf, false).is_err() {
                    break;
                }
                mapped += 1;
            }
            self.used_pages += mapped;
            done += mapped;
            if mapped < want as u64 {
                // Counted up front: only a hyp bug gets here. Nothing of the call stays.
                error!(
                    "stage 2: a frame counted for IPA {:#x} is missing",
                    ipa + done * PAGE_SIZE
                );
                M::return_unused_frames(self.owner, &frames[mapped as usize..got]);
                self.cursor = cursor;
                self.remove(ipa, done);
                return Err(Error::OutOfMemory);
            }
        }
        self.cursor = cursor;
        M::cache(CacheOp::InvalidateInstructionCache);
        self.publish();
        Ok(())
    }

    /// As `write`, for code: each page written is then made coherent for instruction fetch
    /// (`SyncForExecution`), as a page must be before it is executed (a Linux VM's kernel,
    /// copied into the RAM `map_ram_at_boot` mapped).
    pub fn write_executable(&mut self, ipa: Ipa, data: &[u8]) -> Result<(), Error> {
        self.write(ipa, data)?;
        let mut page = ipa.get() & !(PAGE_SIZE - 1);
        let end = ipa.get() + data.len() as u64;
        while page < end {
            if let Some(host) = self.host_address(page) {
                M::cache(CacheOp::SyncForExecution { pa: host });
            }
            page += PAGE_SIZE;
        }
        Ok(())
    }

    /// `map_pinned` of several pages, or of one whose tables are missing: checked whole.
    #[inline(never)]
    fn map_general(
        &mut self,
        ipa: u64,
        pages: u64,
        perms: MemPerms,
        pin: Pin,
    ) -> Result<(), Error> {
        let tables = self.check_map(ipa, pages, perms)?;
        Self::frames_for(pages, tables)?;
        self.map_pages(ipa, pages, perms, pin, false)
    }

    /// Maps `pages` checked pages with fresh frames (those set aside if `reserved`). Fails
    /// only if a frame counted up front is not there (a hyp bug): the pages of this call are
    /// then removed as `unmap` removes them.
    fn map_pages(
        &mut self,
        ipa: u64,
        pages: u64,
        perms: MemPerms,
        pin: Pin,
        reserved: bool,
    ) -> Result<(), Error> {
        let exec = perms.contains(MemPerms::EXEC);
        let mut cursor = self.cursor;
        for i in 0..pages {
            let at = ipa + i * PAGE_SIZE;
            let mapped = match self.take_frame(self.owner, reserved) {
                Some(pa) => {
                    if exec {
                        // No stale instructions of the frame's last owner may be fetched.
                        M::cache(CacheOp::SyncForExecution { pa });
                    }
                    self.put_leaf(&mut cursor, at, page_leaf(pa, perms, pin), reserved)
                        .inspect_err(|_| M::free_frame(self.owner, pa))
                }
                None => Err(Error::OutOfMemory),
            };
            if let Err(e) = mapped {
                error!("stage 2: a frame counted for IPA {at:#x} is missing");
                self.cursor = cursor;
                self.remove(ipa, i);
                return Err(e);
            }
            self.used_pages += 1;
        }
        self.cursor = cursor;
        Ok(())
    }

    /// Fails unless every page of the range is mapped, with none of the pins in `denied`
    /// (a `Pin::mask`).
    fn check_mapped(&mut self, ipa: u64, pages: u64, denied: u64) -> Result<(), Error> {
        check_range(ipa, pages)?;
        let mut cursor = self.cursor;
        let mut refused = 0;
        let mut result = Ok(());
        for i in 0..pages {
            let d = cursor.slot(ipa + i * PAGE_SIZE).map_or(0, read_slot);
            if d & desc::VALID == 0 {
                result = Err(Error::NotMapped);
                break;
            }
            refused |= denied >> software_bits(d) & 1;
        }
        self.cursor = cursor;
        result?;
        if refused != 0 {
            return Err(Error::Denied);
        }
        Ok(())
    }

    /// Invalidates the range's entries (all mapped) and completes the TLB maintenance for
    /// them. Only VALID is cleared: the walkers ignore the rest of an invalid descriptor, which
    /// still holds the frame, permissions and pin for `remove` and `protect` to finish with.
    fn break_entries(&mut self, cursor: &mut Cursor, ipa: u64, pages: u64) {
        for i in 0..pages {
            // Checked mapped by the caller; a page that is not has nothing to break.
            let _ = cursor.break_entry(Ipa::new(ipa + i * PAGE_SIZE));
        }
        self.invalidate_tlb(ipa, pages);
        if let Some(dma) = self.dma.as_mut()
            && dma.break_entries(ipa, pages)
        {
            super::device::invalidate_dma(self.vmid, ipa, pages);
        }
    }

    /// Runs `f` with this VM's VMID loaded (TLB maintenance applies to the current VMID).
    fn with_own_vmid(&self, f: impl FnOnce()) {
        let previous = M::vttbr();
        let ours = self.vttbr();
        if previous != ours {
            M::set_vttbr(ours);
        }
        f();
        if previous != ours {
            M::set_vttbr(previous);
        }
    }

    /// The stage-2 TLB maintenance after removing or changing entries, with this VM's VMID.
    fn invalidate_tlb(&self, ipa: u64, pages: u64) {
        self.with_own_vmid(|| invalidate::<M>(Ipa::new(ipa), pages));
    }

    /// Removes the range's entries (all in use), break-before-make, and frees their frames
    /// (not a channel's) and every table left empty.
    fn remove(&mut self, ipa: u64, pages: u64) {
        debug_assert!(
            self.hyp_pages
                .iter()
                .all(|k| !(ipa / PAGE_SIZE..ipa / PAGE_SIZE + pages).contains(&k.page)),
            "remove: a shared page the hyp remembers (only `clear` unmaps those)"
        );
        let mut cursor = self.cursor;
        self.break_entries(&mut cursor, ipa, pages);
        for i in 0..pages {
            let at = ipa + i * PAGE_SIZE;
            let Ok((d, left)) = cursor.unmap(Ipa::new(at)) else {
                continue;
            };
            if Pin::of(d).owns_frame() {
                self.release_frame(output(d).get());
                self.used_pages -= 1;
            }
            if left == 0 {
                self.free_tables(at);
                cursor.reset();
            }
        }
        self.cursor = cursor;
        if let Some(dma) = self.dma.as_mut() {
            dma.remove(ipa, pages, |table| M::free_frame(Owner::Hyp, table));
        }
    }

    /// Unhooks the level-3 table of `ipa`, which has no entry left (and its level-2 table if
    /// that was its last), break-before-make, then frees them.
    fn free_tables(&mut self, ipa: u64) {
        let (l3_table, l2_table) = unhook_empty_l3(self.root, ipa);
        self.invalidate_tlb(ipa & !(L3_SPAN - 1), 1);
        for table in core::iter::once(l3_table).chain(l2_table) {
            M::free_frame(Owner::Hyp, table);
            self.tables -= 1;
        }
    }

    /// Removes the range's pages and returns their frames, scrubbed. All or nothing.
    pub fn unmap(&mut self, ipa: impl Into<Ipa>, pages: u64) -> Result<(), Error> {
        let ipa = ipa.into().get();
        self.check_unmap(ipa, pages)?;
        self.remove(ipa, pages);
        Ok(())
    }

    fn check_unmap(&mut self, ipa: u64, pages: u64) -> Result<(), Error> {
        const DENIED: u64 = Pin::mask(&[Pin::Image, Pin::Hyp, Pin::Shared, Pin::Device]);
        self.check_mapped(ipa, pages, DENIED)
    }

    fn check_protect(&mut self, ipa: u64, pages: u64, perms: MemPerms) -> Result<(), Error> {
        check_perms(perms)?;
        const DENIED: u64 = Pin::mask(&[Pin::Hyp, Pin::Shared, Pin::Device]);
        self.check_mapped(ipa, pages, DENIED)
    }

    /// Changes the range's permissions, break-before-make. All or nothing.
    pub fn protect(
        &mut self,
        ipa: impl Into<Ipa>,
        pages: u64,
        perms: MemPerms,
    ) -> Result<(), Error> {
        let ipa = ipa.into().get();
        self.check_protect(ipa, pages, perms)?;
        self.reprotect(ipa, pages, perms);
        Ok(())
    }

    /// Changes the permissions of checked pages.
    fn reprotect(&mut self, ipa: u64, pages: u64, perms: MemPerms) {
        let mut cursor = self.cursor;
        self.break_entries(&mut cursor, ipa, pages);
        for i in 0..pages {
            // Broken above, so this is refused only for a page that is not mapped.
            let _ = cursor.protect(Ipa::new(ipa + i * PAGE_SIZE), |d| {
                let pa = output(d).get();
                if perms.contains(MemPerms::EXEC) && d & desc::XN != 0 {
                    // First executable: what the guest wrote (or the last owner left) must
                    // reach instruction fetch.
                    M::cache(CacheOp::SyncForExecution { pa });
                }
                page_leaf(pa, perms, Pin::of(d))
            });
        }
        if let Some(dma) = self.dma.as_mut() {
            for i in 0..pages {
                let at = ipa + i * PAGE_SIZE;
                if let Ok(leaf) = cursor.query(Ipa::new(at)) {
                    dma.remake(at, leaf);
                }
            }
        }
        self.cursor = cursor;
        M::tlb(TlbOp::DsbIshst);
    }

    /// Makes a page the hyp shares with the guest (pinned [`Pin::Hyp`]) writable for it, or
    /// read-only again: the event page, once the guest acknowledges events in it.
    pub fn set_hyp_page_perms(&mut self, ipa: u64, perms: MemPerms) -> Result<(), Error> {
        check_perms(perms)?;
        match self.entry(ipa) {
            Some(d) if Pin::of(d) == Pin::Hyp => {}
            Some(_) => return Err(Error::Denied),
            None => return Err(Error::NotMapped),
        }
        self.reprotect(ipa, 1, perms);
        Ok(())
    }

    /// The `N` u64s at `ipa` (8-aligned, inside one mapped page) as atomics: words the hyp and
    /// the guest both change (the event page's pending bits), one atomic step per access.
    pub fn shared_words<const N: usize>(
        &self,
        ipa: u64,
    ) -> Result<&[core::sync::atomic::AtomicU64; N], Error> {
        let host = self.host_in_page(ipa, 8 * N as u64, 8)?;
        Ok(frame_atomics(self, host))
    }

    /// The permissions of the page holding `ipa` (a device's page is refused).
    pub fn query(&self, ipa: impl Into<Ipa>) -> Result<MemPerms, Error> {
        let ipa = ipa.into().get();
        if ipa >= IPA_LIMIT {
            return Err(Error::BadAddress);
        }
        match Cursor::new(self.root).query(Ipa::new(ipa)) {
            Ok(d) if Pin::of(d) == Pin::Device => Err(Error::Denied),
            Ok(d) => Ok(perms_of(d)),
            Err(_) => Err(Error::NotMapped),
        }
    }

    /// The hyp's (identity) address of the byte at `ipa`, if that page is mapped.
    fn host_address(&self, ipa: u64) -> Option<u64> {
        let known = self.hyp_pages[(ipa / PAGE_SIZE) as usize % HYP_PAGES_KNOWN];
        if known.page == ipa / PAGE_SIZE {
            return Some(known.host + Ipa::new(ipa).page_offset());
        }
        if ipa >= IPA_LIMIT {
            return None;
        }
        self.entry(ipa)
            .map(|d| output(d).get() + Ipa::new(ipa).page_offset())
    }

    /// Copies guest memory at `ipa` into `buf`; fails if any page is unmapped.
    pub fn read(&self, ipa: impl Into<Ipa>, buf: &mut [u8]) -> Result<(), Error> {
        let ipa = ipa.into().get();
        self.copy(ipa, buf.len(), |host, done, n| {
            read_frame(PhysAddr::new(host), &mut buf[done..done + n])
        })
    }

    /// Reads the little-endian words at `ipa` (8-byte aligned, all in one page) into `words`,
    /// one load each, with no clearing first; the words read. Fails if the page is unmapped or
    /// the words leave it.
    pub fn read_words<'w>(
        &self,
        ipa: impl Into<Ipa>,
        words: &'w mut [MaybeUninit<u64>],
    ) -> Result<&'w [u64], Error> {
        let host = self.host_in_page(ipa.into().get(), 8 * words.len() as u64, 8)?;
        Ok(read_frame_words(host, words))
    }

    /// Reads the bytes at `ipa` (all in one page) into `buf`, with no clearing first; the bytes
    /// read. Fails if the page is unmapped or the bytes leave it.
    pub fn read_in_page<'b>(
        &self,
        ipa: impl Into<Ipa>,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Result<&'b [u8], Error> {
        let host = self.host_in_page(ipa.into().get(), buf.len() as u64, 1)?;
        Ok(read_frame_bytes(host, buf))
    }

    /// Stores the 32-bit little-endian `value` at `ipa` (4-byte aligned) in one store (whatever
    /// the guest's permissions, as [`write`](Self::write)); fails if the page is unmapped.
    pub fn write_u32(&mut self, ipa: impl Into<Ipa>, value: u32) -> Result<(), Error> {
        let host = self.host_in_page(ipa.into().get(), 4, 4)?;
        write_frame_u32(host, value);
        Ok(())
    }

    /// The host address of the `len` bytes at `ipa`, `align`-aligned and all in one mapped
    /// page.
    fn host_in_page(&self, ipa: u64, len: u64, align: u64) -> Result<PhysAddr, Error> {
        if !ipa.is_multiple_of(align) || ipa % PAGE_SIZE + len > PAGE_SIZE {
            return Err(Error::BadAddress);
        }
        let host = self.host_address(ipa).ok_or(Error::BadAddress)?;
        Ok(PhysAddr::new(host))
    }

    /// Copies `data` into guest memory at `ipa` (whatever the guest's permissions: the hyp
    /// writes boot info into read-only pages); fails if any page is unmapped.
    pub fn write(&mut self, ipa: impl Into<Ipa>, data: &[u8]) -> Result<(), Error> {
        let ipa = ipa.into().get();
        self.copy(ipa, data.len(), |host, done, n| {
            write_frame(PhysAddr::new(host), &data[done..done + n])
        })
    }

    fn copy(
        &self,
        ipa: u64,
        len: usize,
        mut chunk: impl FnMut(u64, usize, usize),
    ) -> Result<(), Error> {
        Ipa::new(ipa)
            .checked_add(len as u64)
            .ok_or(Error::BadAddress)?;
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

    /// Tears everything down but the root: every entry unhooked, the VMID's translations
    /// forgotten, then every frame and table freed. The memory is empty and usable again
    /// (a reset rebuilds the VM in it).
    /// The DMA table goes too: no stream may translate with it any more (`vm::device::release`
    /// comes first).
    pub fn clear(&mut self) {
        self.hyp_pages = [NO_HYP_PAGE; HYP_PAGES_KNOWN];
        if let Some(dma) = self.dma.take() {
            dma.free(|table| M::free_frame(Owner::Hyp, table));
        }
        self.abandon_pending();
        self.return_stash();
        for i in 0..desc::ENTRIES {
            let at = slot(self.root, i);
            let d = read_slot(at);
            if is_table(d) {
                write_slot(at, d & !desc::VALID);
            }
        }
        self.with_own_vmid(invalidate_all::<M>);
        for i in 0..desc::ENTRIES {
            let at = slot(self.root, i);
            let d1 = read_slot(at);
            if d1 & desc::TABLE_OR_PAGE == 0 {
                continue;
            }
            write_slot(at, 0);
            let l2_table = d1 & desc::OA;
            for j in 0..desc::ENTRIES {
                let d2 = read_slot(slot(l2_table, j));
                if !is_table(d2) {
                    continue;
                }
                let l3_table = d2 & desc::OA;
                for k in 0..desc::ENTRIES {
                    let d = read_slot(slot(l3_table, k));
                    if d & desc::VALID != 0 && Pin::of(d).owns_frame() {
                        M::free_frame(self.owner, d & desc::OA);
                    }
                }
                M::free_frame(Owner::Hyp, l3_table);
            }
            M::free_frame(Owner::Hyp, l2_table);
        }
        self.used_pages = 0;
        self.tables = 0;
        self.cursor.reset();
    }
}

impl<M: Machine> Drop for GuestMemory<M> {
    fn drop(&mut self) {
        self.clear();
        M::free_frame(Owner::Hyp, self.root);
    }
}

#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;
