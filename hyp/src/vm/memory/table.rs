//! The stage-2 table as this module writes it: descriptor bits, slots, the per-table count of
//! entries in use, and the walks (a cached level-3 lookup, the valid leaves in IPA order).

use super::{IPA_LIMIT, Pin};
use crate::mm::PAGE_SIZE;
use aarch64_paging::descriptor::Stage2Attributes;
use hypercall_abi::MemPerms;

/// Stage-2 descriptor bits this module reads and writes directly (4 KiB granule). A guest
/// page's whole record is its level-3 descriptor: the frame is the output address, the
/// permissions are S2AP/XN, the pin is in the software bits (ignored by the walkers). A table
/// descriptor (levels 1-2) counts the entries in use in the table below in its IGNORED bits.
pub(super) mod desc {
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
    /// SWFLAG_0 and SWFLAG_1: the pin.
    pub const PIN_SHIFT: u32 = 55;
    pub const PIN: u64 = 0b11 << PIN_SHIFT;
    /// In a table descriptor, bits [11:2] (IGNORED by the walkers without FEAT_HAFT/LPA2,
    /// which we do not enable): how many entries of the table below are in use (0..=512).
    pub const LIVE_SHIFT: u32 = 2;
    pub const LIVE: u64 = 0x3ff << LIVE_SHIFT;
    /// Entries per table.
    pub const ENTRIES: u64 = 512;
}

/// Bytes one level-3 table maps (2 MiB) and one level-2 table (1 GiB).
pub(super) const L3_SPAN: u64 = PAGE_SIZE * desc::ENTRIES;
pub(super) const L2_SPAN: u64 = L3_SPAN * desc::ENTRIES;

impl Pin {
    pub(super) fn bits(self) -> u64 {
        let code: u64 = match self {
            Pin::None => 0,
            Pin::Image => 1,
            Pin::Hyp => 2,
            Pin::Shared => 3,
        };
        code << desc::PIN_SHIFT
    }

    pub(super) fn of(descriptor: u64) -> Pin {
        match (descriptor & desc::PIN) >> desc::PIN_SHIFT {
            0 => Pin::None,
            1 => Pin::Image,
            2 => Pin::Hyp,
            _ => Pin::Shared,
        }
    }
}

/// The permissions a valid page descriptor grants (READ is always there: `check_perms`).
pub(super) fn perms_of(descriptor: u64) -> MemPerms {
    let mut perms = MemPerms::READ;
    if descriptor & desc::S2AP == desc::S2AP {
        perms |= MemPerms::WRITE;
    }
    if descriptor & desc::XN == 0 {
        perms |= MemPerms::EXEC;
    }
    perms
}

/// The level-3 descriptor of a page of frame `pa` with `perms` and `pin`.
pub(super) fn leaf(pa: u64, perms: MemPerms, pin: Pin) -> u64 {
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
    (pa & desc::OA) | a.bits() as u64 | desc::TABLE_OR_PAGE | pin.bits()
}

/// The address of descriptor slot `index` of the table at `table` (identity-mapped).
pub(super) fn slot(table: u64, index: u64) -> u64 {
    table + (index % desc::ENTRIES) * 8
}

/// Reads a descriptor of one of this VM's tables.
pub(super) fn read_slot(at: u64) -> u64 {
    // SAFETY: `at` is inside a stage-2 table frame this GuestMemory owns (its root, or a
    // table its descriptors point to), identity-mapped and 8-byte aligned; only the hyp
    // writes it, under the scheduler lock.
    unsafe { (at as *const u64).read_volatile() }
}

/// Writes a descriptor: one 64-bit store, single-copy atomic for the walkers.
pub(super) fn write_slot(at: u64, descriptor: u64) {
    // SAFETY: as in `read_slot`; the caller keeps break-before-make (a live entry is only
    // ever made invalid, written while invalid, or changed in IGNORED bits).
    unsafe { (at as *mut u64).write_volatile(descriptor) }
}

pub(super) fn is_table(descriptor: u64) -> bool {
    descriptor & desc::TABLE == desc::TABLE
}

/// One more entry in use below the table descriptor at `at`.
pub(super) fn live_up(at: u64) {
    write_slot(at, read_slot(at) + (1 << desc::LIVE_SHIFT));
}

/// One entry fewer in use below the table descriptor at `at`; how many are left.
pub(super) fn live_down(at: u64) -> u64 {
    let d = read_slot(at);
    let left = ((d & desc::LIVE) >> desc::LIVE_SHIFT).saturating_sub(1);
    write_slot(at, (d & !desc::LIVE) | left << desc::LIVE_SHIFT);
    left
}

/// The level-3 table that covers `ipa` (< IPA_LIMIT) under `root`, if the tables exist, and
/// the address of the level-2 descriptor pointing to it.
pub(super) fn l3_table(root: u64, ipa: u64) -> Option<(u64, u64)> {
    let d1 = read_slot(slot(root, ipa / L2_SPAN));
    if !is_table(d1) {
        return None;
    }
    let at = slot(d1 & desc::OA, ipa / L3_SPAN);
    let d2 = read_slot(at);
    is_table(d2).then_some((d2 & desc::OA, at))
}

/// Remembers the last level-3 table found, so pages of the same 2 MiB walk from the root
/// once. Reset whenever a table is added or freed.
#[derive(Clone, Copy)]
pub(super) struct Cursor {
    pub(super) root: u64,
    /// `ipa >> 21` of the table below, the table (0: none there), and its level-2 slot.
    pub(super) key: u64,
    pub(super) table: u64,
    pub(super) parent: u64,
}

impl Cursor {
    pub(super) fn new(root: u64) -> Self {
        Self {
            root,
            key: u64::MAX,
            table: 0,
            parent: 0,
        }
    }

    /// The descriptor slot of page `ipa`, if its level-3 table exists.
    pub(super) fn slot(&mut self, ipa: u64) -> Option<u64> {
        let key = ipa / L3_SPAN;
        if key != self.key {
            (self.table, self.parent) = l3_table(self.root, ipa).unwrap_or((0, 0));
            self.key = key;
        }
        (self.table != 0).then(|| slot(self.table, ipa / PAGE_SIZE))
    }

    /// Forgets the tables seen.
    pub(super) fn reset(&mut self) {
        self.key = u64::MAX;
    }
}

/// The valid level-3 descriptors under `root`, in IPA order.
pub(super) struct Leaves {
    pub(super) root: u64,
    /// The next IPA to look at.
    pub(super) next: u64,
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
