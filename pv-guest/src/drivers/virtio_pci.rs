//! A virtio-pci (modern, virtio 1.1 §4.1) block driver for the PCI device the VM owns
//! (`BootInfo::device`): its common configuration, notification area and device configuration
//! are at the offsets the boot info gives, in the BAR the hypervisor mapped at `bar_ipa`. One
//! virtqueue of [`QUEUE_SIZE`] entries in one page of the VM's own RAM, one request at a time.
//! A request waits in WFI for the device's interrupt (ABI 1.6: its event; the ISR status read
//! lowers the line, `EVENT_DEVICE_ACK` lets the hypervisor take it again), with the virtual
//! timer as its deadline; on an older hypervisor it polls the used ring.
//!
//! Addresses given to the device are IPAs: the SMMU translates its DMA with the VM's stage 2,
//! so it reaches the VM's own memory and nothing else — a buffer the VM has not mapped, or
//! mapped read-only, makes the DMA fault. QEMU's device may still answer OK: a request during
//! which the hypervisor's count of stopped DMAs (`EVENT_DEVICE_FAULTS`) grew failed.
//!
//! Why not the `virtio-drivers` crate: its PCI transport finds the capabilities by reading
//! the configuration space (its `PciRoot` walks an ECAM), which the VM never sees; and its HAL
//! allocates DMA memory per queue with `dma_alloc` returning physical addresses, where ours are
//! IPAs of pages mapped by hypercall. What is left to share is the split-ring layout, a few
//! dozen lines here.

/// Entries of the one virtqueue.
pub const QUEUE_SIZE: u16 = 8;
/// virtio-blk request types (§5.2.6).
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
/// Sector size of a virtio-blk request.
pub const SECTOR: u64 = 512;

/// Device status bits (§2.1).
mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const NEEDS_RESET: u8 = 64;
}

/// Feature bits: VERSION_1 (a modern device), ACCESS_PLATFORM (its DMA goes through the
/// platform's IOMMU: QEMU's `iommu_platform=on` offers it and fails FEATURES_OK without it),
/// and the block device's FLUSH.
const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;
const F_FLUSH: u64 = 1 << 9;

/// Common configuration offsets (§4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0c;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_ENABLE: u64 = 0x1c;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// Descriptor flags.
const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;

/// Where the split ring's parts are in the queue page: descriptors, then the available ring
/// at 128, the used ring at 256 (each aligned as §2.6 asks).
pub const AVAIL_OFFSET: u64 = 16 * QUEUE_SIZE as u64;
pub const USED_OFFSET: u64 = 256;
const _: () = assert!(AVAIL_OFFSET + 6 + 2 * QUEUE_SIZE as u64 <= USED_OFFSET);

/// Why a request did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The VM owns no device, or not a virtio one.
    NoDevice,
    /// The device refused the features (FEATURES_OK did not stick) or a queue of our size.
    Refused(&'static str),
    /// The device set NEEDS_RESET: it could not do the request (a DMA the SMMU stopped).
    NeedsReset,
    /// No answer in the used ring after polling this long.
    NoAnswer,
    /// The request's status byte (1 = IOERR, 2 = UNSUPP).
    Status(u8),
    /// The SMMU stopped a DMA of the request (the last one at this IPA), whatever the device
    /// answered.
    Stopped { ipa: u64 },
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoDevice => f.write_str("this VM owns no virtio-pci device"),
            Self::Refused(what) => write!(f, "the device refused {what}"),
            Self::NeedsReset => f.write_str("the device needs a reset (its DMA failed)"),
            Self::NoAnswer => f.write_str("no answer from the device"),
            Self::Status(s) => write!(f, "request status {s}"),
            Self::Stopped { ipa } => write!(f, "SMMU stopped it (its DMA at IPA {ipa:#x})"),
        }
    }
}

/// What a request waiting for the device's interrupt saw in one look.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// The device's interrupt event is pending.
    pending: bool,
    /// Its answer is in the used ring.
    answered: bool,
    /// The device set NEEDS_RESET.
    needs_reset: bool,
    /// The request's deadline has passed.
    late: bool,
}

/// What the wait does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Take the interrupt: read the ISR (lowering the line), acknowledge the event (the
    /// hypervisor takes the line again), then look again.
    TakeInterrupt,
    /// The request is over.
    Done(Result<(), Failure>),
    /// WFI until the device's event or the deadline's timer.
    Wait,
}

