//! A VM's console: its output assembled into whole lines for the physical console, the state
//! of its output ring, and its input queue.

use alloc::collections::VecDeque;

/// Input bytes kept for a VM that has not read them yet; more are dropped.
pub const INPUT_MAX: usize = 4096;

/// The VM's side of the console hypercalls.
#[derive(Debug, Default)]
pub struct ConsoleIo {
    /// The output ring's IPA (PV console VMs).
    pub ring_ipa: Option<u64>,
    /// The hyp's own consumer index of that ring (the copy in the page is only informative).
    pub consumer: u32,
    /// Typed bytes waiting for CONSOLE_READ.
    pub input: VecDeque<u8>,
}

impl ConsoleIo {
    /// Queues typed bytes; true if any were queued (the console event is then raised).
    pub fn push_input(&mut self, bytes: &[u8]) -> bool {
        let room = INPUT_MAX - self.input.len();
        self.input.extend(bytes.iter().take(room));
        room > 0 && !bytes.is_empty()
    }
}

/// Longest line kept before it is cut (and continued on the next line).
pub const LINE_MAX: usize = 200;

/// Collects a VM's console bytes until a newline.
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }
}

impl LineBuffer {
    /// Adds bytes; calls `emit` with each completed (or overlong) line, without its newline.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        // A run of bytes up to the next line end at a time: the console hot path.
        let mut rest = bytes;
        while !rest.is_empty() {
            let end = rest
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .unwrap_or(rest.len());
            let (run, after) = rest.split_at(end);
            for chunk in run.chunks(LINE_MAX) {
                if self.len + chunk.len() > LINE_MAX {
                    emit(&self.buf[..self.len]);
                    self.len = 0;
                }
                self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
                self.len += chunk.len();
            }
            if after.first() == Some(&b'\n') {
                emit(&self.buf[..self.len]);
                self.len = 0;
            }
            rest = after.get(1..).unwrap_or(&[]);
        }
    }

    /// Emits a partial last line (when the VM ends).
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if self.len > 0 {
            emit(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn lines(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut lb = LineBuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            lb.push(c, |l| out.push(l.to_vec()));
        }
        lb.flush(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn joins_chunks_into_lines_and_drops_cr() {
        assert_eq!(
            lines(&[b"hel", b"lo\r\nwor", b"ld\n", b"tail"]),
            [&b"hello"[..], b"world", b"tail"]
        );
    }

    #[test]
    fn cuts_overlong_lines() {
        let long = [b'x'; LINE_MAX + 5];
        let out = lines(&[&long]);
        assert_eq!((out[0].len(), out[1].len()), (LINE_MAX, 5));
    }
}
