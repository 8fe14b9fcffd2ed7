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
    /// The CONSOLE_NOTIFY being continued, if its last chunk left bytes.
    pub notify: Option<NotifyCall>,
}

/// A CONSOLE_NOTIFY that has taken part of what was produced when it was rung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotifyCall {
    /// Bytes it still takes.
    pub left: u32,
    /// Bytes it has taken.
    pub taken: u32,
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

/// The most UART characters one console call makes the hyp write (escapes, prefixes and line
/// ends included): at 115200 baud, the mini UART of a Pi, about 90 ms. One line costs at most
/// [`line_cost`] of `LINE_MAX` bytes, under this for every VM name the manifest allows.
pub const CALL_UART_MAX: usize = 1024;

/// Whether a guest's byte is shown as it is (else as `\xNN`: a guest cannot drive the
/// terminal).
#[inline]
pub fn is_shown(byte: u8) -> bool {
    matches!(byte, b' '..=b'~' | b'\t')
}

/// UART characters of a VM's line `prefix: text\r\n`, `text` shown escaped.
pub fn line_cost(prefix_len: usize, text: &[u8]) -> usize {
    let escaped = text.iter().filter(|&&b| !is_shown(b)).count();
    prefix_len + 2 + text.len() + 3 * escaped + 2
}

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

/// The index of the first line end (`\n` or `\r`) in `bytes` from `from`, or its length: the
/// console hot path, so 8 bytes a step while none of them is below 14 (a line end is 10 or 13).
fn line_end(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    let mut i = from;
    while let Some(&word) = bytes.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let w = u64::from_le_bytes(word);
        // The high bit of a byte below 14 (exact when none is: then no borrow crosses bytes).
        if w.wrapping_sub(ONES * 14) & !w & (ONES << 7) != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'\n' || b == b'\r' {
            break;
        }
        i += 1;
    }
    i
}

/// What one call may still write to the UART.
struct Budget {
    left: usize,
    emitted: bool,
}

impl Budget {
    /// Takes the cost of emitting `line`, if it fits (the first line of a call always does).
    #[inline]
    fn spend(&mut self, prefix_len: usize, line: &[u8]) -> bool {
        // A line's worst case is 4 characters a byte: counted exactly only when that could
        // exceed the budget, so a plain line pays nothing for the check.
        let worst = prefix_len + 4 + 4 * line.len();
        let cost = if worst <= self.left {
            worst
        } else {
            line_cost(prefix_len, line)
        };
        if self.emitted && cost > self.left {
            return false;
        }
        self.left = self.left.saturating_sub(cost);
        self.emitted = true;
        true
    }
}

impl LineBuffer {
    /// Adds bytes of one call, calling `emit` with each completed (or overlong) line, without
    /// its newline, for a VM whose line prefix is `prefix_len` long. Stops before a line that
    /// would make the call write more than [`CALL_UART_MAX`] UART characters; returns how many
    /// bytes it took (at least one of a non-empty `bytes`).
    #[inline]
    pub fn push(&mut self, bytes: &[u8], prefix_len: usize, emit: impl FnMut(&[u8])) -> usize {
        // One byte that only joins the line (each write to an emulated UART): nothing else to do.
        if let [b] = bytes
            && *b != b'\n'
            && *b != b'\r'
            && self.len < LINE_MAX
        {
            self.buf[self.len] = *b;
            self.len += 1;
            return 1;
        }
        self.push_lines(bytes, prefix_len, emit)
    }

