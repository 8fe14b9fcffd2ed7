//! The console front-end: text is gathered into a buffer and handed to the hypervisor a line
//! (or a buffer-full) at a time, never a hypercall per character.

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
        for &b in s.as_bytes() {
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == BUFFER {
                self.flush();
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "none")]
mod target {
    use super::LineWriter;
    use crate::hv;
    use spin::Mutex;

    fn send(bytes: &[u8]) {
        let mut rest = bytes;
        // The hypervisor may take fewer bytes than offered; MMU off, so VA == IPA.
        while !rest.is_empty() {
            match hv().console_write(rest.as_ptr() as u64, rest.len() as u64) {
                Ok(n) if n > 0 => rest = &rest[(n as usize).min(rest.len())..],
                _ => return,
            }
        }
    }

    type Console = LineWriter<fn(&[u8])>;

    pub static CONSOLE: Mutex<Console> = Mutex::new(LineWriter::new(send));
}

#[cfg(target_os = "none")]
pub use target::CONSOLE;

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