/// The wait's decision, `interrupted` once this request's interrupt was taken. The device
/// writes the used ring before it raises its interrupt, so the answer can be seen first: the
/// interrupt still comes, and a request that ended there would leave it behind, its line
/// asserted and the hypervisor holding it masked for an acknowledgement nobody sends (the next
/// request takes it for its own; the last one of a VM's life never does). So an answer ends the
/// request with its interrupt taken, or at the deadline without it (the data is there;
/// `interrupts` says what came).
fn next_step(seen: Seen, interrupted: bool) -> Step {
    if seen.pending {
        Step::TakeInterrupt
    } else if seen.answered && (interrupted || seen.late) {
        Step::Done(Ok(()))
    } else if seen.answered {
        Step::Wait
    } else if seen.needs_reset {
        Step::Done(Err(Failure::NeedsReset))
    } else if seen.late {
        Step::Done(Err(Failure::NoAnswer))
    } else {
        Step::Wait
    }
}

#[cfg(target_os = "none")]
pub use target::VirtioBlk;

#[cfg(target_os = "none")]
mod target {
    use super::*;
    use crate::arch::timer;
    use crate::events;
    use crate::mm::frames::Frames;
    use core::ptr::{read_volatile, write_volatile};
    use hypercall_abi::{BootInfo, EventSource, MemPerms};

    /// How many polls of the used ring before a request is given up.
    const POLLS: u32 = 50_000_000;
    /// How long a request waits for the device's interrupt before it is given up.
    const ANSWER_SECONDS: u64 = 5;

    /// The device, its queue page and its request page (header at 0, status at 64).
    pub struct VirtioBlk {
        common: u64,
        notify: u64,
        isr: u64,
        queue: Frames,
        request: Frames,
        avail_idx: u16,
        used_idx: u16,
        pub flush: bool,
        /// The event the device's interrupt raises (None: an older hypervisor; we poll).
        event: Option<u32>,
        /// Completions an interrupt woke us for.
        pub interrupts: u64,
    }

    /// Reads and writes of the device's registers (Device memory at stage 2) at their widths.
    fn r8(at: u64) -> u8 {
        // SAFETY: `at` is inside the BAR the hypervisor mapped for this VM (an offset the boot
        // info gives plus a register offset of the virtio spec); MMIO, no Rust object.
        unsafe { read_volatile(at as *const u8) }
    }
    fn w8(at: u64, v: u8) {
        // SAFETY: as in `r8`.
        unsafe { write_volatile(at as *mut u8, v) }
    }
    fn r16(at: u64) -> u16 {
        // SAFETY: as in `r8`; aligned as the spec places the field.
        unsafe { read_volatile(at as *const u16) }
    }
    fn w16(at: u64, v: u16) {
        // SAFETY: as in `r16`.
        unsafe { write_volatile(at as *mut u16, v) }
    }
    fn r32(at: u64) -> u32 {
        // SAFETY: as in `r16`.
        unsafe { read_volatile(at as *const u32) }
    }
    fn w32(at: u64, v: u32) {
        // SAFETY: as in `r16`.
        unsafe { write_volatile(at as *mut u32, v) }
    }
    fn w64(at: u64, v: u64) {
        w32(at, v as u32);
        w32(at + 4, (v >> 32) as u32);
    }

    /// The ring's memory writes reach the device before the notification (and the used ring
    /// is read after the device's writes): a full-system barrier.
    fn barrier() {
        // SAFETY: a barrier; no memory or register is changed.
        unsafe { core::arch::asm!("dsb sy", options(nostack)) }
    }

    impl VirtioBlk {
        /// Resets the device and sets it up: features, one queue in fresh pages, DRIVER_OK.
        pub fn open(info: &BootInfo) -> Result<VirtioBlk, Failure> {
            let d = info.device;
            if d.pci_id == 0 || d.bar_ipa == 0 {
                return Err(Failure::NoDevice);
            }
            let base = d.bar_ipa;
            let alloc = || Frames::alloc(1, MemPerms::RW).map_err(|_| Failure::Refused("memory"));
            let mut dev = VirtioBlk {
                common: base + u64::from(d.virtio_common),
                notify: base + u64::from(d.virtio_notify),
                isr: base + u64::from(d.virtio_isr),
                queue: alloc()?,
                request: alloc()?,
                avail_idx: 0,
                used_idx: 0,
                flush: false,
                event: None,
                interrupts: 0,
            };
            // Its interrupt, and the timer as a request's deadline, wake a WFI (ABI 1.6).
            let mut hv = crate::hv();
            if let Ok(event) = hv.event_bind(EventSource::DeviceInterrupt)
                && hv.event_unmask(event).is_ok()
                && hv.event_unmask(info.timer_event).is_ok()
            {
                dev.event = Some(event);
            }
            let notify_off = dev.reset_and_start()?;
            dev.notify += u64::from(notify_off) * u64::from(d.virtio_notify_multiplier);
            Ok(dev)
        }

        fn status(&self) -> u8 {
            r8(self.common + common::DEVICE_STATUS)
        }

