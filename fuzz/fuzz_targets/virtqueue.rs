//! The virtqueue driver (`hyp/src/disk/virtqueue.rs`) against a device that may misbehave:
//! the used ring is written by the device, so whatever it holds, the driver reads only its own
//! queue page's used ring, writes only the descriptors and the available ring, and reports an
//! answer exactly when the used index moved: a completion only when the index moved by one
//! with a chain in flight and the element names that chain with no more bytes than its
//! device-written buffers hold, else a device error. With an honest device, every chain
//! arrives as published and comes back with the bytes the device wrote, across index wraps.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pvhyp_fuzz::virtqueue::{
    AVAIL_OFFSET, Buffer, DESC_F_NEXT, DESC_F_WRITE, DESC_OFFSET, QUEUE_SIZE, QueueMemory,
    SplitQueue, USED_OFFSET,
};
use std::ops::Range;

const QS: usize = QUEUE_SIZE as usize;
const DESCRIPTORS: Range<usize> = DESC_OFFSET..DESC_OFFSET + 16 * QS;
/// flags, idx, ring[QS] (the driver does not write used_event).
const AVAIL: Range<usize> = AVAIL_OFFSET..AVAIL_OFFSET + 4 + 2 * QS;
/// flags, idx, ring[QS] of (id, len) (the driver does not read avail_event).
const USED: Range<usize> = USED_OFFSET..USED_OFFSET + 4 + 8 * QS;

/// The queue's page, checking that the driver keeps to its parts of it.
struct Page(Vec<u8>);

impl Page {
    fn get<const N: usize>(&self, o: usize) -> [u8; N] {
        self.0[o..o + N].try_into().unwrap()
    }
    fn put(&mut self, o: usize, bytes: &[u8]) {
        self.0[o..o + bytes.len()].copy_from_slice(bytes);
    }
    fn driver_reads(&self, o: usize, len: usize) {
        assert!(
            USED.start <= o && o + len <= USED.end,
            "driver read at {o:#x}"
        );
    }
    fn driver_writes(&self, o: usize, len: usize) {
        let inside = |r: &Range<usize>| r.start <= o && o + len <= r.end;
        assert!(
            inside(&DESCRIPTORS) || inside(&AVAIL),
            "driver write at {o:#x}"
        );
    }
}

impl QueueMemory for Page {
    fn read_u16(&self, o: usize) -> u16 {
        self.driver_reads(o, 2);
        u16::from_le_bytes(self.get(o))
    }
    fn read_u32(&self, o: usize) -> u32 {
        self.driver_reads(o, 4);
        u32::from_le_bytes(self.get(o))
    }
    fn write_u16(&mut self, o: usize, v: u16) {
        self.driver_writes(o, 2);
        self.put(o, &v.to_le_bytes());
    }
    fn write_u32(&mut self, o: usize, v: u32) {
        self.driver_writes(o, 4);
        self.put(o, &v.to_le_bytes());
    }
    fn write_u64(&mut self, o: usize, v: u64) {
        self.driver_writes(o, 8);
        self.put(o, &v.to_le_bytes());
    }
    fn barrier(&self) {}
}

#[derive(Arbitrary, Debug)]
struct Buf {
    addr: u64,
    len: u32,
    device_writes: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The driver offers a chain (1..=QUEUE_SIZE buffers; the first ones of the list).
    Publish(Vec<Buf>),
    /// The device takes what is available and reports it used, as the spec says.
    Serve,
    /// The device (or anything else with access) writes bytes anywhere in the page.
    Scribble { offset: u16, bytes: Vec<u8> },
    /// The device moves the used index without writing an element.
    SetUsedIdx(u16),
    /// The driver looks for a completion.
    Poll,
}

/// The device's side, honest: its own index into the available ring.
struct Device {
    last_avail: u16,
    used_idx: u16,
}

fn le16(p: &Page, o: usize) -> u16 {
    u16::from_le_bytes(p.get(o))
}

fn le32(p: &Page, o: usize) -> u32 {
    u32::from_le_bytes(p.get(o))
}

