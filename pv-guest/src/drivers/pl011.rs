//! A PL011 driver for VMs given an emulated UART (`console = "emulated-pl011"`): every register
//! access traps to the hypervisor, which emulates it. The trap-and-emulate baseline the
//! benchmarks compare the paravirtual console against.

/// UARTDR: data.
const DR: u64 = 0x00;
/// UARTFR: flags.
const FR: u64 = 0x18;
/// UARTFR.TXFF: transmit FIFO full.
const FR_TXFF: u32 = 1 << 5;
/// UARTFR.RXFE: receive FIFO empty.
const FR_RXFE: u32 = 1 << 4;

/// The UART at `base` (an IPA; VA = IPA, mapped as Device memory by stage 1).
#[derive(Clone, Copy, Debug)]
pub struct Pl011 {
    pub base: u64,
}

#[cfg(target_os = "none")]
impl Pl011 {
    fn read(self, offset: u64) -> u32 {
        // SAFETY: a 32-bit register of the UART; the access traps and the hypervisor answers.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(self, offset: u64, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// Sends bytes the way a UART driver must: wait for FIFO room, write the data register.
    pub fn send(self, bytes: &[u8]) {
        for &b in bytes {
            while self.read(FR) & FR_TXFF != 0 {
                core::hint::spin_loop();
            }
            self.write(DR, u32::from(b));
        }
    }

    /// A received byte, if one is waiting.
    pub fn receive(self) -> Option<u8> {
        (self.read(FR) & FR_RXFE == 0).then(|| self.read(DR) as u8)
    }
}
