//! Devices assigned to VMs: which VM owns which PCI function, where its BARs go, and what the
//! SMMU lets it reach.
//!
//! The pure parts live here and are host-tested: placing BARs in the host bridge's 32-bit
//! window ([`BarAllocator`]), the SMMU's formats ([`smmuv3`]). The register work is in
//! `dev::pci` (configuration space) and `dev::smmu` (stream table, queues).
//!
//! # Which stage-2 table the SMMU walks
//!
//! A table of its own, the VM's DMA table ([`mirror`]): the VM's CPU stage 2 also holds its
//! channel pages (a peer's memory too), the device's BARs and the pages the hyp shares with the
//! VM, none of which its device may reach. The DMA table has the same format and holds exactly
//! the CPU table's RAM leaves (the image and the pages the VM maps), changed by `vm::mem` in
//! the same all-or-nothing call as the CPU table on every `MEM_MAP`, `MEM_UNMAP`,
//! `MEM_PROTECT` and batch, and at build and teardown; its tables count against the VM's table
//! allowance. A leaf removed or re-permissioned there is invalidated in the SMMU's TLB
//! ([`invalidate_dma`]) between the break and the make and before the frame is reused (the SMMU
//! ignores the CPUs' broadcast TLBIs: CR2.PTM). A VM that owns no device has no DMA table and
//! pays one branch a call.
//!
//! # Interrupts and stopped DMAs
//!
//! The device's INTx (its SPI from the host bridge's `interrupt-map`) and the DMAs the SMMU
//! stopped reach the owner as events ([`irq`], ABI 1.6): a taken level interrupt stays
//! disabled until the owner's `EVENT_DEVICE_ACK`.
//!
//! # Teardown
//!
//! When the VM ends, is killed or restarts ([`release`]): its interrupt is disabled and routed
//! nowhere, the stream table entry goes back to
//! abort (`CMD_CFGI_STE` + `CMD_SYNC`), the SMMU forgets the VMID's translations
//! (`CMD_TLBI_S12_VMALL` + `CMD_SYNC`: a restart reuses the VMID), bus mastering and memory
//! decoding go off, and only then may its frames be freed.

#![forbid(unsafe_code)]

pub mod irq;
pub mod mirror;
pub mod smmuv3;

use core::sync::atomic::{AtomicU64, Ordering};

/// Where a VM's device BARs appear in its IPA space, one after another in BAR order (above the
/// channels' window, below the 39-bit limit).
pub const DEVICE_BASE_IPA: u64 = 0x50_0000_0000;

/// Most per-IPA SMMU invalidations for one change; beyond, the VMID's whole TLB goes.
pub const MAX_TLBI_PAGES: u64 = 16;

/// The VMIDs (bit = VMID, 0..128) whose DMA table an SMMU stream translates with: only their
/// changes cost SMMU maintenance.
static DMA_VMIDS: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];

fn vmid_bit(vmid: u16) -> Option<(&'static AtomicU64, u64)> {
    let word = DMA_VMIDS.get(usize::from(vmid / 64))?;
    Some((word, 1 << (vmid % 64)))
}

