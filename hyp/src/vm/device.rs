//! Devices assigned to VMs: which VM owns which PCI function, where its BARs go, and what the
//! SMMU lets it reach.
//!
//! The pure parts live here and are host-tested: placing BARs in the host bridge's 32-bit
//! window ([`BarAllocator`]), the SMMU's formats ([`smmuv3`]). The register work is in
//! `dev::pci` (configuration space) and `dev::smmu` (stream table, queues).
//!
//! # Which stage-2 table the SMMU walks
//!
//! The VM's own: its stream table entry points at the VM's stage-2 root with the VM's VMID, so
//! every `MEM_MAP`, `MEM_UNMAP` and `MEM_PROTECT` applies to the device at once, with nothing
//! to keep in step but the SMMU's TLB ([`invalidate_dma`], called from the one place `vm::mem`
//! invalidates the CPUs' TLBs, before any frame is freed; the SMMU ignores the CPUs' broadcast
//! TLBIs: CR2.PTM). What else that table holds, and why it is no way out:
//!
//! - channel pages (a peer's memory too): a VM that owns a device is no channel's end (the
//!   manifest refuses it);
//! - the hyp-written pages charged to the VM (boot info, event page, console and block rings):
//!   the VM's own frames, which it may write anyway; the hyp reads nothing there it does not
//!   check;
//! - the device's own BARs (Device memory at [`DEVICE_BASE_IPA`]): DMA there reaches only the
//!   device the VM owns.
//!
//! A separate SMMU table mirroring only the VM's RAM would drop the last two; it costs a second
//! set of tables per VM and a hook on every map as well, and is left for when a VM that owns a
//! device needs channels.
//!
//! # Teardown
//!
//! When the VM ends, is killed or restarts ([`release`]): the stream table entry goes back to
//! abort (`CMD_CFGI_STE` + `CMD_SYNC`), the SMMU forgets the VMID's translations
//! (`CMD_TLBI_S12_VMALL` + `CMD_SYNC`: a restart reuses the VMID), bus mastering and memory
//! decoding go off, and only then may its frames be freed.

#![forbid(unsafe_code)]

pub mod smmuv3;

use core::sync::atomic::{AtomicU64, Ordering};

/// Where a VM's device BARs appear in its IPA space, one after another in BAR order (above the
/// channels' window, below the 39-bit limit).
pub const DEVICE_BASE_IPA: u64 = 0x50_0000_0000;

/// Most per-IPA SMMU invalidations for one change; beyond, the VMID's whole TLB goes.
pub const MAX_TLBI_PAGES: u64 = 16;

/// The VMIDs (bit = VMID, 0..128) whose stage 2 an SMMU stream translates with: only their
/// changes cost SMMU maintenance.
static DMA_VMIDS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

fn vmid_bit(vmid: u16) -> Option<(&'static AtomicU64, u64)> {
    let word = DMA_VMIDS.get(usize::from(vmid / 64))?;
    Some((word, 1 << (vmid % 64)))
}

/// Records whether a stream translates with VMID `vmid`'s stage 2.
pub fn set_dma_vmid(vmid: u16, on: bool) {
    if let Some((word, bit)) = vmid_bit(vmid) {
        if on {
            word.fetch_or(bit, Ordering::AcqRel);
        } else {
            word.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// Whether a device's DMA translates with VMID `vmid`'s stage 2.
pub fn has_dma(vmid: u16) -> bool {
    vmid_bit(vmid).is_some_and(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
}

/// After `pages` pages from `ipa` of VMID `vmid`'s stage 2 were broken (unmapped or
/// re-permissioned), before their frames are reused: the SMMU forgets them too. A VM that owns
/// no device pays one atomic load.
pub fn invalidate_dma(vmid: u16, ipa: u64, pages: u64) {
    if !has_dma(vmid) {
        return;
    }
    #[cfg(target_os = "none")]
    crate::dev::smmu::invalidate(vmid, ipa, pages);
    #[cfg(not(target_os = "none"))]
    let _ = (ipa, pages);
}

/// The smallest BAR placement: a page, so that one VM's BAR never shares a stage-2 page with
/// another's.
pub const BAR_ALIGN_MIN: u64 = 4096;

/// Hands out naturally aligned ranges of the host bridge's 32-bit memory window, once each
/// (BARs are never moved or given back while the hyp runs: a device keeps its BAR across its
/// VM's resets).
#[derive(Debug)]
pub struct BarAllocator {
    /// The window as the PCI bus sees it, and where the CPU reaches it.
    pci_base: u64,
    cpu_base: u64,
    end: u64,
    next: u64,
}

/// A placed BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// What the BAR register is written with.
    pub pci: u64,
    /// Where the CPU (and a VM's stage 2) reaches it.
    pub cpu: u64,
    pub size: u64,
}

impl BarAllocator {
    pub fn new(pci_base: u64, cpu_base: u64, size: u64) -> Self {
        Self {
            pci_base,
            cpu_base,
            end: pci_base.saturating_add(size),
            next: pci_base,
        }
    }

    /// A range for a BAR of `size` bytes (a power of two, as BAR sizing gives), aligned to
    /// its size and at least a page; None when the window is full or `size` is not a power
    /// of two.
    pub fn place(&mut self, size: u64) -> Option<Placed> {
        if !size.is_power_of_two() {
            return None;
        }
        let size = size.max(BAR_ALIGN_MIN);
        let start = self.next.checked_next_multiple_of(size)?;
        let end = start.checked_add(size)?;
        // A 32-bit BAR: below 4 GiB too.
        if end > self.end || end > 1 << 32 {
            return None;
        }
        self.next = end;
        Some(Placed {
            pci: start,
            cpu: start - self.pci_base + self.cpu_base,
            size,
        })
    }
}

#[cfg(target_os = "none")]
mod assign;
#[cfg(target_os = "none")]
pub use assign::{assign_at_boot, release, restore};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_vmids_cost_smmu_maintenance() {
        assert!(!has_dma(7));
        set_dma_vmid(7, true);
        set_dma_vmid(70, true);
        assert!(has_dma(7) && has_dma(70) && !has_dma(6));
        set_dma_vmid(7, false);
        assert!(!has_dma(7) && has_dma(70));
        set_dma_vmid(70, false);
        // Beyond the map: never marked, never a panic.
        set_dma_vmid(500, true);
        assert!(!has_dma(500));
    }

    #[test]
    fn bars_are_aligned_to_their_size_and_never_overlap() {
        let mut bars = BarAllocator::new(0x1000_0000, 0x1000_0000, 0x2eff_0000);
        let a = bars.place(0x1000).unwrap();
        let b = bars.place(0x4000).unwrap();
        let c = bars.place(0x10).unwrap();
        assert_eq!(a.pci, 0x1000_0000);
        assert_eq!(b.pci, 0x1000_4000);
        assert_eq!(c.pci, 0x1000_8000);
        assert_eq!(c.size, BAR_ALIGN_MIN);
    }

    #[test]
    fn a_window_at_another_cpu_address_translates() {
        let mut bars = BarAllocator::new(0x1000_0000, 0x40_1000_0000, 0x10_0000);
        assert_eq!(bars.place(0x1000).unwrap().cpu, 0x40_1000_0000);
    }

    #[test]
    fn a_full_window_or_a_bad_size_places_nothing() {
        let mut bars = BarAllocator::new(0x1000_0000, 0x1000_0000, 0x8000);
        assert_eq!(bars.place(0x3000), None);
        assert!(bars.place(0x8000).is_some());
        assert_eq!(bars.place(0x1000), None);
    }
}
