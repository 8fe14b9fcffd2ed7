//! The machine's disk, which the hyp shares out to VMs as regions (the manifest's `disk` key):
//! a virtio-blk device on QEMU `virt` (it persists in the disk image), else a RAM disk (the
//! Raspberry Pi 4 until there is an SD driver: it does not persist).
//!
//! Back-ends move whole sectors through the hyp's own buffers, at most [`IO_MAX`] bytes per
//! call; the block hypercalls (`hypercall::block`) copy between those buffers and guest memory
//! and check every request against the VM's region first.

pub mod ramdisk;
pub mod setup;
pub mod virtio_blk;
pub mod virtqueue;

use alloc::boxed::Box;
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

/// A disk.
pub trait Backend: Send {
    /// Its size in sectors.
    fn sectors(&self) -> u64;
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

/// The disk every VM's region is part of, once the boot has found one.
static DISK: Mutex<Option<Box<dyn Backend>>> = Mutex::new(None);

/// Makes `disk` the machine's disk.
pub fn install(disk: Box<dyn Backend>) {
    *DISK.lock() = Some(disk);
}

/// One transfer on the installed disk.
pub fn io(sector: u64, io: Io<'_>) -> Result<(), DiskError> {
    match DISK.lock().as_mut() {
        Some(disk) => disk.io(sector, io),
        None => Err(DiskError::Device),
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
