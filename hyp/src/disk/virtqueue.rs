//! A split virtqueue (virtio 1.1 §2.6) for a driver with one request in flight: the layout of
//! its page and the ring arithmetic, over a [`QueueMemory`] so the host tests can play the
//! device. One page holds everything, at offsets that suit both virtio-mmio transports
//! (legacy places the used ring at the next [`USED_ALIGN`] boundary after the available ring).

/// Entries of the queue (a power of two; a request uses at most 18: its header, the 16 pages
/// of a 64 KiB bounce buffer and its status).
pub const QUEUE_SIZE: u16 = 32;
/// The descriptor table: 16 bytes per entry (addr u64, len u32, flags u16, next u16).
pub const DESC_OFFSET: usize = 0;
/// The available ring: flags u16, idx u16, ring[QUEUE_SIZE] u16, used_event u16.
pub const AVAIL_OFFSET: usize = DESC_OFFSET + 16 * QUEUE_SIZE as usize;
/// The used ring's alignment for a legacy device (its `QueueAlign`).
pub const USED_ALIGN: usize = 256;
/// The used ring: flags u16, idx u16, ring[QUEUE_SIZE] of (id u32, len u32), avail_event u16.
pub const USED_OFFSET: usize =
    (AVAIL_OFFSET + 6 + 2 * QUEUE_SIZE as usize).next_multiple_of(USED_ALIGN);
/// Free for the driver after the used ring (a virtio-blk request header and status byte).
pub const DRIVER_AREA: usize = (USED_OFFSET + 6 + 8 * QUEUE_SIZE as usize).next_multiple_of(64);

const _: () = assert!(QUEUE_SIZE.is_power_of_two());
// A legacy device computes the used ring's place itself: align(avail + 4 + 2 * size,
// QueueAlign). A modern one takes any aligned addresses, so the same page serves both.
const _: () = assert!(
    USED_OFFSET == (AVAIL_OFFSET + 4 + 2 * QUEUE_SIZE as usize).next_multiple_of(USED_ALIGN)
);
const _: () = assert!(DRIVER_AREA + 64 <= 4096);

/// Every chain starts at descriptor 0 (one chain at a time): the id its used element names.
const HEAD: u16 = 0;

/// Descriptor flag: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer (else it reads it).
pub const DESC_F_WRITE: u16 = 2;

/// The queue's page as the driver reaches it.
pub trait QueueMemory {
    fn read_u16(&self, offset: usize) -> u16;
    fn read_u32(&self, offset: usize) -> u32;
    fn write_u16(&mut self, offset: usize, value: u16);
    fn write_u32(&mut self, offset: usize, value: u32);
    fn write_u64(&mut self, offset: usize, value: u64);
    /// Orders the accesses before it against those after it, for the device too.
    fn barrier(&self);
}

/// One buffer of a request: a physical address the device reaches, its length, and who
/// writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub addr: u64,
    pub len: u32,
    pub device_writes: bool,
}

/// The driver's indices. The device owns the rest of the state, in the page.
#[derive(Debug, Default)]
pub struct SplitQueue {
    next_avail: u16,
    last_used: u16,
    /// The chain the device has not used yet: the bytes it may write into it.
    in_flight: Option<u32>,
}

/// A used ring that does not answer the one chain in flight: the device is not to be trusted
/// with the next request either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadUsed {
    /// The used index moved with no chain in flight, or by more than the one chain.
    Step,
    /// The used element names another chain than the one published (its head is descriptor 0).
    Id,
    /// The device says it wrote more bytes than the chain's device-written buffers hold.
    Len,
}

impl BadUsed {
    /// What the device did, for the one log line.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Step => "the used index moved by other than the one request in flight",
            Self::Id => "the used element names another chain",
            Self::Len => "the used length exceeds the request's device-written buffers",
        }
    }
}

