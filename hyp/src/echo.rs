//! The console model for people: the writer with the input focus (a VM, or the hyp's own
//! `hyp>` line) shows its partial line as it grows — its prompt, the echo of what is typed,
//! backspace — while the whole lines of everyone else still never interleave with it: before
//! one of theirs is written, the partial line is erased (CR, erase to the end of the line) and
//! it is drawn again after them. When the focused writer completes its line, only what is
//! missing is written. Every byte the terminal gets is the hyp's: a guest's bytes are shown
//! escaped as in its whole lines, and its backspaces erase the last byte of its own line
//! (`vm::console::LineBuffer`), which the hyp then erases on the terminal with `BS SP BS`
//! itself, so no guest can move the cursor out of its line.
//!
//! This module decides what to write; `dev::console` holds the state (the focused writer's
//! [`Partial`] as it wants it, the [`Terminal`] under the console lock) and writes the bytes.

#![forbid(unsafe_code)]

use crate::vm::console::{LINE_MAX, is_shown};

/// The writer id of the hyp's own partial line (VMs are writers by manifest index).
pub const HYP_WRITER: usize = usize::MAX;

/// The longest name a partial line is prefixed with.
const NAME_MAX: usize = manifest::MAX_NAME_LEN;

/// Erases the line the cursor is on (CR, then ANSI "erase to the end of the line").
pub const HIDE: &[u8] = b"\r\x1b[K";

/// A writer's partial line: whose it is, the name it is prefixed with (`name: `, none for the
/// hyp's own) and its text so far.
#[derive(Clone)]
pub struct Partial {
    writer: Option<usize>,
    name: [u8; NAME_MAX],
    name_len: usize,
    text: [u8; LINE_MAX],
    len: usize,
    /// Lines its writer completed (a shown line that completed has its record on the way).
    completed: u64,
}

impl Partial {
    /// Nobody's: nothing to show.
    pub const fn none() -> Self {
        Self {
            writer: None,
            name: [0; NAME_MAX],
            name_len: 0,
            text: [0; LINE_MAX],
            len: 0,
            completed: 0,
        }
    }

    /// The focus goes to `writer` (None: nobody), prefixed with `name`, its line so far `text`.
    pub fn focus(&mut self, writer: Option<usize>, name: &[u8], text: &[u8]) {
        self.writer = writer;
        self.name_len = name.len().min(NAME_MAX);
        self.name[..self.name_len].copy_from_slice(&name[..self.name_len]);
        self.set(text, false);
    }

    /// The writer whose line it is.
    pub fn writer(&self) -> Option<usize> {
        self.writer
    }

    /// Its text so far.
    pub fn text(&self) -> &[u8] {
        &self.text[..self.len]
    }

    /// Its text is now `text`; `completed`: its writer completed lines meanwhile.
    pub fn set(&mut self, text: &[u8], completed: bool) {
        if completed {
            self.completed = self.completed.wrapping_add(1);
        }
        self.len = text.len().min(LINE_MAX);
        self.text[..self.len].copy_from_slice(&text[..self.len]);
    }

    fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// What [`Terminal::before_line`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Before {
    /// Nothing was shown: write the line.
    Nothing,
    /// The shown partial line was erased: write the line, then draw it again ([`Terminal::sync`]).
    Hidden,
    /// The line completes the shown partial line and is written (its missing part).
    Written,
}

/// What the terminal shows of a partial line. Used with the console lock held.
pub struct Terminal {
    shown: Partial,
    active: bool,
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}

impl Terminal {
    pub const fn new() -> Self {
        Self {
            shown: Partial::none(),
            active: false,
        }
    }

