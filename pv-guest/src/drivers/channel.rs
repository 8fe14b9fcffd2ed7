//! An inter-VM channel's front-end: the region holds one ring per direction (the hypervisor
//! wrote their headers); this VM produces on one and consumes the other, and rings the peer
//! with CHANNEL_NOTIFY. Messages are `ChannelDesc` slots of up to 56 bytes.

use hypercall_abi::ChannelInfo;
use hypercall_abi::layout::{ChannelDesc, RingHeader};

/// Shared memory as a ring end sees it (volatile on the target, a buffer in tests).
pub trait Shared {
    fn read_u32(&self, at: u64) -> u32;
    fn write_u32(&mut self, at: u64, value: u32);
    fn read_desc(&self, at: u64) -> ChannelDesc;
    fn write_desc(&mut self, at: u64, desc: &ChannelDesc);
}

/// Where the hypervisor maps a VM's first channel (`CHANNEL_INFO` says so; the snoop
/// program uses it to look where another VM's channel would be).
pub const CHANNEL_IPA: u64 = 0x40_0000_0000;

/// One VM's end: where its two rings are.
#[derive(Clone, Copy, Debug)]
pub struct Channel {
    pub tx: u64,
    pub rx: u64,
}

const PRODUCER: u64 = core::mem::offset_of!(RingHeader, producer) as u64;
const CONSUMER: u64 = core::mem::offset_of!(RingHeader, consumer) as u64;
const ENTRIES: u64 = core::mem::offset_of!(RingHeader, entries) as u64;
const SLOTS: u64 = RingHeader::SLOTS_OFFSET as u64;
const SLOT: u64 = core::mem::size_of::<ChannelDesc>() as u64;

impl Channel {
    /// The rings of a channel as CHANNEL_INFO describes it.
    pub fn new(info: &ChannelInfo) -> Self {
        let second = info.ipa + info.pages * 4096 / 2;
        if info.flags & ChannelInfo::SENDS_ON_FIRST != 0 {
            Self {
                tx: info.ipa,
                rx: second,
            }
        } else {
            Self {
                tx: second,
                rx: info.ipa,
            }
        }
    }

    /// Queues a message; false if the ring is full (or the message too long).
    pub fn send(&self, mem: &mut impl Shared, message: &[u8]) -> bool {
        let entries = mem.read_u32(self.tx + ENTRIES);
        let producer = mem.read_u32(self.tx + PRODUCER);
        let consumer = mem.read_u32(self.tx + CONSUMER);
        if entries == 0 || producer.wrapping_sub(consumer) >= entries || message.len() > 56 {
            return false;
        }
        let mut desc = ChannelDesc {
            len: message.len() as u32,
            flags: 0,
            data: [0; 56],
        };
        desc.data[..message.len()].copy_from_slice(message);
        mem.write_desc(
            self.tx + SLOTS + u64::from(producer % entries) * SLOT,
            &desc,
        );
        mem.write_u32(self.tx + PRODUCER, producer.wrapping_add(1));
        true
    }

    /// Takes the next message, if one is waiting (its length is clamped to 56).
    pub fn receive(&self, mem: &mut impl Shared) -> Option<ChannelDesc> {
        let entries = mem.read_u32(self.rx + ENTRIES);
        let producer = mem.read_u32(self.rx + PRODUCER);
        let consumer = mem.read_u32(self.rx + CONSUMER);
        if entries == 0 || producer == consumer {
            return None;
        }
        let mut desc = mem.read_desc(self.rx + SLOTS + u64::from(consumer % entries) * SLOT);
        desc.len = desc.len.min(56);
        mem.write_u32(self.rx + CONSUMER, consumer.wrapping_add(1));
        Some(desc)
    }
}

#[cfg(target_os = "none")]
pub use target::Volatile;

#[cfg(target_os = "none")]
mod target {
    use super::Shared;
    use core::sync::atomic::{Ordering, fence};
    use hypercall_abi::layout::ChannelDesc;

    /// The mapped region itself (VA = IPA).
    pub struct Volatile;

    impl Shared for Volatile {
        fn read_u32(&self, at: u64) -> u32 {
            // SAFETY: an aligned u32 of the channel region, mapped for the VM's life.
            let v = unsafe { core::ptr::read_volatile(at as *const u32) };
            fence(Ordering::Acquire);
            v
        }
        fn write_u32(&mut self, at: u64, value: u32) {
            fence(Ordering::Release);
            // SAFETY: as in read_u32.
            unsafe { core::ptr::write_volatile(at as *mut u32, value) }
        }
        fn read_desc(&self, at: u64) -> ChannelDesc {
            // SAFETY: a slot inside the region (entries and offsets come from its header, which
            // only the hypervisor wrote); ChannelDesc is plain integers and bytes.
            unsafe { core::ptr::read_volatile(at as *const ChannelDesc) }
        }
        fn write_desc(&mut self, at: u64, desc: &ChannelDesc) {
            // SAFETY: as in read_desc.
            unsafe { core::ptr::write_volatile(at as *mut ChannelDesc, *desc) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    struct Buffer(Vec<u8>);

    impl Shared for Buffer {
        fn read_u32(&self, at: u64) -> u32 {
            u32::from_le_bytes(self.0[at as usize..at as usize + 4].try_into().unwrap())
        }
        fn write_u32(&mut self, at: u64, value: u32) {
            self.0[at as usize..at as usize + 4].copy_from_slice(&value.to_le_bytes());
        }
        fn read_desc(&self, at: u64) -> ChannelDesc {
            let b = &self.0[at as usize..at as usize + 64];
            let mut data = [0; 56];
            data.copy_from_slice(&b[8..]);
            ChannelDesc {
                len: self.read_u32(at),
                flags: self.read_u32(at + 4),
                data,
            }
        }
        fn write_desc(&mut self, at: u64, d: &ChannelDesc) {
            self.write_u32(at, d.len);
            self.write_u32(at + 4, d.flags);
            self.0[at as usize + 8..at as usize + 64].copy_from_slice(&d.data);
        }
    }

    /// A one-page region with the headers the hypervisor writes (16 slots per direction).
    fn region() -> Buffer {
        let mut b = Buffer(vec![0; 4096]);
        for base in [0u64, 2048] {
            b.write_u32(base + ENTRIES, 16);
        }
        b
    }

    #[test]
    fn the_two_ends_talk_in_both_directions() {
        let mut mem = region();
        let info = |flags| ChannelInfo {
            ipa: 0,
            pages: 1,
            peer_vm: 1,
            flags,
        };
        let (a, b) = (
            Channel::new(&info(ChannelInfo::SENDS_ON_FIRST)),
            Channel::new(&info(0)),
        );
        assert!(a.send(&mut mem, b"ping"));
        let got = b.receive(&mut mem).unwrap();
        assert_eq!(&got.data[..got.len as usize], b"ping");
        assert!(b.receive(&mut mem).is_none());
        assert!(b.send(&mut mem, b"pong"));
        assert_eq!(&a.receive(&mut mem).unwrap().data[..4], b"pong");
    }

    #[test]
    fn a_full_ring_refuses_and_a_lying_length_is_clamped() {
        let mut mem = region();
        let a = Channel { tx: 0, rx: 2048 };
        let b = Channel { tx: 2048, rx: 0 };
        for _ in 0..16 {
            assert!(a.send(&mut mem, b"x"));
        }
        assert!(!a.send(&mut mem, b"x"), "full");
        assert!(!a.send(&mut mem, &[0; 57]), "too long");
        mem.write_u32(SLOTS, 9999);
        assert_eq!(b.receive(&mut mem).unwrap().len, 56);
    }
}