impl SplitQueue {
    /// Offers `chain` (1..=QUEUE_SIZE buffers) to the device as descriptors 0.. and publishes
    /// its head in the available ring. One chain at a time: the previous one must be used.
    pub fn publish(&mut self, mem: &mut impl QueueMemory, chain: &[Buffer]) {
        debug_assert!(!chain.is_empty() && chain.len() <= QUEUE_SIZE as usize);
        for (i, b) in chain.iter().enumerate() {
            let d = DESC_OFFSET + 16 * i;
            let mut flags = if b.device_writes { DESC_F_WRITE } else { 0 };
            if i + 1 < chain.len() {
                flags |= DESC_F_NEXT;
            }
            mem.write_u64(d, b.addr);
            mem.write_u32(d + 8, b.len);
            mem.write_u16(d + 12, flags);
            mem.write_u16(d + 14, (i + 1) as u16 % QUEUE_SIZE);
        }
        let writable = chain
            .iter()
            .filter(|b| b.device_writes)
            .fold(0u32, |sum, b| sum.saturating_add(b.len));
        self.in_flight = Some(writable);
        let slot = (self.next_avail % QUEUE_SIZE) as usize;
        mem.write_u16(AVAIL_OFFSET + 4 + 2 * slot, HEAD);
        self.next_avail = self.next_avail.wrapping_add(1);
        // The descriptors and the ring entry before the index that publishes them.
        mem.barrier();
        mem.write_u16(AVAIL_OFFSET + 2, self.next_avail);
        mem.barrier();
    }

