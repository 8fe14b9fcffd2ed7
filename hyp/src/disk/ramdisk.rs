//! A RAM disk: the back-end where the hyp drives no disk controller (the Raspberry Pi 4). It
//! holds only the VMs' regions, each in frames taken, zeroed, when the region is added at boot:
//! every page the region may ever hold, and the index frames that find them. A VM's writes
//! then never take a frame, so they can neither run out of RAM mid-run nor grow the hyp's heap
//! (its part here is one word per index frame, fixed at boot). The frames are the hyp's in the
//! owner map, charged to the region that reserved them. It does not persist.

use super::{Backend, DiskError, Io, SECTOR_SIZE, check};
use crate::arch::Machine;
use crate::mm::PAGE_SIZE;
use crate::mm::owner::Owner;
use crate::vm::block::Region;
use alloc::vec::Vec;
use core::marker::PhantomData;

/// Frame addresses one index frame holds.
const INDEX_ENTRIES: u64 = PAGE_SIZE / 8;

/// The frames a region's pages live in.
struct Backing {
    region: Region,
    /// The index frames: entry `p % INDEX_ENTRIES` of frame `p / INDEX_ENTRIES` is the address
    /// of the frame holding the region's page `p`.
    index: Vec<u64>,
}

impl Backing {
    /// The frame holding the region's page `page`.
    fn frame(&self, page: u64) -> u64 {
        let table = self.index[(page / INDEX_ENTRIES) as usize];
        // SAFETY: an index frame this disk owns (identity-mapped RAM), filled at boot; the
        // entry is inside it.
        unsafe { core::ptr::read((table + page % INDEX_ENTRIES * 8) as *const u64) }
    }
}

/// A region the RAM cannot hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// The frames the region needs.
    pub frames: u64,
    /// The frames that were free.
    pub available: u64,
}

/// The VMs' regions of a disk, each backed by RAM reserved for it.
pub struct RamDisk<M: Machine> {
    /// The end of the last region (the disk's size).
    sectors: u64,
    regions: Vec<Backing>,
    machine: PhantomData<fn() -> M>,
}

impl<M: Machine> Default for RamDisk<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Machine> RamDisk<M> {
    /// A disk with no region yet: every sector is out of range.
    pub fn new() -> Self {
        Self {
            sectors: 0,
            regions: Vec::new(),
            machine: PhantomData,
        }
    }

    /// Its size in sectors: the end of its last region.
    #[cfg(test)]
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The region's pages.
    fn pages(region: &Region) -> u64 {
        (region.sectors * SECTOR_SIZE).div_ceil(PAGE_SIZE)
    }

    /// The frames `region` takes: its pages and their index.
    pub fn frames_needed(region: &Region) -> u64 {
        let pages = Self::pages(region);
        pages + pages.div_ceil(INDEX_ENTRIES)
    }

    /// Takes every frame `region` will use, zeroed, or nothing if the RAM cannot hold them
    /// (checked before a frame is taken: a region may say up to 1 TiB). The caller keeps the
    /// regions apart (the manifest does).
    pub fn reserve(&mut self, region: Region) -> Result<(), TooLarge> {
        let frames = Self::frames_needed(&region);
        let too_large = TooLarge {
            frames,
            available: M::frames_available() as u64,
        };
        if frames > too_large.available {
            return Err(too_large);
        }
        let pages = Self::pages(&region);
        let mut backing = Backing {
            region,
            index: Vec::new(),
        };
        let tables = pages.div_ceil(INDEX_ENTRIES) as usize;
        if backing.index.try_reserve_exact(tables).is_err() || self.regions.try_reserve(1).is_err()
        {
            return Err(too_large);
        }
        for page in 0..pages {
            let Some(pa) = M::alloc_frame(Owner::Hyp) else {
                Self::release(&backing, page);
                return Err(too_large);
            };
            if page % INDEX_ENTRIES == 0 {
                match M::alloc_frame(Owner::Hyp) {
                    Some(table) => backing.index.push(table),
                    None => {
                        M::free_frame(Owner::Hyp, pa);
                        Self::release(&backing, page);
                        return Err(too_large);
                    }
                }
            }
            let table = backing.index[(page / INDEX_ENTRIES) as usize];
            // SAFETY: an index frame just taken (identity-mapped RAM); the entry is inside it.
            unsafe { core::ptr::write((table + page % INDEX_ENTRIES * 8) as *mut u64, pa) };
        }
        self.sectors = self.sectors.max(region.end());
        self.regions.push(backing);
        Ok(())
    }

