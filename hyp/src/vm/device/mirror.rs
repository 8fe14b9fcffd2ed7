//! The table the SMMU walks for a VM that owns a device: a second stage-2 table in the CPU
//! table's format (`arch::stage2::table`), holding exactly the VM's RAM leaves (the pages it
//! mapped and its image, [`is_mirrored`]), each the CPU table's own descriptor, and nothing
//! else: no channel page, no device BAR, no page the hyp shares with the VM.
//!
//! `vm::mem` keeps it in step inside each operation that changes a RAM leaf, in the same
//! all-or-nothing call: a new leaf goes in after the CPU table's (its tables counted up front,
//! against the VM's table allowance, with the CPU table's); a leaf being removed or
//! re-permissioned is broken here with the CPU's, then the SMMU's TLB forgets it
//! (`invalidate_dma`) before the new leaf is written or the frame reused. Its level-2 and
//! level-3 tables are freed when their last entry goes, after the SMMU has forgotten the walk
//! (`CMD_TLBI_S2_IPA` is a non-leaf invalidation: it drops walk caches too).

use super::invalidate_dma;
use crate::addr::{Ipa, PAGE_SIZE};
use crate::arch::stage2::table::{
    Cursor, L2_SPAN, L3_SPAN, Stage2Error, Vacant, desc, is_table, live_up, read_slot, slot,
    tables_needed, unhook_empty_l3, write_slot,
};

/// Whether a leaf of the CPU table goes into the DMA table: the VM's RAM (`Pin::is_ram`), never
/// a page the hyp shares, a channel's page or a device's registers.
pub fn is_mirrored(leaf: u64) -> bool {
    crate::vm::mem::Pin::is_ram(leaf)
}

/// A VM's DMA table.
pub struct DmaTable {
    vmid: u16,
    root: u64,
    cursor: Cursor,
    /// Level-2 and level-3 tables held (the root is not counted).
    tables: u64,
}

impl DmaTable {
    /// An empty table with root frame `root` (zeroed) for VMID `vmid`.
    pub fn new(vmid: u16, root: u64) -> Self {
        Self {
            vmid,
            root,
            cursor: Cursor::new(root),
            tables: 0,
        }
    }

    /// The root table's address: the stream table entry's S2TTB.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Level-2 and level-3 tables held.
    pub fn tables(&self) -> u64 {
        self.tables
    }

    /// The valid leaves, in IPA order.
    #[cfg(test)]
    pub fn leaves(&self) -> crate::arch::stage2::table::Leaves {
        crate::arch::stage2::table::Leaves {
            root: self.root,
            next: 0,
        }
    }

    /// How many tables putting `pages` pages from `ipa` (a checked range) would add.
    pub fn tables_needed(&mut self, ipa: u64, pages: u64) -> u64 {
        tables_needed(self.root, &mut self.cursor, ipa, pages)
    }

    /// The free entry of page `ipa` if its level-3 table exists (one page's map: written with
    /// the CPU table's after its frame is found).
    pub fn vacant(&mut self, ipa: u64) -> Result<Vacant, Stage2Error> {
        self.cursor.vacant(Ipa::new(ipa))
    }

    /// Writes `leaf` (the CPU table's, a RAM leaf) for page `ipa`, adding the tables it lacks
    /// with frames from `table_frame` (zeroed, counted by the caller).
    pub fn put(
        &mut self,
        ipa: u64,
        leaf: u64,
        mut table_frame: impl FnMut() -> Option<u64>,
    ) -> Result<(), Stage2Error> {
        match self.cursor.map(Ipa::new(ipa), leaf) {
            Err(Stage2Error::NoTable) => {}
            done => return done,
        }
        let l1 = slot(self.root, ipa / L2_SPAN);
        let mut d1 = read_slot(l1);
        if !is_table(d1) {
            let table = table_frame().ok_or(Stage2Error::NoTable)?;
            self.tables += 1;
            d1 = table | desc::TABLE;
            write_slot(l1, d1);
        }
        let l2 = slot(d1 & desc::OA, ipa / L3_SPAN);
        if !is_table(read_slot(l2)) {
            let table = table_frame().ok_or(Stage2Error::NoTable)?;
            self.tables += 1;
            write_slot(l2, table | desc::TABLE);
            live_up(l1);
        }
        self.cursor.reset();
        self.cursor.map(Ipa::new(ipa), leaf)
    }

    /// Breaks the leaves of `pages` pages from `ipa` that are in this table; whether any was
    /// (then the SMMU's TLB must forget them, `invalidate_dma`, before anything more).
    pub fn break_entries(&mut self, ipa: u64, pages: u64) -> bool {
        let mut any = false;
        for i in 0..pages {
            any |= self
                .cursor
                .break_entry(Ipa::new(ipa + i * PAGE_SIZE))
                .is_ok();
        }
        any
    }

    /// Writes `leaf` over the broken leaf of page `ipa` (nothing if it was not here).
    pub fn remake(&mut self, ipa: u64, leaf: u64) {
        let _ = self.cursor.protect(Ipa::new(ipa), |_| leaf);
    }

    /// Clears the broken leaves of `pages` pages from `ipa` (the SMMU's TLB invalidated since
    /// they broke) and frees every table left empty, after the SMMU forgot its walk.
    pub fn remove(&mut self, ipa: u64, pages: u64, mut free_table: impl FnMut(u64)) {
        for i in 0..pages {
            let at = ipa + i * PAGE_SIZE;
            if let Ok((_, 0)) = self.cursor.unmap(Ipa::new(at)) {
                self.free_tables(at, &mut free_table);
                self.cursor.reset();
            }
        }
    }

    /// Unhooks the empty level-3 table of `ipa` (and its level-2 table if that was its last),
    /// has the SMMU forget the walk, then frees them.
    fn free_tables(&mut self, ipa: u64, free_table: &mut impl FnMut(u64)) {
        let (l3_table, l2_table) = unhook_empty_l3(self.root, ipa);
        invalidate_dma(self.vmid, ipa & !(L3_SPAN - 1), 1);
        for table in core::iter::once(l3_table).chain(l2_table) {
            free_table(table);
            self.tables -= 1;
        }
    }

    /// Frees every table, the root too. Only once no stream translates with it (its stream
    /// table entry aborts and the SMMU forgot the VMID).
    pub fn free(self, mut free_table: impl FnMut(u64)) {
        for i in 0..desc::ENTRIES {
            let d1 = read_slot(slot(self.root, i));
            if !is_table(d1) {
                continue;
            }
            let l2_table = d1 & desc::OA;
            for j in 0..desc::ENTRIES {
                let d2 = read_slot(slot(l2_table, j));
                if is_table(d2) {
                    free_table(d2 & desc::OA);
                }
            }
            free_table(l2_table);
        }
        free_table(self.root);
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