impl Device {
    /// Serves every available chain; returns the last one's buffers as (addr, len, writes).
    fn serve(&mut self, p: &mut Page) -> Option<Vec<(u64, u32, bool)>> {
        let mut last = None;
        let mut rounds = 0;
        while self.last_avail != le16(p, AVAIL_OFFSET + 2) && rounds < QS {
            rounds += 1;
            let slot = (self.last_avail % QUEUE_SIZE) as usize;
            let head = le16(p, AVAIL_OFFSET + 4 + 2 * slot) as usize % QS;
            let (mut chain, mut written, mut d) = (Vec::new(), 0u32, head);
            // A device bounds its walk by the queue size (a scribbled chain may loop).
            for _ in 0..QS {
                let at = DESC_OFFSET + 16 * d;
                let addr = u64::from_le_bytes(p.get(at));
                let (len, flags) = (le32(p, at + 8), le16(p, at + 12));
                let writes = flags & DESC_F_WRITE != 0;
                written = written.wrapping_add(if writes { len } else { 0 });
                chain.push((addr, len, writes));
                if flags & DESC_F_NEXT == 0 {
                    break;
                }
                d = le16(p, at + 14) as usize % QS;
            }
            let u = USED_OFFSET + 4 + 8 * (self.used_idx % QUEUE_SIZE) as usize;
            p.put(u, &(head as u32).to_le_bytes());
            p.put(u + 4, &written.to_le_bytes());
            self.used_idx = self.used_idx.wrapping_add(1);
            p.put(USED_OFFSET + 2, &self.used_idx.to_le_bytes());
            self.last_avail = self.last_avail.wrapping_add(1);
            last = Some(chain);
        }
        last
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut page = Page(vec![0; 4096]);
    let mut queue = SplitQueue::default();
    let mut device = Device {
        last_avail: 0,
        used_idx: 0,
    };
    // The driver's view, kept here independently: the used index it has seen up to, and the
    // bytes the device may write into the chain in flight.
    let mut last_used = 0u16;
    let mut in_flight: Option<u32> = None;
    // The chain in flight, while nothing but the honest device touched the page.
    let mut clean: Option<Vec<Buf>> = None;
    let mut tampered = false;
    for op in ops.into_iter().take(256) {
        match op {
            Op::Publish(bufs) => {
                let bufs: Vec<Buf> = bufs.into_iter().take(QS).collect();
                if bufs.is_empty() {
                    continue;
                }
                let chain: Vec<Buffer> = bufs
                    .iter()
                    .map(|b| Buffer {
                        addr: b.addr,
                        len: b.len,
                        device_writes: b.device_writes,
                    })
                    .collect();
                // One chain at a time (the driver's contract): publish after the last is used.
                let idle = device.last_avail == le16(&page, AVAIL_OFFSET + 2)
                    && le16(&page, USED_OFFSET + 2) == last_used;
                if !idle && !tampered {
                    continue;
                }
                queue.publish(&mut page, &chain);
                in_flight = Some(
                    chain
                        .iter()
                        .filter(|b| b.device_writes)
                        .fold(0u32, |sum, b| sum.saturating_add(b.len)),
                );
                // Every descriptor link the driver wrote stays inside the table.
                for i in 0..chain.len() {
                    assert!(le16(&page, DESC_OFFSET + 16 * i + 14) < QUEUE_SIZE);
                }
                clean = (!tampered).then_some(bufs);
            }
            Op::Serve => {
                if let (Some(chain), Some(want)) = (device.serve(&mut page), clean.take()) {
                    let want: Vec<_> = want
                        .iter()
                        .map(|b| (b.addr, b.len, b.device_writes))
                        .collect();
                    assert_eq!(chain, want, "the device saw another chain than published");
                    let written: u32 = want
                        .iter()
                        .filter(|b| b.2)
                        .fold(0u32, |sum, b| sum.wrapping_add(b.1));
                    assert_eq!(queue.poll(&page), Some(Ok(written)));
                    last_used = last_used.wrapping_add(1);
                    in_flight = None;
                }
            }
            Op::Scribble { offset, bytes } => {
                let at = usize::from(offset) % 4096;
                let n = bytes.len().min(4096 - at);
                page.put(at, &bytes[..n]);
                tampered = true;
                clean = None;
            }
            Op::SetUsedIdx(idx) => {
                page.put(USED_OFFSET + 2, &idx.to_le_bytes());
                tampered = true;
                clean = None;
            }
            Op::Poll => {
                let used = le16(&page, USED_OFFSET + 2);
                let slot = USED_OFFSET + 4 + 8 * (last_used % QUEUE_SIZE) as usize;
                let (id, len) = (le32(&page, slot), le32(&page, slot + 4));
                let answer = queue.poll(&page);
                if used == last_used {
                    assert_eq!(answer, None);
                    continue;
                }
                let answers_the_chain = used == last_used.wrapping_add(1)
                    && id == 0
                    && in_flight.is_some_and(|writable| len <= writable);
                match answer {
                    Some(Ok(n)) => assert!(answers_the_chain && n == len, "{answer:?}"),
                    Some(Err(_)) => assert!(!answers_the_chain, "a good answer refused"),
                    None => panic!("the used index moved unseen"),
                }
                last_used = used;
                in_flight = None;
            }
        }
    }
});
