//! The stage-2 table as the hyp writes it (4 KiB granule, levels 1-3): descriptor bits,
//! slots, the per-table count of entries in use, the walks (a cached level-3 lookup, the valid
//! leaves in IPA order), the typed entry operations on them, and the hyp's access to the frames
//! they map. Every `unsafe` of guest memory is here; the policy above it (`vm::mem`) has
//! none.
//!
//! The tables' frames are given by the caller, already zeroed; a leaf is written only where no
//! valid one is (break-before-make is the caller's sequence, with `super::invalidate`).

use super::IPA_LIMIT;
use crate::addr::{Ipa, PAGE_SIZE, PhysAddr};
use aarch64_paging::descriptor::Stage2Attributes;
use core::mem::MaybeUninit;
use hypercall_abi::MemPerms;

/// Why an entry operation was refused; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage2Error {
    /// The level-2 or level-3 table that would hold the entry does not exist.
    NoTable,
    /// The entry is valid already (a map needs an invalid one).
    Occupied,
    /// The entry is not valid (nothing is mapped there).
    NotMapped,
}

/// Stage-2 descriptor bits this module reads and writes directly (4 KiB granule). A guest
/// page's whole record is its level-3 descriptor: the frame is the output address, the
/// permissions are S2AP/XN, the caller's three software bits (`desc::SW`) say the rest (ignored
/// by the walkers). A table
/// descriptor (levels 1-2) counts the entries in use in the table below in its IGNORED bits.
pub mod desc {
    /// Valid.
    pub const VALID: u64 = 1 << 0;
    /// With VALID: a table (levels 1-2) or a page (level 3).
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// A valid table descriptor (levels 1-2) or page descriptor (level 3).
    pub const TABLE: u64 = VALID | TABLE_OR_PAGE;
    /// The output address, bits [47:12].
    pub const OA: u64 = 0x0000_ffff_ffff_f000;
    /// S2AP[1:0]: 0b11 is read-write.
    pub const S2AP: u64 = 0b11 << 6;
    /// Execute-never.
    pub const XN: u64 = 1 << 54;
    /// SWFLAG_0..2 (of the four bits [58:55] reserved for software): bits the walkers
    /// ignore, for the caller's own use (which code says who may change the page).
    pub const SW_SHIFT: u32 = 55;
    pub const SW: u64 = 0b111 << SW_SHIFT;
    /// In a table descriptor, bits [11:2] (IGNORED by the walkers without FEAT_HAFT/LPA2,
    /// which we do not enable): how many entries of the table below are in use (0..=512).
    pub const LIVE_SHIFT: u32 = 2;
    pub const LIVE: u64 = 0x3ff << LIVE_SHIFT;
    /// Entries per table.
    pub const ENTRIES: u64 = 512;
}

/// Bytes one level-3 table maps (2 MiB) and one level-2 table (1 GiB).
pub const L3_SPAN: u64 = PAGE_SIZE * desc::ENTRIES;
pub const L2_SPAN: u64 = L3_SPAN * desc::ENTRIES;

/// The caller's software bits of a descriptor (0..=7).
pub fn software_bits(descriptor: u64) -> u64 {
    (descriptor & desc::SW) >> desc::SW_SHIFT
}

/// The permissions a valid page descriptor grants (READ is always there: `check_perms`).
pub fn perms_of(descriptor: u64) -> MemPerms {
    let mut perms = MemPerms::READ;
    if descriptor & desc::S2AP == desc::S2AP {
        perms |= MemPerms::WRITE;
    }
    if descriptor & desc::XN == 0 {
        perms |= MemPerms::EXEC;
    }
    perms
}

/// The output address of a descriptor: the frame of a page, or the table below.
pub fn output(descriptor: u64) -> PhysAddr {
    PhysAddr::new(descriptor & desc::OA)
}

