//! The boot self-check `pvhyp.dma-probe`: shows, from the device's side, that a PCI function no
//! VM owns cannot do DMA. An aborting stream table entry records no SMMU event (SMMUv3 §5.2,
//! `Config` abort), so the proof is what the device fails to do: each unowned modern virtio-pci
//! function is briefly given bus mastering and one virtio-blk read request (a modern transport
//! set-up, §3.1.1 and §4.1.4.3, over the hyp's [`SplitQueue`]) in hyp pages pre-filled with a
//! known pattern; after a bounded wait its used ring, status byte and data buffer must be as
//! they were. The device is reset and its bus mastering cleared again before the pages are
//! freed. Off unless asked for: the check maps the PCI 32-bit window for the hyp (the BARs'
//! common configuration), which a normal boot never touches.

use crate::arch::aarch64::timer;
use crate::arch::{Cpu, Machine};
use crate::dev::pci;
use crate::disk::virtio_blk::{F_VERSION_1, Frame, T_IN, status};
use crate::disk::virtqueue::{
    Buffer, DRIVER_AREA, QUEUE_SIZE, QueueMemory, SplitQueue, USED_OFFSET,
};
use crate::mm::PAGE_SIZE;
use crate::mm::owner::Owner;
use crate::vm::Vm;
use aarch64_cpu::registers::{CNTFRQ_EL0, Readable};
use core::ptr::{read_volatile, write_volatile};

/// The bootargs word that runs the check.
pub const BOOTARG: &str = "pvhyp.dma-probe";

/// Whether `bootargs` asks for the check (the whole word).
pub fn requested(bootargs: Option<&str>) -> bool {
    bootargs.is_some_and(|args| args.split_ascii_whitespace().any(|w| w == BOOTARG))
}

/// How much of the bridge's 32-bit window the check maps: its start, where `pci::init` places
/// the BARs in order (a few virtio functions' fit; the whole window would take hundreds of
/// page tables).
const MAPPED_WINDOW: u64 = 2 << 20;

/// The region `boot` maps for the hyp when the check is asked for: the start of the bridge's
/// 32-bit memory window.
pub fn mmio_region(board: &devtree::Board) -> Option<(u64, u64)> {
    let window = board.pci?.mem32?;
    requested(board.bootargs).then_some((window.cpu_base, window.size.min(MAPPED_WINDOW)))
}

/// `VIRTIO_F_ACCESS_PLATFORM`: QEMU's `iommu_platform=on` offers it and refuses FEATURES_OK
/// without it.
const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// `DEVICE_NEEDS_RESET` (§2.1): what a virtio device sets when its DMA failed.
const NEEDS_RESET: u8 = 64;

/// Common configuration offsets (§4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    pub const DEVICE_FEATURE: usize = 0x04;
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    pub const DRIVER_FEATURE: usize = 0x0c;
    pub const DEVICE_STATUS: usize = 0x14;
    pub const QUEUE_SELECT: usize = 0x16;
    pub const QUEUE_SIZE: usize = 0x18;
    pub const QUEUE_ENABLE: usize = 0x1c;
    pub const QUEUE_NOTIFY_OFF: usize = 0x1e;
    pub const QUEUE_DESC: usize = 0x20;
    pub const QUEUE_DRIVER: usize = 0x28;
    pub const QUEUE_DEVICE: usize = 0x30;
}

/// The byte every probed page is filled with first.
const PATTERN: u8 = 0xa5;
/// Where the request's header (16 bytes, read by the device) and status byte (written) sit.
const HEADER: usize = DRIVER_AREA;
const STATUS: usize = DRIVER_AREA + 16;
/// The used ring's bytes: flags, idx, QUEUE_SIZE elements.
const USED_BYTES: usize = 4 + 8 * QUEUE_SIZE as usize;
/// How long the device gets to do its DMA.
const WAIT_MS: u64 = 10;
/// Bound on the polls of a reset (QEMU's is immediate).
const RESET_POLLS: u32 = 1000;

/// A BAR's bytes, identity-mapped as Device memory by `boot` (see [`mmio_region`]).
#[derive(Clone, Copy)]
struct Mmio(usize);

