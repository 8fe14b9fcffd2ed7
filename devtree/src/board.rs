//! [`Board`]: everything the hypervisor learns from the device tree.

use crate::Error;
use crate::device::{
    Cpu, Gic, PciHost, PowerManagement, Psci, Region, Smmu, Timer, Uart, VirtioMmio,
};

/// Most RAM regions [`Board`] holds.
pub const MAX_MEMORY: usize = 16;
/// Most reserved regions [`Board`] holds.
pub const MAX_RESERVED: usize = 32;
/// Most CPUs [`Board`] holds.
pub const MAX_CPUS: usize = 16;
/// Most virtio-mmio transports [`Board`] holds (QEMU `virt` has 32).
pub const MAX_VIRTIO: usize = 32;

/// A summary of the board, borrowed from the device tree blob for its strings.
///
/// Fixed-size tables with counts, so it can be built before there is a heap;
/// use the slice accessors ([`Board::memory`], ...) rather than the raw arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board<'a> {
    /// The root `model` (`"Raspberry Pi 4 Model B"`), or `""`.
    pub model: &'a str,
    /// The first root `compatible` string (`"raspberrypi,4-model-b"`), or `""`.
    pub compatible: &'a str,
    /// RAM: every non-empty `reg` entry of every `device_type = "memory"` node.
    pub memory: [Region; MAX_MEMORY],
    /// How many entries of `memory` are used.
    pub memory_count: usize,
    /// Memory not to use: the `/memreserve/` entries, then every enabled
    /// `/reserved-memory` child with a `reg` (dynamic pools with only a `size`
    /// are not listed). Empty entries are left out.
    pub reserved: [Region; MAX_RESERVED],
    /// How many entries of `reserved` are used.
    pub reserved_count: usize,
    /// The console: the UART `/chosen/stdout-path` names (a path or an alias;
    /// options such as `:115200n8` stripped), or if it names none this crate
    /// drives, the first enabled UART of a known kind in tree order.
    pub console: Option<Uart>,
    /// The interrupt controller (the first enabled GIC).
    pub gic: Option<Gic>,
    /// The architected timer (`arm,armv8-timer` / `arm,armv7-timer`).
    pub timer: Option<Timer>,
    /// PSCI, if the tree has an enabled `arm,psci*` node.
    pub psci: Option<Psci>,
    /// The enabled CPUs of `/cpus`, in tree order.
    pub cpus: [Cpu; MAX_CPUS],
    /// How many entries of `cpus` are used.
    pub cpu_count: usize,
    /// `/chosen` `linux,initrd-start` .. `linux,initrd-end`.
    pub initrd: Option<Region>,
    /// `/chosen` `bootargs`, if present and not empty.
    pub bootargs: Option<&'a str>,
    /// The Raspberry Pi's PM block, used for power-off.
    pub power: Option<PowerManagement>,
    /// Enabled virtio-mmio transports with a GIC interrupt, sorted by address.
    pub virtio_mmio: [VirtioMmio; MAX_VIRTIO],
    /// How many entries of `virtio_mmio` are used.
    pub virtio_count: usize,
    /// The first SMMUv3.
    pub smmu: Option<Smmu>,
    /// The first generic ECAM PCIe host bridge.
    pub pci: Option<PciHost>,
}

impl<'a> Board<'a> {
    pub(crate) const fn empty() -> Self {
        Board {
            model: "",
            compatible: "",
            memory: [Region::EMPTY; MAX_MEMORY],
            memory_count: 0,
            reserved: [Region::EMPTY; MAX_RESERVED],
            reserved_count: 0,
            console: None,
            gic: None,
            timer: None,
            psci: None,
            cpus: [Cpu::EMPTY; MAX_CPUS],
            cpu_count: 0,
            initrd: None,
            bootargs: None,
            power: None,
            virtio_mmio: [VirtioMmio::EMPTY; MAX_VIRTIO],
            virtio_count: 0,
            smmu: None,
            pci: None,
        }
    }

    /// The RAM regions.
    pub fn memory(&self) -> &[Region] {
        &self.memory[..self.memory_count]
    }

    /// The reserved regions.
    pub fn reserved(&self) -> &[Region] {
        &self.reserved[..self.reserved_count]
    }

    /// The CPUs.
    pub fn cpus(&self) -> &[Cpu] {
        &self.cpus[..self.cpu_count]
    }

    /// The virtio-mmio transports.
    pub fn virtio(&self) -> &[VirtioMmio] {
        &self.virtio_mmio[..self.virtio_count]
    }

    /// `Err(Error::NoMemory)` if the tree gave no RAM.
    pub fn require_memory(&self) -> Result<(), Error> {
        if self.memory_count == 0 {
            Err(Error::NoMemory)
        } else {
            Ok(())
        }
    }
}

/// Appends `item` to the first `*count` entries of `table`, or fails with
/// [`Error::TooMany`] naming `what`.
pub(crate) fn push<T>(
    table: &mut [T],
    count: &mut usize,
    item: T,
    what: &'static str,
) -> Result<(), Error> {
    let slot = table.get_mut(*count).ok_or(Error::TooMany(what))?;
    *slot = item;
    *count += 1;
    Ok(())
}