/// The level-3 descriptor of a page of frame `pa` with `perms` and software bits `sw`
/// (0..=7): normal write-back memory, inner shareable, accessed. Branch-free from the
/// permission bits (on every page mapped): WRITE sets S2AP[1] over the read-only S2AP[0], no
/// EXEC sets XN.
#[inline(always)]
pub fn leaf(pa: PhysAddr, perms: MemPerms, sw: u64) -> u64 {
    const NORMAL_RO: u64 = Stage2Attributes::VALID
        .union(Stage2Attributes::MEMATTR_NORMAL_INNER_WB)
        .union(Stage2Attributes::MEMATTR_NORMAL_OUTER_WB)
        .union(Stage2Attributes::SH_INNER)
        .union(Stage2Attributes::ACCESS_FLAG)
        .union(Stage2Attributes::S2AP_ACCESS_RO)
        .bits() as u64
        | desc::TABLE_OR_PAGE;
    const S2AP_W: u64 = desc::S2AP & !(Stage2Attributes::S2AP_ACCESS_RO.bits() as u64);
    const _: () = assert!(S2AP_W == MemPerms::WRITE.bits() << 6);
    const _: () = assert!(desc::XN == MemPerms::EXEC.bits() << 52);
    let bits = perms.bits();
    let write = (bits & MemPerms::WRITE.bits()) << 6;
    let xn = (!bits & MemPerms::EXEC.bits()) << 52;
    (pa.get() & desc::OA) | NORMAL_RO | write | xn | (sw << desc::SW_SHIFT) & desc::SW
}

/// The level-3 descriptor of a page of device registers at `pa` with software bits `sw`
/// (0..=7): Device-nGnRE (MemAttr 0b0001, as read without FEAT_S2FWB), read-write, never
/// executable, accessed.
pub fn device_leaf(pa: PhysAddr, sw: u64) -> u64 {
    let a = Stage2Attributes::VALID
        | Stage2Attributes::MEMATTR_DEVICE_nGnRE
        | Stage2Attributes::S2AP_ACCESS_RW
        | Stage2Attributes::ACCESS_FLAG
        | Stage2Attributes::XN;
    (pa.get() & desc::OA)
        | a.bits() as u64
        | desc::TABLE_OR_PAGE
        | (sw << desc::SW_SHIFT) & desc::SW
}

/// The address of descriptor slot `index` of the table at `table` (identity-mapped).
pub fn slot(table: u64, index: u64) -> u64 {
    table + (index % desc::ENTRIES) * 8
}

/// Reads a descriptor of one of the caller's tables.
pub fn read_slot(at: u64) -> u64 {
    // SAFETY: `at` is a slot of a stage-2 table frame the caller holds (its root, or a table
    // its descriptors point to), identity-mapped and 8-byte aligned; only the hyp writes it,
    // under the lock of the VM's memory.
    unsafe { (at as *const u64).read_volatile() }
}

/// Writes a descriptor: one 64-bit store, single-copy atomic for the walkers.
pub fn write_slot(at: u64, descriptor: u64) {
    // SAFETY: as in `read_slot`; the caller keeps break-before-make (a live entry is only
    // ever made invalid, written while invalid, or changed in IGNORED bits).
    unsafe { (at as *mut u64).write_volatile(descriptor) }
}

pub fn is_table(descriptor: u64) -> bool {
    descriptor & desc::TABLE == desc::TABLE
}

/// One more entry in use below the table descriptor at `at`.
pub fn live_up(at: u64) {
    write_slot(at, read_slot(at) + (1 << desc::LIVE_SHIFT));
}

/// One entry fewer in use below the table descriptor at `at`; how many are left.
pub fn live_down(at: u64) -> u64 {
    let d = read_slot(at);
    let left = ((d & desc::LIVE) >> desc::LIVE_SHIFT).saturating_sub(1);
    write_slot(at, (d & !desc::LIVE) | left << desc::LIVE_SHIFT);
    left
}

/// Unhooks the level-3 table of `ipa` under `root`, which has no entry left, and its level-2
/// table if that was the last entry there: the tables to free, level 3 first, once the walk of
/// `ipa` is invalidated (break-before-make: the caller invalidates, then frees).
pub fn unhook_empty_l3(root: u64, ipa: u64) -> (u64, Option<u64>) {
    let l1 = slot(root, ipa / L2_SPAN);
    let l2_table = read_slot(l1) & desc::OA;
    let l2 = slot(l2_table, ipa / L3_SPAN);
    let l3_table = read_slot(l2) & desc::OA;
    write_slot(l2, 0);
    if live_down(l1) == 0 {
        write_slot(l1, 0);
        return (l3_table, Some(l2_table));
    }
    (l3_table, None)
}

