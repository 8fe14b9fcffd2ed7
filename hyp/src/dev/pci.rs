//! The generic ECAM PCIe host bridge (QEMU `virt`'s `pci-host-ecam-generic`): configuration
//! space of bus 0, which `boot` maps for the hyp alone (1 MiB: 32 devices x 8 functions x
//! 4 KiB). No guest ever sees it: a VM that owns a function gets its BAR, never its
//! configuration space, so it cannot re-point BARs or the bridge.
//!
//! Without firmware (`-kernel` boot) nothing has assigned BARs: the hyp does, in the bridge's
//! 32-bit memory window (`crate::vm::device::BarAllocator` places them).

use crate::vm::device::{BarAllocator, Placed, VirtioCaps, virtio_caps};
use core::ptr::{read_volatile, write_volatile};
use manifest::Bdf;

/// One bus of ECAM configuration space.
pub const ECAM_BUS_BYTES: u64 = 1 << 20;

/// Configuration-space register offsets (PCI Local Bus 3.0 §6.1, type 0 header).
pub mod reg {
    pub const VENDOR_DEVICE: u16 = 0x00;
    pub const COMMAND: u16 = 0x04;
    pub const CLASS_REVISION: u16 = 0x08;
    pub const HEADER_TYPE_WORD: u16 = 0x0c;
    pub const BAR0: u16 = 0x10;
    /// Interrupt line (byte 0) and pin (byte 1: 0 none, 1 INTA .. 4 INTD).
    pub const INTERRUPT_WORD: u16 = 0x3c;
}

/// Command register bits.
pub mod command {
    pub const MEMORY_SPACE: u16 = 1 << 1;
    pub const BUS_MASTER: u16 = 1 << 2;
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Red Hat's vendor ID, which virtio-pci devices carry.
const VIRTIO_VENDOR: u16 = 0x1af4;
/// Vendor ID read from a function that is not there.
const NO_FUNCTION: u16 = 0xffff;

/// BARs of a type 0 header.
pub const BARS: usize = 6;
/// BAR low bits: I/O space, and a 64-bit memory BAR's type.
const BAR_IO: u32 = 1;
const BAR_TYPE_MASK: u32 = 0b110;
const BAR_TYPE_64: u32 = 0b100;
const BAR_FLAGS: u32 = 0xf;

/// A function found on bus 0, with the memory BARs the hyp placed.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub header_type: u8,
    /// By BAR index (a 64-bit BAR takes two, its upper one stays None).
    pub bars: [Option<Placed>; BARS],
    /// Where its virtio structures are, if it is a modern virtio-pci device.
    pub virtio: Option<VirtioCaps>,
    /// The INTID of the GIC SPI its INTx pin raises (the host bridge's `interrupt-map`).
    pub intx: Option<u32>,
}

/// Bus 0's configuration space.
pub struct Ecam {
    base: usize,
}

impl Ecam {
    /// # Safety
    /// `base` must be the identity-mapped (Device memory) ECAM of bus 0, `ECAM_BUS_BYTES`
    /// long, and only this `Ecam` may use it.
    pub unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn address(&self, bdf: Bdf, offset: u16) -> usize {
        self.base + (usize::from(bdf.devfn()) << 12) + usize::from(offset & 0xffc)
    }