impl Mmio {
    fn r8(self, o: usize) -> u8 {
        // SAFETY: inside the BAR `pci::init` placed in the mapped window; virtio registers.
        unsafe { read_volatile((self.0 + o) as *const u8) }
    }
    fn r16(self, o: usize) -> u16 {
        // SAFETY: as in r8, aligned.
        unsafe { read_volatile((self.0 + o) as *const u16) }
    }
    fn r32(self, o: usize) -> u32 {
        // SAFETY: as in r8, aligned.
        unsafe { read_volatile((self.0 + o) as *const u32) }
    }
    fn w8(self, o: usize, v: u8) {
        // SAFETY: as in r8.
        unsafe { write_volatile((self.0 + o) as *mut u8, v) }
    }
    fn w16(self, o: usize, v: u16) {
        // SAFETY: as in r8, aligned.
        unsafe { write_volatile((self.0 + o) as *mut u16, v) }
    }
    fn w32(self, o: usize, v: u32) {
        // SAFETY: as in r8, aligned.
        unsafe { write_volatile((self.0 + o) as *mut u32, v) }
    }
    /// A 64-bit register as two 32-bit halves (§4.1.3.1 lets a driver write either way).
    fn w64(self, o: usize, v: u64) {
        self.w32(o, v as u32);
        self.w32(o + 4, (v >> 32) as u32);
    }
    /// Writes 0 to the status and waits (bounded) for the device to read back 0.
    fn reset(self) -> bool {
        self.w8(common::DEVICE_STATUS, 0);
        (0..RESET_POLLS).any(|_| self.r8(common::DEVICE_STATUS) == 0)
    }
}

