//! Raspberry Pi 4 (BCM2711): switching the board off through the power-management block.
//!
//! The tree names the block (`brcm,bcm2835-pm`, `board.power`), not its protocol. The Pi has no
//! PSCI; Linux (drivers/watchdog/bcm2835_wdt.c) and the firmware agree on this instead: write the
//! partition to boot next into RSTS (partition 63 means "halt": the firmware's bootloader then
//! stays off), arm the watchdog with a short timeout, and request a full reset in RSTC. QEMU's
//! `raspi4b` reads the same registers and exits. Every write carries the PM password in its top
//! byte, or the block ignores it.

use tock_registers::interfaces::{ReadWriteable, Readable, Writeable};
use tock_registers::registers::ReadWrite;
use tock_registers::{register_bitfields, register_structs};

/// The PM block's write password, in bits 31:24 of every register write.
pub const PM_PASSWORD: u32 = 0x5a00_0000;

/// The partition the firmware reads as "halt, do not boot again".
pub const HALT_PARTITION: u8 = 63;

/// Watchdog ticks before the reset fires (about 150 µs at its 65.5 kHz tick, as Linux uses).
const WDOG_TICKS: u32 = 10;

register_bitfields! {u32,
    /// PM_RSTC: reset control.
    RSTC [
        /// What the watchdog does when it expires.
        WRCFG OFFSET(4) NUMBITS(2) [
            FullReset = 0b10
        ],
        PASSWD OFFSET(24) NUMBITS(8) [
            Pm = 0x5a
        ]
    ],
    /// PM_RSTS: reset status; the firmware reads the partition to boot from it.
    RSTS [
        PASSWD OFFSET(24) NUMBITS(8) [
            Pm = 0x5a
        ]
    ],
    /// PM_WDOG: the watchdog's countdown, in ticks.
    WDOG [
        TIME OFFSET(0) NUMBITS(20) [],
        PASSWD OFFSET(24) NUMBITS(8) [
            Pm = 0x5a
        ]
    ]
}

register_structs! {
    Registers {
        (0x00 => _reserved0),
        (0x1c => rstc: ReadWrite<u32, RSTC::Register>),
        (0x20 => rsts: ReadWrite<u32, RSTS::Register>),
        (0x24 => wdog: ReadWrite<u32, WDOG::Register>),
        (0x28 => @END),
    }
}

/// RSTS spreads the 6-bit partition number over its even bits 0, 2, .., 10.
pub const fn rsts_partition(partition: u8) -> u32 {
    let mut bits = 0;
    let mut i = 0;
    while i < 6 {
        bits |= ((partition as u32 >> i) & 1) << (2 * i);
        i += 1;
    }
    bits
}

/// The RSTS bits that hold the partition.
const RSTS_PARTITION_MASK: u32 = rsts_partition(0x3f);

/// The PM block's watchdog, which resets or halts the board.
pub struct PmWatchdog {
    regs: &'static Registers,
}

impl PmWatchdog {
    /// # Safety
    /// `base` must be the identity-mapped device address of the BCM2711 PM block (the tree's
    /// `brcm,bcm2835-pm` node), and nothing may use the block concurrently.
    pub unsafe fn new(base: usize) -> Self {
        // SAFETY: per the contract, `base` points at the PM register block for 'static.
        let regs = unsafe { &*(base as *const Registers) };
        Self { regs }
    }

    /// Halts the board: the firmware sees partition 63 and does not boot again (QEMU exits).
    /// Returns once the reset is requested; it takes effect within the watchdog's few ticks.
    pub fn halt(&self) {
        let rsts = self.regs.rsts.get() & !(RSTS_PARTITION_MASK | PASSWD_MASK);
        self.regs
            .rsts
            .set(rsts | PM_PASSWORD | rsts_partition(HALT_PARTITION));
        self.regs
            .wdog
            .write(WDOG::PASSWD::Pm + WDOG::TIME.val(WDOG_TICKS));
        self.regs
            .rstc
            .modify(RSTC::PASSWD::Pm + RSTC::WRCFG::FullReset);
    }
}

/// Bits 31:24 of a PM register write, where the password goes.
const PASSWD_MASK: u32 = 0xff00_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halt_partition_is_what_linux_and_qemu_use() {
        // Linux's PM_RSTS_RASPBERRYPI_HALT, QEMU's V_RSTS_POWEROFF.
        assert_eq!(rsts_partition(HALT_PARTITION), 0x555);
    }

    #[test]
    fn partition_bits_are_spread_over_even_bits() {
        assert_eq!(rsts_partition(0), 0);
        assert_eq!(rsts_partition(1), 0b1);
        assert_eq!(rsts_partition(2), 0b100);
        assert_eq!(rsts_partition(0b10_0000), 1 << 10);
    }

    #[test]
    fn the_password_field_is_the_password() {
        assert_eq!(RSTC::PASSWD::Pm.value, PM_PASSWORD);
        assert_eq!(WDOG::PASSWD::Pm.value, PM_PASSWORD);
        assert_eq!(RSTS::PASSWD::Pm.value, PM_PASSWORD);
        assert_eq!(PASSWD_MASK, RSTS::PASSWD.mask << RSTS::PASSWD.shift);
    }

    #[test]
    fn register_offsets_match_the_pm_block() {
        assert_eq!(core::mem::offset_of!(Registers, rstc), 0x1c);
        assert_eq!(core::mem::offset_of!(Registers, rsts), 0x20);
        assert_eq!(core::mem::offset_of!(Registers, wdog), 0x24);
    }
}
