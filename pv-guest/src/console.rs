//! The console front-end: text is gathered a line at a time and handed to the hypervisor
//! through the output ring and its doorbell (or, for an `emulated-pl011` VM, to the UART).

use core::fmt;

/// Bytes gathered before a write.
pub const BUFFER: usize = 256;

/// A line buffer that flushes through `sink` (the console hypercall on the target).
pub struct LineWriter<F: FnMut(&[u8])> {
    buf: [u8; BUFFER],
    len: usize,
    sink: F,
}

impl<F: FnMut(&[u8])> LineWriter<F> {
    pub const fn new(sink: F) -> Self {
        Self {
            buf: [0; BUFFER],
            len: 0,
            sink,
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl<F: FnMut(&[u8])> fmt::Write for LineWriter<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // A run up to the next newline (or a full buffer) at a time.
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            let room = BUFFER - self.len;
            let line = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let n = line.min(room);
            self.buf[self.len..self.len + n].copy_from_slice(&rest[..n]);
            self.len += n;
            if self.buf[self.len - 1] == b'\n' || self.len == BUFFER {
                self.flush();
            }
            rest = &rest[n..];
        }
        Ok(())
    }
}

#[cfg(target_os = "none")]
mod target {
    use super::LineWriter;
    use crate::drivers::console_ring::{self, RingSide, SharedRing};
    use crate::drivers::pl011::Pl011;
    use crate::hv;
    use hypercall_abi::BootInfo;
    use spin::Mutex;

    /// Where console output goes.
    enum Path {
        /// Before `init`: one CONSOLE_WRITE per buffer.
        Hypercall,
        /// The paravirtual ring and its doorbell, with the producer index.
        Ring(u64, u32),
        /// The emulated UART (trap and emulate).
        Uart(Pl011),
    }

    static PATH: Mutex<Path> = Mutex::new(Path::Hypercall);

    /// Chooses the console path the boot info offers.
    pub fn init(info: &BootInfo) {
        *PATH.lock() = if info.flags & BootInfo::FLAG_PL011 != 0 {
            Path::Uart(Pl011 {
                base: info.pl011_ipa,
            })
        } else if info.console_ring_ipa != 0 {
            Path::Ring(info.console_ring_ipa, 0)
        } else {
            Path::Hypercall
        };
    }

    /// Sends bytes through the path in force.
    pub fn send(bytes: &[u8]) {
        match &mut *PATH.lock() {
            Path::Ring(ipa, producer) => {
                console_ring::send(&mut SharedRing(*ipa), producer, bytes, |_| ring_doorbell())
            }
            Path::Uart(uart) => uart.send(bytes),
            Path::Hypercall => {
                let mut rest = bytes;
                // The hypervisor may take fewer bytes than offered; VA == IPA.
                while !rest.is_empty() {
                    match hv().console_write(rest.as_ptr() as u64, rest.len() as u64) {
                        Ok(n) if n > 0 => rest = &rest[(n as usize).min(rest.len())..],
                        _ => return,
                    }
                }
            }
        }
    }

    /// CONSOLE_NOTIFY, the doorbell of every line: the call has no argument, so x0 alone is
    /// set (not the whole 18-register image of `hv()`); its answer is not needed (the ring's
    /// consumer index says what the hypervisor took).
    fn ring_doorbell() {
        // SAFETY: HVC #0 with the SMCCC 1.2 convention: the hypervisor may write x0..x17
        // (declared clobbered) and keeps every other register; it touches no memory of ours
        // but the ring, which `send` published behind a release fence.
        unsafe {
            core::arch::asm!(
                "hvc #0",
                inout("x0") u64::from(hypercall_abi::console::CONSOLE_NOTIFY) => _,
                out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
                out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _,
                out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                out("x16") _, out("x17") _,
                options(nostack),
            )
        }
    }

    /// Takes the output ring back after a program wrote its shared page itself (the fuzzer
    /// does): a doorbell drains whatever the page says, then the producer restarts at the
    /// consumer index the hypervisor wrote back. The bytes the doorbell took.
    pub fn resync_ring() -> u64 {
        let Path::Ring(ipa, producer) = &mut *PATH.lock() else {
            return 0;
        };
        let mut ring = SharedRing(*ipa);
        ring.publish(ring.consumer());
        let taken = hv().console_notify().unwrap_or(0);
        *producer = ring.consumer();
        ring.publish(*producer);
        taken
    }

    /// Typed bytes read ahead of the caller: (buffer, next, end).
    static INPUT: Mutex<([u8; 64], usize, usize)> = Mutex::new(([0; 64], 0, 0));

    /// Refills the read-ahead buffer with CONSOLE_READ when it is empty; true if it holds bytes.
    fn fill(input: &mut ([u8; 64], usize, usize)) -> bool {
        let (buf, next, end) = input;
        if next == end {
            let n = hv()
                .console_read(buf.as_mut_ptr() as u64, buf.len() as u64)
                .unwrap_or(0);
            (*next, *end) = (0, (n as usize).min(buf.len()));
        }
        next < end
    }

    /// A typed byte, if one is waiting (CONSOLE_READ, a buffer at a time, or the UART).
    pub fn receive() -> Option<u8> {
        if let Path::Uart(uart) = &*PATH.lock() {
            return uart.receive();
        }
        let mut input = INPUT.lock();
        fill(&mut input).then(|| {
            input.1 += 1;
            input.0[input.1 - 1]
        })
    }

    /// Whether a typed byte is waiting.
    pub fn has_input() -> bool {
        fill(&mut INPUT.lock())
    }

    type Console = LineWriter<fn(&[u8])>;

    pub static CONSOLE: Mutex<Console> = Mutex::new(LineWriter::new(send));
}

#[cfg(target_os = "none")]
pub use target::CONSOLE;
#[cfg(target_os = "none")]
pub use target::{has_input, init, receive, resync_ring, send};

/// Prints to the VM's console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::console::CONSOLE.lock(), $($arg)*);
    }};
}

/// Prints a line to the VM's console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print!("{}\n", format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;
    use std::vec::Vec;

    #[test]
    fn flushes_whole_lines_and_full_buffers() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        {
            let mut w = LineWriter::new(|b: &[u8]| out.push(b.to_vec()));
            write!(w, "one\ntw").unwrap();
            writeln!(w, "o").unwrap();
            for _ in 0..BUFFER + 3 {
                w.write_char('x').unwrap();
            }
            w.flush();
        }
        assert_eq!(out[0], b"one\n");
        assert_eq!(out[1], b"two\n");
        assert_eq!((out[2].len(), out[3].len()), (BUFFER, 3));
    }
}
