//! The block front-end: requests go into the shared ring at `BootInfo::block_ring_ipa`, the
//! `BLOCK_SUBMIT` doorbell hands them to the hypervisor, and completion is the block event,
//! waited for in WFI. Sector numbers are the VM's own (its region of the disk starts at 0).
//!
//! Buffers are passed by address: pv-guest's stage 1 is the identity map, so a buffer's VA is
//! its IPA.

use hypercall_abi::block::{BLOCK_SECTOR_SIZE, BLOCK_TRANSFER_MAX};
use hypercall_abi::layout::BlockDesc;

/// What a descriptor's status holds until the hypervisor has written it.
pub const PENDING: i32 = 1;

/// The descriptors of a transfer of `len` bytes at `sector` from/to `buf_ipa`, at most
/// [`BLOCK_TRANSFER_MAX`] bytes each.
pub fn split(op: u32, sector: u64, buf_ipa: u64, len: usize) -> impl Iterator<Item = BlockDesc> {
    let max = BLOCK_TRANSFER_MAX as usize;
    (0..len).step_by(max).map(move |off| BlockDesc {
        op,
        status: PENDING,
        sector: sector + (off / BLOCK_SECTOR_SIZE as usize) as u64,
        buf_ipa: buf_ipa + off as u64,
        len: max.min(len - off) as u32,
        reserved: 0,
    })
}

#[cfg(target_os = "none")]
pub use target::Block;

#[cfg(target_os = "none")]
mod target {
    use super::*;
    use crate::{events, hv};
    use core::mem::offset_of;
    use core::sync::atomic::{Ordering, fence};
    use hypercall_abi::block::BLOCK_RING_ENTRIES;
    use hypercall_abi::layout::RingHeader;
    use hypercall_abi::{BootInfo, Error};

    /// The VM's disk region, through its request ring.
    pub struct Block {
        ring: u64,
        producer: u32,
        event: u32,
        /// Sectors in the VM's region.
        pub sectors: u64,
    }

    impl Block {
        /// The VM's disk, if the manifest gave it a region (else `NOT_SUPPORTED`).
        pub fn open(info: &'static BootInfo) -> Result<Block, Error> {
            let disk = hv().block_info()?;
            if info.block_ring_ipa == 0 || disk.sector_size != BLOCK_SECTOR_SIZE {
                return Err(Error::NotSupported);
            }
            hv().event_unmask(info.block_event)?;
            let mut block = Block {
                ring: info.block_ring_ipa,
                producer: 0,
                event: info.block_event,
                sectors: disk.sectors,
            };
            block.producer = block.consumer();
            Ok(block)
        }

        fn consumer(&self) -> u32 {
            let at = self.ring + offset_of!(RingHeader, consumer) as u64;
            // SAFETY: an aligned u32 of the ring page, mapped read-write for the VM's life.
            unsafe { core::ptr::read_volatile(at as *const u32) }
        }

        fn slot(&self, index: u32) -> *mut BlockDesc {
            let slot = index % BLOCK_RING_ENTRIES;
            (self.ring + RingHeader::SLOTS_OFFSET as u64 + u64::from(slot) * 32) as *mut BlockDesc
        }