    /// Gives back the first `pages` page frames of `backing` and all its index frames.
    fn release(backing: &Backing, pages: u64) {
        for page in 0..pages {
            M::free_frame(Owner::Hyp, backing.frame(page));
        }
        for &table in &backing.index {
            M::free_frame(Owner::Hyp, table);
        }
    }

    /// The region holding `count` sectors from `sector`, if one holds them all.
    fn backing(&self, sector: u64, count: u64) -> Option<&Backing> {
        self.regions
            .iter()
            .find(|b| sector >= b.region.first_sector && sector + count <= b.region.end())
    }

    /// Calls `chunk(frame, offset in frame, offset in buffer, length)` for the pieces of
    /// `len` bytes from byte `start` of `backing`'s region that each stay within one page.
    fn pieces(
        backing: &Backing,
        start: u64,
        len: usize,
        mut chunk: impl FnMut(u64, usize, usize, usize),
    ) {
        let mut done = 0;
        while done < len {
            let at = start + done as u64;
            let in_page = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(len - done);
            chunk(backing.frame(at / PAGE_SIZE), in_page, done, n);
            done += n;
        }
    }
}

impl<M: Machine> Backend for RamDisk<M> {
    fn io(&mut self, sector: u64, io: Io<'_>) -> Result<(), DiskError> {
        check(self.sectors, sector, &io)?;
        let len = match &io {
            Io::Read(buf) => buf.len(),
            Io::Write(buf) => buf.len(),
            Io::Flush => return Ok(()),
        };
        let backing = self
            .backing(sector, len as u64 / SECTOR_SIZE)
            .ok_or(DiskError::OutOfRange)?;
        let start = (sector - backing.region.first_sector) * SECTOR_SIZE;
        match io {
            Io::Read(buf) => Self::pieces(backing, start, len, |pa, off, at, n| {
                // SAFETY: `pa` is a frame this disk owns (identity-mapped RAM); off + n is
                // within the page.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        (pa as usize + off) as *const u8,
                        buf[at..].as_mut_ptr(),
                        n,
                    )
                }
            }),
            Io::Write(buf) => Self::pieces(backing, start, len, |pa, off, at, n| {
                // SAFETY: as for reads; the hyp is the only writer of the disk's frames.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        buf[at..].as_ptr(),
                        (pa as usize + off) as *mut u8,
                        n,
                    )
                }
            }),
            Io::Flush => {}
        }
        Ok(())
    }
}