/// The level-3 table that covers `ipa` (< IPA_LIMIT) under `root`, if the tables exist, and
/// the address of the level-2 descriptor pointing to it.
pub fn l3_table(root: u64, ipa: u64) -> Option<(u64, u64)> {
    let d1 = read_slot(slot(root, ipa / L2_SPAN));
    if !is_table(d1) {
        return None;
    }
    let at = slot(d1 & desc::OA, ipa / L3_SPAN);
    let d2 = read_slot(at);
    is_table(d2).then_some((d2 & desc::OA, at))
}

/// Remembers the last level-3 table found, so pages of the same 2 MiB walk from the root
/// once. Reset whenever a table is added or freed. The typed entry operations go through it.
#[derive(Clone, Copy)]
pub struct Cursor {
    pub root: u64,
    /// `ipa >> 21` of the table below, the table (0: none there), and its level-2 slot.
    pub key: u64,
    pub table: u64,
    pub parent: u64,
}

impl Cursor {
    pub fn new(root: u64) -> Self {
        Self {
            root,
            key: u64::MAX,
            table: 0,
            parent: 0,
        }
    }

    /// The descriptor slot of page `ipa`, if its level-3 table exists: a compare when it is
    /// the table last seen, a walk from the root otherwise.
    #[inline(always)]
    pub fn slot(&mut self, ipa: u64) -> Option<u64> {
        let key = ipa / L3_SPAN;
        if key != self.key {
            self.walk(ipa, key);
        }
        (self.table != 0).then(|| slot(self.table, ipa / PAGE_SIZE))
    }

    #[inline(never)]
    fn walk(&mut self, ipa: u64, key: u64) {
        (self.table, self.parent) = l3_table(self.root, ipa).unwrap_or((0, 0));
        self.key = key;
    }

    /// Forgets the tables seen.
    pub fn reset(&mut self) {
        self.key = u64::MAX;
    }

    /// The entry of page `ipa` (page-aligned, < IPA_LIMIT) if it is free to map: one walk,
    /// then the caller decides (allocates its frame) before anything is written.
    #[inline(always)]
    pub fn vacant(&mut self, ipa: Ipa) -> Result<Vacant, Stage2Error> {
        let at = self.slot(ipa.get()).ok_or(Stage2Error::NoTable)?;
        if read_slot(at) & desc::VALID != 0 {
            return Err(Stage2Error::Occupied);
        }
        Ok(Vacant {
            at,
            parent: self.parent,
        })
    }

    /// Writes `leaf` for page `ipa` where no valid entry is, and counts it in its table. A new
    /// entry needs only `DSB ISHST` before the guest uses it.
    #[inline(always)]
    pub fn map(&mut self, ipa: Ipa, leaf: u64) -> Result<(), Stage2Error> {
        self.vacant(ipa).map(|entry| entry.fill(leaf))
    }

    /// Makes the valid leaf of page `ipa` invalid, keeping its other bits (frame, permissions,
    /// software bits) for `unmap` or `protect` to finish with: the first half of
    /// break-before-make. The walkers ignore the rest of an invalid descriptor; what they may
    /// still hold of the old one goes with `super::invalidate`, which must come before the
    /// second half.
    #[inline(always)]
    pub fn break_entry(&mut self, ipa: Ipa) -> Result<(), Stage2Error> {
        let at = self.slot(ipa.get()).ok_or(Stage2Error::NotMapped)?;
        let d = read_slot(at);
        if d & desc::VALID == 0 {
            return Err(Stage2Error::NotMapped);
        }
        write_slot(at, d & !desc::VALID);
        Ok(())
    }

