//! Single-producer single-consumer rings in shared pages: console input, block requests,
//! channel messages. The header is live since 1.2 (the console output ring); the block and
//! channel slot layouts are provisional.
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

/// A block request slot. The guest fills everything but `status`; the hypervisor writes `status`
/// before advancing the consumer.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BlockDesc {
    /// [`BlockDesc::READ`], [`BlockDesc::WRITE`] or [`BlockDesc::FLUSH`].
    pub op: u32,
    /// 0 or a negative [`crate::Error`] code (as i32).
    pub status: i32,
    /// First sector.
    pub sector: u64,
    /// IPA of the data buffer in the guest.
    pub buf_ipa: u64,
    /// Bytes, a multiple of the sector size.
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
