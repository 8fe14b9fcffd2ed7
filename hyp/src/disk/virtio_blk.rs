//! A virtio-blk device on a virtio-mmio transport (virtio 1.1 §4.2.2 registers, §5.2 the block
//! device), driven by the hyp alone with one virtqueue and one request at a time: a request is
//! published and the device notified, and the call returns; the device's interrupt has the
//! used ring read once for the answer ([`super::queue`] starts the next). Nothing polls. The
//! device's page is in the hyp's EL2 map only, never in a guest's stage 2, and its data
//! buffers are the queue's bounce frames, never a guest's.
//!
//! Both transports are spoken: version 2 ("modern", QEMU with
//! `-global virtio-mmio.force-legacy=false`) and version 1 ("legacy", QEMU's default).

use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_structs! {
    /// The virtio-mmio register block (virtio 1.1 §4.2.2; legacy-only registers marked).
    pub Registers {
        (0x000 => magic: ReadOnly<u32>),
        (0x004 => version: ReadOnly<u32>),
        (0x008 => device_id: ReadOnly<u32>),
        (0x00c => vendor_id: ReadOnly<u32>),
        (0x010 => device_features: ReadOnly<u32>),
        (0x014 => device_features_sel: WriteOnly<u32>),
        (0x018 => _reserved0),
        (0x020 => driver_features: WriteOnly<u32>),
        (0x024 => driver_features_sel: WriteOnly<u32>),
        /// Legacy only.
        (0x028 => guest_page_size: WriteOnly<u32>),
        (0x02c => _reserved1),
        (0x030 => queue_sel: WriteOnly<u32>),
        (0x034 => queue_num_max: ReadOnly<u32>),
        (0x038 => queue_num: WriteOnly<u32>),
        /// Legacy only.
        (0x03c => queue_align: WriteOnly<u32>),
        /// Legacy only.
        (0x040 => queue_pfn: ReadWrite<u32>),
        (0x044 => queue_ready: ReadWrite<u32>),
        (0x048 => _reserved2),
        (0x050 => queue_notify: WriteOnly<u32>),
        (0x054 => _reserved3),
        (0x060 => interrupt_status: ReadOnly<u32>),
        (0x064 => interrupt_ack: WriteOnly<u32>),
        (0x068 => _reserved4),
        (0x070 => status: ReadWrite<u32>),
        (0x074 => _reserved5),
        (0x080 => queue_desc_low: WriteOnly<u32>),
        (0x084 => queue_desc_high: WriteOnly<u32>),
        (0x088 => _reserved6),
        (0x090 => queue_driver_low: WriteOnly<u32>),
        (0x094 => queue_driver_high: WriteOnly<u32>),
        (0x098 => _reserved7),
        (0x0a0 => queue_device_low: WriteOnly<u32>),
        (0x0a4 => queue_device_high: WriteOnly<u32>),
        (0x0a8 => _reserved8),
        (0x0fc => config_generation: ReadOnly<u32>),
        /// virtio-blk configuration: `capacity` in 512-byte sectors (§5.2.4).
        (0x100 => capacity_low: ReadOnly<u32>),
        (0x104 => capacity_high: ReadOnly<u32>),
        (0x108 => @END),
    }
}

/// `MagicValue`: "virt" little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// `DeviceID` of a block device (0: an empty slot).
pub const DEVICE_ID_BLOCK: u32 = 2;

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const FAILED: u32 = 128;
}

/// `VIRTIO_BLK_F_FLUSH`: the device has a write cache and takes flush requests.
pub const F_FLUSH: u64 = 1 << 9;
/// `VIRTIO_F_VERSION_1`: a modern device (required on transport version 2).
pub const F_VERSION_1: u64 = 1 << 32;

/// Request types (§5.2.6).
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
/// The status byte of a request that succeeded.
pub const S_OK: u8 = 0;

/// Which register layout a slot speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Version 1.
    Legacy,
    /// Version 2.
    Modern,
}

/// What a virtio-mmio slot holds, from its first three registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A block device on this transport.
    Block(Transport),
    /// Nothing, or another kind of device.
    Other,
    /// Not virtio-mmio, or a version we do not know.
    Unknown,
}

