//! The BCM2835 auxiliary "mini UART" (the Raspberry Pi 4's console on GPIO 14/15), transmit
//! and receive. Registers from the BCM2835 ARM Peripherals manual, section 2.2; the device tree's
//! region starts at AUX_MU_IO (bus 0x7e215040, CPU 0xfe215040 on the BCM2711).
//!
//! The firmware (`enable_uart=1`) or QEMU has already set it up: 8-bit mode, baud rate, GPIO
//! 14/15 muxed, transmitter on. The baud rate divides the VPU core clock, which the hyp does not
//! know, so it never touches the configuration and only writes bytes.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    /// AUX_MU_LSR_REG: line status.
    LSR [
        /// The receive FIFO holds at least one byte.
        DATA_READY OFFSET(0) NUMBITS(1) [],
        /// The transmit FIFO can accept at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
        /// The transmit FIFO is empty and the transmitter has sent its last bit.
        TX_IDLE OFFSET(6) NUMBITS(1) []
    ]
}

register_structs! {
    Registers {
        /// AUX_MU_IO_REG: a write sends a byte, a read takes one (with DLAB clear, as the
        /// firmware leaves it).
        (0x00 => io: ReadWrite<u32>),
        /// AUX_MU_IER, IIR, LCR, MCR: configuration the firmware owns.
        (0x04 => _reserved0),
        (0x14 => lsr: ReadOnly<u32, LSR::Register>),
        /// AUX_MU_MSR .. AUX_MU_BAUD: modem status, scratch, control, status, baud rate.
        (0x18 => _reserved1),
        (0x40 => @END),
    }
}

/// A mini UART the firmware or QEMU has already configured.
pub struct Bcm2835Aux {
    regs: &'static Registers,
}

// SAFETY: the registers are MMIO, used only by whoever owns the Bcm2835Aux (the console, under
// its lock); moving that ownership between CPUs is sound.
unsafe impl Send for Bcm2835Aux {}

impl Bcm2835Aux {
    /// # Safety
    /// `base` must be the identity-mapped device address of a mini UART's AUX_MU_IO register
    /// (the start of its 0x40-byte block), used by nothing else.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: per the contract, `base` points at the UART's register block for 'static.
        let regs = unsafe { &*(base as *const Registers) };
        Self { regs }
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        self.regs
            .lsr
            .is_set(LSR::DATA_READY)
            .then(|| self.regs.io.get() as u8)
    }

    pub fn write_byte(&self, byte: u8) {
        while !self.regs.lsr.is_set(LSR::TX_EMPTY) {
            core::hint::spin_loop();
        }
        self.regs.io.set(u32::from(byte));
    }

    pub fn flush(&self) {
        while !self.regs.lsr.is_set(LSR::TX_IDLE) {
            core::hint::spin_loop();
        }
    }
}
