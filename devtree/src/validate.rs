//! A check of the whole structure block before anything reads it.
//!
//! The walker in `structure.rs` never panics on its own, but on a broken tree it
//! would quietly see less than is there. This pass makes a broken tree an
//! [`Error`] instead: every token known and inside its block, every name a
//! NUL-terminated UTF-8 string, nodes balanced under one root named `""`,
//! properties before child nodes, nesting at most [`MAX_DEPTH`] deep (which
//! bounds the tree walk's recursion), and `FDT_END` after the root closes.
//! `FDT_NOP` may appear between any two tokens: QEMU's `raspi4b` leaves them
//! where it removed nodes. On the way it notes where `/chosen` and `/aliases`
//! are, which the parser reads before its walk.

use crate::Error;
use crate::cells::be32;
use crate::header::Header;
use crate::structure::{
    Blocks, FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_NOP, FDT_PROP, Node, cstr,
};
use crate::tree::base_name;

/// The deepest node nesting accepted (the root is depth 0). Real trees stay
/// under 8; the tree walk recurses once per level, so this bounds its stack.
pub(crate) const MAX_DEPTH: usize = 16;

/// Size of one `/memreserve/` entry: a 64-bit address and a 64-bit size.
pub(crate) const RESERVATION_SIZE: usize = 16;

/// A validated tree: its blocks, and the children of the root the parser
/// looks up by name (the first of each name, unit address ignored).
pub(crate) struct Validated<'a> {
    pub blocks: Blocks<'a>,
    pub chosen: Option<Node<'a>>,
    pub aliases: Option<Node<'a>>,
}

/// Where the first `/chosen` and `/aliases` begin in the structure block.
#[derive(Debug, Default, PartialEq, Eq)]
struct TopLevel {
    chosen: Option<usize>,
    aliases: Option<usize>,
}

/// Checks the structure and memory reservation blocks of `dtb`, whose header
/// is `header`, and returns the blocks for the walker.
pub(crate) fn validate<'a>(dtb: &'a [u8], header: &Header) -> Result<Validated<'a>, Error> {
    let structure = dtb
        .get(header.struct_offset..header.struct_offset + header.struct_size)
        .ok_or(Error::Malformed("structure block lies outside the blob"))?;
    let strings = dtb
        .get(header.strings_offset..header.strings_offset + header.strings_size)
        .ok_or(Error::Malformed("strings block lies outside the blob"))?;
    let top = validate_structure(structure, strings)?;
    validate_reservations(
        dtb.get(..header.total_size).unwrap_or_default(),
        header.rsvmap_offset,
    )?;
    let blocks = Blocks { structure, strings };
    Ok(Validated {
        blocks,
        chosen: top.chosen.and_then(|pos| blocks.node_at(pos)),
        aliases: top.aliases.and_then(|pos| blocks.node_at(pos)),
    })
}

/// Walks every token of the structure block.
fn validate_structure(block: &[u8], strings: &[u8]) -> Result<TopLevel, Error> {
    let token = |pos: usize| be32(block, pos).ok_or(Error::Malformed("structure block ends early"));
    let mut pos = 0;
    // Depth of the node the cursor is inside; 0 before the root opens.
    let mut depth = 0usize;
    // Bit `d` set: the node at depth `d` has had a child, so no more properties.
    let mut has_children = 0u32;
    let mut root_closed = false;
    let mut top = TopLevel::default();
    loop {
        let tag = token(pos)?;
        pos += 4;
        match tag {
            FDT_BEGIN_NODE if !root_closed => {
                let name = utf8_cstr(block, pos).ok_or(Error::Malformed(
                    "node name is not a NUL-terminated UTF-8 string",
                ))?;
                if depth == 0 && !name.is_empty() {
                    return Err(Error::Malformed("root node has a name"));
                }
                if depth == 1 {
                    let slot = match base_name(name) {
                        b"chosen" => &mut top.chosen,
                        b"aliases" => &mut top.aliases,
                        _ => &mut None,
                    };
                    slot.get_or_insert(pos - 4);
                }
                if depth > MAX_DEPTH {
                    return Err(Error::Malformed("nodes nested deeper than 16 levels"));
                }
                has_children |= 1 << depth;
                depth += 1;
                has_children &= !(1 << depth);
                pos = align4(pos + name.len() + 1);
            }
            FDT_PROP if depth > 0 => {
                if has_children & (1 << depth) != 0 {
                    return Err(Error::Malformed("property after a child node"));
                }
                let len = token(pos)? as usize;
                let name_offset = token(pos + 4)? as usize;
                pos += 8;
                if pos.checked_add(len).is_none_or(|end| end > block.len()) {
                    return Err(Error::Malformed(
                        "property value runs past the structure block",
                    ));
                }
                if utf8_cstr(strings, name_offset).is_none() {
                    return Err(Error::Malformed(
                        "property name is not a string in the strings block",
                    ));
                }
                pos = align4(pos + len);
            }
            FDT_END_NODE if depth > 0 => {
                depth -= 1;
                root_closed = depth == 0;
            }
            FDT_NOP => {}
            FDT_END if root_closed => return Ok(top),
            FDT_BEGIN_NODE | FDT_PROP | FDT_END_NODE | FDT_END => {
                return Err(Error::Malformed(
                    "structure tokens out of order (unbalanced nodes)",
                ));
            }
            _ => return Err(Error::Malformed("unknown token in the structure block")),
        }
    }
}

