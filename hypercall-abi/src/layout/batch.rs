//! `MEM_BATCH` list entries. Live since 1.1.

use crate::{Error, MemPerms, mem::PAGE_SIZE};

use super::assert_layout;

/// What a batch entry does to its page.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BatchOp {
    /// As `MEM_MAP` of one page (code 0).
    Map,
    /// As `MEM_UNMAP` of one page (code 1; perms must be 0).
    Unmap,
    /// As `MEM_PROTECT` of one page (code 2).
    Protect,
}

/// One `MEM_BATCH` entry: one page, 8 bytes, so a 4 KiB page holds the maximum 512.
///
/// Bits 63:12 are the page's IPA (bits 11:0 of the IPA are zero, as it is page-aligned),
/// bits 11:5 are reserved (0), bits 4:3 the [`BatchOp`] code, bits 2:0 the [`MemPerms`].
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchEntry {
    /// The packed entry.
    pub raw: u64,
}

assert_layout!(BatchEntry, size = 8, { raw = 0 });

/// A full batch list page.
pub type BatchList = [BatchEntry; 512];
const _: () = assert!(core::mem::size_of::<BatchList>() == PAGE_SIZE as usize);

const OP_SHIFT: u32 = 3;
const OP_MASK: u64 = 0b11 << OP_SHIFT;
const PERM_MASK: u64 = 0b111;
const RESERVED_MASK: u64 = (PAGE_SIZE - 1) & !(OP_MASK | PERM_MASK);

impl BatchEntry {
    /// Packs an entry: `BAD_ADDRESS` if `ipa` is not page-aligned, `INVALID_PARAMETERS` for
    /// perms on an unmap.
    pub fn new(op: BatchOp, ipa: u64, perms: MemPerms) -> Result<BatchEntry, Error> {
        if !ipa.is_multiple_of(PAGE_SIZE) {
            return Err(Error::BadAddress);
        }
        if op == BatchOp::Unmap && !perms.is_empty() {
            return Err(Error::InvalidParameters);
        }
        let code = match op {
            BatchOp::Map => 0,
            BatchOp::Unmap => 1,
            BatchOp::Protect => 2,
        };
        Ok(BatchEntry {
            raw: ipa | code << OP_SHIFT | perms.bits(),
        })
    }

    /// Unpacks (op, IPA, perms): `INVALID_PARAMETERS` for reserved bits, op code 3, or perms on
    /// an unmap. Always inlined: the hyp's batch loop decodes up to 512 a call.
    #[inline(always)]
    pub fn decode(self) -> Result<(BatchOp, u64, MemPerms), Error> {
        if self.raw & RESERVED_MASK != 0 {
            return Err(Error::InvalidParameters);
        }
        let op = match (self.raw & OP_MASK) >> OP_SHIFT {
            0 => BatchOp::Map,
            1 => BatchOp::Unmap,
            2 => BatchOp::Protect,
            _ => return Err(Error::InvalidParameters),
        };
        let perms = MemPerms::decode(self.raw & PERM_MASK)?;
        if op == BatchOp::Unmap && !perms.is_empty() {
            return Err(Error::InvalidParameters);
        }
        Ok((op, self.raw & !(PAGE_SIZE - 1), perms))
    }
}