/// What one probe saw.
enum Outcome {
    /// Nothing changed; the device's status byte after the wait.
    Aborted(u8),
    /// The device wrote the hyp's pages (what changed), with its status byte.
    Reached(&'static str, u8),
    /// The device could not be set up (why), so nothing was offered.
    NotRun(&'static str),
}

/// Runs the check on every PCI function no VM owns, one line each; after `assign_at_boot`.
/// A device that reached memory gets an error line (the test's success line is missing).
#[inline(never)]
pub fn run(board: &devtree::Board, vms: &[Vm]) {
    let mapped = mmio_region(board);
    for f in pci::functions()
        .iter()
        .filter(|f| f.class >> 16 != pci::CLASS_BRIDGE)
        .filter(|f| !vms.iter().any(|vm| vm.spec.devices.contains(&f.bdf)))
    {
        let caps = f
            .virtio
            .and_then(|v| Some((v, f.bars.get(usize::from(v.bar)).copied().flatten()?)));
        let mapped = caps.is_some_and(|(_, bar)| {
            mapped.is_some_and(|(base, len)| bar.cpu >= base && bar.cpu + bar.size <= base + len)
        });
        let outcome = match caps {
            None => Outcome::NotRun("not a modern virtio-pci device with a placed BAR"),
            Some(_) if !mapped => {
                Outcome::NotRun("its BAR is beyond the mapped start of the window")
            }
            Some((v, bar)) => {
                pci::set_enabled(f.bdf, true, false);
                let base = bar.cpu as usize;
                let notify = |off: u16| {
                    Mmio(base + v.notify as usize + usize::from(off) * v.notify_multiplier as usize)
                };
                let outcome = probe(Mmio(base + v.common as usize), notify);
                let reset = Mmio(base + v.common as usize).reset();
                pci::set_enabled(f.bdf, false, false);
                if !reset {
                    warn!("PCI {}: DMA probe: the device did not reset", f.bdf);
                }
                outcome
            }
        };
        match outcome {
            Outcome::Aborted(s) => info!(
                "PCI {}: DMA probe: the device's DMA was aborted (ring and buffer untouched, status {:#04x}{})",
                f.bdf,
                u32::from(s),
                if s & NEEDS_RESET != 0 {
                    ": DEVICE_NEEDS_RESET"
                } else {
                    ""
                }
            ),
            Outcome::Reached(what, s) => error!(
                "PCI {}: DMA probe FAILED: a device no VM owns wrote hyp memory ({what} changed, status {:#04x})",
                f.bdf,
                u32::from(s)
            ),
            Outcome::NotRun(why) => info!("PCI {}: DMA probe not run: {why}", f.bdf),
        }
    }
}

/// Sets the device up with one read request in pattern-filled pages, waits, and compares.
fn probe(c: Mmio, notify: impl Fn(u16) -> Mmio) -> Outcome {
    if !c.reset() {
        return Outcome::NotRun("it did not reset");
    }
    c.w8(common::DEVICE_STATUS, status::ACKNOWLEDGE as u8);
    let s = (status::ACKNOWLEDGE | status::DRIVER) as u8;
    c.w8(common::DEVICE_STATUS, s);
    c.w32(common::DEVICE_FEATURE_SELECT, 1);
    let offered = u64::from(c.r32(common::DEVICE_FEATURE)) << 32;
    if offered & F_VERSION_1 == 0 {
        return Outcome::NotRun("it does not offer VIRTIO_F_VERSION_1");
    }
    let wanted = offered & (F_VERSION_1 | F_ACCESS_PLATFORM);
    c.w32(common::DRIVER_FEATURE_SELECT, 0);
    c.w32(common::DRIVER_FEATURE, 0);
    c.w32(common::DRIVER_FEATURE_SELECT, 1);
    c.w32(common::DRIVER_FEATURE, (wanted >> 32) as u32);
    let s = s | status::FEATURES_OK as u8;
    c.w8(common::DEVICE_STATUS, s);
    if c.r8(common::DEVICE_STATUS) & status::FEATURES_OK as u8 == 0 {
        return Outcome::NotRun("it refused the features");
    }
    c.w16(common::QUEUE_SELECT, 0);
    if c.r16(common::QUEUE_SIZE) < QUEUE_SIZE {
        return Outcome::NotRun("its queue 0 is too small");
    }
    let Some(q) = Cpu::alloc_frame(Owner::Hyp) else {
        return Outcome::NotRun("no frame for the queue");
    };
    let Some(data) = Cpu::alloc_frame(Owner::Hyp) else {
        Cpu::free_frame(Owner::Hyp, q);
        return Outcome::NotRun("no frame for the buffer");
    };
    let (mut queue, buffer) = (Frame(q), Frame(data));
    let fill = u32::from_ne_bytes([PATTERN; 4]);
    for page in [q, data] {
        let mut page = Frame(page);
        for o in (0..PAGE_SIZE as usize).step_by(4) {
            page.write_u32(o, fill);
        }
    }
    // The request: a read of sector 0 into the buffer.
    queue.write_u32(HEADER, T_IN);
    queue.write_u32(HEADER + 4, 0);
    queue.write_u64(HEADER + 8, 0);
    c.w16(common::QUEUE_SIZE, QUEUE_SIZE);
    c.w64(common::QUEUE_DESC, q);
    c.w64(
        common::QUEUE_DRIVER,
        q + crate::disk::virtqueue::AVAIL_OFFSET as u64,
    );
    c.w64(common::QUEUE_DEVICE, q + USED_OFFSET as u64);
    let notify_off = c.r16(common::QUEUE_NOTIFY_OFF);
    c.w16(common::QUEUE_ENABLE, 1);
    c.w8(common::DEVICE_STATUS, s | status::DRIVER_OK as u8);
    let mut ring = SplitQueue::default();
    ring.publish(
        &mut queue,
        &[
            Buffer {
                addr: q + HEADER as u64,
                len: 16,
                device_writes: false,
            },
            Buffer {
                addr: data,
                len: 512,
                device_writes: true,
            },
            Buffer {
                addr: q + STATUS as u64,
                len: 1,
                device_writes: true,
            },
        ],
    );
    notify(notify_off).w16(0, 0);
    let untouched = |page: &Frame, from: usize, len: usize| {
        (from..from + len)
            .step_by(2)
            .all(|o| page.read_u16(o) == u16::from_ne_bytes([PATTERN; 2]))
    };
    let deadline = timer::counter() + CNTFRQ_EL0.get() * WAIT_MS / 1000;
    while timer::counter() < deadline && untouched(&queue, USED_OFFSET, USED_BYTES) {}
    queue.barrier();
    let status_byte = c.r8(common::DEVICE_STATUS);
    let outcome = if !untouched(&queue, USED_OFFSET, USED_BYTES) {
        Outcome::Reached("the used ring", status_byte)
    } else if queue.read_u16(STATUS) & 0xff != u16::from(PATTERN) {
        Outcome::Reached("the request's status byte", status_byte)
    } else if !untouched(&buffer, 0, PAGE_SIZE as usize) {
        Outcome::Reached("the data buffer", status_byte)
    } else {
        Outcome::Aborted(status_byte)
    };
    // Reset before the pages go back: a device that can reach them stops first.
    c.reset();
    Cpu::free_frame(Owner::Hyp, q);
    Cpu::free_frame(Owner::Hyp, data);
    outcome
}