/// Requires the `/memreserve/` list to end with its all-zero entry inside the blob.
fn validate_reservations(blob: &[u8], offset: usize) -> Result<(), Error> {
    let mut entries = blob
        .get(offset..)
        .unwrap_or_default()
        .chunks_exact(RESERVATION_SIZE);
    if entries.any(|entry| entry.iter().all(|&b| b == 0)) {
        Ok(())
    } else {
        Err(Error::Malformed(
            "memory reservation block is not terminated",
        ))
    }
}

/// The NUL-terminated UTF-8 string at `pos` in `bytes` (ASCII, as real names
/// are, checked a word at a time).
fn utf8_cstr(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    cstr(bytes, pos).filter(|name| name.is_ascii() || core::str::from_utf8(name).is_ok())
}

fn align4(pos: usize) -> usize {
    pos.next_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(tokens: &[u32]) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (chunk, t) in out.chunks_exact_mut(4).zip(tokens) {
            chunk.copy_from_slice(&t.to_be_bytes());
        }
        out
    }

    const STRINGS: &[u8] = b"reg\0";

    #[test]
    fn accepts_a_minimal_tree() {
        // root { reg = <>; child { }; };
        let block = words(&[1, 0, 3, 0, 0, 1, 0x6100_0000, 2, 2, 9]);
        assert_eq!(validate_structure(&block, STRINGS), Ok(TopLevel::default()));
    }

    #[test]
    fn accepts_nops_but_refuses_unbalanced_nodes_and_late_properties() {
        let nop = words(&[1, 0, 4, 3, 0, 0, 4, 1, 0x6100_0000, 4, 2, 4, 2, 9]);
        assert_eq!(validate_structure(&nop, STRINGS), Ok(TopLevel::default()));
        let unbalanced = words(&[1, 0, 2, 2, 9]);
        assert!(validate_structure(&unbalanced, STRINGS).is_err());
        let late_prop = words(&[1, 0, 1, 0x6100_0000, 2, 3, 0, 0, 2, 9]);
        assert_eq!(
            validate_structure(&late_prop, STRINGS),
            Err(Error::Malformed("property after a child node"))
        );
        let bad_name_offset = words(&[1, 0, 3, 0, 99, 2, 9]);
        assert!(validate_structure(&bad_name_offset, STRINGS).is_err());
        let no_end = words(&[1, 0, 2]);
        assert!(validate_structure(&no_end[..12], STRINGS).is_err());
    }

    #[test]
    fn notes_the_first_chosen_child_of_the_root_only() {
        // root { a { chosen { }; }; chosen { }; chosen { }; };
        let (a, chos, en) = (0x6100_0000, 0x6368_6f73, 0x656e_0000);
        let tokens: [u32; 19] = [
            1, 0, 1, a, 1, chos, en, 2, 2, 1, chos, en, 2, 1, chos, en, 2, 2, 9,
        ];
        let mut block = [0u8; 4 * 19];
        for (chunk, t) in block.chunks_exact_mut(4).zip(tokens) {
            chunk.copy_from_slice(&t.to_be_bytes());
        }
        assert_eq!(
            validate_structure(&block, STRINGS),
            Ok(TopLevel {
                chosen: Some(36),
                aliases: None
            })
        );
    }

    #[test]
    fn refuses_deep_nesting() {
        let mut block = [0u8; 4 * 64];
        let mut tokens = [0u32; 64];
        // The root's BEGIN_NODE with an empty name, then 20 nested nodes named "a".
        tokens[0] = 1;
        for i in 0..20 {
            tokens[2 + 2 * i] = 1;
            tokens[3 + 2 * i] = 0x6100_0000;
        }
        for (chunk, t) in block.chunks_exact_mut(4).zip(tokens) {
            chunk.copy_from_slice(&t.to_be_bytes());
        }
        assert_eq!(
            validate_structure(&block, STRINGS),
            Err(Error::Malformed("nodes nested deeper than 16 levels"))
        );
    }
}
