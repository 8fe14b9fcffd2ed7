//! Nodes and properties of the structure block (Devicetree Specification 5.4).
//!
//! A small walker of our own rather than the `fdt` crate's: `fdt` 0.1.5 panics
//! (`assert_eq!` in its node skipping, `node.rs:472`) on a tree with `FDT_NOP`
//! tokens between child nodes, and QEMU's `raspi4b` writes exactly that when it
//! removes the nodes of devices it does not model (`fdt_nop_node`). Every step
//! here is bounds-checked and yields nothing rather than panic; `validate.rs`
//! has already proved the structure well formed, so nothing is lost.
//!
//! Names stay bytes here: the validator has checked them as UTF-8 once, and a
//! lookup compares bytes rather than decode every name it passes.

use crate::cells::be32;

pub(crate) const FDT_BEGIN_NODE: u32 = 1;
pub(crate) const FDT_END_NODE: u32 = 2;
pub(crate) const FDT_PROP: u32 = 3;
pub(crate) const FDT_NOP: u32 = 4;
pub(crate) const FDT_END: u32 = 9;

/// The structure and strings blocks of a validated tree.
#[derive(Clone, Copy)]
pub(crate) struct Blocks<'a> {
    pub structure: &'a [u8],
    pub strings: &'a [u8],
}

/// One node: its name and where its properties start.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    /// The name with unit address; empty for the root.
    pub name: &'a [u8],
    blocks: Blocks<'a>,
    /// Offset in the structure block just past the node's name.
    body: usize,
}

/// One property.
#[derive(Clone, Copy)]
pub(crate) struct Property<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// What follows a position among a node's children.
pub(crate) enum Step<'a> {
    /// The next child.
    Child(Node<'a>),
    /// The node's end, and the position just past its `FDT_END_NODE`.
    End(usize),
}

/// What sits at one position of the structure block.
enum Token<'a> {
    Begin {
        name: &'a [u8],
        body: usize,
    },
    End,
    /// A property: its name's offset in the strings block (resolved only by
    /// those who read it, not by those who step over it) and its value.
    Prop {
        name_offset: usize,
        value: &'a [u8],
    },
    Nop,
}

impl<'a> Blocks<'a> {
    /// The root node, which the structure block starts with.
    pub fn root(self) -> Option<Node<'a>> {
        self.node_at(0)
    }

    /// The token at `pos` and the position after it; `None` at `FDT_END`, an
    /// unknown token or anything out of bounds.
    fn token(self, pos: usize) -> Option<(Token<'a>, usize)> {
        let next = pos.checked_add(4)?;
        match be32(self.structure, pos)? {
            FDT_BEGIN_NODE => {
                let name = cstr(self.structure, next)?;
                let body = align4(next.checked_add(name.len() + 1)?)?;
                Some((Token::Begin { name, body }, body))
            }
            FDT_END_NODE => Some((Token::End, next)),
            FDT_PROP => {
                let len = be32(self.structure, next)? as usize;
                let name_offset = be32(self.structure, next.checked_add(4)?)? as usize;
                let start = next.checked_add(8)?;
                let value = self.structure.get(start..start.checked_add(len)?)?;
                Some((Token::Prop { name_offset, value }, align4(start + len)?))
            }
            FDT_NOP => Some((Token::Nop, next)),
            _ => None,
        }
    }

    /// The property named at `name_offset` in the strings block, with `value`.
    fn property(self, name_offset: usize, value: &'a [u8]) -> Option<Property<'a>> {
        let name = cstr(self.strings, name_offset)?;
        Some(Property { name, value })
    }

    /// The node whose `FDT_BEGIN_NODE` is at `pos`.
    pub fn node_at(self, pos: usize) -> Option<Node<'a>> {
        match self.token(pos)?.0 {
            Token::Begin { name, body } => Some(Node {
                name,
                blocks: self,
                body,
            }),
            _ => None,
        }
    }

    /// The next child or the end of the node, from `pos` (where a node's
    /// properties end, or where one of its children ends).
    pub fn step(self, mut pos: usize) -> Option<Step<'a>> {
        loop {
            let (token, next) = self.token(pos)?;
            match token {
                Token::Begin { name, body } => {
                    return Some(Step::Child(Node {
                        name,
                        blocks: self,
                        body,
                    }));
                }
                Token::End => return Some(Step::End(next)),
                Token::Prop { .. } | Token::Nop => pos = next,
            }
        }
    }

    /// The position just past the `FDT_END_NODE` closing the node whose body
    /// starts at `pos`.
    pub fn skip_node(self, mut pos: usize) -> Option<usize> {
        let mut depth = 1usize;
        while depth > 0 {
            let (token, next) = self.token(pos)?;
            match token {
                Token::Begin { .. } => depth += 1,
                Token::End => depth -= 1,
                Token::Prop { .. } | Token::Nop => {}
            }
            pos = next;
        }
        Some(pos)
    }
}

impl<'a> Node<'a> {
    /// The structure and strings blocks the node is in.
    pub fn blocks(self) -> Blocks<'a> {
        self.blocks
    }

    /// Where the node's body (its properties, then its children) starts.
    pub fn body(self) -> usize {
        self.body
    }

    /// Calls `each` on the node's properties in order, and returns where
    /// they end: the position of its first child or of its `FDT_END_NODE`.
    pub fn scan_properties(self, mut each: impl FnMut(Property<'a>)) -> usize {
        let mut pos = self.body;
        while let Some((token, next)) = self.blocks.token(pos) {
            match token {
                Token::Prop { name_offset, value } => {
                    if let Some(property) = self.blocks.property(name_offset, value) {
                        each(property);
                    }
                }
                Token::Nop => {}
                Token::Begin { .. } | Token::End => break,
            }
            pos = next;
        }
        pos
    }

    /// The node's properties, in order.
    pub fn properties(self) -> impl Iterator<Item = Property<'a>> {
        let mut pos = Some(self.body);
        core::iter::from_fn(move || {
            loop {
                let (token, next) = self.blocks.token(pos?)?;
                pos = Some(next);
                match token {
                    Token::Prop { name_offset, value } => {
                        if let Some(property) = self.blocks.property(name_offset, value) {
                            return Some(property);
                        }
                    }
                    Token::Nop => {}
                    Token::Begin { .. } | Token::End => {
                        pos = None;
                        return None;
                    }
                }
            }
        })
    }

    /// The value of property `name` (the first, should a hostile tree repeat it).
    pub fn property(self, name: &[u8]) -> Option<&'a [u8]> {
        self.properties().find(|p| p.name == name).map(|p| p.value)
    }
}

/// The bytes of the NUL-terminated string at `pos` in `bytes`, without the NUL.
pub(crate) fn cstr(bytes: &[u8], pos: usize) -> Option<&[u8]> {
    let rest = bytes.get(pos..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    rest.get(..len)
}

fn align4(pos: usize) -> Option<usize> {
    pos.checked_next_multiple_of(4)
}
