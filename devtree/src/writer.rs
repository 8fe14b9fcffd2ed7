//! Writes a flattened device tree (version 17, Devicetree Specification v0.4 chapter 5) into a
//! caller's buffer: what the hypervisor hands an unmodified guest.
//!
//! No allocation: the structure block grows from the front of the buffer and the strings block
//! from its back, so neither needs to know the other's size. A property's name is written as its
//! distance from the buffer's end until [`Writer::finish`] knows where the strings block starts,
//! then rewritten as the offset the format wants while the strings move up behind the structure.
//! Every write is bounds-checked: a buffer that fills is [`WriteError::Full`], never a panic.
//!
//! The blob is laid out in the order the specification recommends: header, an empty memory
//! reservation map (its terminating entry alone), structure block, strings block. Names are
//! deduplicated in the strings block.

use crate::header::HEADER_SIZE;
use crate::structure::{FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_PROP};
use crate::validate::{MAX_DEPTH, RESERVATION_SIZE};

/// The magic, version and last compatible version written in the header.
const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_VERSION: u32 = 17;
const FDT_LAST_COMP_VERSION: u32 = 16;

/// Where the memory reservation map starts: right after the header, 8-byte aligned.
const RSVMAP_OFFSET: usize = HEADER_SIZE.next_multiple_of(8);
/// Where the structure block starts: after the one (terminating) reservation entry.
const STRUCT_OFFSET: usize = RSVMAP_OFFSET + RESERVATION_SIZE;

/// Why a tree could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteError {
    /// The buffer is too small for the tree.
    Full,
    /// The calls do not describe a tree, or a name or string cannot be encoded; the text says
    /// which.
    Invalid(&'static str),
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriteError::Full => f.write_str("device tree does not fit its buffer"),
            WriteError::Invalid(what) => write!(f, "cannot write device tree: {what}"),
        }
    }
}

impl core::error::Error for WriteError {}

/// What the last structure token written was, which says what may follow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Nothing yet: only the root may begin.
    Nothing,
    BeginNode,
    Property,
    EndNode,
}

/// A device tree being written into a buffer. Start with `begin_node("")` (the root), give each
/// node its properties before its children, close every node, then [`finish`](Writer::finish).
///
/// ```
/// let mut buf = [0u8; 256];
/// let mut w = devtree::Writer::new(&mut buf)?;
/// w.begin_node("")?;
/// w.property_str("model", "example")?;
/// w.end_node()?;
/// let size = w.finish()?;
/// assert_eq!(devtree::total_size(&buf[..size]), Some(size));
/// # Ok::<(), devtree::WriteError>(())
/// ```
pub struct Writer<'b> {
    buf: &'b mut [u8],
    /// The end of the structure block written so far.
    end: usize,
    /// The start of the strings block written so far (it ends at `buf.len()`).
    strings: usize,
    /// Nodes open.
    depth: usize,
    last: Last,
}

impl<'b> Writer<'b> {
    /// A writer into `buf`, which must at least hold the header and reservation map.
    pub fn new(buf: &'b mut [u8]) -> Result<Self, WriteError> {
        if buf.len() < STRUCT_OFFSET || u32::try_from(buf.len()).is_err() {
            return Err(WriteError::Full);
        }
        buf[..STRUCT_OFFSET].fill(0);
        Ok(Writer {
            strings: buf.len(),
            buf,
            end: STRUCT_OFFSET,
            depth: 0,
            last: Last::Nothing,
        })
    }

    /// Opens a node named `name` (with its unit address, e.g. `memory@40000000`; `""` for the
    /// root, which must come first and alone).
    pub fn begin_node(&mut self, name: &str) -> Result<(), WriteError> {
        if (self.depth == 0) != name.is_empty() {
            return Err(WriteError::Invalid("only the root node is unnamed"));
        }
        if self.depth == 0 && self.last != Last::Nothing {
            return Err(WriteError::Invalid("a second root node"));
        }
        if self.depth > MAX_DEPTH {
            return Err(WriteError::Invalid("nodes nested deeper than 16 levels"));
        }
        let name = cstring(name)?;
        self.token(FDT_BEGIN_NODE)?;
        self.bytes_padded(name, true)?;
        self.depth += 1;
        self.last = Last::BeginNode;
        Ok(())
    }

    /// Closes the innermost open node.
    pub fn end_node(&mut self) -> Result<(), WriteError> {
        if self.depth == 0 {
            return Err(WriteError::Invalid("end of a node that is not open"));
        }
        self.token(FDT_END_NODE)?;
        self.depth -= 1;
        self.last = Last::EndNode;
        Ok(())
    }