        /// Puts `descs` (at most a ring's worth) into the ring as they are, rings the
        /// doorbell with `producer` (normally the index after them; a test may lie), waits
        /// until the ring's consumer index has passed what the doorbell took (none taken: no
        /// wait) and rings again for the rest while it took some but not all (the hypervisor
        /// takes no more than the VM's request slots hold), and writes each one's status into
        /// `status`. The descriptors taken, or the doorbell's own error.
        pub fn submit_raw(
            &mut self,
            descs: &[BlockDesc],
            producer_delta: u32,
            status: &mut [i32],
        ) -> Result<u32, Error> {
            let first = self.producer;
            for (i, d) in descs.iter().take(BLOCK_RING_ENTRIES as usize).enumerate() {
                // SAFETY: the slot is inside the ring page (index reduced modulo the ring).
                unsafe { core::ptr::write_volatile(self.slot(first + i as u32), *d) };
            }
            // The slots before the index the hypervisor reads them by.
            fence(Ordering::Release);
            let producer = first.wrapping_add(producer_delta);
            let at = self.ring + offset_of!(RingHeader, producer) as u64;
            // SAFETY: an aligned u32 of the ring page.
            unsafe { core::ptr::write_volatile(at as *mut u32, producer) };
            let mut taken = 0u32;
            loop {
                let now = hv().block_submit(producer)?;
                if now == 0 {
                    // The hypervisor raises the block event only when descriptors complete.
                    break;
                }
                taken = taken.wrapping_add(now);
                let done = first.wrapping_add(taken);
                events::wait(self.event, || self.consumer() == done);
                // The raise that announced these completions: consumed, so no stale event
                // wakes a later WFI.
                let _ = hv().event_ack(self.event);
                if done == producer {
                    break;
                }
            }
            fence(Ordering::Acquire);
            self.producer = self.consumer();
            for (i, s) in status.iter_mut().enumerate().take(taken as usize) {
                // SAFETY: as above; the hypervisor wrote the status before the consumer.
                *s = unsafe { core::ptr::read_volatile(self.slot(first + i as u32)) }.status;
            }
            Ok(taken)
        }

        /// Puts `descs` (at most a ring's worth) into the ring after the last and rings the
        /// doorbell, without waiting for them: the descriptors taken. For a VM that is about
        /// to end or restart with requests in flight (the driver is not used after it).
        pub fn post(&mut self, descs: &[BlockDesc]) -> Result<u32, Error> {
            let n = descs.len().min(BLOCK_RING_ENTRIES as usize);
            for (i, d) in descs[..n].iter().enumerate() {
                // SAFETY: the slot is inside the ring page (index reduced modulo the ring).
                unsafe { core::ptr::write_volatile(self.slot(self.producer + i as u32), *d) };
            }
            fence(Ordering::Release);
            hv().block_submit(self.producer.wrapping_add(n as u32))
        }

        /// The ring's consumer index, as the hypervisor last wrote it.
        pub fn consumer_index(&self) -> u32 {
            self.consumer()
        }

        /// Submits `descs` and fails with the first error among the doorbell and them.
        fn run(&mut self, descs: impl Iterator<Item = BlockDesc>) -> Result<(), Error> {
            let mut batch = [BlockDesc::from_bytes(&[0; 32]); BLOCK_RING_ENTRIES as usize];
            let mut descs = descs.peekable();
            while descs.peek().is_some() {
                let mut n = 0;
                for d in descs.by_ref().take(batch.len()) {
                    batch[n] = d;
                    n += 1;
                }
                let mut status = [PENDING; BLOCK_RING_ENTRIES as usize];
                self.submit_raw(&batch[..n], n as u32, &mut status)?;
                if let Some(&code) = status[..n].iter().find(|&&s| s != 0) {
                    return Err(Error::from_code(code.into()));
                }
            }
            Ok(())
        }

        /// Reads `buf.len()` bytes (whole sectors) from `sector` on.
        pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
            let ipa = buf.as_mut_ptr() as u64;
            self.run(split(BlockDesc::READ, sector, ipa, buf.len()))
        }

        /// Writes `buf` (whole sectors) from `sector` on.
        pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Error> {
            self.run(split(
                BlockDesc::WRITE,
                sector,
                buf.as_ptr() as u64,
                buf.len(),
            ))
        }

        /// Makes earlier writes durable.
        pub fn flush(&mut self) -> Result<(), Error> {
            let flush = BlockDesc {
                op: BlockDesc::FLUSH,
                status: PENDING,
                sector: 0,
                buf_ipa: 0,
                len: 0,
                reserved: 0,
            };
            self.run(core::iter::once(flush))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_transfer_is_split_at_the_transfer_limit() {
        let d: std::vec::Vec<_> = split(BlockDesc::WRITE, 10, 0x1000, 150 * 1024).collect();
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].sector, d[0].len), (10, 65536));
        assert_eq!(
            (d[1].sector, d[1].buf_ipa, d[1].len),
            (138, 0x1000 + 65536, 65536)
        );
        assert_eq!((d[2].sector, d[2].len), (266, 150 * 1024 - 131072));
        assert!(d.iter().all(|d| d.status == PENDING && d.reserved == 0));
    }
}