    /// The descriptor slot of the broken entry of page `ipa` (`break_entry` and nothing since).
    #[inline(always)]
    fn broken(&mut self, ipa: Ipa) -> Result<(u64, u64), Stage2Error> {
        let at = self.slot(ipa.get()).ok_or(Stage2Error::NotMapped)?;
        let d = read_slot(at);
        match (d & desc::VALID != 0, d & desc::TABLE_OR_PAGE != 0) {
            (true, _) => Err(Stage2Error::Occupied),
            (false, false) => Err(Stage2Error::NotMapped),
            (false, true) => Ok((at, d)),
        }
    }

    /// Clears the broken entry of page `ipa` and uncounts it: its old descriptor, and how many
    /// entries its level-3 table still holds (0: the caller unhooks and frees it). A live
    /// entry is refused (`Occupied`): it must be broken and invalidated first.
    #[inline(always)]
    pub fn unmap(&mut self, ipa: Ipa) -> Result<(u64, u64), Stage2Error> {
        let (at, d) = self.broken(ipa)?;
        write_slot(at, 0);
        Ok((d, live_down(self.parent)))
    }

    /// Writes `remake(old descriptor)` over the broken entry of page `ipa`: the second half of
    /// break-before-make, after the invalidation. A live entry is refused (`Occupied`).
    pub fn protect(
        &mut self,
        ipa: Ipa,
        remake: impl FnOnce(u64) -> u64,
    ) -> Result<(), Stage2Error> {
        let (at, d) = self.broken(ipa)?;
        write_slot(at, remake(d));
        Ok(())
    }

    /// The valid leaf of page `ipa` (< IPA_LIMIT).
    #[inline(always)]
    pub fn query(&mut self, ipa: Ipa) -> Result<u64, Stage2Error> {
        let at = self.slot(ipa.get()).ok_or(Stage2Error::NotMapped)?;
        let d = read_slot(at);
        if d & desc::VALID == 0 {
            return Err(Stage2Error::NotMapped);
        }
        Ok(d)
    }
}

/// How many level-2 and level-3 tables mapping `[ipa, ipa + pages)` (a checked range) under
/// `root` would add; `cursor` walks `root`.
pub fn tables_needed(root: u64, cursor: &mut Cursor, ipa: u64, pages: u64) -> u64 {
    let end = ipa + pages * PAGE_SIZE;
    if (end - 1) / L3_SPAN == ipa / L3_SPAN && cursor.slot(ipa).is_some() {
        return 0;
    }
    let mut needed = 0;
    let mut at = ipa;
    while at < end {
        let gib_end = ((at / L2_SPAN + 1) * L2_SPAN).min(end);
        let regions = (at / L3_SPAN)..=((gib_end - 1) / L3_SPAN);
        let d1 = read_slot(slot(root, at / L2_SPAN));
        needed += if is_table(d1) {
            regions
                .filter(|&r| !is_table(read_slot(slot(d1 & desc::OA, r))))
                .count() as u64
        } else {
            1 + regions.count() as u64
        };
        at = gib_end;
    }
    needed
}

/// A free entry `Cursor::vacant` found; valid until the tables change.
#[must_use]
pub struct Vacant {
    at: u64,
    parent: u64,
}

impl Vacant {
    /// Writes `leaf` there and counts it in its table.
    #[inline(always)]
    pub fn fill(self, leaf: u64) {
        write_slot(self.at, leaf);
        live_up(self.parent);
    }
}

/// Copies the bytes at `from` (inside one frame a stage-2 leaf maps) into `buf`.
pub fn read_frame(from: PhysAddr, buf: &mut [u8]) {
    debug_assert!(from.page_offset() + buf.len() as u64 <= PAGE_SIZE);
    // SAFETY: `from` is an identity-mapped frame the caller's table maps, valid for the bytes
    // of `buf` within it; the guest may change it concurrently only through its own mapping
    // (plain bytes).
    unsafe { core::ptr::copy_nonoverlapping(from.get() as *const u8, buf.as_mut_ptr(), buf.len()) }
}