    fn push_lines(
        &mut self,
        bytes: &[u8],
        prefix_len: usize,
        mut emit: impl FnMut(&[u8]),
    ) -> usize {
        let mut budget = Budget {
            left: CALL_UART_MAX,
            emitted: false,
        };
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    if !budget.spend(prefix_len, &self.buf[..self.len]) {
                        return i;
                    }
                    emit(&self.buf[..self.len]);
                    self.len = 0;
                    i += 1;
                }
                b'\r' => i += 1,
                _ => {
                    // A run of bytes up to the next line end at a time.
                    let end = line_end(bytes, i + 1);
                    while i < end {
                        if self.len == LINE_MAX {
                            if !budget.spend(prefix_len, &self.buf) {
                                return i;
                            }
                            emit(&self.buf);
                            self.len = 0;
                        }
                        let n = (end - i).min(LINE_MAX - self.len);
                        self.buf[self.len..self.len + n].copy_from_slice(&bytes[i..i + n]);
                        self.len += n;
                        i += n;
                    }
                }
            }
        }
        bytes.len()
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
            assert_eq!(lb.push(c, 5, |l| out.push(l.to_vec())), c.len());
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
        let exact = lines(&[&[b'y'; LINE_MAX], b"\n"]);
        assert_eq!(exact.len(), 1, "a full line then its newline is one line");
        // Byte by byte, as an emulated UART gives them.
        let bytes: Vec<u8> = [&[b'z'; LINE_MAX + 5][..], b"\r\nend\n"].concat();
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        let out = lines(&one_by_one);
        assert_eq!(out.len(), 3);
        assert_eq!(
            (out[0].len(), out[1].len(), &out[2][..]),
            (LINE_MAX, 5, &b"end"[..])
        );
    }

    /// Feeds `bytes` call by call as a guest that retries the rest would; each call's UART
    /// characters, and every line shown.
    fn calls(bytes: &[u8], prefix_len: usize) -> (Vec<usize>, Vec<Vec<u8>>) {
        let mut lb = LineBuffer::default();
        let (mut costs, mut shown) = (Vec::new(), Vec::new());
        let mut rest = bytes;
        while !rest.is_empty() {
            let mut cost = 0;
            let n = lb.push(rest, prefix_len, |l| {
                cost += line_cost(prefix_len, l);
                shown.push(l.to_vec());
            });
            assert!(n > 0, "every call makes progress");
            costs.push(cost);
            rest = &rest[n..];
        }
        lb.flush(|l| shown.push(l.to_vec()));
        (costs, shown)
    }

    #[test]
    fn one_call_writes_a_bounded_number_of_uart_characters() {
        // 4 KiB of bytes that are each shown as 4 characters: 16 KiB of UART time in one call
        // before; now at most CALL_UART_MAX a call, and nothing lost.
        let hostile: Vec<u8> = (0..4096u32).map(|i| (i % 32) as u8 & !0x08).collect();
        let (costs, shown) = calls(&hostile, 31);
        assert!(costs.iter().all(|&c| c <= CALL_UART_MAX), "{costs:?}");
        assert!(costs.len() > 4096 * 4 / CALL_UART_MAX);
        let mut all: Vec<u8> = shown.concat();
        all.retain(|&b| b != b'\n' && b != b'\r');
        let mut want = hostile.clone();
        want.retain(|&b| b != b'\n' && b != b'\r');
        assert_eq!(all, want);
        // Empty lines cost their prefix each: bounded too.
        let (costs, shown) = calls(&[b'\n'; 2048], 31);
        assert!(costs.iter().all(|&c| c <= CALL_UART_MAX));
        assert_eq!(shown.len(), 2048);
        // A plain 64-byte line is one call.
        let (costs, _) = calls(&[b"x".repeat(63), b"\n".to_vec()].concat(), 5);
        assert_eq!(costs, [5 + 2 + 63 + 2]);
    }

    #[test]
    fn line_ends_are_found_wherever_they_are() {
        for len in 0..40 {
            for at in 0..=len {
                for end in [b'\n', b'\r'] {
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| b"\tab\x1b~\x0c\x0e \xff\x8d"[i % 10])
                        .collect();
                    if at < len {
                        bytes[at] = end;
                    }
                    for from in 0..=at {
                        assert_eq!(line_end(&bytes, from), at, "{bytes:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_rule_and_the_cost_agree() {
        assert!(is_shown(b'a') && is_shown(b'\t') && is_shown(b'~'));
        assert!(!is_shown(0x1b) && !is_shown(0x7f) && !is_shown(0x80));
        assert_eq!(line_cost(3, b"a\x1bb"), 3 + 2 + 3 + 3 + 2);
    }
}
