//! The `block` family (`0xC600_005n`): a paravirtual disk over a shared ring. Provisional.
//!
//! The request ring ([`crate::layout::RingHeader`] + [`crate::layout::BlockDesc`] slots) is a
//! page whose IPA is in the boot info. The guest fills descriptors, advances the producer index
//! and calls `BLOCK_SUBMIT`; the hypervisor performs them in order, writes each status, advances
//! the consumer index and raises the block-completion event.

use crate::abi::vendor_id;

/// `BLOCK_INFO` (`0xC600_0050`): result [`BlockInfo`] in x1..x3. Errors: `NOT_SUPPORTED` (the
/// VM has no disk). Provisional.
pub const BLOCK_INFO: u32 = vendor_id(0x50);
/// `BLOCK_SUBMIT` (`0xC600_0051`): x1 = the ring's new producer index (doorbell). Errors:
/// `INVALID_PARAMETERS` (index above 32 bits or more than the ring's size ahead of the
/// consumer), `NOT_SUPPORTED` (no disk). Provisional.
pub const BLOCK_SUBMIT: u32 = vendor_id(0x51);

/// The result of `BLOCK_INFO`: x1 = `sectors`, x2 = `sector_size`, x3 = `flags`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockInfo {
    /// Disk size in sectors.
    pub sectors: u64,
    /// Bytes per sector (512).
    pub sector_size: u32,
    /// [`BlockInfo::READ_ONLY`] and reserved bits.
    pub flags: u32,
}

impl BlockInfo {
    /// Flag: writes fail with `DENIED`.
    pub const READ_ONLY: u32 = 1 << 0;

    /// The result registers x1..x3.
    pub fn to_values(self) -> [u64; 3] {
        [self.sectors, self.sector_size.into(), self.flags.into()]
    }

    /// Reads x1..x3 (u32 fields from the low 32 bits).
    pub fn from_values(v: [u64; 3]) -> BlockInfo {
        BlockInfo {
            sectors: v[0],
            sector_size: v[1] as u32,
            flags: v[2] as u32,
        }
    }
}
