//! The machine's disk, which the hyp shares out to VMs as regions (the manifest's `disk` key):
//! a virtio-blk device on QEMU `virt` (it persists in the disk image), else a RAM disk (the
//! Raspberry Pi 4 until there is an SD driver: it does not persist).
//!
//! The block hypercalls (`hypercall::block`) check every request against the VM's region and
//! memory first. The RAM disk is a [`Backend`] that moves whole sectors at once, at most
//! [`IO_MAX`] bytes per call, within the call. A device ([`queue::Device`], virtio-blk) takes
//! requests into its [`queue::Queue`] instead, in the VMs' bounce buffers, and its interrupt
//! ([`on_interrupt`]) completes them; the VMs collect them (`hypercall::block::complete`).
//!
//! The disk lock ([`DISK`]) is a leaf: taken under a VM's (today the scheduler's) lock, never
//! the other way, held for a bounded copy at most (never across a wait for the device).

pub mod queue;
pub mod ramdisk;
pub mod setup;
pub mod virtio_blk;
pub mod virtqueue;

use crate::arch::Cpu;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use spin::Mutex;

/// Bytes per sector.
pub const SECTOR_SIZE: u64 = 512;
/// The most bytes one [`Backend::io`] call moves: one page.
pub const IO_MAX: usize = 4096;

/// One transfer, in the hyp's own buffer (a multiple of [`SECTOR_SIZE`], at most [`IO_MAX`]).
pub enum Io<'a> {
    /// Disk to buffer.
    Read(&'a mut [u8]),
    /// Buffer to disk.
    Write(&'a [u8]),
    /// Earlier writes become durable.
    Flush,
}

/// Why a transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The device reported an error or did not answer.
    Device,
    /// Sectors beyond the disk, or a buffer that is not whole sectors (a hyp bug: requests
    /// are checked before they get here).
    OutOfRange,
}

impl DiskError {
    /// The status a guest's descriptor gets.
    pub fn to_abi(self) -> hypercall_abi::Error {
        match self {
            DiskError::Device => hypercall_abi::Error::Busy,
            DiskError::OutOfRange => hypercall_abi::Error::Denied,
        }
    }
}

/// What a queued request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Flush,
}

/// A disk that moves data within the call.
pub trait Backend: Send {
    /// Does one transfer starting at `sector` (ignored for a flush).
    fn io(&mut self, sector: u64, io: Io<'_>) -> Result<(), DiskError>;
}

/// Checks a transfer's shape against a disk of `sectors`: whole sectors, at most [`IO_MAX`]
/// bytes, inside the disk. Back-ends call it first.
pub fn check(sectors: u64, sector: u64, io: &Io<'_>) -> Result<(), DiskError> {
    let len = match io {
        Io::Read(b) => b.len(),
        Io::Write(b) => b.len(),
        Io::Flush => return Ok(()),
    };
    let count = len as u64 / SECTOR_SIZE;
    let whole = len > 0 && len <= IO_MAX && (len as u64).is_multiple_of(SECTOR_SIZE);
    match sector.checked_add(count) {
        Some(end) if whole && end <= sectors => Ok(()),
        _ => Err(DiskError::OutOfRange),
    }
}

/// The machine's disk, as the block hypercalls reach it.
pub enum Disk {
    /// Done within the call (the RAM disk).
    Immediate(Box<dyn Backend>),
    /// Queued to a device that answers by interrupt.
    Queued(queue::Queue<Cpu>),
}

/// The disk every VM's region is part of, once the boot has found one.
pub static DISK: Mutex<Option<Disk>> = Mutex::new(None);

/// The VMs (bit: 1 << manifest index) with requests done on the device and not yet collected.
static READY: AtomicU64 = AtomicU64::new(0);
/// The device's interrupt (0: none).
static IRQ: AtomicU32 = AtomicU32::new(0);

/// Makes `disk` the machine's disk; `irq` is its interrupt, if it answers by one.
pub fn install(disk: Disk, irq: Option<u32>) {
    *DISK.lock() = Some(disk);
    IRQ.store(irq.unwrap_or(0), Ordering::Relaxed);
}

/// Marks the VMs in `set` as having requests to collect.
pub fn mark_ready(set: u64) {
    if set != 0 {
        READY.fetch_or(set, Ordering::AcqRel);
    }
}

/// Serves interrupt `intid` if it is the disk's (false if not): takes the device's answer and
/// starts the next request; the VMs it completed are marked ready (see [`take_ready`]).
pub fn on_interrupt(intid: u32) -> bool {
    if intid == 0 || intid != IRQ.load(Ordering::Relaxed) {
        return false;
    }
    if let Some(Disk::Queued(q)) = DISK.lock().as_mut() {
        mark_ready(q.on_interrupt());
    }
    true
}

/// Whether some VM has completed requests to collect (not taking them).
#[inline]
pub fn has_ready() -> bool {
    READY.load(Ordering::Relaxed) != 0
}

/// Takes the set of VMs marked ready: the caller collects their requests.
#[inline(always)]
pub fn take_ready() -> u64 {
    if READY.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    READY.swap(0, Ordering::AcqRel)
}

/// Forgets VM `vm`'s requests (it ended or restarts); a device keeps its bounce frames.
pub fn cancel(vm: usize) {
    if let Some(Disk::Queued(q)) = DISK.lock().as_mut() {
        q.cancel(vm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_whole_sectors_inside_the_disk() {
        let mut buf = [0u8; 4096];
        assert_eq!(check(8, 0, &Io::Read(&mut buf)), Ok(()));
        assert_eq!(check(8, 1, &Io::Write(&buf)), Err(DiskError::OutOfRange));
        assert_eq!(
            check(8, u64::MAX, &Io::Write(&buf[..512])),
            Err(DiskError::OutOfRange)
        );
        assert_eq!(
            check(8, 0, &Io::Write(&buf[..100])),
            Err(DiskError::OutOfRange)
        );
        assert_eq!(check(8, 0, &Io::Write(&[])), Err(DiskError::OutOfRange));
        assert_eq!(check(0, 99, &Io::Flush), Ok(()));
    }
}
