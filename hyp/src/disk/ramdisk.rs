//! A RAM disk: the back-end where the hyp drives no disk controller (the Raspberry Pi 4). Its
//! pages are frames owned by the hyp, taken when a page is first written (a page never written
//! reads as zeros), so a large, sparsely used disk costs little. It does not persist.

use super::{Backend, DiskError, Io, SECTOR_SIZE, check};
use crate::arch::Machine;
use crate::mm::PAGE_SIZE;
use crate::mm::owner::Owner;
use alloc::collections::BTreeMap;
use core::marker::PhantomData;

/// A sparse RAM disk of a fixed number of sectors.
pub struct RamDisk<M: Machine> {
    sectors: u64,
    /// Disk page number -> the frame holding it.
    pages: BTreeMap<u64, u64>,
    machine: PhantomData<fn() -> M>,
}

impl<M: Machine> RamDisk<M> {
    /// An all-zero disk of `sectors`.
    pub fn new(sectors: u64) -> Self {
        Self {
            sectors,
            pages: BTreeMap::new(),
            machine: PhantomData,
        }
    }

    /// Frames in use.
    #[cfg(test)]
    pub fn frames(&self) -> usize {
        self.pages.len()
    }

    /// Calls `chunk(disk page, offset in page, offset in buffer, length)` for the pieces of
    /// `len` bytes from byte `start` that each stay within one page.
    fn pieces(start: u64, len: usize, mut chunk: impl FnMut(u64, usize, usize, usize)) {
        let mut done = 0;
        while done < len {
            let at = start + done as u64;
            let in_page = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(len - done);
            chunk(at / PAGE_SIZE, in_page, done, n);
            done += n;
        }
    }
}

impl<M: Machine> Backend for RamDisk<M> {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn io(&mut self, sector: u64, io: Io<'_>) -> Result<(), DiskError> {
        check(self.sectors, sector, &io)?;
        let start = sector * SECTOR_SIZE;
        match io {
            Io::Read(buf) => Self::pieces(start, buf.len(), |page, off, at, n| {
                let out = &mut buf[at..at + n];
                match self.pages.get(&page) {
                    // SAFETY: `pa` is a frame this disk owns (identity-mapped RAM); off + n is
                    // within the page.
                    Some(&pa) => unsafe {
                        core::ptr::copy_nonoverlapping(
                            (pa as usize + off) as *const u8,
                            out.as_mut_ptr(),
                            n,
                        )
                    },
                    None => out.fill(0),
                }
            }),
            Io::Write(buf) => {
                let mut result = Ok(());
                Self::pieces(start, buf.len(), |page, off, at, n| {
                    let pa = match self.pages.get(&page) {
                        Some(&pa) => pa,
                        None => match M::alloc_frame(Owner::Hyp) {
                            Some(pa) => *self.pages.entry(page).or_insert(pa),
                            None => {
                                result = Err(DiskError::NoMemory);
                                return;
                            }
                        },
                    };
                    // SAFETY: as for reads; the hyp is the only writer of the disk's frames.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            buf[at..].as_ptr(),
                            (pa as usize + off) as *mut u8,
                            n,
                        )
                    }
                });
                return result;
            }
            Io::Flush => {}
        }
        Ok(())
    }
}

impl<M: Machine> Drop for RamDisk<M> {
    fn drop(&mut self) {
        for (_, pa) in core::mem::take(&mut self.pages) {
            M::free_frame(Owner::Hyp, pa);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Cpu;
    use crate::arch::fake::FakeMachine;

    #[test]
    fn unwritten_sectors_read_as_zeros_and_cost_nothing() {
        let mut d = RamDisk::<Cpu>::new(1 << 20);
        let mut buf = [0xAAu8; 4096];
        d.io(12345, Io::Read(&mut buf)).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(d.frames(), 0);
    }

    #[test]
    fn writes_read_back_across_page_boundaries() {
        let mut d = RamDisk::<Cpu>::new(64);
        let data: std::vec::Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        d.io(3, Io::Write(&data)).unwrap(); // bytes 1536..5632: two pages
        assert_eq!(d.frames(), 2);
        let mut back = [0u8; 4096];
        d.io(3, Io::Read(&mut back)).unwrap();
        assert_eq!(&back[..], &data[..]);
        let mut before = [1u8; 512];
        d.io(2, Io::Read(&mut before)).unwrap();
        assert!(before.iter().all(|&b| b == 0), "sector 2 untouched");
        assert_eq!(d.io(0, Io::Flush), Ok(()));
    }

    #[test]
    fn out_of_range_and_out_of_memory_are_errors() {
        let mut d = RamDisk::<Cpu>::new(8);
        assert_eq!(d.io(8, Io::Write(&[0; 512])), Err(DiskError::OutOfRange));
        FakeMachine::limit_frames(Some(0));
        let r = d.io(0, Io::Write(&[1; 512]));
        FakeMachine::limit_frames(None);
        assert_eq!(r, Err(DiskError::NoMemory));
        assert_eq!(d.frames(), 0);
    }

    #[test]
    fn frames_go_back_when_the_disk_goes() {
        let before = FakeMachine::frames_of(Owner::Hyp);
        let mut d = RamDisk::<Cpu>::new(64);
        d.io(0, Io::Write(&[9; 4096])).unwrap();
        assert_eq!(FakeMachine::frames_of(Owner::Hyp), before + 1);
        drop(d);
        assert_eq!(FakeMachine::frames_of(Owner::Hyp), before);
    }
}