/// Classifies a slot.
pub fn classify(magic: u32, version: u32, device_id: u32) -> Slot {
    let transport = match (magic, version) {
        (MAGIC, 1) => Transport::Legacy,
        (MAGIC, 2) => Transport::Modern,
        _ => return Slot::Unknown,
    };
    if device_id == DEVICE_ID_BLOCK {
        Slot::Block(transport)
    } else {
        Slot::Other
    }
}

/// The features the driver takes from what the device offers: flush if there is a write
/// cache, and on a modern device VERSION_1 (which it must offer).
pub fn negotiate(transport: Transport, offered: u64) -> Result<u64, &'static str> {
    let mut take = offered & F_FLUSH;
    if transport == Transport::Modern {
        if offered & F_VERSION_1 == 0 {
            return Err("modern device without VIRTIO_F_VERSION_1");
        }
        take |= F_VERSION_1;
    }
    Ok(take)
}

#[cfg(target_os = "none")]
pub use driver::{Frame, VirtioBlk};

#[cfg(target_os = "none")]
mod driver {
    use super::super::queue::{BOUNCE_PAGES, Device};
    use super::super::virtqueue::{
        AVAIL_OFFSET, Buffer, DESC_OFFSET, DRIVER_AREA, QUEUE_SIZE, QueueMemory, SplitQueue,
        USED_ALIGN, USED_OFFSET,
    };
    use super::super::{DiskError, Op, SECTOR_SIZE};
    use super::*;
    use crate::arch::{Cpu, Machine};
    use crate::mm::PAGE_SIZE;
    use crate::mm::owner::Owner;
    use aarch64_cpu::asm::barrier;
    use tock_registers::interfaces::{Readable, Writeable};

    /// Where the request header and status byte sit in the queue's page.
    const HEADER: usize = DRIVER_AREA;
    const STATUS: usize = DRIVER_AREA + 16;
    /// The longest chain: header, a bounce buffer's pages, status.
    const CHAIN_MAX: usize = BOUNCE_PAGES + 2;
    const _: () = assert!(CHAIN_MAX <= QUEUE_SIZE as usize);

    /// A hyp-owned frame, reached at its identity-mapped address (also `dev::dma_probe`'s).
    pub struct Frame(pub u64);

    impl Frame {
        fn at(&self, offset: usize) -> usize {
            debug_assert!(offset < PAGE_SIZE as usize);
            self.0 as usize + offset
        }
    }

    // Volatile: the device reads and writes the page behind the compiler's back.
    impl QueueMemory for Frame {
        fn read_u16(&self, o: usize) -> u16 {
            // SAFETY: an aligned u16 inside a frame the hyp owns (identity-mapped RAM).
            unsafe { core::ptr::read_volatile(self.at(o) as *const u16) }
        }
        fn read_u32(&self, o: usize) -> u32 {
            // SAFETY: as in read_u16.
            unsafe { core::ptr::read_volatile(self.at(o) as *const u32) }
        }
        fn write_u16(&mut self, o: usize, v: u16) {
            // SAFETY: as in read_u16.
            unsafe { core::ptr::write_volatile(self.at(o) as *mut u16, v) }
        }
        fn write_u32(&mut self, o: usize, v: u32) {
            // SAFETY: as in read_u16.
            unsafe { core::ptr::write_volatile(self.at(o) as *mut u32, v) }
        }
        fn write_u64(&mut self, o: usize, v: u64) {
            // SAFETY: as in read_u16.
            unsafe { core::ptr::write_volatile(self.at(o) as *mut u64, v) }
        }
        fn barrier(&self) {
            // Full system barrier: the device is an observer outside the inner domain.
            barrier::dsb(barrier::SY);
        }
    }

    /// A virtio-blk device the hyp drives.
    pub struct VirtioBlk {
        regs: &'static Registers,
        queue: SplitQueue,
        page: Frame,
        sectors: u64,
        flush: bool,
        /// Set when the device failed to answer: it is not used again.
        broken: bool,
    }

