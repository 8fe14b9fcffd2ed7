//! The plain values a [`Board`](crate::Board) is made of.

/// A range of CPU physical addresses (already translated through every bus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// The empty region at address 0, for filling fixed tables.
    pub const EMPTY: Region = Region { base: 0, size: 0 };

    /// One past the last address. Never overflows: the parser refuses regions
    /// that would.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// Which UART programming model a console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PrimeCell PL011 (`arm,pl011`): QEMU `virt`, the Pi's first UART.
    Pl011,
    /// The BCM2835 auxiliary "mini UART" (`brcm,bcm2835-aux-uart`): the Pi 4's
    /// console on GPIO 14/15. `region` is its 0x40-byte register block.
    Bcm2835Aux,
    /// A 16550-compatible UART (`ns16550a`, `ns16550`).
    Ns16550,
}

/// A UART the hypervisor can print on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uart {
    /// The programming model.
    pub kind: UartKind,
    /// Its registers (first `reg` entry).
    pub region: Region,
    /// Its reference clock, if the tree states it: the node's
    /// `clock-frequency`, or that of a `fixed-clock` its first `clocks` entry
    /// names. `None` for the Pi's mini UART, whose clock is the VPU core clock.
    pub clock_hz: Option<u32>,
}

/// GIC architecture version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,gic-400`, `arm,cortex-a15-gic`, ...): memory-mapped CPU interface.
    V2,
    /// GICv3 or v4 (`arm,gic-v3`): redistributors, system-register CPU interface.
    V3,
}

/// The interrupt controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gic {
    /// Architecture version.
    pub version: GicVersion,
    /// GICD.
    pub distributor: Region,
    /// GICC: v2's CPU interface (a v3 may list it for legacy guests).
    pub cpu_interface: Option<Region>,
    /// The first GICR region (v3 only).
    pub redistributor: Option<Region>,
    /// GICH: the virtual interface control block (v2; optional on v3).
    pub hyp_interface: Option<Region>,
    /// GICV: the virtual CPU interface (v2; optional on v3).
    pub vcpu_interface: Option<Region>,
    /// The virtualisation maintenance interrupt, as an INTID (PPI 9 is 25).
    pub maintenance_irq: Option<u32>,
}

/// The architected timer's interrupts, as PPI numbers (INTID = PPI + 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// EL2 physical timer (CNTHP), the fourth `interrupts` entry; 10 on QEMU and the Pi.
    pub hyp_phys_ppi: u32,
    /// EL1 virtual timer (CNTV), the third entry; 11 on QEMU and the Pi.
    pub virt_ppi: u32,
    /// EL1 non-secure physical timer (CNTP), the second entry; 14 on QEMU and the Pi.
    pub phys_ppi: u32,
}

/// The PSCI conduit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciMethod {
    /// `method = "smc"`: firmware at EL3 (QEMU `virt` with `virtualization=on`).
    Smc,
    /// `method = "hvc"`: a hypervisor below us.
    Hvc,
}

/// The `/psci` node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Psci {
    /// How to call it.
    pub method: PsciMethod,
    /// The `cpu_on` function ID, if the node gives one (PSCI 0.1 binding;
    /// PSCI 0.2 and later use the standard ID 0xc4000003).
    pub cpu_on: Option<u32>,
}

/// How a secondary CPU is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableMethod {
    /// `enable-method = "psci"`: PSCI `CPU_ON`.
    Psci,
    /// `enable-method = "spin-table"`: write the entry point to `release_addr`
    /// and send an event (the Raspberry Pi firmware's stub).
    SpinTable {
        /// `cpu-release-addr`: the physical address the CPU polls.
        release_addr: u64,
    },
    /// No `enable-method` this crate knows (QEMU `virt` with one CPU gives none).
    None,
}

