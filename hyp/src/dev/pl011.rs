//! Arm PL011 UART (the `virt` board's console): transmit, and receive by polling.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {u32,
    FR [
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    CR [
        UARTEN OFFSET(0) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        RXE OFFSET(9) NUMBITS(1) []
    ]
}

register_structs! {
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => @END),
    }
}

/// A PL011 the firmware or QEMU has already configured (baud rate, line format).
pub struct Pl011 {
    regs: &'static Registers,
}

// SAFETY: the registers are MMIO, used only by whoever owns the Pl011 (the console, under its
// lock); moving that ownership between CPUs is sound.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the identity-mapped device address of a PL011, used by nothing else.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: per the contract, `base` points at the UART's register block for 'static.
        let regs = unsafe { &*(base as *const Registers) };
        regs.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
        Self { regs }
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        (!self.regs.fr.is_set(FR::RXFE)).then(|| self.regs.dr.get() as u8)
    }

    pub fn write_byte(&self, byte: u8) {
        while self.regs.fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs.dr.set(u32::from(byte));
    }

    pub fn flush(&self) {
        while self.regs.fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}