        /// The reset and set-up of §3.1.1: the queue's notify offset.
        fn reset_and_start(&mut self) -> Result<u16, Failure> {
            let c = self.common;
            w8(c + common::DEVICE_STATUS, 0);
            let mut polls = 0;
            while self.status() != 0 {
                polls += 1;
                if polls > POLLS {
                    return Err(Failure::NoAnswer);
                }
            }
            // The queue page is the device's again from index 0.
            self.queue.words().fill(0);
            (self.avail_idx, self.used_idx) = (0, 0);
            w8(c + common::DEVICE_STATUS, status::ACKNOWLEDGE);
            w8(
                c + common::DEVICE_STATUS,
                status::ACKNOWLEDGE | status::DRIVER,
            );
            w32(c + common::DEVICE_FEATURE_SELECT, 0);
            let low = u64::from(r32(c + common::DEVICE_FEATURE));
            w32(c + common::DEVICE_FEATURE_SELECT, 1);
            let offered = low | u64::from(r32(c + common::DEVICE_FEATURE)) << 32;
            if offered & F_VERSION_1 == 0 {
                return Err(Failure::Refused("VERSION_1 (not a modern device)"));
            }
            let wanted = offered & (F_VERSION_1 | F_ACCESS_PLATFORM | F_FLUSH);
            self.flush = wanted & F_FLUSH != 0;
            w32(c + common::DRIVER_FEATURE_SELECT, 0);
            w32(c + common::DRIVER_FEATURE, wanted as u32);
            w32(c + common::DRIVER_FEATURE_SELECT, 1);
            w32(c + common::DRIVER_FEATURE, (wanted >> 32) as u32);
            let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
            w8(c + common::DEVICE_STATUS, s);
            if self.status() & status::FEATURES_OK == 0 {
                return Err(Failure::Refused("our features"));
            }
            w16(c + common::QUEUE_SELECT, 0);
            if r16(c + common::QUEUE_SIZE) < QUEUE_SIZE {
                return Err(Failure::Refused("a queue of 8"));
            }
            w16(c + common::QUEUE_SIZE, QUEUE_SIZE);
            let q = self.queue.ipa();
            w64(c + common::QUEUE_DESC, q);
            w64(c + common::QUEUE_DRIVER, q + AVAIL_OFFSET);
            w64(c + common::QUEUE_DEVICE, q + USED_OFFSET);
            let notify_off = r16(c + common::QUEUE_NOTIFY_OFF);
            w16(c + common::QUEUE_ENABLE, 1);
            w8(c + common::DEVICE_STATUS, s | status::DRIVER_OK);
            Ok(notify_off)
        }

        /// Resets the device after a failure and sets it up again (same pages).
        pub fn restart(&mut self) -> Result<(), Failure> {
            let notify = self.notify;
            self.reset_and_start().map(|_| self.notify = notify)
        }

        /// One request: `kind` at `sector`, `len` bytes at IPA `data` (none for a flush), the
        /// device writing the data for a read. Waits until the device answers; fails if the
        /// SMMU stopped one of its DMAs meanwhile.
        pub fn request(
            &mut self,
            kind: u32,
            sector: u64,
            data: u64,
            len: u32,
        ) -> Result<(), Failure> {
            let faults = || crate::hv().event_device_faults().ok();
            let before = faults();
            self.submit(kind, sector, data, len);
            let answer = self.complete();
            match (before, faults()) {
                (Some((was, _)), Some((now, ipa))) if now != was => Err(Failure::Stopped { ipa }),
                _ => answer,
            }
        }

        /// [`VirtioBlk::request`]'s first half: the request queued and the device notified;
        /// [`VirtioBlk::complete`] waits for its answer.
        pub fn submit(&mut self, kind: u32, sector: u64, data: u64, len: u32) {
            let rq = self.request.ipa();
            let words = self.request.words();
            words[0] = u64::from(kind);
            words[1] = sector;
            // The status byte (at 64) starts as 0xff: not written by the device.
            words[8] = 0xff;
            let q = self.queue.ipa();
            let device_writes = if kind == T_IN { DESC_WRITE } else { 0 };
            let mut descs = [(rq, 16u32, DESC_NEXT), (rq + 64, 1, DESC_WRITE)];
            let chain: &[(u64, u32, u16)] = if len == 0 {
                &descs
            } else {
                descs[1] = (data, len, device_writes | DESC_NEXT);
                &[descs[0], descs[1], (rq + 64, 1, DESC_WRITE)]
            };
            let ring = self.queue.words();
            for (i, &(addr, len, flags)) in chain.iter().enumerate() {
                let next = if flags & DESC_NEXT != 0 {
                    i as u64 + 1
                } else {
                    0
                };
                ring[2 * i] = addr;
                ring[2 * i + 1] = u64::from(len) | u64::from(flags) << 32 | next << 48;
            }
            let slot = u64::from(self.avail_idx % QUEUE_SIZE);
            let avail = q + AVAIL_OFFSET;
            w16(avail + 4 + 2 * slot, 0);
            barrier();
            self.avail_idx = self.avail_idx.wrapping_add(1);
            w16(avail + 2, self.avail_idx);
            barrier();
            w16(self.notify, 0);
        }