    /// If the used index moved: the bytes the device wrote into the chain in flight, or how
    /// the used ring fails to answer exactly that chain. Either way the chain is no longer in
    /// flight and the index is taken as the device left it.
    pub fn poll(&mut self, mem: &impl QueueMemory) -> Option<Result<u32, BadUsed>> {
        let used = mem.read_u16(USED_OFFSET + 2);
        if used == self.last_used {
            return None;
        }
        // The used element after the index that announced it.
        mem.barrier();
        let slot = (self.last_used % QUEUE_SIZE) as usize;
        let id = mem.read_u32(USED_OFFSET + 4 + 8 * slot);
        let len = mem.read_u32(USED_OFFSET + 4 + 8 * slot + 4);
        let step = used.wrapping_sub(self.last_used);
        self.last_used = used;
        let result = match self.in_flight.take() {
            Some(_) if step != 1 => Err(BadUsed::Step),
            None => Err(BadUsed::Step),
            Some(_) if id != u32::from(HEAD) => Err(BadUsed::Id),
            Some(writable) if len > writable => Err(BadUsed::Len),
            Some(_) => Ok(len),
        };
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A page of plain bytes.
    struct Page(Vec<u8>);

    impl QueueMemory for Page {
        fn read_u16(&self, o: usize) -> u16 {
            u16::from_le_bytes([self.0[o], self.0[o + 1]])
        }
        fn read_u32(&self, o: usize) -> u32 {
            u32::from_le_bytes(self.0[o..o + 4].try_into().unwrap())
        }
        fn write_u16(&mut self, o: usize, v: u16) {
            self.0[o..o + 2].copy_from_slice(&v.to_le_bytes());
        }
        fn write_u32(&mut self, o: usize, v: u32) {
            self.0[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn write_u64(&mut self, o: usize, v: u64) {
            self.0[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
        fn barrier(&self) {}
    }

    /// The device's side, written from the spec: takes what is available, walks each chain,
    /// reports it used with the bytes of its device-written buffers.
    struct Device {
        last_avail: u16,
        used_idx: u16,
    }

    impl Device {
        fn serve(&mut self, p: &mut Page) -> Vec<Vec<(u64, u32, bool)>> {
            let mut chains = Vec::new();
            while self.last_avail != p.read_u16(AVAIL_OFFSET + 2) {
                let slot = (self.last_avail % QUEUE_SIZE) as usize;
                let mut d = p.read_u16(AVAIL_OFFSET + 4 + 2 * slot) as usize;
                let head = d;
                let (mut chain, mut written) = (Vec::new(), 0);
                loop {
                    let at = DESC_OFFSET + 16 * d;
                    let addr = u64::from(p.read_u32(at)) | u64::from(p.read_u32(at + 4)) << 32;
                    let (len, flags) = (p.read_u32(at + 8), p.read_u16(at + 12));
                    let writes = flags & DESC_F_WRITE != 0;
                    written += if writes { len } else { 0 };
                    chain.push((addr, len, writes));
                    if flags & DESC_F_NEXT == 0 {
                        break;
                    }
                    d = p.read_u16(at + 14) as usize;
                }
                let u = USED_OFFSET + 4 + 8 * (self.used_idx % QUEUE_SIZE) as usize;
                p.write_u32(u, head as u32);
                p.write_u32(u + 4, written);
                self.used_idx = self.used_idx.wrapping_add(1);
                p.write_u16(USED_OFFSET + 2, self.used_idx);
                self.last_avail = self.last_avail.wrapping_add(1);
                chains.push(chain);
            }
            chains
        }
    }

    #[test]
    fn a_request_chain_reaches_the_device_and_comes_back_across_index_wraps() {
        let mut page = Page(vec![0; 4096]);
        let mut q = SplitQueue::default();
        let mut dev = Device {
            last_avail: 0,
            used_idx: 0,
        };
        let chain = [
            Buffer {
                addr: 0x1_0000_0400,
                len: 16,
                device_writes: false,
            },
            Buffer {
                addr: 0x2000,
                len: 4096,
                device_writes: true,
            },
            Buffer {
                addr: 0x1_0000_0410,
                len: 1,
                device_writes: true,
            },
        ];
        for round in 0..70_000u32 {
            assert_eq!(q.poll(&page), None, "nothing used before the device runs");
            q.publish(&mut page, &chain[..if round % 2 == 0 { 3 } else { 2 }]);
            let served = dev.serve(&mut page);
            assert_eq!(served.len(), 1);
            let want: Vec<_> = chain[..served[0].len()]
                .iter()
                .map(|b| (b.addr, b.len, b.device_writes))
                .collect();
            assert_eq!(served[0], want);
            let written = if round % 2 == 0 { 4097 } else { 4096 };
            assert_eq!(q.poll(&page), Some(Ok(written)));
        }
    }

    fn three_buffer_request() -> [Buffer; 3] {
        [
            Buffer {
                addr: 0x1000,
                len: 16,
                device_writes: false,
            },
            Buffer {
                addr: 0x2000,
                len: 512,
                device_writes: true,
            },
            Buffer {
                addr: 0x1010,
                len: 1,
                device_writes: true,
            },
        ]
    }

    fn used_element(page: &mut Page, slot: u16, id: u32, len: u32) {
        let u = USED_OFFSET + 4 + 8 * (slot % QUEUE_SIZE) as usize;
        page.write_u32(u, id);
        page.write_u32(u + 4, len);
    }

    #[test]
    fn a_used_index_moved_by_two_fails_the_request_and_the_next_one() {
        let mut page = Page(vec![0; 4096]);
        let mut q = SplitQueue::default();
        q.publish(&mut page, &three_buffer_request());
        used_element(&mut page, 0, 0, 513);
        used_element(&mut page, 1, 0, 513);
        page.write_u16(USED_OFFSET + 2, 2);
        assert_eq!(q.poll(&page), Some(Err(BadUsed::Step)));
        // The next request must not complete on the element the device wrote ahead.
        q.publish(&mut page, &three_buffer_request());
        assert_eq!(q.poll(&page), None);
        used_element(&mut page, 2, 0, 513);
        page.write_u16(USED_OFFSET + 2, 3);
        assert_eq!(q.poll(&page), Some(Ok(513)));
    }

    #[test]
    fn a_used_index_moved_with_nothing_in_flight_is_a_device_error() {
        let mut page = Page(vec![0; 4096]);
        let mut q = SplitQueue::default();
        page.write_u16(USED_OFFSET + 2, 1);
        assert_eq!(q.poll(&page), Some(Err(BadUsed::Step)));
        assert_eq!(q.poll(&page), None, "reported once");
    }

    #[test]
    fn a_used_element_for_another_chain_or_too_long_is_a_device_error() {
        let mut page = Page(vec![0; 4096]);
        let mut q = SplitQueue::default();
        q.publish(&mut page, &three_buffer_request());
        used_element(&mut page, 0, 5, 1);
        page.write_u16(USED_OFFSET + 2, 1);
        assert_eq!(q.poll(&page), Some(Err(BadUsed::Id)));
        q.publish(&mut page, &three_buffer_request());
        used_element(&mut page, 1, 0, 514);
        page.write_u16(USED_OFFSET + 2, 2);
        assert_eq!(q.poll(&page), Some(Err(BadUsed::Len)));
        q.publish(&mut page, &three_buffer_request());
        used_element(&mut page, 2, 0, 1);
        page.write_u16(USED_OFFSET + 2, 3);
        assert_eq!(
            q.poll(&page),
            Some(Ok(1)),
            "a device may write less than offered"
        );
    }
}