    /// A property of the open node with the raw `value` (empty for a boolean property such as
    /// `interrupt-controller`).
    pub fn property(&mut self, name: &str, value: &[u8]) -> Result<(), WriteError> {
        if !matches!(self.last, Last::BeginNode | Last::Property) || self.depth == 0 {
            return Err(WriteError::Invalid(
                "a property outside a node or after a child node",
            ));
        }
        if name.is_empty() {
            return Err(WriteError::Invalid("an unnamed property"));
        }
        let len = u32::try_from(value.len()).map_err(|_| WriteError::Full)?;
        let name_from_end = self.string(cstring(name)?)?;
        self.token(FDT_PROP)?;
        self.token(len)?;
        self.token(name_from_end)?;
        self.bytes_padded(value, false)?;
        self.last = Last::Property;
        Ok(())
    }

    /// A property of one cell.
    pub fn property_u32(&mut self, name: &str, value: u32) -> Result<(), WriteError> {
        self.property(name, &value.to_be_bytes())
    }

    /// A property of two cells, most significant first (`linux,initrd-start`).
    pub fn property_u64(&mut self, name: &str, value: u64) -> Result<(), WriteError> {
        self.property(name, &value.to_be_bytes())
    }

    /// A property of `cells`, each big-endian (`reg`, `interrupts`).
    pub fn property_cells(&mut self, name: &str, cells: &[u32]) -> Result<(), WriteError> {
        self.property_with(name, cells.len() * 4, |w| {
            cells
                .iter()
                .try_for_each(|c| w.bytes_padded(&c.to_be_bytes(), false))
        })
    }

    /// A `<string>` property.
    pub fn property_str(&mut self, name: &str, value: &str) -> Result<(), WriteError> {
        self.property_strs(name, &[value])
    }

    /// A `<stringlist>` property (`compatible`): each string NUL-terminated, in order.
    pub fn property_strs(&mut self, name: &str, values: &[&str]) -> Result<(), WriteError> {
        let mut len = 0usize;
        for value in values {
            len = len
                .checked_add(cstring(value)?.len() + 1)
                .ok_or(WriteError::Full)?;
        }
        self.property_with(name, len, |w| {
            values
                .iter()
                .try_for_each(|v| w.bytes(v.as_bytes())?.bytes(&[0]).map(|_| ()))
        })
    }

