//! The `block` family (`0xC600_005n`): a paravirtual disk over a shared ring. Live since 1.3.
//!
//! A VM the manifest gives a disk region has a request ring: one page at
//! `BootInfo::block_ring_ipa` holding a [`crate::layout::RingHeader`] and
//! [`BLOCK_RING_ENTRIES`] [`crate::layout::BlockDesc`] slots. The guest fills descriptors,
//! publishes the ring's producer index and calls `BLOCK_SUBMIT` with it; the hypervisor copies
//! each descriptor out of the page before checking it, performs the requests in order, writes
//! each `status`, advances the consumer index and raises the block-completion event. Sector
//! numbers count from the start of the VM's region: a VM sees only its own part of the disk.

use crate::abi::vendor_id;

/// `BLOCK_INFO` (`0xC600_0050`): result [`BlockInfo`] in x1..x3 (the VM's region). Errors:
/// `NOT_SUPPORTED` (the VM has no disk region). Live since 1.3.
pub const BLOCK_INFO: u32 = vendor_id(0x50);
/// `BLOCK_SUBMIT` (`0xC600_0051`): x1 = the ring's new producer index (doorbell). Result: x1 =
/// descriptors taken (each has its `status` written). Errors (nothing taken):
/// `INVALID_PARAMETERS` (index above 32 bits, or more than [`BLOCK_RING_ENTRIES`] ahead of the
/// consumer), `NOT_SUPPORTED` (no disk region). Live since 1.3.
pub const BLOCK_SUBMIT: u32 = vendor_id(0x51);

/// Slots of the block request ring (32-byte [`crate::layout::BlockDesc`]s after the header).
pub const BLOCK_RING_ENTRIES: u32 = 64;
/// Bytes per sector.
pub const BLOCK_SECTOR_SIZE: u32 = 512;
/// The most bytes one read or write descriptor moves.
pub const BLOCK_TRANSFER_MAX: u32 = 64 * 1024;

/// The result of `BLOCK_INFO`: x1 = `sectors`, x2 = `sector_size`, x3 = `flags`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockInfo {
    /// Size of the VM's region in sectors.
    pub sectors: u64,
    /// Bytes per sector ([`BLOCK_SECTOR_SIZE`]).
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
