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
    /// Its vCPUs descheduled until the console queue has room for their line (a bit each).
    pub blocked: u8,
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

/// A guest's backspace: it erases the last byte of its line (the shell's echo of an erase).
pub const BACKSPACE: u8 = 0x08;

#[cfg(target_os = "none")]
use crate::arch::aarch64::cpu::load_le_u64;

/// The 8 bytes as a little-endian word (the target's does it in one load).
#[cfg(not(target_os = "none"))]
fn load_le_u64(bytes: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*bytes)
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

/// The index of the first line end (`\n` or `\r`) or backspace in `bytes` from `from`, or its
/// length: the console hot path, so 8 bytes a step, the last step a word that overlaps the one
/// before. A word's bytes below 14 (a line end is 10 or 13, a backspace 8) are all flagged by
/// the borrow trick, with perhaps a few more above them (a borrow): each flagged byte is looked
/// at, lowest first.
fn line_end(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    let below_14 = |w: u64| w.wrapping_sub(ONES * 14) & !w & (ONES << 7);
    // The first line end among the flagged bytes of the word at `at`.
    let first_flagged = |at: usize, mut flags: u64| {
        while flags != 0 {
            let i = at + (flags.trailing_zeros() / 8) as usize;
            if matches!(bytes.get(i), Some(&(b'\n' | b'\r' | BACKSPACE))) {
                return Some(i);
            }
            flags &= flags - 1;
        }
        None
    };
    let mut i = from;
    let Some(rest) = bytes.get(from..) else {
        return bytes.len();
    };
    for word in rest.chunks_exact(8) {
        let word = word.first_chunk::<8>().unwrap_or(&[0; 8]);
        if let Some(end) = first_flagged(i, below_14(load_le_u64(word))) {
            return end;
        }
        i += 8;
    }
    if i >= bytes.len() {
        return bytes.len();
    }
    match bytes.last_chunk::<8>() {
        Some(word) => {
            // The last 8 bytes, those before `i` (looked at already) left out.
            let at = bytes.len() - 8;
            let seen = 8 * (i - at) as u32;
            let flags = below_14(load_le_u64(word)) & (u64::MAX << seen);
            first_flagged(at, flags).unwrap_or(bytes.len())
        }
        None => bytes[i..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r' || b == BACKSPACE)
            .map_or(bytes.len(), |n| i + n),
    }
}

impl LineBuffer {
    /// Adds bytes of one call, handing each completed (or overlong) line, without its newline,
    /// to `queue`, which says whether it took it. Stops before a line `queue` refuses: returns
    /// how many bytes it took (0 only when the first byte completes a line that is refused).
    #[inline]
    pub fn push(&mut self, bytes: &[u8], queue: impl FnMut(&[u8]) -> bool) -> usize {
        // One byte that only joins the line (each write to an emulated UART): nothing else to do.
        if let [b] = bytes
            && *b != b'\n'
            && *b != b'\r'
            && *b != BACKSPACE
            && self.len < LINE_MAX
        {
            self.buf[self.len] = *b;
            self.len += 1;
            return 1;
        }
        self.push_lines(bytes, queue)
    }

    fn push_lines(&mut self, bytes: &[u8], mut queue: impl FnMut(&[u8]) -> bool) -> usize {
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    if !queue(&self.buf[..self.len]) {
                        return i;
                    }
                    self.len = 0;
                    i += 1;
                }
                b'\r' => i += 1,
                BACKSPACE => {
                    self.len = self.len.saturating_sub(1);
                    i += 1;
                }
                _ => {
                    // A run of bytes up to the next line end at a time.
                    let end = line_end(bytes, i + 1);
                    // A whole line in the call's bytes (the usual case): queued from there.
                    if self.len == 0 && end - i <= LINE_MAX && bytes.get(end) == Some(&b'\n') {
                        if !queue(&bytes[i..end]) {
                            return i;
                        }
                        i = end + 1;
                        continue;
                    }
                    while i < end {
                        if self.len == LINE_MAX {
                            if !queue(&self.buf) {
                                return i;
                            }
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

    /// The line so far (the focused VM's partial line, `echo.rs`).
    pub fn partial(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Hands a partial last line to `queue` (when the VM ends); it must take it.
    pub fn flush(&mut self, mut queue: impl FnMut(&[u8])) {
        if self.len > 0 {
            queue(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

/// The hyp's queue of whole console lines waiting for the UART, bytes of records
/// `[writer, prefix length, text length, prefix, text]` in a ring. Holds 100 lines of 64 bytes
/// from a VM with the longest name. Every VM (a writer, by manifest index) is charged the
/// records it has queued, and may hold at most a fair share: the queue divided among the
/// writers that have lines queued or wait for room (never less than one whole record), so one
/// VM cannot fill it for the others. The hyp's own lines go straight to the UART when nothing
/// is queued, else behind the guests' lines, as records of raw text charged to nobody
/// ([`push_hyp`](Self::push_hyp)), so that a log line never waits for the whole queue.
pub struct LineQueue {
    ring: [u8; QUEUE_BYTES],
    head: usize,
    len: usize,
    /// Bytes queued by each writer.
    used: [u16; MAX_WRITERS],
    /// Writers with bytes queued.
    queued: u64,
    /// Writers refused since they last queued a line (for the shares).
    waiting: u64,
    /// Writers refused since a pop last handed them out (for the wake-ups). Apart from
    /// `waiting`: a VM is one writer for several vCPUs, and one vCPU's line queued must not
    /// cancel the wake-up another vCPU of the VM, refused, waits for.
    refused: u64,
    /// The hyp's own records queued.
    hyp_records: usize,
}

/// Bytes of the queue: 100 lines of 64 bytes, with the longest VM name each (9,800 bytes).
pub const QUEUE_BYTES: usize = 12 * 1024;
/// The writers the queue keeps apart (the manifest's VM limit).
pub const MAX_WRITERS: usize = manifest::MAX_VMS;
/// A record's header: writer, prefix length, text length.
const HEADER: usize = 3;
/// The longest line prefix kept (a VM name).
pub const PREFIX_MAX: usize = manifest::MAX_NAME_LEN;
/// The largest record.
pub const RECORD_MAX: usize = HEADER + PREFIX_MAX + LINE_MAX;
/// The writer byte of the hyp's own records (no VM has it: MAX_WRITERS is below).
const HYP: u8 = u8::MAX;
/// The most text of the hyp's one record: a longer text takes several, queued together.
const HYP_PIECE: usize = RECORD_MAX - HEADER;
const _: () = assert!(MAX_WRITERS < HYP as usize && HYP_PIECE <= u8::MAX as usize);

/// A line taken out of the queue, in the caller's record buffer.
pub struct Popped<'a> {
    pub writer: usize,
    pub prefix: &'a [u8],
    pub text: &'a [u8],
    /// Whether it is the hyp's own text (raw, newlines in it, no prefix), not a VM's line.
    pub hyp: bool,
    /// The writers refused room since the last pop, a bit each: this one made some, they may
    /// try again (each handed out once; one refused again is noted again).
    pub room_for: u64,
}

impl Default for LineQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl LineQueue {
    pub const fn new() -> Self {
        Self {
            ring: [0; QUEUE_BYTES],
            head: 0,
            len: 0,
            used: [0; MAX_WRITERS],
            queued: 0,
            waiting: 0,
            refused: 0,
            hyp_records: 0,
        }
    }

    /// Bytes `writer` has queued.
    #[cfg(test)]
    pub fn used_by(&self, writer: usize) -> usize {
        usize::from(self.used[writer % MAX_WRITERS])
    }

    /// The most `writer` may have queued: an equal part among the writers that have lines
    /// queued or wait for room, itself included.
    pub fn share(&self, writer: usize) -> usize {
        let bit = 1u64 << (writer % MAX_WRITERS);
        let writers = (self.queued | self.waiting | bit).count_ones() as usize;
        (QUEUE_BYTES / writers).max(RECORD_MAX)
    }

    /// Queues `writer`'s line `prefix: text` (each cut to its limit); false, the writer noted
    /// as waiting, if the queue or the writer's share has no room for it. A writer with
    /// nothing queued is refused only by a queue without room, so it gets in once the queue
    /// has drained. A refused writer is handed out by the next pop ([`Popped::room_for`]).
    pub fn push(&mut self, writer: usize, prefix: &[u8], text: &[u8]) -> bool {
        self.push_within(writer, prefix, text, true)
    }

    /// [`push`](Self::push) for a writer that waits for the UART (it drains the queue itself
    /// until its line fits): only the queue's room counts, not the writer's share, so that
    /// the room one line needs is all it ever drains.
    pub fn push_waiting(&mut self, writer: usize, prefix: &[u8], text: &[u8]) -> bool {
        self.push_within(writer, prefix, text, false)
    }

    #[inline]
    fn push_within(&mut self, writer: usize, prefix: &[u8], text: &[u8], fair: bool) -> bool {
        let writer = writer % MAX_WRITERS;
        let bit = 1u64 << writer;
        let prefix = &prefix[..prefix.len().min(PREFIX_MAX)];
        let text = &text[..text.len().min(LINE_MAX)];
        let size = HEADER + prefix.len() + text.len();
        let used = usize::from(self.used[writer]);
        if size > QUEUE_BYTES - self.len || (fair && used > 0 && used + size > self.share(writer)) {
            self.waiting |= bit;
            self.refused |= bit;
            return false;
        }
        let header = [writer as u8, prefix.len() as u8, text.len() as u8];
        let tail = (self.head + self.len) % QUEUE_BYTES;
        if let Some(room) = self.ring.get_mut(tail..tail + size) {
            // In one run (the usual case): no wrap to handle.
            let (head, rest) = room.split_at_mut(HEADER);
            let (name, line) = rest.split_at_mut(prefix.len());
            head.copy_from_slice(&header);
            name.copy_from_slice(prefix);
            line.copy_from_slice(text);
            self.len += size;
        } else {
            self.put(&header);
            self.put(prefix);
            self.put(text);
        }
        self.used[writer] += size as u16;
        self.queued |= bit;
        self.waiting &= !bit;
        true
    }

    /// Queues the hyp's own `text` (formatted log lines, their newlines in them) after every
    /// line queued before, whole: in one record or several back to back; false, nothing
    /// queued, if the queue has no room for all of it.
    pub fn push_hyp(&mut self, text: &[u8]) -> bool {
        let pieces = text.len().div_ceil(HYP_PIECE);
        if text.len() + pieces * HEADER > QUEUE_BYTES - self.len {
            return false;
        }
        for piece in text.chunks(HYP_PIECE) {
            self.put(&[HYP, 0, piece.len() as u8]);
            self.put(piece);
        }
        self.hyp_records += pieces;
        true
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether some of the hyp's own text is queued.
    pub fn hyp_queued(&self) -> bool {
        self.hyp_records > 0
    }

    /// Forgets that `writer` waits for room (it has ended).
    pub fn forget(&mut self, writer: usize) {
        let bit = 1u64 << (writer % MAX_WRITERS);
        self.waiting &= !bit;
        self.refused &= !bit;
    }

    fn put(&mut self, bytes: &[u8]) {
        let tail = (self.head + self.len) % QUEUE_BYTES;
        let first = bytes.len().min(QUEUE_BYTES - tail);
        self.ring[tail..tail + first].copy_from_slice(&bytes[..first]);
        self.ring[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.len += bytes.len();
    }

    fn take(&mut self, out: &mut [u8]) {
        let first = out.len().min(QUEUE_BYTES - self.head);
        let n = out.len();
        out[..first].copy_from_slice(&self.ring[self.head..self.head + first]);
        out[first..].copy_from_slice(&self.ring[..n - first]);
        self.head = (self.head + n) % QUEUE_BYTES;
        self.len -= n;
    }

    /// Takes the oldest line out, into `record`.
    pub fn pop<'a>(&mut self, record: &'a mut [u8; RECORD_MAX]) -> Option<Popped<'a>> {
        if self.len == 0 {
            return None;
        }
        let mut header = [0u8; HEADER];
        self.take(&mut header);
        let [writer, prefix_len, text_len] = header.map(usize::from);
        let size = prefix_len + text_len;
        self.take(&mut record[..size]);
        let hyp = writer == usize::from(HYP);
        if hyp {
            self.hyp_records -= 1;
        } else {
            self.used[writer] -= (HEADER + size) as u16;
            if self.used[writer] == 0 {
                self.queued &= !(1u64 << writer);
            }
        }
        let (prefix, rest) = record.split_at(prefix_len);
        Some(Popped {
            writer,
            prefix,
            text: &rest[..text_len],
            hyp,
            room_for: core::mem::take(&mut self.refused),
        })
    }
}

#[cfg(target_os = "none")]
pub use target::{block_writer, flush, output, output_waiting, reading, wake_writers};

/// The VM side of the queue: lines in, writers descheduled and woken.
#[cfg(target_os = "none")]
mod target {
    use super::LineBuffer;
    use crate::dev::console;
    use crate::vm::Vm;
    use crate::vm::build::RunState;

    /// Queues `bytes` as VM `writer`'s lines, prefixed with its `name`; how many it took,
    /// stopping before a line the queue has no room for now (0: the caller is descheduled
    /// until a drain makes room, [`block_writer`]). The PV console's writers.
    #[inline]
    pub fn output(lines: &mut LineBuffer, writer: usize, name: &str, bytes: &[u8]) -> usize {
        let mut completed = false;
        let taken = lines.push(bytes, |line| {
            let queued = console::queue_line(writer, name, line, false);
            completed |= queued;
            queued
        });
        // The VM with the input focus shows its partial line once it reads input (`echo.rs`).
        if console::is_focused(writer) {
            console::show_partial(writer, lines.partial(), completed, false);
        }
        taken
    }

    /// VM `writer` looks for typed input (CONSOLE_READ): if it has the focus, its partial line
    /// (its prompt, the echo of what is typed) shows from now on. A VM that only writes shows
    /// whole lines, as the others; so does an emulated-PL011 VM (its reads of the UART's flags
    /// do not say whether it waits for input or for room to send).
    pub fn reading(lines: &LineBuffer, writer: usize) {
        if console::is_focused(writer) {
            console::show_partial(writer, lines.partial(), false, true);
        }
    }

    /// [`output`] for a writer that waits for the UART, as an emulated UART's does: a line
    /// that does not fit waits while the queue drains (about one line's room), so it takes
    /// every byte.
    pub fn output_waiting(lines: &mut LineBuffer, writer: usize, name: &str, bytes: &[u8]) {
        lines.push(bytes, |line| {
            crate::bench::at_console_line(line);
            console::queue_line(writer, name, line, true)
        });
    }

    /// Queues a partial last line when the VM ends (waiting for room if it must), and forgets
    /// the writer.
    pub fn flush(lines: &mut LineBuffer, writer: usize, name: &str) {
        let mut completed = false;
        lines.flush(|line| {
            completed = console::queue_line(writer, name, line, true);
        });
        if console::is_focused(writer) {
            console::show_partial(writer, &[], completed, false);
        }
        console::forget_writer(writer);
    }

    /// Deschedules vCPU `v`, whose console call found no room: it waits, and issues its call
    /// again (the `HVC` re-executed) once a drain has made room ([`wake_writers`]). Under the
    /// VM's lock, as the refusal was: the waker takes that lock, so it sees this.
    pub fn block_writer(vm: &mut Vm, v: usize) {
        let vcpu = vm.vcpu_mut(v);
        vcpu.regs.repeat_instruction();
        vcpu.run = RunState::Waiting;
        vm.console_io.blocked |= 1 << v;
    }

    /// After a drain made room: the vCPUs of `vm` (locked) the queue turned away run again.
    pub fn wake_writers(vm: &mut Vm) {
        let blocked = core::mem::take(&mut vm.console_io.blocked);
        for (i, vcpu) in vm.vcpus.iter_mut().enumerate() {
            if blocked & (1 << i) != 0 && vcpu.run == RunState::Waiting {
                vcpu.run = RunState::Runnable;
                crate::vm::sched::make_runnable(vm.index, crate::vm::ids::VcpuIndex::new(i));
            }
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
            assert_eq!(
                lb.push(c, |l| {
                    out.push(l.to_vec());
                    true
                }),
                c.len()
            );
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

    #[test]
    fn a_refused_line_stops_the_push_before_its_newline_and_is_kept() {
        let mut lb = LineBuffer::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut room = 1;
        let mut push = |lb: &mut LineBuffer, bytes: &[u8], room: &mut usize| {
            lb.push(bytes, |l| {
                if *room == 0 {
                    return false;
                }
                *room -= 1;
                out.push(l.to_vec());
                true
            })
        };
        assert_eq!(push(&mut lb, b"one\ntwo\nthree", &mut room), 4);
        assert_eq!(
            push(&mut lb, b"two\nthree", &mut room),
            0,
            "its line waits for room"
        );
        // A byte that only joins a line needs no room, even one by one.
        let mut partial = LineBuffer::default();
        assert_eq!(partial.push(b"x", |_| false), 1);
        assert_eq!(
            partial.push(b"\n", |_| false),
            0,
            "a buffered line waits too"
        );
        assert_eq!(partial.push(&[b'y'; LINE_MAX - 1], |_| false), LINE_MAX - 1);
        assert_eq!(
            partial.push(b"z", |_| false),
            0,
            "a full line is cut only with room"
        );
        room = 5;
        assert_eq!(push(&mut lb, b"two\nthree", &mut room), 9);
        assert_eq!(push(&mut lb, b"\n", &mut room), 1);
        assert_eq!(push(&mut lb, b"four\n", &mut room), 5);
        let mut rest = Vec::new();
        lb.flush(|l| rest.push(l.to_vec()));
        assert!(rest.is_empty());
        assert_eq!(out, [&b"one"[..], b"two", b"three", b"four"]);
    }

    fn drain(q: &mut LineQueue) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut record = [0u8; RECORD_MAX];
        let mut out = Vec::new();
        while let Some(p) = q.pop(&mut record) {
            out.push((p.prefix.to_vec(), p.text.to_vec()));
        }
        out
    }

    #[test]
    fn the_queue_holds_100_lines_of_64_bytes_from_the_longest_name() {
        let mut q = LineQueue::new();
        let name = [b'n'; PREFIX_MAX];
        let line = |i: usize| std::format!("{i:03}").into_bytes().repeat(22)[..64].to_vec();
        for i in 0..100 {
            assert!(q.push(3, &name, &line(i)), "line {i}");
        }
        let out = drain(&mut q);
        assert_eq!(out.len(), 100);
        for (i, (prefix, text)) in out.into_iter().enumerate() {
            assert_eq!((&prefix[..], text), (&name[..], line(i)));
        }
        assert!(q.pop(&mut [0; RECORD_MAX]).is_none() && q.used_by(3) == 0);
    }

    #[test]
    fn lines_come_out_whole_and_in_order_across_the_wrap_and_none_is_lost() {
        let mut q = LineQueue::new();
        let mut want = Vec::new();
        let mut got = Vec::new();
        // Lines of every length (and cut ones), pushed while draining a few at a time, so the
        // ring wraps many times mid-record.
        let mut record = [0u8; RECORD_MAX];
        for i in 0..5000usize {
            let text: Vec<u8> = (0..(i * 7) % (LINE_MAX + 30))
                .map(|j| (i + j) as u8)
                .collect();
            let writer = i % 5;
            let prefix = &b"abcde"[..1 + writer];
            while !q.push(writer, prefix, &text) {
                let p = q
                    .pop(&mut record)
                    .expect("a refused push has a queue to drain");
                got.push((p.prefix.to_vec(), p.text.to_vec()));
            }
            want.push((prefix.to_vec(), text[..text.len().min(LINE_MAX)].to_vec()));
        }
        got.extend(drain(&mut q));
        assert_eq!(got, want);
        assert!((0..5).all(|w| q.used_by(w) == 0));
    }

    #[test]
    fn a_writer_gets_a_fair_share_once_another_waits() {
        let mut q = LineQueue::new();
        let text = [b'x'; 64];
        let record = HEADER + 5 + 64;
        // Alone, one VM may fill the queue.
        let mut alone = 0;
        while q.push(0, b"hog01", &text) {
            alone += 1;
        }
        assert_eq!(alone, QUEUE_BYTES / record);
        // The other is refused (no room), and waits: the hog's share halves.
        assert!(!q.push(1, b"quiet", &text));
        assert_eq!(q.share(0), QUEUE_BYTES / 2);
        let mut record_buf = [0u8; RECORD_MAX];
        for _ in 0..10 {
            q.pop(&mut record_buf).unwrap();
        }
        assert!(
            !q.push(0, b"hog01", &text),
            "over its share while the other waits"
        );
        assert!(q.push(1, b"quiet", &text), "the waiting VM gets the room");
        // The hog, drained below its share, queues again; never more than its share.
        for _ in 0..alone / 2 {
            q.pop(&mut record_buf).unwrap();
        }
        while q.push(0, b"hog01", &text) {}
        assert!(
            q.used_by(0) <= q.share(0),
            "{} > {}",
            q.used_by(0),
            q.share(0)
        );
        let mut quiet = 1;
        while q.push(1, b"quiet", &text) {
            quiet += 1;
        }
        assert!(quiet * record > QUEUE_BYTES / 2 - record, "{quiet} lines");
        // VMs that ended stop counting.
        assert!(q.share(2) < QUEUE_BYTES / 2);
        q.forget(0);
        q.forget(1);
        let _ = drain(&mut q);
        assert_eq!(q.share(2), QUEUE_BYTES);
    }

    #[test]
    fn many_writers_each_get_room_for_one_whole_line() {
        let mut q = LineQueue::new();
        let long = [b'z'; LINE_MAX];
        // Sixty VMs have a short line queued: an equal part would not hold a whole line more,
        // a share does (while the queue has room: together they may ask more than it holds).
        for w in 0..60 {
            assert!(q.push(w, b"v", b"."));
        }
        for w in 0..50 {
            assert!(q.share(w) >= RECORD_MAX);
            assert!(q.push(w, b"v", &long), "writer {w}");
        }
        assert!(!q.push(7, b"v", &long), "its share is used");
        // Whoever has nothing queued gets in as soon as the queue has room.
        let mut record = [0u8; RECORD_MAX];
        let mut q = LineQueue::new();
        while q.push(0, b"a", &long) {}
        assert!(!q.push(63, &[b'n'; PREFIX_MAX], &long));
        q.pop(&mut record).unwrap();
        q.pop(&mut record).unwrap();
        assert!(q.push(63, &[b'n'; PREFIX_MAX], &long));
        assert_eq!(q.used_by(63), RECORD_MAX);
    }

    #[test]
    fn one_vcpus_line_queued_does_not_cancel_the_wake_up_another_waits_for() {
        let mut q = LineQueue::new();
        // VM 0 fills the queue but for 48 bytes.
        for _ in 0..QUEUE_BYTES / (HEADER + 1 + LINE_MAX) {
            assert!(q.push(0, b"a", &[b'x'; LINE_MAX]));
        }
        // Its vCPU 1's long line is refused (and descheduled); its vCPU 2's short one fits.
        assert!(!q.push(0, b"a", &[b'y'; LINE_MAX]));
        assert!(q.push(0, b"a", b"short"));
        let mut record = [0u8; RECORD_MAX];
        let first = q.pop(&mut record).unwrap().room_for;
        assert_eq!(first, 1, "the pop makes room for VM 0's refused vCPU");
        assert_eq!(q.pop(&mut record).unwrap().room_for, 0, "handed out once");
        // Refused again, noted again.
        while q.push(0, b"a", &[b'z'; LINE_MAX]) {}
        assert_eq!(q.pop(&mut record).unwrap().room_for, 1);
        // An ended writer is not handed out.
        while q.push(5, b"b", &[b'z'; LINE_MAX]) {}
        q.forget(5);
        assert_eq!(q.pop(&mut record).unwrap().room_for, 0);
    }

    /// The scheduler's side as a model: vCPUs of several VMs write lines; one refused room is
    /// descheduled until a pop hands out its VM; drains pop records in between. However the
    /// steps interleave, no vCPU is left descheduled once the queue is empty (a lost wake-up),
    /// and every line comes out once, in each vCPU's order.
    #[test]
    fn no_refused_writer_is_left_waiting_whatever_the_interleaving() {
        const VMS: usize = 3;
        const VCPUS: usize = 3;
        const LINES: usize = 300;
        for seed in 0..40u64 {
            let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut next = |n: u64| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 33) % n
            };
            let mut q = LineQueue::new();
            let mut record = [0u8; RECORD_MAX];
            let mut sent = [[0usize; VCPUS]; VMS];
            let mut blocked = [0u8; VMS];
            let mut got = [[0usize; VCPUS]; VMS];
            loop {
                let left = (0..VMS * VCPUS)
                    .filter(|&i| {
                        sent[i / VCPUS][i % VCPUS] < LINES
                            && blocked[i / VCPUS] & (1 << (i % VCPUS)) == 0
                    })
                    .count();
                if left > 0 && next(3) != 0 {
                    let i = next((VMS * VCPUS) as u64) as usize;
                    let (vm, v) = (i / VCPUS, i % VCPUS);
                    if sent[vm][v] == LINES || blocked[vm] & (1 << v) != 0 {
                        continue;
                    }
                    // Lines of many lengths, so a short one fits where a long one did not.
                    let mut text = std::vec![b'.'; (next(4) * 65) as usize];
                    let at = sent[vm][v];
                    text.extend_from_slice(&[vm as u8, v as u8, at as u8, (at >> 8) as u8]);
                    if q.push(vm, b"vm", &text) {
                        sent[vm][v] += 1;
                    } else {
                        blocked[vm] |= 1 << v;
                    }
                } else if let Some(line) = q.pop(&mut record) {
                    let [vm, v, lo, hi] = line.text[line.text.len() - 4..] else {
                        unreachable!()
                    };
                    let (vm, v) = (usize::from(vm), usize::from(v));
                    assert_eq!(got[vm][v], usize::from(lo) | usize::from(hi) << 8);
                    got[vm][v] += 1;
                    // The woken vCPUs issue their calls again.
                    for (w, b) in blocked.iter_mut().enumerate() {
                        if line.room_for & (1 << w) != 0 {
                            *b = 0;
                        }
                    }
                } else if left == 0 {
                    break;
                }
            }
            assert_eq!(
                blocked, [0; VMS],
                "seed {seed}: descheduled with nobody to wake them"
            );
            assert_eq!(got, [[LINES; VCPUS]; VMS], "seed {seed}");
        }
    }

    #[test]
    fn the_hyps_text_comes_out_whole_in_order_and_charged_to_nobody() {
        let mut q = LineQueue::new();
        assert!(q.push(1, b"vm", b"before"));
        let long: Vec<u8> = (0..HYP_PIECE * 2 + 7)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        assert!(q.push_hyp(&long));
        assert!(q.push(1, b"vm", b"after"));
        assert!(q.hyp_queued());
        let mut record = [0u8; RECORD_MAX];
        let mut hyp_text = Vec::new();
        let mut lines = Vec::new();
        while let Some(p) = q.pop(&mut record) {
            if p.hyp {
                assert!(
                    lines.len() == 1,
                    "after the line before it, before the one after"
                );
                hyp_text.extend_from_slice(p.text);
            } else {
                lines.push(p.text.to_vec());
            }
        }
        assert_eq!(hyp_text, long);
        assert_eq!(lines, [&b"before"[..], b"after"]);
        assert!(!q.hyp_queued() && q.is_empty() && q.used_by(1) == 0);
        // All of it or nothing.
        while q.push(2, b"vm", &[b'x'; LINE_MAX]) {}
        assert!(!q.push_hyp(&long));
        assert!(!q.hyp_queued());
        assert_eq!(q.share(3), QUEUE_BYTES / 2, "the hyp is no writer");
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
                        // Line ends before `from` are not looked at.
                        let mut ended = bytes.clone();
                        ended[..from].fill(b'\n');
                        assert_eq!(line_end(&ended, from), at, "{ended:?} from {from}");
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