    /// Ends the tree and returns its total size: the blob is `buf[..size]`.
    pub fn finish(self) -> Result<usize, WriteError> {
        if self.depth != 0 || self.last != Last::EndNode {
            return Err(WriteError::Invalid("a node left open, or no root"));
        }
        let mut this = self;
        this.token(FDT_END)?;
        let struct_end = this.end;
        let strings_size = this.buf.len() - this.strings;
        this.resolve_names(strings_size)?;
        this.buf.copy_within(this.strings.., struct_end);
        let total = struct_end + strings_size;
        let header = [
            FDT_MAGIC,
            total as u32,
            STRUCT_OFFSET as u32,
            struct_end as u32,
            RSVMAP_OFFSET as u32,
            FDT_VERSION,
            FDT_LAST_COMP_VERSION,
            0, // boot_cpuid_phys: the CPU whose reg is 0 boots
            strings_size as u32,
            (struct_end - STRUCT_OFFSET) as u32,
        ];
        for (i, word) in header.iter().enumerate() {
            this.buf[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
        }
        Ok(total)
    }

    /// A property of `len` bytes whose value `fill` writes (and pads to a cell).
    fn property_with(
        &mut self,
        name: &str,
        len: usize,
        fill: impl FnOnce(&mut Self) -> Result<(), WriteError>,
    ) -> Result<(), WriteError> {
        self.property(name, &[])?;
        // The empty property just written: patch its length, then append the value.
        let len_at = self.end - 8;
        let len32 = u32::try_from(len).map_err(|_| WriteError::Full)?;
        self.buf[len_at..len_at + 4].copy_from_slice(&len32.to_be_bytes());
        fill(self)?;
        self.pad()
    }

    /// Rewrites the name of every property, a distance from the buffer's end, as an offset in
    /// the strings block of `strings_size` bytes. The structure block is ours, so well formed.
    fn resolve_names(&mut self, strings_size: usize) -> Result<(), WriteError> {
        let broken = WriteError::Invalid("structure block corrupted while writing");
        let mut pos = STRUCT_OFFSET;
        loop {
            let word = |at: usize| crate::cells::be32(&self.buf[..self.end], at).ok_or(broken);
            match word(pos)? {
                FDT_BEGIN_NODE => {
                    let name =
                        crate::structure::cstr(&self.buf[..self.end], pos + 4).ok_or(broken)?;
                    pos = (pos + 4 + name.len() + 1).next_multiple_of(4);
                }
                FDT_END_NODE => pos += 4,
                FDT_PROP => {
                    let len = word(pos + 4)? as usize;
                    let from_end = word(pos + 8)? as usize;
                    let offset = strings_size.checked_sub(from_end).ok_or(broken)? as u32;
                    self.buf[pos + 8..pos + 12].copy_from_slice(&offset.to_be_bytes());
                    pos = (pos + 12 + len).next_multiple_of(4);
                }
                FDT_END => return Ok(()),
                _ => return Err(broken),
            }
        }
    }

    /// `name` (with its NUL) in the strings block, added unless already there; returns its
    /// start as a distance from the buffer's end.
    fn string(&mut self, name: &[u8]) -> Result<u32, WriteError> {
        let len = self.buf.len();
        let block = &self.buf[self.strings..];
        let mut at = 0;
        while at < block.len() {
            let here = &block[at..];
            let n = here.iter().position(|&b| b == 0).unwrap_or(here.len());
            if &here[..n] == name {
                return Ok((len - self.strings - at) as u32);
            }
            at += n + 1;
        }
        let need = name.len() + 1;
        let start = self
            .strings
            .checked_sub(need)
            .filter(|&start| start >= self.end)
            .ok_or(WriteError::Full)?;
        self.buf[start..start + name.len()].copy_from_slice(name);
        self.buf[start + name.len()] = 0;
        self.strings = start;
        Ok((len - start) as u32)
    }

    fn token(&mut self, word: u32) -> Result<(), WriteError> {
        self.bytes(&word.to_be_bytes()).map(|_| ())
    }

    /// Appends `bytes` to the structure block, if it stays clear of the strings block.
    fn bytes(&mut self, bytes: &[u8]) -> Result<&mut Self, WriteError> {
        let end = self
            .end
            .checked_add(bytes.len())
            .filter(|&end| end <= self.strings)
            .ok_or(WriteError::Full)?;
        self.buf[self.end..end].copy_from_slice(bytes);
        self.end = end;
        Ok(self)
    }

    /// Appends `bytes` (and a NUL if `nul`), padded with zeros to a cell.
    fn bytes_padded(&mut self, bytes: &[u8], nul: bool) -> Result<(), WriteError> {
        self.bytes(bytes)?;
        if nul {
            self.bytes(&[0])?;
        }
        self.pad()
    }

    fn pad(&mut self) -> Result<(), WriteError> {
        let padding = self.end.next_multiple_of(4) - self.end;
        self.bytes(&[0; 3][..padding]).map(|_| ())
    }
}

/// `s` as the bytes of a C string, refusing an embedded NUL.
fn cstring(s: &str) -> Result<&[u8], WriteError> {
    if s.as_bytes().contains(&0) {
        Err(WriteError::Invalid("a name or string holds a NUL"))
    } else {
        Ok(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Header;
    use crate::tree::{Frame, find};
    use crate::validate::validate;

    /// Writes a small tree with every kind of property.
    fn sample(buf: &mut [u8]) -> Result<usize, WriteError> {
        let mut w = Writer::new(buf)?;
        w.begin_node("")?;
        w.property_u32("#address-cells", 2)?;
        w.property_u32("#size-cells", 2)?;
        w.property_strs("compatible", &["pvhyp,a", "pvhyp,b"])?;
        w.property_str("model", "a test")?;
        w.begin_node("memory@40000000")?;
        w.property_str("device_type", "memory")?;
        w.property_cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000])?;
        w.end_node()?;
        w.begin_node("intc@8000000")?;
        w.property("interrupt-controller", &[])?;
        w.property_u32("#address-cells", 1)?;
        w.property_u32("phandle", 1)?;
        w.end_node()?;
        w.begin_node("chosen")?;
        w.property_str("bootargs", "console=ttyAMA0")?;
        w.property_u64("linux,initrd-start", 0x4800_0000)?;
        w.property_u64("linux,initrd-end", 0x4810_0003)?;
        w.end_node()?;
        w.end_node()?;
        w.finish()
    }

    fn node<'a>(dtb: &'a [u8], path: &str, prop: &str) -> Option<&'a [u8]> {
        let header = Header::parse(dtb).unwrap();
        let tree = validate(dtb, &header).unwrap();
        let root = Frame::root(tree.blocks.root().unwrap());
        find(&root, |f| f.path_is(path).then(|| f.prop(prop)))?
    }

    #[test]
    fn writes_a_tree_the_reader_reads_back() {
        let mut buf = [0xffu8; 1024];
        let size = sample(&mut buf).unwrap();
        let dtb = &buf[..size];
        assert_eq!(crate::total_size(dtb), Some(size));
        let board = crate::parse(dtb).unwrap();
        assert_eq!(board.model, "a test");
        assert_eq!(board.compatible, "pvhyp,a");
        assert_eq!(
            board.memory(),
            &[crate::Region {
                base: 0x4000_0000,
                size: 0x1000_0000
            }]
        );
        assert_eq!(board.bootargs, Some("console=ttyAMA0"));
        assert_eq!(
            board.initrd,
            Some(crate::Region {
                base: 0x4800_0000,
                size: 0x10_0003
            })
        );
        assert_eq!(
            node(dtb, "/", "compatible"),
            Some(&b"pvhyp,a\0pvhyp,b\0"[..])
        );
        assert_eq!(
            node(dtb, "/intc@8000000", "interrupt-controller"),
            Some(&[][..])
        );
        assert_eq!(node(dtb, "/intc", "phandle"), Some(&[0, 0, 0, 1][..]));
    }

    #[test]
    fn find_property_looks_up_by_path() {
        let mut buf = [0u8; 1024];
        let size = sample(&mut buf).unwrap();
        let dtb = &buf[..size];
        let find = |path, name| crate::find_property(dtb, path, name).unwrap();
        assert_eq!(find("/", "model"), Some(&b"a test\0"[..]));
        assert_eq!(find("/memory", "device_type"), Some(&b"memory\0"[..]));
        assert_eq!(
            find("/memory@40000000", "device_type"),
            Some(&b"memory\0"[..])
        );
        assert_eq!(
            find("/memory@4", "device_type"),
            None,
            "another unit address"
        );
        assert_eq!(find("/chosen", "model"), None);
        assert_eq!(find("/nowhere", "model"), None);
        assert_eq!(
            crate::find_property(&buf[..size - 1], "/", "model"),
            Err(crate::Error::BadHeader)
        );
    }

    #[test]
    fn lays_out_the_blob_and_deduplicates_names() {
        let mut buf = [0u8; 1024];
        let size = sample(&mut buf).unwrap();
        let header = Header::parse(&buf[..size]).unwrap();
        assert_eq!(header.rsvmap_offset, RSVMAP_OFFSET);
        assert!(buf[RSVMAP_OFFSET..STRUCT_OFFSET].iter().all(|&b| b == 0));
        assert_eq!(header.struct_offset, STRUCT_OFFSET);
        assert_eq!(header.strings_offset, STRUCT_OFFSET + header.struct_size);
        assert_eq!(header.strings_offset + header.strings_size, size);
        let strings = &buf[header.strings_offset..size];
        let count = |name: &[u8]| strings.split(|&b| b == 0).filter(|s| *s == name).count();
        assert_eq!(count(b"#address-cells"), 1, "written twice, stored once");
        assert_eq!(count(b"reg"), 1);
    }

    #[test]
    fn a_buffer_too_small_at_any_size_is_an_error() {
        let mut big = [0u8; 1024];
        let size = sample(&mut big).unwrap();
        for len in 0..size {
            let mut buf = [0u8; 1024];
            assert_eq!(
                sample(&mut buf[..len]),
                Err(WriteError::Full),
                "{len} bytes"
            );
        }
        let mut exact = [0u8; 1024];
        assert_eq!(sample(&mut exact[..size]), Ok(size));
        assert_eq!(&exact[..size], &big[..size]);
    }

    #[test]
    fn refuses_what_is_not_a_tree() {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf).unwrap();
        assert!(w.property_u32("x", 1).is_err(), "property before the root");
        assert!(w.begin_node("named").is_err(), "a named root");
        assert!(w.end_node().is_err());
        w.begin_node("").unwrap();
        assert!(w.begin_node("").is_err(), "an unnamed child");
        assert!(w.property_str("bootargs", "a\0b").is_err());
        assert!(w.property("", &[]).is_err());
        w.begin_node("child").unwrap();
        w.end_node().unwrap();
        assert!(w.property_u32("late", 1).is_err(), "property after a child");
        w.end_node().unwrap();
        assert!(w.begin_node("").is_err(), "a second root");
        assert_eq!(w.finish(), Ok(STRUCT_OFFSET + 32 + "".len()));

        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf).unwrap();
        w.begin_node("").unwrap();
        assert!(w.finish().is_err(), "root left open");
    }

    #[test]
    fn nesting_is_bounded_as_the_reader_bounds_it() {
        let mut buf = [0u8; 1024];
        let mut w = Writer::new(&mut buf).unwrap();
        w.begin_node("").unwrap();
        for _ in 0..MAX_DEPTH {
            w.begin_node("n").unwrap();
        }
        assert!(w.begin_node("n").is_err());
        for _ in 0..=MAX_DEPTH {
            w.end_node().unwrap();
        }
        let size = w.finish().unwrap();
        assert!(crate::parse_allow_no_memory(&buf[..size]).is_ok());
    }
}