    // SAFETY: the registers and frames are used only through this value, which the disk lock
    // serialises.
    unsafe impl Send for VirtioBlk {}

    impl VirtioBlk {
        /// What the slot at `base` holds.
        ///
        /// # Safety
        /// `base` must be the identity-mapped device address of a virtio-mmio slot.
        pub unsafe fn classify(base: usize) -> Slot {
            // SAFETY: per the contract; reading the ID registers has no side effects.
            let regs = unsafe { &*(base as *const Registers) };
            classify(regs.magic.get(), regs.version.get(), regs.device_id.get())
        }

        /// Brings up the block device at `base` with one queue, its interrupt on.
        ///
        /// # Safety
        /// `base` must be the identity-mapped device address of a virtio-mmio slot holding a
        /// block device, used by nothing else for the hyp's life.
        pub unsafe fn new(base: usize, transport: Transport) -> Result<Self, &'static str> {
            // SAFETY: per the contract.
            let regs: &'static Registers = unsafe { &*(base as *const Registers) };
            regs.status.set(0);
            regs.status.set(status::ACKNOWLEDGE | status::DRIVER);
            let mut offered = 0u64;
            for word in 0..2 {
                regs.device_features_sel.set(word);
                offered |= u64::from(regs.device_features.get()) << (32 * word);
            }
            let take = negotiate(transport, offered).inspect_err(|_| fail(regs))?;
            for word in 0..2 {
                regs.driver_features_sel.set(word);
                regs.driver_features.set((take >> (32 * word)) as u32);
            }
            if transport == Transport::Modern {
                regs.status.set(regs.status.get() | status::FEATURES_OK);
                if regs.status.get() & status::FEATURES_OK == 0 {
                    fail(regs);
                    return Err("the device refused our features");
                }
            } else {
                regs.guest_page_size.set(PAGE_SIZE as u32);
            }
            regs.queue_sel.set(0);
            if regs.queue_num_max.get() < u32::from(QUEUE_SIZE) {
                fail(regs);
                return Err("queue 0 is too small");
            }
            let Some(page) = Cpu::alloc_frame(Owner::Hyp) else {
                fail(regs);
                return Err("no frames for the virtqueue");
            };
            regs.queue_num.set(u32::from(QUEUE_SIZE));
            match transport {
                Transport::Modern => {
                    let split = |a: u64| (a as u32, (a >> 32) as u32);
                    let (lo, hi) = split(page + DESC_OFFSET as u64);
                    regs.queue_desc_low.set(lo);
                    regs.queue_desc_high.set(hi);
                    let (lo, hi) = split(page + AVAIL_OFFSET as u64);
                    regs.queue_driver_low.set(lo);
                    regs.queue_driver_high.set(hi);
                    let (lo, hi) = split(page + USED_OFFSET as u64);
                    regs.queue_device_low.set(lo);
                    regs.queue_device_high.set(hi);
                    regs.queue_ready.set(1);
                }
                Transport::Legacy => {
                    regs.queue_align.set(USED_ALIGN as u32);
                    let Ok(pfn) = u32::try_from(page / PAGE_SIZE) else {
                        fail(regs);
                        return Err("virtqueue page above the legacy 44-bit limit");
                    };
                    regs.queue_pfn.set(pfn);
                }
            }
            regs.status.set(regs.status.get() | status::DRIVER_OK);
            let sectors =
                u64::from(regs.capacity_low.get()) | u64::from(regs.capacity_high.get()) << 32;
            Ok(Self {
                regs,
                queue: SplitQueue::default(),
                page: Frame(page),
                sectors,
                flush: take & F_FLUSH != 0,
                broken: false,
            })
        }

