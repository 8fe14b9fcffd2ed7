//! The console output ring's producer side: bytes go into the shared ring page, the
//! `CONSOLE_NOTIFY` doorbell tells the hypervisor to take them. One hypercall per line (or per
//! ring-full), never per character.

use hypercall_abi::console::CONSOLE_RING_ENTRIES;

/// The shared ring as the producer sees it.
pub trait RingSide {
    /// The consumer index the hypervisor last wrote.
    fn consumer(&self) -> u32;
    /// Writes the byte of slot `index` (already reduced modulo the ring size).
    fn set_slot(&mut self, index: u32, byte: u8);
    /// Writes consecutive slots from `index` (no wrap inside `bytes`).
    fn set_slots(&mut self, index: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.set_slot(index + i as u32, b);
        }
    }
    /// Publishes the producer index (after the slots it covers).
    fn publish(&mut self, producer: u32);
}

/// Puts `bytes` into the ring after `*producer`, ringing `doorbell` whenever the ring is full
/// and once at the end. Stops early if a doorbell makes no room (the hypervisor is gone).
pub fn send<R: RingSide>(
    ring: &mut R,
    producer: &mut u32,
    bytes: &[u8],
    mut doorbell: impl FnMut(&mut R),
) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let used = producer.wrapping_sub(ring.consumer());
        let room = CONSOLE_RING_ENTRIES.saturating_sub(used) as usize;
        if room == 0 {
            doorbell(ring);
            if producer.wrapping_sub(ring.consumer()) >= CONSOLE_RING_ENTRIES {
                return;
            }
            continue;
        }
        let (now, later) = rest.split_at(room.min(rest.len()));
        // In at most two runs: up to the end of the slots, then from the start.
        let start = *producer % CONSOLE_RING_ENTRIES;
        let first = now.len().min((CONSOLE_RING_ENTRIES - start) as usize);
        ring.set_slots(start, &now[..first]);
        if first < now.len() {
            ring.set_slots(0, &now[first..]);
        }
        *producer = producer.wrapping_add(now.len() as u32);
        ring.publish(*producer);
        rest = later;
    }
    doorbell(ring);
}

#[cfg(target_os = "none")]
pub use target::SharedRing;

#[cfg(target_os = "none")]
mod target {
    use super::RingSide;
    use core::mem::offset_of;
    use core::sync::atomic::{Ordering, fence};
    use hypercall_abi::layout::RingHeader;

    /// The ring page the hypervisor mapped at `BootInfo::console_ring_ipa` (VA = IPA).
    pub struct SharedRing(pub u64);

    impl RingSide for SharedRing {
        fn consumer(&self) -> u32 {
            let at = self.0 + offset_of!(RingHeader, consumer) as u64;
            // SAFETY: an aligned u32 in the ring page, mapped for the VM's life.
            unsafe { core::ptr::read_volatile(at as *const u32) }
        }

        fn set_slot(&mut self, index: u32, byte: u8) {
            self.set_slots(index, &[byte]);
        }

        fn set_slots(&mut self, index: u32, bytes: &[u8]) {
            let mut at = self.0 + RingHeader::SLOTS_OFFSET as u64 + u64::from(index);
            // A word a load and a store, unaligned as they may be (the ring and the caller's
            // bytes are Normal memory, SCTLR_EL1.A is clear): the target is built with strict
            // alignment, where the generic memcpy and an unaligned u64 go a byte at a time.
            let mut pairs = bytes.chunks_exact(16);
            for pair in &mut pairs {
                // SAFETY: as for the words below, 16 bytes.
                unsafe {
                    core::arch::asm!("ldp {a}, {b}, [{from}]", "stp {a}, {b}, [{to}]",
                        from = in(reg) pair.as_ptr(), to = in(reg) at, a = out(reg) _,
                        b = out(reg) _, options(nostack, preserves_flags))
                };
                at += 16;
            }
            let mut words = pairs.remainder().chunks_exact(8);
            for word in &mut words {
                // SAFETY: index + bytes.len() <= CONSOLE_RING_ENTRIES (the caller splits at
                // the wrap), so the slots are inside the ring page; `word` is 8 readable
                // bytes. The hypervisor reads the slots only after the producer index is
                // published behind a release fence and a doorbell.
                unsafe {
                    core::arch::asm!("ldr {t}, [{from}]", "str {t}, [{to}]",
                        from = in(reg) word.as_ptr(), to = in(reg) at, t = out(reg) _,
                        options(nostack, preserves_flags))
                };
                at += 8;
            }
            for &byte in words.remainder() {
                // SAFETY: as above.
                unsafe { (at as *mut u8).write(byte) };
                at += 1;
            }
        }

        fn publish(&mut self, producer: u32) {
            // The slots before the index: the hypervisor reads them after it reads the index.
            fence(Ordering::Release);
            let at = self.0 + offset_of!(RingHeader, producer) as u64;
            // SAFETY: an aligned u32 in the ring page.
            unsafe { core::ptr::write_volatile(at as *mut u32, producer) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A ring whose doorbell drains it, as the hypervisor does.
    struct FakeRing {
        slots: Vec<u8>,
        producer: u32,
        consumer: u32,
        drained: Vec<u8>,
    }

    impl RingSide for FakeRing {
        fn consumer(&self) -> u32 {
            self.consumer
        }
        fn set_slot(&mut self, index: u32, byte: u8) {
            self.slots[index as usize] = byte;
        }
        fn publish(&mut self, producer: u32) {
            self.producer = producer;
        }
    }

    impl FakeRing {
        fn drain(&mut self) {
            while self.consumer != self.producer {
                self.drained
                    .push(self.slots[(self.consumer % CONSOLE_RING_ENTRIES) as usize]);
                self.consumer = self.consumer.wrapping_add(1);
            }
        }
    }

    fn ring(start: u32) -> FakeRing {
        FakeRing {
            slots: vec![0; CONSOLE_RING_ENTRIES as usize],
            producer: start,
            consumer: start,
            drained: Vec::new(),
        }
    }

    #[test]
    fn a_line_is_one_doorbell() {
        let mut r = ring(0);
        let mut producer = 0;
        let mut rings = 0;
        send(&mut r, &mut producer, b"hello\n", |_| rings += 1);
        assert_eq!((rings, r.producer), (1, 6));
    }

    #[test]
    fn more_than_a_ring_rings_when_full_and_wraps_the_counters() {
        let mut r = ring(u32::MAX - 100);
        let mut producer = r.producer;
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        send(&mut r, &mut producer, &data, FakeRing::drain);
        assert_eq!(r.drained, data);
    }

    #[test]
    fn a_doorbell_that_takes_only_part_loses_nothing() {
        // A hypervisor that took a bounded chunk per doorbell and no more: the sender still
        // makes progress at each full ring, and what the last doorbell leaves waits in the
        // ring (the hypervisor continues that doorbell until it has taken it all).
        let mut r = ring(7);
        let mut producer = r.producer;
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        send(&mut r, &mut producer, &data, |r| {
            for _ in 0..300 {
                if r.consumer == r.producer {
                    break;
                }
                r.drained
                    .push(r.slots[(r.consumer % CONSOLE_RING_ENTRIES) as usize]);
                r.consumer = r.consumer.wrapping_add(1);
            }
        });
        r.drain();
        assert_eq!(r.drained, data);
    }

    #[test]
    fn a_dead_consumer_does_not_hang_the_guest() {
        let mut r = ring(0);
        let mut producer = 0;
        send(&mut r, &mut producer, &[b'x'; 3000], |_| {});
        assert_eq!(producer, CONSOLE_RING_ENTRIES);
    }
}
