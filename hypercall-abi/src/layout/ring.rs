//! Single-producer single-consumer rings in shared pages: console input, block requests,
//! channel messages. The header is live since 1.2 (the console output ring), the block slot
//! layout since 1.3; the channel slot layout since 1.4.
//!
//! A ring is a [`RingHeader`] followed at offset 192 by `entries` slots of `entry_size` bytes.
//! `producer` and `consumer` are free-running u32 counters (slot = counter % entries); the ring
//! is empty when they are equal and full when they differ by `entries`. Each sits on its own
//! 64-byte line and is written by one side only.

use super::assert_layout;

/// [`RingHeader::magic`]: `"RING"` as a little-endian u32.
pub const RING_MAGIC: u32 = u32::from_le_bytes(*b"RING");

/// The header of a shared ring.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RingHeader {
    /// [`RING_MAGIC`].
    pub magic: u32,
    /// Slot count, a power of two.
    pub entries: u32,
    /// Bytes per slot: 1 (console), 32 ([`BlockDesc`]) or 64 ([`ChannelDesc`]).
    pub entry_size: u32,
    /// Reserved (0).
    pub flags: u32,
    /// Zero.
    pub reserved0: [u32; 12],
    /// Next slot the producer fills; written by the producer only.
    pub producer: u32,
    /// Zero.
    pub reserved1: [u32; 15],
    /// Next slot the consumer takes; written by the consumer only.
    pub consumer: u32,
    /// Zero.
    pub reserved2: [u32; 15],
}

assert_layout!(RingHeader, size = 192, {
    magic = 0,
    entries = 4,
    entry_size = 8,
    flags = 12,
    producer = 64,
    consumer = 128,
});

impl RingHeader {
    /// Offset of slot 0 from the header's start.
    pub const SLOTS_OFFSET: usize = core::mem::size_of::<RingHeader>();

    /// An empty ring of `entries` slots of `entry_size` bytes.
    pub const fn new(entries: u32, entry_size: u32) -> RingHeader {
        RingHeader {
            magic: RING_MAGIC,
            entries,
            entry_size,
            flags: 0,
            reserved0: [0; 12],
            producer: 0,
            reserved1: [0; 15],
            consumer: 0,
            reserved2: [0; 15],
        }
    }
}

/// A block request slot (live since 1.3). The guest fills everything; the hypervisor ignores
/// the `status` it finds and writes the request's result there before advancing the consumer.
/// The hypervisor copies the slot before checking it, so changing it after the doorbell
/// changes nothing.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BlockDesc {
    /// [`BlockDesc::READ`], [`BlockDesc::WRITE`] or [`BlockDesc::FLUSH`].
    pub op: u32,
    /// Written by the hypervisor: 0 or a negative [`crate::Error`] code (as i32).
    pub status: i32,
    /// First sector, counted from the start of the VM's region (0 for a flush).
    pub sector: u64,
    /// IPA of the data buffer in the guest, any alignment (0 for a flush).
    pub buf_ipa: u64,
    /// Bytes: a multiple of the sector size, 1 to 128 sectors
    /// ([`crate::block::BLOCK_TRANSFER_MAX`]); 0 for a flush.
    pub len: u32,
    /// Zero.
    pub reserved: u32,
}

assert_layout!(BlockDesc, size = 32, {
    op = 0,
    status = 4,
    sector = 8,
    buf_ipa = 16,
    len = 24,
    reserved = 28,
});

impl BlockDesc {
    /// Read sectors into the buffer.
    pub const READ: u32 = 0;
    /// Write the buffer to sectors.
    pub const WRITE: u32 = 1;
    /// Make earlier writes durable.
    pub const FLUSH: u32 = 2;
    /// Size of a slot in bytes.
    pub const SIZE: usize = core::mem::size_of::<BlockDesc>();

    /// Decodes a slot's bytes (little-endian), as a hypervisor copies it out of the ring.
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> BlockDesc {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | u64::from(u32_at(i + 4)) << 32;
        BlockDesc {
            op: u32_at(0),
            status: u32_at(4) as i32,
            sector: u64_at(8),
            buf_ipa: u64_at(16),
            len: u32_at(24),
            reserved: u32_at(28),
        }
    }

    /// The slot's bytes (little-endian).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0; Self::SIZE];
        b[0..4].copy_from_slice(&self.op.to_le_bytes());
        b[4..8].copy_from_slice(&self.status.to_le_bytes());
        b[8..16].copy_from_slice(&self.sector.to_le_bytes());
        b[16..24].copy_from_slice(&self.buf_ipa.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..32].copy_from_slice(&self.reserved.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::BlockDesc;

    #[test]
    fn block_desc_bytes_round_trip() {
        let d = BlockDesc {
            op: BlockDesc::WRITE,
            status: -9,
            sector: 0x1122_3344_5566_7788,
            buf_ipa: 0x2_0000_1000,
            len: 4096,
            reserved: 7,
        };
        assert_eq!(BlockDesc::from_bytes(&d.to_bytes()), d);
        assert_eq!(d.to_bytes()[8], 0x88);
    }
}

/// A channel message slot: up to 56 bytes inline.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ChannelDesc {
    /// Bytes of `data` in use.
    pub len: u32,
    /// Reserved (0).
    pub flags: u32,
    /// The message.
    pub data: [u8; 56],
}

assert_layout!(ChannelDesc, size = 64, { len = 0, flags = 4, data = 8 });