/// Records whether a stream translates with VMID `vmid`'s DMA table.
pub fn set_dma_vmid(vmid: u16, on: bool) {
    if let Some((word, bit)) = vmid_bit(vmid) {
        if on {
            word.fetch_or(bit, Ordering::AcqRel);
        } else {
            word.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// Whether a device's DMA translates with VMID `vmid`'s DMA table.
pub fn has_dma(vmid: u16) -> bool {
    vmid_bit(vmid).is_some_and(|(word, bit)| word.load(Ordering::Acquire) & bit != 0)
}

/// After `pages` pages from `ipa` of VMID `vmid`'s DMA table were broken (unmapped or
/// re-permissioned) or a table of it unhooked, before the make or the frames' reuse: the SMMU
/// forgets them.
pub fn invalidate_dma(vmid: u16, ipa: u64, pages: u64) {
    if !has_dma(vmid) {
        return;
    }
    #[cfg(target_os = "none")]
    crate::dev::smmu::invalidate(vmid, ipa, pages);
    #[cfg(test)]
    SMMU_INVALIDATIONS.with(|log| log.borrow_mut().push((vmid, ipa, pages)));
    #[cfg(all(not(target_os = "none"), not(test)))]
    let _ = (ipa, pages);
}

#[cfg(test)]
std::thread_local! {
    /// The SMMU invalidations `invalidate_dma` asked for on this thread (host tests).
    pub static SMMU_INVALIDATIONS: core::cell::RefCell<std::vec::Vec<(u16, u64, u64)>> =
        const { core::cell::RefCell::new(std::vec::Vec::new()) };
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

/// Where a virtio-pci (modern) device's structures are: all in one BAR (as QEMU puts them),
/// offsets into it (virtio 1.1 §4.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioCaps {
    pub bar: u8,
    pub common: u32,
    pub notify: u32,
    pub notify_multiplier: u32,
    pub isr: u32,
    pub device: u32,
}

/// Configuration-space offsets and values the capability walk reads.
const STATUS_WORD: u16 = 0x04;
const STATUS_CAPABILITIES: u32 = 1 << (16 + 4);
const CAPABILITIES_POINTER: u16 = 0x34;
const CAP_VENDOR_SPECIFIC: u32 = 0x09;
/// A configuration space holds at most 48 capabilities (192 bytes after the header, 4 each).
const MAX_CAPS: usize = 48;
/// `cfg_type` of virtio_pci_cap.
const VIRTIO_COMMON: u32 = 1;
const VIRTIO_NOTIFY: u32 = 2;
const VIRTIO_ISR: u32 = 3;
const VIRTIO_DEVICE: u32 = 4;

/// Walks the capability list of a function whose configuration space `read32` reads (an
/// aligned offset in, its 32-bit word out): the virtio structures, if all four are there and in
/// one BAR. The walk is bounded (a looping list ends it).
pub fn virtio_caps(read32: impl Fn(u16) -> u32) -> Option<VirtioCaps> {
    if read32(STATUS_WORD) & STATUS_CAPABILITIES == 0 {
        return None;
    }
    let mut at = (read32(CAPABILITIES_POINTER) & 0xfc) as u16;
    let mut found: [Option<(u8, u32)>; 4] = [None; 4];
    let mut notify_multiplier = 0;
    for _ in 0..MAX_CAPS {
        if at < 0x40 {
            break;
        }
        let head = read32(at);
        if head & 0xff == CAP_VENDOR_SPECIFIC {
            let cfg_type = head >> 24;
            let bar = (read32(at + 4) & 0xff) as u8;
            let offset = read32(at + 8);
            let slot = match cfg_type {
                VIRTIO_COMMON => Some(0),
                VIRTIO_NOTIFY => Some(1),
                VIRTIO_ISR => Some(2),
                VIRTIO_DEVICE => Some(3),
                _ => None,
            };
            if let Some(slot) = slot {
                found[slot].get_or_insert((bar, offset));
            }
            if cfg_type == VIRTIO_NOTIFY {
                notify_multiplier = read32(at + 16);
            }
        }
        at = ((head >> 8) & 0xfc) as u16;
    }
    let [Some(common), Some(notify), Some(isr), Some(device)] = found else {
        return None;
    };
    let bar = common.0;
    [notify, isr, device]
        .iter()
        .all(|&(b, _)| b == bar)
        .then_some(VirtioCaps {
            bar,
            common: common.1,
            notify: notify.1,
            notify_multiplier,
            isr: isr.1,
            device: device.1,
        })
}

#[cfg(target_os = "none")]
mod assign;
#[cfg(target_os = "none")]
pub use assign::{assign_at_boot, dma_fault, poll_events, release, restore};

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration space of 256 bytes as words, with a capability list like QEMU's
    /// virtio-blk-pci: MSI-X at 0x98, then virtio caps at 0x84, 0x74, 0x64, 0x50 (notify: 20
    /// bytes), 0x40 (the PCI-config one, type 5, last).
    fn qemu_like() -> [u32; 64] {
        let mut c = [0u32; 64];
        c[1] = STATUS_CAPABILITIES;
        c[0x34 / 4] = 0x98;
        let mut cap = |at: usize, next: u32, cfg_type: u32, bar: u32, offset: u32| {
            c[at / 4] = 0x09 | next << 8 | 16 << 16 | cfg_type << 24;
            c[at / 4 + 1] = bar;
            c[at / 4 + 2] = offset;
            c[at / 4 + 3] = 0x1000;
        };
        cap(0x84, 0x74, VIRTIO_COMMON, 4, 0);
        cap(0x74, 0x64, VIRTIO_ISR, 4, 0x1000);
        cap(0x64, 0x50, VIRTIO_DEVICE, 4, 0x2000);
        cap(0x50, 0x40, VIRTIO_NOTIFY, 4, 0x3000);
        cap(0x40, 0x00, 5, 0, 0);
        c[0x50 / 4 + 4] = 4;
        // MSI-X (id 0x11), pointing at the virtio caps.
        c[0x98 / 4] = 0x11 | 0x84 << 8;
        c
    }

    #[test]
    fn virtio_caps_are_found_through_the_list() {
        let c = qemu_like();
        let caps = virtio_caps(|at| c[usize::from(at) / 4]).unwrap();
        assert_eq!(
            caps,
            VirtioCaps {
                bar: 4,
                common: 0,
                notify: 0x3000,
                notify_multiplier: 4,
                isr: 0x1000,
                device: 0x2000
            }
        );
    }

    #[test]
    fn a_looping_list_or_a_missing_cap_gives_none() {
        let mut c = qemu_like();
        // The device cap's next points back at the first.
        c[0x64 / 4] = 0x09 | 0x98 << 8 | 4 << 24;
        assert_eq!(virtio_caps(|at| c[usize::from(at) / 4]), None);
        let mut c = qemu_like();
        c[1] = 0;
        assert_eq!(virtio_caps(|at| c[usize::from(at) / 4]), None);
    }

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