        /// Waits until the device answers the request [`VirtioBlk::submit`] queued.
        pub fn complete(&mut self) -> Result<(), Failure> {
            let answer = match self.event {
                Some(event) => self.wait_for_interrupt(event),
                None => self.poll(),
            };
            answer?;
            self.used_idx = self.used_idx.wrapping_add(1);
            match self.request.words()[8] as u8 {
                0 => Ok(()),
                s => Err(Failure::Status(s)),
            }
        }

        /// Whether the device has put an answer in the used ring.
        fn answered(&self) -> bool {
            barrier();
            r16(self.queue.ipa() + USED_OFFSET + 2) != self.used_idx
        }

        /// Waits in WFI until the device answered and its interrupt event came ([`next_step`]),
        /// at most [`ANSWER_SECONDS`] (the virtual timer wakes the wait).
        fn wait_for_interrupt(&mut self, event: u32) -> Result<(), Failure> {
            let info = crate::boot_info();
            let deadline = timer::ticks() + ANSWER_SECONDS * timer::frequency();
            timer::arm(deadline);
            let mut interrupted = false;
            let answer = loop {
                let seen = Seen {
                    pending: events::is_pending(info, event),
                    answered: self.answered(),
                    needs_reset: self.status() & status::NEEDS_RESET != 0,
                    late: timer::ticks() >= deadline,
                };
                match next_step(seen, interrupted) {
                    Step::TakeInterrupt => {
                        let _ = r8(self.isr);
                        self.interrupts += 1;
                        interrupted = true;
                        let _ = crate::hv().event_device_ack();
                    }
                    Step::Done(answer) => break answer,
                    // SAFETY: WFI only waits; the device's event or the timer's wakes it.
                    Step::Wait => unsafe { core::arch::asm!("wfi", options(nomem, nostack)) },
                }
            };
            timer::disarm();
            if events::is_pending(info, info.timer_event) {
                let _ = crate::hv().event_ack(info.timer_event);
            }
            answer
        }

        /// Polls the used ring until the device answers (a hypervisor before ABI 1.6).
        fn poll(&mut self) -> Result<(), Failure> {
            let q = self.queue.ipa();
            let mut polls = 0u32;
            loop {
                barrier();
                if r16(q + USED_OFFSET + 2) != self.used_idx {
                    break;
                }
                if self.status() & status::NEEDS_RESET != 0 {
                    return Err(Failure::NeedsReset);
                }
                polls += 1;
                if polls > POLLS {
                    return Err(Failure::NoAnswer);
                }
                core::hint::spin_loop();
            }
            // Reading the ISR acknowledges the (undelivered) interrupt.
            let _ = r8(self.isr);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(pending: bool, answered: bool) -> Seen {
        Seen {
            pending,
            answered,
            ..Seen::default()
        }
    }

    #[test]
    fn an_answer_seen_before_its_interrupt_waits_for_the_interrupt() {
        // The used ring shows the answer; the interrupt is on its way.
        assert_eq!(next_step(seen(false, true), false), Step::Wait);
        // It comes: taken (ISR read, acknowledged), then the request is over.
        assert_eq!(next_step(seen(true, true), false), Step::TakeInterrupt);
        assert_eq!(next_step(seen(false, true), true), Step::Done(Ok(())));
    }

    #[test]
    fn an_interrupt_before_the_answer_is_taken_and_the_answer_awaited() {
        assert_eq!(next_step(seen(false, false), false), Step::Wait);
        assert_eq!(next_step(seen(true, false), false), Step::TakeInterrupt);
        assert_eq!(next_step(seen(false, false), true), Step::Wait);
        assert_eq!(next_step(seen(false, true), true), Step::Done(Ok(())));
    }

    #[test]
    fn the_deadline_ends_a_wait_with_or_without_an_answer() {
        let late = |answered| Seen {
            answered,
            late: true,
            ..Seen::default()
        };
        // Answered, its interrupt never came: the data is there (`interrupts` tells).
        assert_eq!(next_step(late(true), false), Step::Done(Ok(())));
        assert_eq!(
            next_step(late(false), true),
            Step::Done(Err(Failure::NoAnswer))
        );
        let reset = Seen {
            needs_reset: true,
            ..Seen::default()
        };
        assert_eq!(
            next_step(reset, false),
            Step::Done(Err(Failure::NeedsReset))
        );
        // A late interrupt is still taken first: its line would stay asserted.
        let pending_late = Seen {
            pending: true,
            late: true,
            ..Seen::default()
        };
        assert_eq!(next_step(pending_late, false), Step::TakeInterrupt);
    }
}