    pub fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        // SAFETY: per `new`, the whole bus is mapped; `address` stays inside its 1 MiB and is
        // 4-byte aligned.
        unsafe { read_volatile(self.address(bdf, offset) as *const u32) }
    }

    pub fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { write_volatile(self.address(bdf, offset) as *mut u32, value) }
    }

    pub fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        (self.read32(bdf, offset) >> (8 * (offset & 3))) as u8
    }

    /// The command register (the status half is written back as zeros: its bits are
    /// write-one-to-clear).
    pub fn set_command(&self, bdf: Bdf, value: u16) {
        self.write32(bdf, reg::COMMAND, u32::from(value));
    }

    /// The function at `bdf`, if one answers.
    pub fn probe(&self, bdf: Bdf) -> Option<Function> {
        let id = self.read32(bdf, reg::VENDOR_DEVICE);
        let vendor = id as u16;
        (vendor != NO_FUNCTION).then(|| Function {
            bdf,
            vendor,
            device: (id >> 16) as u16,
            class: self.read32(bdf, reg::CLASS_REVISION) >> 8,
            header_type: self.read8(bdf, reg::HEADER_TYPE_WORD + 2),
            bars: [None; BARS],
            virtio: (vendor == VIRTIO_VENDOR)
                .then(|| virtio_caps(|at| self.read32(bdf, at)))
                .flatten(),
            intx: None,
        })
    }

    /// Sizes the memory BARs of `f` (a type 0 header) and places them in `window`, with
    /// memory decoding, bus mastering and INTx off (a BAR is written only while it decodes
    /// nothing). A BAR the window cannot hold stays unprogrammed (zero) and is left out.
    fn place_bars(&self, f: &mut Function, window: &mut BarAllocator) {
        self.set_command(f.bdf, command::INTX_DISABLE);
        let mut i = 0;
        while i < BARS {
            let offset = reg::BAR0 + 4 * i as u16;
            let original = self.read32(f.bdf, offset);
            let wide = original & (BAR_IO | BAR_TYPE_MASK) == BAR_TYPE_64;
            if original & BAR_IO != 0 {
                i += 1;
                continue;
            }
            self.write32(f.bdf, offset, u32::MAX);
            let mut mask = u64::from(self.read32(f.bdf, offset) & !BAR_FLAGS);
            if wide && i + 1 < BARS {
                self.write32(f.bdf, offset + 4, u32::MAX);
                mask |= u64::from(self.read32(f.bdf, offset + 4)) << 32;
            } else {
                mask |= 0xffff_ffff_0000_0000;
            }
            let size = (!mask).wrapping_add(1);
            let placed = (mask != 0xffff_ffff_0000_0000)
                .then(|| window.place(size))
                .flatten();
            let address = placed.map_or(0, |p| p.pci);
            self.write32(f.bdf, offset, address as u32);
            if wide && i + 1 < BARS {
                self.write32(f.bdf, offset + 4, (address >> 32) as u32);
            }
            f.bars[i] = placed;
            i += if wide { 2 } else { 1 };
        }
    }

    /// Every function of bus 0, in BDF order, into `out`; how many were found.
    pub fn enumerate(&self, out: &mut [Option<Function>]) -> usize {
        let mut found = 0;
        for device in 0..32u8 {
            let Some(first) = self.probe(Bdf::new(0, device, 0)) else {
                continue;
            };
            let functions = if first.header_type & 0x80 != 0 { 8 } else { 1 };
            for function in 0..functions {
                if let Some(f) = self.probe(Bdf::new(0, device, function))
                    && let Some(slot) = out.get_mut(found)
                {
                    *slot = Some(f);
                    found += 1;
                }
            }
        }
        found
    }
}

/// Bus 0 once `init` has found the host bridge: its configuration space, the functions on it
/// (BARs placed), and whether their DMA goes through the SMMU. One `Once` for the three.
struct Bus0 {
    ecam: Ecam,
    found: alloc::vec::Vec<Function>,
    behind_smmu: bool,
}

static BUS0: spin::Once<Bus0> = spin::Once::new();

/// The function at `bdf` as `init` found it, and whether its DMA goes through the SMMU.
pub fn function(bdf: Bdf) -> Option<(Function, bool)> {
    let bus = BUS0.get()?;
    bus.found
        .iter()
        .find(|f| f.bdf == bdf)
        .map(|&f| (f, bus.behind_smmu))
}

/// Every function `init` found on bus 0, in slot order (none before `init`).
pub fn functions() -> &'static [Function] {
    BUS0.get().map_or(&[], |bus| bus.found.as_slice())
}

/// A function's base class (the top byte of [`Function::class`]) when it is a bridge: the host
/// bridge is one, and does no DMA of its own.
pub const CLASS_BRIDGE: u32 = 0x06;

