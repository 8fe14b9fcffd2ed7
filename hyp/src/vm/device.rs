//! Devices assigned to VMs: which VM owns which PCI function, where its BARs go, and what the
//! SMMU lets it reach.
//!
//! The pure parts live here and are host-tested: placing BARs in the host bridge's 32-bit
//! window ([`BarAllocator`]). The register work is in `dev::pci` (configuration space) and
//! `dev::smmu` (stream table, queues).

#![forbid(unsafe_code)]

pub mod smmuv3;

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

#[cfg(test)]
mod tests {
    use super::*;

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