impl<M: Machine> Drop for RamDisk<M> {
    fn drop(&mut self) {
        for backing in &self.regions {
            Self::release(backing, Self::pages(&backing.region));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Cpu;
    use crate::arch::fake::FakeMachine;

    fn region(first_sector: u64, sectors: u64) -> Region {
        Region {
            first_sector,
            sectors,
        }
    }

    fn disk(regions: &[Region]) -> RamDisk<Cpu> {
        let mut d = RamDisk::new();
        for r in regions {
            d.reserve(*r).unwrap();
        }
        d
    }

    #[test]
    fn a_region_takes_its_frames_at_boot_and_reads_as_zeros() {
        let before = FakeMachine::frames_of(Owner::Hyp);
        // 1 MiB from disk byte 4 MiB: 256 pages and one index frame.
        let mut d = disk(&[region(8192, 2048)]);
        assert_eq!(FakeMachine::frames_of(Owner::Hyp), before + 257);
        assert_eq!(d.sectors(), 10240);
        let mut buf = [0xAAu8; 4096];
        d.io(10240 - 8, Io::Read(&mut buf)).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        drop(d);
        assert_eq!(FakeMachine::frames_of(Owner::Hyp), before, "all back");
    }

    #[test]
    fn writes_read_back_across_page_boundaries() {
        // A region that starts mid-page of the disk and is not whole pages.
        let mut d = disk(&[region(3, 61)]);
        let data: std::vec::Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        d.io(6, Io::Write(&data)).unwrap(); // region bytes 1536..5632: two pages
        let mut back = [0u8; 4096];
        d.io(6, Io::Read(&mut back)).unwrap();
        assert_eq!(&back[..], &data[..]);
        let mut before = [1u8; 512];
        d.io(5, Io::Read(&mut before)).unwrap();
        assert!(before.iter().all(|&b| b == 0), "sector 5 untouched");
        assert_eq!(d.io(0, Io::Flush), Ok(()));
    }

    #[test]
    fn only_the_regions_are_disk() {
        let mut d = disk(&[region(8, 8), region(32, 8)]);
        let mut buf = [0u8; 512];
        assert_eq!(d.io(16, Io::Read(&mut buf)), Err(DiskError::OutOfRange));
        assert_eq!(d.io(40, Io::Write(&buf)), Err(DiskError::OutOfRange));
        let mut two = [0u8; 1024];
        assert_eq!(
            d.io(15, Io::Read(&mut two)),
            Err(DiskError::OutOfRange),
            "across a region's end"
        );
        d.io(39, Io::Write(&[7; 512])).unwrap();
        d.io(8, Io::Read(&mut buf)).unwrap();
        assert_eq!(buf, [0; 512], "the regions are apart");
        d.io(39, Io::Read(&mut buf)).unwrap();
        assert_eq!(buf, [7; 512]);
    }

    #[test]
    fn a_region_the_ram_cannot_hold_is_refused_untouched() {
        let before = FakeMachine::frames_of(Owner::Hyp);
        let mut d = RamDisk::<Cpu>::new();
        // 1 TiB, the most a manifest may say: refused before a frame is taken.
        FakeMachine::limit_frames(Some(1 << 20));
        let tib = d.reserve(region(0, 1 << 31));
        assert_eq!(
            tib,
            Err(TooLarge {
                frames: (1 << 28) + (1 << 19),
                available: 1 << 20
            })
        );
        FakeMachine::limit_frames(None);
        assert_eq!(FakeMachine::frames_of(Owner::Hyp), before);
        assert_eq!(d.sectors(), 0);
    }

    #[test]
    fn writing_every_page_of_a_large_region_takes_no_frame() {
        // 64 MiB: the old index took a frame and a heap node at each first write of a page,
        // so filling a region exhausted the 4 MiB hyp heap or RAM mid-run. Now the region
        // is whole from boot: with no frame left at all, every page still takes its write.
        let sectors = (64 << 20) / SECTOR_SIZE;
        let mut d = disk(&[region(0, sectors)]);
        assert_eq!(
            d.regions[0].index.len(),
            32,
            "the heap holds one word per 2 MiB"
        );
        FakeMachine::limit_frames(Some(0));
        let mut page = [0u8; 4096];
        for sector in (0..sectors).step_by(8) {
            page[..8].copy_from_slice(&sector.to_le_bytes());
            assert_eq!(d.io(sector, Io::Write(&page)), Ok(()), "sector {sector}");
        }
        FakeMachine::limit_frames(None);
        for sector in [0, 8, sectors / 2, sectors - 8] {
            d.io(sector, Io::Read(&mut page)).unwrap();
            assert_eq!(page[..8], sector.to_le_bytes());
        }
    }
}