    /// Before a whole line `name: text` of `writer` is written.
    pub fn before_line(
        &mut self,
        writer: usize,
        name: &[u8],
        text: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Before {
        if !self.active {
            return Before::Nothing;
        }
        self.active = false;
        let shown = &self.shown;
        if shown.writer == Some(writer) && shown.name() == name && text.starts_with(shown.text()) {
            escaped(&text[shown.len..], out);
            out(b"\r\n");
            return Before::Written;
        }
        out(HIDE);
        Before::Hidden
    }

    /// Before a line of the hyp's own is written: erases the partial line; true if it did (draw
    /// it again after).
    pub fn hide(&mut self, out: &mut dyn FnMut(&[u8])) -> bool {
        if !self.active {
            return false;
        }
        self.active = false;
        out(HIDE);
        true
    }

    /// Shows `wanted` (after every queued line is out): the difference to what is shown when it
    /// grew or shrank, else the whole line after erasing the other. Whether it wrote any byte.
    pub fn sync(&mut self, wanted: &Partial, out: &mut dyn FnMut(&[u8])) -> bool {
        let same_line =
            self.active && self.shown.writer == wanted.writer && self.shown.name() == wanted.name();
        if same_line && self.shown.completed != wanted.completed {
            // The shown line completed: its record, still queued, finishes it.
            return false;
        }
        let visible = wanted.writer.is_some() && wanted.len > 0;
        let mut wrote = false;
        if self.active && (!same_line || !visible) {
            out(HIDE);
            self.active = false;
            wrote = true;
        }
        if !visible {
            return wrote;
        }
        let (old, new) = (self.shown.text(), wanted.text());
        if self.active {
            let common = old.iter().zip(new).take_while(|(a, b)| a == b).count();
            if common == old.len() && common == new.len() {
                return wrote;
            }
            for _ in 0..columns(&old[common..]) {
                out(b"\x08 \x08");
            }
            escaped(&new[common..], out);
        } else {
            if wanted.name_len > 0 {
                out(wanted.name());
                out(b": ");
            }
            escaped(new, out);
        }
        self.shown = wanted.clone();
        self.active = true;
        true
    }

    /// Ends the shown partial line where it is (the hyp's own line on Enter, the end of the
    /// run): the next output starts on a new line.
    pub fn commit(&mut self, out: &mut dyn FnMut(&[u8])) {
        if core::mem::take(&mut self.active) {
            out(b"\r\n");
        }
    }
}

/// Terminal columns of `text` shown escaped.
fn columns(text: &[u8]) -> usize {
    text.iter().map(|&b| if is_shown(b) { 1 } else { 4 }).sum()
}

/// Writes `text` with every byte that is not shown as it is as `\xNN`.
pub fn escaped(text: &[u8], out: &mut dyn FnMut(&[u8])) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = text;
    while !rest.is_empty() {
        let run = rest.iter().take_while(|&&b| is_shown(b)).count();
        if run > 0 {
            out(&rest[..run]);
        }
        if let Some(&b) = rest.get(run) {
            out(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
            rest = &rest[run + 1..];
        } else {
            rest = &[];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::console::LineBuffer;
    use std::string::String;
    use std::vec::Vec;

    /// A terminal emulator enough for the test: the rows written, the cursor on the last.
    #[derive(Default)]
    struct Screen {
        rows: Vec<Vec<u8>>,
        col: usize,
        raw: Vec<u8>,
    }

    impl Screen {
        fn feed(&mut self, bytes: &[u8]) {
            self.raw.extend_from_slice(bytes);
            if self.rows.is_empty() {
                self.rows.push(Vec::new());
            }
            let mut i = 0;
            while i < bytes.len() {
                let row = self.rows.last_mut().unwrap();
                match bytes[i] {
                    b'\r' => self.col = 0,
                    b'\n' => {
                        self.rows.push(Vec::new());
                        self.col = 0;
                    }
                    0x08 => self.col = self.col.saturating_sub(1),
                    0x1b => {
                        assert_eq!(&bytes[i..i + 3], b"\x1b[K", "the only sequence");
                        row.truncate(self.col);
                        i += 2;
                    }
                    b => {
                        if self.col < row.len() {
                            row[self.col] = b;
                        } else {
                            row.push(b);
                        }
                        self.col += 1;
                    }
                }
                i += 1;
            }
        }

        fn text(&self) -> Vec<String> {
            self.rows
                .iter()
                .map(|r| String::from_utf8_lossy(r).trim_end().into())
                .filter(|r: &String| !r.is_empty())
                .collect()
        }
    }

    fn line(t: &mut Terminal, s: &mut Screen, writer: usize, name: &str, text: &str) {
        let mut out = Vec::new();
        let before = t.before_line(writer, name.as_bytes(), text.as_bytes(), &mut |b| {
            out.extend_from_slice(b)
        });
        if before != Before::Written {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            escaped(text.as_bytes(), &mut |b| out.extend_from_slice(b));
            out.extend_from_slice(b"\r\n");
        }
        s.feed(&out);
    }

    fn sync(t: &mut Terminal, s: &mut Screen, wanted: &Partial) -> bool {
        let mut out = Vec::new();
        let wrote = t.sync(wanted, &mut |b| out.extend_from_slice(b));
        s.feed(&out);
        wrote
    }

    #[test]
    fn a_partial_line_grows_is_completed_and_others_lines_stay_whole() {
        let (mut t, mut s, mut w) = (Terminal::new(), Screen::default(), Partial::none());
        w.focus(Some(0), b"sh", b"");
        assert!(!sync(&mut t, &mut s, &w), "nothing to show yet");
        w.set(b"sh> ", false);
        assert!(sync(&mut t, &mut s, &w));
        w.set(b"sh> vm", false);
        sync(&mut t, &mut s, &w);
        assert_eq!(s.text(), ["sh: sh> vm"]);
        assert!(!sync(&mut t, &mut s, &w), "unchanged: nothing written");
        // Another VM's line: shown whole, the partial line drawn again below it.
        line(&mut t, &mut s, 1, "other", "selftest: all 76 checks passed");
        assert_eq!(
            s.text(),
            ["other: selftest: all 76 checks passed"],
            "erased first"
        );
        sync(&mut t, &mut s, &w);
        assert_eq!(
            s.text(),
            ["other: selftest: all 76 checks passed", "sh: sh> vm"]
        );
        // The line completes: its record finishes it, only the missing byte is written.
        w.set(b"", true);
        assert!(!sync(&mut t, &mut s, &w), "its record is on the way");
        let before = s.raw.len();
        line(&mut t, &mut s, 0, "sh", "sh> vms");
        assert_eq!(&s.raw[before..], b"s\r\n");
        line(&mut t, &mut s, 0, "sh", "VM 0");
        w.set(b"sh> ", false);
        sync(&mut t, &mut s, &w);
        assert_eq!(
            s.text(),
            [
                "other: selftest: all 76 checks passed",
                "sh: sh> vms",
                "sh: VM 0",
                "sh: sh>"
            ]
        );
    }

    #[test]
    fn backspace_erases_on_the_terminal_only_within_the_line() {
        let (mut t, mut s, mut w) = (Terminal::new(), Screen::default(), Partial::none());
        w.focus(Some(0), b"sh", b"sh> vmx");
        sync(&mut t, &mut s, &w);
        // The guest's echo of a backspace ("\b \b") leaves its line one byte shorter.
        let mut lb = LineBuffer::default();
        lb.push(b"sh> vmx", |_| true);
        lb.push(b"\x08 \x08", |_| true);
        assert_eq!(lb.partial(), b"sh> vm");
        w.set(lb.partial(), false);
        let before = s.raw.len();
        sync(&mut t, &mut s, &w);
        assert_eq!(&s.raw[before..], b"\x08 \x08");
        // Backspaces beyond the line's start erase nothing more, on the terminal neither.
        for _ in 0..20 {
            lb.push(b"\x08", |_| true);
        }
        w.set(lb.partial(), false);
        sync(&mut t, &mut s, &w);
        assert_eq!(s.text(), [""; 0], "the whole partial line is gone");
        lb.push(b"a\x1bb", |_| true);
        w.set(lb.partial(), false);
        sync(&mut t, &mut s, &w);
        assert_eq!(s.text(), ["sh: a\\x1bb"], "escaped as whole lines are");
        lb.push(b"\x08\x08", |_| true);
        w.set(lb.partial(), false);
        sync(&mut t, &mut s, &w);
        assert_eq!(s.text(), ["sh: a"], "an escaped byte is 4 columns");
    }

    #[test]
    fn focus_moves_erase_the_old_line_and_draw_the_new() {
        let (mut t, mut s, mut w) = (Terminal::new(), Screen::default(), Partial::none());
        w.focus(Some(0), b"sh", b"sh> ab");
        sync(&mut t, &mut s, &w);
        w.focus(Some(HYP_WRITER), b"", b"hyp> ");
        sync(&mut t, &mut s, &w);
        assert_eq!(s.text(), ["hyp>"]);
        // The hyp's own lines: erased, written, drawn again; Enter commits it where it is.
        let mut out = Vec::new();
        assert!(t.hide(&mut |b| out.extend_from_slice(b)));
        out.extend_from_slice(b"hyp: console focus: hyp\r\n");
        s.feed(&out);
        sync(&mut t, &mut s, &w);
        w.set(b"hyp> vms", false);
        sync(&mut t, &mut s, &w);
        let mut out = Vec::new();
        t.commit(&mut |b| out.extend_from_slice(b));
        s.feed(&out);
        w.set(b"", false);
        assert!(!sync(&mut t, &mut s, &w), "committed: nothing to erase");
        s.feed(b"hyp: NAME\r\n");
        assert_eq!(
            s.text(),
            ["hyp: console focus: hyp", "hyp> vms", "hyp: NAME"]
        );
        // Nobody focused: nothing shown, nothing drawn.
        w.focus(None, b"", b"x");
        assert!(!sync(&mut t, &mut s, &w));
    }

    #[test]
    fn a_line_of_the_focused_writer_that_differs_is_written_whole() {
        let (mut t, mut s, mut w) = (Terminal::new(), Screen::default(), Partial::none());
        w.focus(Some(2), b"vm", b"abc");
        sync(&mut t, &mut s, &w);
        line(&mut t, &mut s, 2, "vm", "abX");
        assert_eq!(s.text(), ["vm: abX"]);
        assert!(!s.raw.ends_with(b"abcabX\r\n"));
    }
}