/// Turns the function's memory decoding and bus mastering on (`true`) or both off, and its
/// INTx on only if `on` and `intx` (its interrupt routed to its owner).
pub fn set_enabled(bdf: Bdf, on: bool, intx: bool) {
    if let Some(ecam) = BUS0.get().map(|bus| &bus.ecam) {
        let mut bits = if on {
            command::MEMORY_SPACE | command::BUS_MASTER
        } else {
            0
        };
        // A function whose interrupt the hyp does not route for its owner raises none: it may
        // share its line with another VM's device.
        if !(on && intx) {
            bits |= command::INTX_DISABLE;
        }
        ecam.set_command(bdf, bits);
    }
}

/// The regions `boot` maps for the hyp: bus 0 of the ECAM.
pub fn mmio_region(board: &devtree::Board) -> Option<(u64, u64)> {
    let host = board.pci?;
    (host.bus_first == 0 && host.ecam.size >= ECAM_BUS_BYTES)
        .then_some((host.ecam.base, ECAM_BUS_BYTES))
}

/// Finds bus 0's functions and says what they are, one line each.
pub fn init(board: &devtree::Board) {
    let (Some(host), Some((base, _))) = (board.pci, mmio_region(board)) else {
        return;
    };
    // SAFETY: take_over_mmu mapped bus 0 of the ECAM as Device memory (mmio_region), and only
    // this module uses it.
    let ecam = unsafe { Ecam::new(base as usize) };
    // On the heap: 256 slots of a `Function` are about 57 KiB, most of a CPU's 64 KiB stack
    // (an array here overflowed it into the boot tables below the stacks).
    let mut found = alloc::vec![None; 32 * 8];
    let n = ecam.enumerate(&mut found);
    let mut window = host
        .mem32
        .map(|w| BarAllocator::new(w.pci_base, w.cpu_base, w.size));
    for f in found.iter_mut().take(n).flatten() {
        let pin = ecam.read8(f.bdf, reg::INTERRUPT_WORD + 1);
        f.intx = (pin != 0)
            .then(|| host.intx.intid(f.bdf.bus(), f.bdf.devfn(), pin))
            .flatten();
        if f.header_type & 0x7f == 0
            && let Some(window) = window.as_mut()
        {
            ecam.place_bars(f, window);
        }
    }
    info!(
        "PCI host bridge: ECAM at {base:#x}, {n} function(s) on bus 0, 32-bit window {}, {}",
        host.mem32
            .map_or(alloc::string::String::from("none"), |w| alloc::format!(
                "{:#x}..{:#x}",
                w.cpu_base,
                w.cpu_base + w.size
            )),
        if host.behind_smmu {
            "DMA through the SMMU"
        } else {
            "no SMMU in front"
        }
    );
    let found: alloc::vec::Vec<Function> = found.iter().take(n).flatten().copied().collect();
    // Its list is the hyp's for the run.
    crate::power::held_for_the_run(|| {
        BUS0.call_once(|| Bus0 {
            ecam,
            found: found.clone(),
            behind_smmu: host.behind_smmu,
        })
    });
    for f in &found {
        info!(
            "PCI {}: vendor {:04x} device {:04x} class {:06x} header type {:#04x}",
            // The u16 and u8 fields as u32: no hex of their own types in the Image.
            f.bdf,
            u32::from(f.vendor),
            u32::from(f.device),
            f.class,
            u32::from(f.header_type)
        );
        if let Some(intid) = f.intx {
            info!("PCI {}: INTx raises SPI {intid}", f.bdf);
        }
        if let Some(v) = f.virtio {
            info!(
                "PCI {}: virtio in BAR{}: common {:#x}, notify {:#x} (x{}), ISR {:#x}, device {:#x}",
                f.bdf,
                u32::from(v.bar), // no u8 Display in the Image for this one line
                v.common,
                v.notify,
                v.notify_multiplier,
                v.isr,
                v.device
            );
        }
        for (i, bar) in f.bars.iter().enumerate() {
            if let Some(bar) = bar {
                info!(
                    "PCI {}: BAR{i} at {:#x} ({:#x} bytes)",
                    f.bdf, bar.cpu, bar.size
                );
            }
        }
    }
}