/// Copies `data` to `to` (inside one frame a stage-2 leaf maps).
pub fn write_frame(to: PhysAddr, data: &[u8]) {
    debug_assert!(to.page_offset() + data.len() as u64 <= PAGE_SIZE);
    // SAFETY: as in `read_frame`; the hyp writes only frames the caller's table maps.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), to.get() as *mut u8, data.len()) }
}

/// Copies the bytes at `from` (inside one frame a stage-2 leaf maps) into `buf`, which need not
/// be initialised (no clearing first); the bytes read.
pub fn read_frame_bytes(from: PhysAddr, buf: &mut [MaybeUninit<u8>]) -> &[u8] {
    debug_assert!(from.page_offset() + buf.len() as u64 <= PAGE_SIZE);
    // SAFETY: as in `read_frame`.
    unsafe {
        core::ptr::copy_nonoverlapping(from.get() as *const u8, buf.as_mut_ptr().cast(), buf.len())
    };
    // SAFETY: every byte was written just above; MaybeUninit<u8> has u8's layout.
    unsafe { &*(buf as *const [MaybeUninit<u8>] as *const [u8]) }
}

/// Stores the little-endian 32-bit word `value` at `to` (4-byte aligned, inside one frame a
/// stage-2 leaf maps): one store, which the guest sees whole.
pub fn write_frame_u32(to: PhysAddr, value: u32) {
    debug_assert!(to.get().is_multiple_of(4) && to.page_offset() + 4 <= PAGE_SIZE);
    // SAFETY: as in `write_frame`; aligned, and inside the frame (checked by the caller).
    unsafe { (to.get() as *mut u32).write_volatile(value.to_le()) }
}

/// Reads the little-endian words at `from` (8-byte aligned, inside one frame a stage-2 leaf
/// maps) into `words`, one load and one store each (no clearing first: the buffer need not be
/// initialised); the words read.
pub fn read_frame_words(from: PhysAddr, words: &mut [MaybeUninit<u64>]) -> &[u64] {
    debug_assert!(
        from.get().is_multiple_of(8) && from.page_offset() + 8 * words.len() as u64 <= PAGE_SIZE
    );
    for (i, w) in words.iter_mut().enumerate() {
        // SAFETY: as in `read_frame`; aligned, and inside the frame (checked by the caller).
        w.write(u64::from_le(unsafe {
            ((from.get() + 8 * i as u64) as *const u64).read_volatile()
        }));
    }
    // SAFETY: every element was written just above; MaybeUninit<u64> has u64's layout.
    unsafe { &*(words as *const [MaybeUninit<u64>] as *const [u64]) }
}

/// The `N` words at `at` (8-byte aligned, inside one frame a stage-2 leaf maps) as atomics:
/// words the hyp and the guest both change, one atomic step per access. Borrowed as long as
/// `table`, the borrow of the table that maps the frame (unmapping it needs that table
/// mutably).
pub fn frame_atomics<T: ?Sized, const N: usize>(
    table: &T,
    at: PhysAddr,
) -> &[core::sync::atomic::AtomicU64; N] {
    let _ = table;
    assert!(at.get().is_multiple_of(8) && at.page_offset() + 8 * N as u64 <= PAGE_SIZE);
    // SAFETY: `at` is an identity-mapped frame the borrowed table maps, 8-aligned, with N words
    // inside it (checked above); AtomicU64 has u64's size and alignment. The frame stays mapped
    // (and so its VM's) while the table is borrowed; the guest changes it only through its own
    // mapping, which atomics tolerate.
    unsafe { &*(at.get() as *const [core::sync::atomic::AtomicU64; N]) }
}

/// The valid level-3 descriptors under `root`, in IPA order.
pub struct Leaves {
    pub root: u64,
    /// The next IPA to look at.
    pub next: u64,
}

