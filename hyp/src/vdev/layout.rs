//! Where things are in the IPA space of a VM of kind `linux`, and which interrupts they raise:
//! one map for every board (the shape of QEMU `virt`), written into the guest's device tree and
//! emulated at these addresses. Its UART is `pl011::PL011_IPA`.

#![forbid(unsafe_code)]
#![expect(dead_code, reason = "the Linux VM work in flight uses these")]

/// The first byte of a Linux VM's RAM (its `memory` follows, contiguous).
pub const RAM_IPA: u64 = 0x4000_0000;

/// The GIC distributor (GICv2 and GICv3), 64 KiB.
pub const GICD_IPA: u64 = 0x0800_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
/// GICv2: the CPU interface, where the board's GICV frames are mapped (8 KiB: GICC_DIR is in
/// the second page).
pub const GICC_IPA: u64 = 0x0801_0000;
pub const GICC_SIZE: u64 = 0x2000;
/// GICv3: the redistributors, one RD frame and one SGI frame (64 KiB each) a vCPU, in vCPU order.
pub const GICR_IPA: u64 = 0x080a_0000;
pub const GICR_STRIDE: u64 = 0x2_0000;

/// INTIDs (PPIs 16..31, SPIs from 32) the guest's device tree names.
pub const INTID_HYP_TIMER: u32 = 26;
pub const INTID_VIRT_TIMER: u32 = 27;
pub const INTID_SECURE_PHYS_TIMER: u32 = 29;
pub const INTID_PHYS_TIMER: u32 = 30;
/// The maintenance interrupt (PPI 9).
pub const INTID_MAINTENANCE: u32 = 25;
/// The UART's interrupt: SPI 1, as on `virt`.
pub const INTID_UART: u32 = 33;

/// The UART's reference clock (`uartclk` and `apb_pclk` in the device tree), as on `virt`.
pub const UART_CLOCK_HZ: u32 = 24_000_000;