        /// Publishes one request: header, the data frames, status; the device is notified
        /// and answers by interrupt.
        fn publish(&mut self, kind: u32, sector: u64, data: &[u64], len: u32, device_writes: bool) {
            self.page.write_u32(HEADER, kind);
            self.page.write_u32(HEADER + 4, 0);
            self.page.write_u64(HEADER + 8, sector);
            // SAFETY: the status byte is inside the hyp's queue frame.
            unsafe { core::ptr::write_volatile(self.page.at(STATUS) as *mut u8, 0xff) };
            let status_buf = Buffer {
                addr: self.page.0 + STATUS as u64,
                len: 1,
                device_writes: true,
            };
            let mut chain = [status_buf; CHAIN_MAX];
            chain[0] = Buffer {
                addr: self.page.0 + HEADER as u64,
                len: 16,
                device_writes: false,
            };
            let mut n = 1;
            for (i, &frame) in data.iter().enumerate() {
                let left = len.saturating_sub(i as u32 * PAGE_SIZE as u32);
                chain[n] = Buffer {
                    addr: frame,
                    len: left.min(PAGE_SIZE as u32),
                    device_writes,
                };
                n += 1;
            }
            chain[n] = status_buf;
            self.queue.publish(&mut self.page, &chain[..=n]);
            self.regs.queue_notify.set(0);
        }
    }

    impl Device for VirtioBlk {
        fn sectors(&self) -> u64 {
            self.sectors
        }

        fn start(
            &mut self,
            op: Op,
            sector: u64,
            data: &[u64],
            len: u32,
        ) -> Option<Result<(), DiskError>> {
            if self.broken {
                return Some(Err(DiskError::Device));
            }
            let count = u64::from(len) / SECTOR_SIZE;
            let whole = op == Op::Flush
                || (len > 0
                    && u64::from(len).is_multiple_of(SECTOR_SIZE)
                    && data.len() == (len as usize).div_ceil(PAGE_SIZE as usize)
                    && data.len() <= BOUNCE_PAGES
                    && sector
                        .checked_add(count)
                        .is_some_and(|end| end <= self.sectors));
            if !whole {
                return Some(Err(DiskError::OutOfRange));
            }
            match op {
                Op::Read => self.publish(T_IN, sector, data, len, true),
                Op::Write => self.publish(T_OUT, sector, data, len, false),
                Op::Flush if self.flush => self.publish(T_FLUSH, 0, &[], 0, false),
                // No write cache: every completed write is already durable.
                Op::Flush => return Some(Ok(())),
            }
            None
        }

        fn answer(&mut self) -> Option<Result<(), DiskError>> {
            // Acknowledged first: an answer after the read below raises the interrupt again.
            self.regs
                .interrupt_ack
                .set(self.regs.interrupt_status.get());
            let answer = self.queue.poll(&self.page)?;
            if let Err(bad) = answer {
                error!("virtio-blk: {}; the disk is off", bad.reason());
                self.broken = true;
                return Some(Err(DiskError::Device));
            }
            // SAFETY: as in `publish`.
            let s = unsafe { core::ptr::read_volatile(self.page.at(STATUS) as *const u8) };
            Some(if s == S_OK {
                Ok(())
            } else {
                Err(DiskError::Device)
            })
        }
    }

    /// Tells the device the driver gave up on it.
    fn fail(regs: &Registers) {
        regs.status.set(regs.status.get() | status::FAILED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_sit_where_the_spec_says() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(Registers, queue_notify), 0x050);
        assert_eq!(offset_of!(Registers, status), 0x070);
        assert_eq!(offset_of!(Registers, queue_device_high), 0x0a4);
        assert_eq!(offset_of!(Registers, capacity_low), 0x100);
    }

    #[test]
    fn slots_are_classified() {
        assert_eq!(classify(MAGIC, 2, 2), Slot::Block(Transport::Modern));
        assert_eq!(classify(MAGIC, 1, 2), Slot::Block(Transport::Legacy));
        assert_eq!(classify(MAGIC, 2, 0), Slot::Other);
        assert_eq!(classify(MAGIC, 3, 2), Slot::Unknown);
        assert_eq!(classify(0, 2, 2), Slot::Unknown);
    }

    #[test]
    fn features_are_negotiated() {
        assert_eq!(negotiate(Transport::Legacy, F_FLUSH | 1), Ok(F_FLUSH));
        assert_eq!(
            negotiate(Transport::Modern, F_VERSION_1 | 1 << 5),
            Ok(F_VERSION_1)
        );
        assert!(negotiate(Transport::Modern, F_FLUSH).is_err());
    }
}
