//! The `mem` family (`0xC600_003n`): map, unmap, protect, query, batch. Live since 1.1.
//!
//! Addresses are IPAs aligned to [`PAGE_SIZE`]; lengths are page counts. Mapping takes fresh
//! zeroed frames against the VM's quota; unmapping returns them.

use crate::{Error, abi::vendor_id};

/// `MEM_MAP` (`0xC600_0030`): x1 = IPA, x2 = pages, x3 = [`MemPerms`]. Maps fresh zeroed
/// frames. Errors: `BAD_ADDRESS` (unaligned, outside the IPA space), `INVALID_PARAMETERS` (unknown
/// perm bits, no READ, 0 pages), `ALREADY_MAPPED`, `OUT_OF_MEMORY` (quota or frames). All or
/// nothing. Live since 1.1.
pub const MEM_MAP: u32 = vendor_id(0x30);
/// `MEM_UNMAP` (`0xC600_0031`): x1 = IPA, x2 = pages. Returns the frames (zeroed before reuse).
/// Errors: `BAD_ADDRESS`, `NOT_MAPPED`, `DENIED` (image, boot-info or channel pages). All or
/// nothing. Live since 1.1.
pub const MEM_UNMAP: u32 = vendor_id(0x31);
/// `MEM_PROTECT` (`0xC600_0032`): x1 = IPA, x2 = pages, x3 = [`MemPerms`]. Errors: as
/// `MEM_UNMAP`, plus `INVALID_PARAMETERS` (unknown perm bits, no READ). Live since 1.1.
pub const MEM_PROTECT: u32 = vendor_id(0x32);
/// `MEM_QUERY` (`0xC600_0033`): x1 = IPA. Result: x1 = the page's [`MemPerms`] bits, x2 = the
/// VM's quota left in bytes. Errors: `BAD_ADDRESS`, `NOT_MAPPED`. Live since 1.1.
pub const MEM_QUERY: u32 = vendor_id(0x33);
/// `MEM_BATCH` (`0xC600_0034`): x1 = IPA of a page holding a list of
/// [`crate::layout::BatchEntry`], x2 = entry count (1..=[`MEM_BATCH_MAX`]). Runs the entries in
/// order, stopping at the first that fails. Result: [`BatchResult`] in x1..x2.
/// Errors (whole call, nothing done): `BAD_ADDRESS` (list page unaligned or not the VM's RAM),
/// `INVALID_PARAMETERS` (count 0 or above the maximum). Live since 1.1.
pub const MEM_BATCH: u32 = vendor_id(0x34);

/// The stage-2 granule: every IPA argument of this family is a multiple of it.
pub const PAGE_SIZE: u64 = 4096;
/// The most entries one `MEM_BATCH` takes: one 4 KiB page of 8-byte entries.
pub const MEM_BATCH_MAX: u64 = 512;

bitflags::bitflags! {
    /// Stage-2 permissions of guest pages. Other bits are reserved: decoding them is
    /// `INVALID_PARAMETERS`.
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct MemPerms: u64 {
        /// Readable.
        const READ = 1 << 0;
        /// Writable.
        const WRITE = 1 << 1;
        /// Executable at EL1/EL0.
        const EXEC = 1 << 2;
    }
}

impl MemPerms {
    /// Read and write.
    pub const RW: MemPerms = MemPerms::READ.union(MemPerms::WRITE);
    /// Read and execute.
    pub const RX: MemPerms = MemPerms::READ.union(MemPerms::EXEC);

    /// Decodes perms from a register; `INVALID_PARAMETERS` for unknown bits.
    pub fn decode(bits: u64) -> Result<MemPerms, Error> {
        MemPerms::from_bits(bits).ok_or(Error::InvalidParameters)
    }
}

/// The result of `MEM_BATCH`: x1 = entries completed, x2 = the code of the entry that stopped
/// the batch (0 if all completed).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchResult {
    /// How many entries, from the first, took effect.
    pub done: u64,
    /// Why entry `done` failed, if one did.
    pub first_error: Option<Error>,
}

impl BatchResult {
    /// The result registers x1..x3.
    pub fn to_values(self) -> [u64; 3] {
        let code = self.first_error.map_or(0, |e| e.code() as u64);
        [self.done, code, 0]
    }

    /// Reads x1..x3.
    pub fn from_values(v: [u64; 3]) -> BatchResult {
        BatchResult {
            done: v[0],
            first_error: (v[1] != 0).then(|| Error::from_code(v[1] as i64)),
        }
    }
}