/// One CPU from `/cpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// Its affinity (`reg`): the Aff3 and Aff2..Aff0 fields of MPIDR_EL1
    /// (bits 39:32 and 23:0), as the tree gives them.
    pub mpidr: u64,
    /// How to start it.
    pub enable: EnableMethod,
}

impl Cpu {
    /// A placeholder for filling fixed tables.
    pub const EMPTY: Cpu = Cpu {
        mpidr: 0,
        enable: EnableMethod::None,
    };
}

/// The Raspberry Pi's power-management block (`brcm,bcm2835-pm`,
/// `brcm,bcm2711-pm`, `brcm,bcm2835-pm-wdt`): its watchdog registers
/// (RSTC, RSTS, WDOG) reset or power off the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerManagement {
    /// The PM register block (first `reg` entry).
    pub region: Region,
}

/// A virtio-mmio transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioMmio {
    /// Its registers.
    pub region: Region,
    /// Its interrupt, as an INTID (QEMU `virt` slot 0: SPI 16, INTID 48).
    pub irq: u32,
}

impl VirtioMmio {
    /// A placeholder for filling fixed tables.
    pub const EMPTY: VirtioMmio = VirtioMmio {
        region: Region::EMPTY,
        irq: 0,
    };
}

/// An Arm SMMUv3 (`arm,smmu-v3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smmu {
    /// Its register pages (QEMU `virt`: 0x9050000, 0x20000 bytes).
    pub region: Region,
}

/// A window of PCI memory space as the CPU sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciWindow {
    /// Its first address on the PCI bus (what a BAR is programmed with).
    pub pci_base: u64,
    /// Where the CPU reaches that address.
    pub cpu_base: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// A generic ECAM PCIe host bridge (`pci-host-ecam-generic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciHost {
    /// The configuration space: 1 MiB per bus from `bus_first` on.
    pub ecam: Region,
    /// `bus-range` (default 0..=255).
    pub bus_first: u8,
    /// The last bus of `bus-range`.
    pub bus_last: u8,
    /// The first 32-bit memory window of `ranges`, where BARs below 4 GiB are placed.
    pub mem32: Option<PciWindow>,
    /// Whether its `iommu-map` sends the requesters' DMA through the SMMU the board lists.
    pub behind_smmu: bool,
    /// Its `interrupt-map`: which GIC SPI each function's INTx pin raises.
    pub intx: IntxMap,
}

/// Most `interrupt-map` entries kept (QEMU `virt` has 16: 4 slots x 4 pins).
pub const MAX_INTX: usize = 32;

/// A host bridge's `interrupt-map` entries whose parent is the GIC, decoded: a function's
/// (device, function) and INTx pin, masked with `interrupt-map-mask`, to the SPI's INTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxMap {
    /// `interrupt-map-mask`'s `phys.hi` cell (bus, device, function bits compared).
    pub mask_hi: u32,
    /// `interrupt-map-mask`'s pin cell.
    pub mask_pin: u32,
    /// (masked `phys.hi`, masked pin, INTID), the first `count` used.
    pub entries: [(u32, u32, u32); MAX_INTX],
    /// How many of `entries` are used.
    pub count: usize,
}

impl IntxMap {
    /// No entries.
    pub const EMPTY: IntxMap = IntxMap {
        mask_hi: 0,
        mask_pin: 0,
        entries: [(0, 0, 0); MAX_INTX],
        count: 0,
    };

    /// The INTID that pin `pin` (1 = INTA .. 4 = INTD) of function `devfn` (device << 3 |
    /// function) on bus `bus` raises, if the map names one.
    pub fn intid(&self, bus: u8, devfn: u8, pin: u8) -> Option<u32> {
        let hi = (u32::from(bus) << 16 | u32::from(devfn) << 8) & self.mask_hi;
        let pin = u32::from(pin) & self.mask_pin;
        self.entries[..self.count.min(MAX_INTX)]
            .iter()
            .find(|&&(h, p, _)| h == hi && p == pin)
            .map(|&(.., intid)| intid)
    }
}