impl Iterator for Leaves {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        while self.next < IPA_LIMIT {
            let at = self.next;
            let l1 = read_slot(slot(self.root, at / L2_SPAN));
            if !is_table(l1) {
                self.next = (at & !(L2_SPAN - 1)) + L2_SPAN;
                continue;
            }
            let l2 = read_slot(slot(l1 & desc::OA, at / L3_SPAN));
            if !is_table(l2) {
                self.next = (at & !(L3_SPAN - 1)) + L3_SPAN;
                continue;
            }
            let d = read_slot(slot(l2 & desc::OA, at / PAGE_SIZE));
            self.next = at + PAGE_SIZE;
            if d & desc::VALID != 0 {
                return Some(d);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Machine;
    use crate::arch::fake::FakeMachine;
    use crate::owner::Owner;

    /// A root with the level-2 and level-3 tables of the first 2 MiB hooked.
    fn tables() -> ([u64; 3], Cursor) {
        let frames = [(); 3].map(|()| FakeMachine::alloc_frame(Owner::Hyp).unwrap());
        let [root, l2, l3] = frames;
        write_slot(slot(root, 0), l2 | desc::TABLE);
        write_slot(slot(l2, 0), l3 | desc::TABLE);
        live_up(slot(root, 0));
        (frames, Cursor::new(root))
    }

    fn release(frames: [u64; 3]) {
        for pa in frames {
            FakeMachine::free_frame(Owner::Hyp, pa);
        }
    }

    #[test]
    fn a_leaf_has_the_architectures_bits_for_every_permission() {
        let frame = PhysAddr::new(0x8765_4000);
        for bits in 0..8 {
            let perms = MemPerms::from_bits_truncate(bits);
            let mut a = Stage2Attributes::VALID
                | Stage2Attributes::TABLE_OR_PAGE
                | Stage2Attributes::MEMATTR_NORMAL_INNER_WB
                | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
                | Stage2Attributes::SH_INNER
                | Stage2Attributes::ACCESS_FLAG
                | Stage2Attributes::SWFLAG_0
                | Stage2Attributes::SWFLAG_2;
            a |= if perms.contains(MemPerms::WRITE) {
                Stage2Attributes::S2AP_ACCESS_RW
            } else {
                Stage2Attributes::S2AP_ACCESS_RO
            };
            if !perms.contains(MemPerms::EXEC) {
                a |= Stage2Attributes::XN;
            }
            let d = leaf(frame, perms, 0b101);
            assert_eq!(d, frame.get() | a.bits() as u64, "{perms:?}");
            assert_eq!(perms_of(d), perms | MemPerms::READ);
            assert_eq!(software_bits(d), 0b101);
        }
    }

    #[test]
    fn entries_change_only_break_before_make() {
        let (frames, mut cursor) = tables();
        let page = Ipa::new(5 * PAGE_SIZE);
        let frame = PhysAddr::new(0x8000_0000);
        let rw = leaf(frame, MemPerms::RW, 2);
        assert_eq!(cursor.query(page), Err(Stage2Error::NotMapped));
        assert_eq!(cursor.unmap(page), Err(Stage2Error::NotMapped));
        cursor.map(page, rw).unwrap();
        assert_eq!(cursor.map(page, rw), Err(Stage2Error::Occupied));
        assert_eq!(output(cursor.query(page).unwrap()), frame);
        assert_eq!(software_bits(cursor.query(page).unwrap()), 2);
        // A live entry is neither cleared nor rewritten until it is broken.
        assert_eq!(cursor.unmap(page), Err(Stage2Error::Occupied));
        assert_eq!(cursor.protect(page, |d| d), Err(Stage2Error::Occupied));
        cursor.break_entry(page).unwrap();
        assert_eq!(cursor.query(page), Err(Stage2Error::NotMapped));
        cursor
            .protect(page, |d| leaf(output(d), MemPerms::READ, software_bits(d)))
            .unwrap();
        assert_eq!(perms_of(cursor.query(page).unwrap()), MemPerms::READ);
        cursor.break_entry(page).unwrap();
        let (old, left) = cursor.unmap(page).unwrap();
        assert_eq!((output(old), left), (frame, 0));
        assert_eq!(cursor.unmap(page), Err(Stage2Error::NotMapped));
        assert_eq!(
            Cursor::new(frames[0]).map(Ipa::new(L3_SPAN), rw),
            Err(Stage2Error::NoTable)
        );
        release(frames);
    }
}
