//! The physical console: one UART the device tree's /chosen/stdout-path names, shared by the
//! hyp's log and the guests' lines. Whole lines are written under one lock, so lines from
//! different VMs never interleave.

use super::bcm2835_aux::Bcm2835Aux;
use super::pl011::Pl011;
use crate::vm::console::is_shown;
use core::fmt;
use spin::Mutex;

/// The UART kinds the hyp can drive.
pub enum Uart {
    /// Arm PL011 (QEMU `virt`).
    Pl011(Pl011),
    /// The BCM2835 auxiliary mini UART (Raspberry Pi 4, GPIO 14/15).
    Bcm2835Aux(Bcm2835Aux),
}

impl Uart {
    // Inlined into the line loops, the console hot path (a call a character costs ~10%).
    #[inline(always)]
    fn write_byte(&self, byte: u8) {
        match self {
            Uart::Pl011(u) => u.write_byte(byte),
            Uart::Bcm2835Aux(u) => u.write_byte(byte),
        }
    }

    fn flush(&self) {
        match self {
            Uart::Pl011(u) => u.flush(),
            Uart::Bcm2835Aux(u) => u.flush(),
        }
    }

    fn read_byte(&self) -> Option<u8> {
        match self {
            Uart::Pl011(u) => u.read_byte(),
            Uart::Bcm2835Aux(u) => u.read_byte(),
        }
    }
}

/// A byte typed on the console, if one is waiting.
pub fn read_byte() -> Option<u8> {
    CONSOLE.lock().as_ref()?.read_byte()
}

static CONSOLE: Mutex<Option<Uart>> = Mutex::new(None);

/// Installs the console UART.
pub fn install(uart: Uart) {
    *CONSOLE.lock() = Some(uart);
}

struct Writer<'a>(&'a Uart);

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(b);
        }
        Ok(())
    }
}

/// Writes formatted text atomically with respect to other console users.
pub fn write_fmt(args: fmt::Arguments) {
    if let Some(uart) = CONSOLE.lock().as_ref() {
        let _ = fmt::Write::write_fmt(&mut Writer(uart), args);
    }
}

/// Writes one line `prefix: text` for a VM; `text` is the guest's bytes, shown escaped where
/// they are not printable so a guest cannot drive the terminal (`vm::console::line_cost`
/// counts the characters, which bound what one console call writes).
pub fn write_vm_line(prefix: &str, text: &[u8]) {
    if let Some(uart) = CONSOLE.lock().as_ref() {
        let mut w = Writer(uart);
        for &b in prefix.as_bytes().iter().chain(b": ") {
            uart.write_byte(b);
        }
        for &b in text {
            if is_shown(b) {
                uart.write_byte(b);
            } else {
                let _ = fmt::Write::write_fmt(&mut w, format_args!("\\x{b:02x}"));
            }
        }
        uart.write_byte(b'\r');
        uart.write_byte(b'\n');
    }
}

/// Attempts at the lock before the emergency path takes the console anyway.
const EMERGENCY_TRIES: u32 = 1 << 20;

/// Writes one line even if the console lock is held, by a CPU that will never release it (this
/// one, stopped by a panic or a fault inside a write) or by one still writing: after a bounded
/// wait the lock is broken, and the line may interleave with the holder's. Only for a hyp that
/// is stopping.
pub fn emergency_println(args: fmt::Arguments) {
    let mut tries = 0;
    let guard = loop {
        if let Some(guard) = CONSOLE.try_lock() {
            break guard;
        }
        tries += 1;
        if tries == EMERGENCY_TRIES {
            // SAFETY: the hyp is stopping (panic or EL2 fault); the holder, if it still runs,
            // only writes bytes to the UART, so breaking its exclusion interleaves text and
            // nothing else. The UART itself stays valid for the whole run.
            unsafe { CONSOLE.force_unlock() };
        }
        core::hint::spin_loop();
    };
    if let Some(uart) = guard.as_ref() {
        let _ = fmt::Write::write_fmt(&mut Writer(uart), format_args!("{args}\n"));
    }
}

/// Waits until every byte has left the UART (before powering off).
pub fn flush() {
    if let Some(uart) = CONSOLE.lock().as_ref() {
        uart.flush();
    }
}

/// `println!` for the hyp, bypassing the log formatter (for the summary line).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::dev::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
