//! A VM's block device: its region of the machine's disk, its request ring, and the checks that
//! turn a descriptor (already copied out of the shared ring) into a request on the disk; and
//! [`deliver`], which hands the VMs the requests the disk's interrupt completed.

use super::mem::{GuestMemory, Pin};
use crate::arch::Machine;
use core::mem::offset_of;
use hypercall_abi::block::{BLOCK_RING_ENTRIES, BLOCK_SECTOR_SIZE, BLOCK_TRANSFER_MAX};
use hypercall_abi::layout::{BlockDesc, RingHeader};
use hypercall_abi::{Error, MemPerms};

/// Where a VM's region lies on the disk, in sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The disk sector that is the VM's sector 0.
    pub first_sector: u64,
    /// How many sectors the VM sees.
    pub sectors: u64,
}

impl Region {
    /// The region the manifest gives (offset and size are whole sectors: the manifest checks).
    pub fn from_manifest(disk: &manifest::DiskRegion) -> Self {
        Self {
            first_sector: disk.offset / u64::from(BLOCK_SECTOR_SIZE),
            sectors: disk.size / u64::from(BLOCK_SECTOR_SIZE),
        }
    }

    /// The first disk sector after the region.
    pub fn end(&self) -> u64 {
        self.first_sector.saturating_add(self.sectors)
    }
}

/// The VM's side of the block hypercalls. Ring indices: `consumer <= taken <= producer`, at
/// most a ring apart; the descriptors from `consumer` to `taken` are taken and not all done.
#[derive(Debug)]
pub struct BlockIo {
    /// The request ring's IPA.
    pub ring_ipa: u64,
    /// The VM's manifest index: the owner of its requests on the disk.
    pub vm: usize,
    /// The hyp's own consumer index: every descriptor before it is done, its status written
    /// (the copy in the page is only informative).
    pub consumer: u32,
    /// The next descriptor to take.
    pub taken: u32,
    /// The descriptors between `consumer` and `taken` already done (bit: index % 64).
    pub done: u64,
    /// Its part of the disk.
    pub region: Region,
    /// The index where a BLOCK_SUBMIT being continued began.
    pub submitting: Option<u32>,
}

const _: () = assert!(BLOCK_RING_ENTRIES <= u64::BITS);

impl BlockIo {
    /// An empty ring at `ring_ipa` for VM `vm`'s `region`.
    pub fn new(ring_ipa: u64, vm: usize, region: Region) -> Self {
        Self {
            ring_ipa,
            vm,
            consumer: 0,
            taken: 0,
            done: 0,
            region,
            submitting: None,
        }
    }

    /// The bit of descriptor `index` in `done`.
    pub fn bit(index: u32) -> u64 {
        1 << (index % BLOCK_RING_ENTRIES)
    }
}

/// Maps VM `vm`'s request ring at `ipa` (one page, read-write, which the guest can neither
/// unmap nor protect) holding an empty ring header; the VM's block state for its `disk` region.
/// Requests of an earlier life of the VM (a restart) still on the disk are forgotten.
pub fn map_ring<M: Machine>(
    memory: &mut GuestMemory<M>,
    vm: usize,
    ipa: u64,
    disk: &manifest::DiskRegion,
) -> Result<BlockIo, Error> {
    crate::disk::cancel(vm);
    memory.map_pinned(ipa, 1, MemPerms::RW, Pin::Hyp)?;
    let header = RingHeader::new(BLOCK_RING_ENTRIES, BlockDesc::SIZE as u32);
    let fields = [
        (offset_of!(RingHeader, magic), header.magic),
        (offset_of!(RingHeader, entries), header.entries),
        (offset_of!(RingHeader, entry_size), header.entry_size),
    ];
    for (offset, value) in fields {
        memory.write(ipa + offset as u64, &value.to_le_bytes())?;
    }
    Ok(BlockIo::new(ipa, vm, Region::from_manifest(disk)))
}

/// Hands each VM the requests the disk completed for it since (the disk's interrupt marked
/// them): statuses and data into the living, forgotten by the disk for the ended. Any CPU may
/// call it with no VM's lock held; it locks each VM with completions in turn.
#[cfg(target_os = "none")]
#[inline(always)]
pub fn deliver() {
    let ready = crate::disk::take_ready();
    if ready != 0 {
        deliver_to(ready);
    }
}

/// [`deliver`] for the VMs whose bits `ready` has (`disk::queue::bit`).
#[cfg(target_os = "none")]
fn deliver_to(mut ready: u64) {
    while ready != 0 {
        let i = ready.trailing_zeros() as usize;
        ready &= ready - 1;
        let mut guard = super::sched::slot(super::ids::VmIndex::new(i)).lock();
        match guard.as_mut().filter(|vm| vm.is_alive()) {
            Some(vm) => {
                crate::hypercall::block::complete(&mut super::build::Caller { vm, vcpu: 0 })
            }
            None => crate::disk::cancel(i),
        }
    }
}

/// A checked request, in disk sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Disk to the guest's buffer.
    Read { sector: u64, buf_ipa: u64, len: u32 },
    /// The guest's buffer to disk.
    Write { sector: u64, buf_ipa: u64, len: u32 },
    /// Earlier writes become durable.
    Flush,
}

impl Request {
    /// The guest bytes it moves.
    pub fn bytes(&self) -> u64 {
        match self {
            Request::Read { len, .. } | Request::Write { len, .. } => u64::from(*len),
            Request::Flush => 0,
        }
    }
}

/// Checks a descriptor's own fields and its sectors against the VM's region (its buffer is
/// checked against the VM's memory by the caller). `INVALID_PARAMETERS` for a malformed
/// descriptor, `DENIED` for sectors outside the region.
pub fn parse(desc: &BlockDesc, region: &Region) -> Result<Request, Error> {
    if desc.reserved != 0 {
        return Err(Error::InvalidParameters);
    }
    let (sector, buf_ipa, len) = (desc.sector, desc.buf_ipa, desc.len);
    match desc.op {
        BlockDesc::FLUSH if sector == 0 && buf_ipa == 0 && len == 0 => Ok(Request::Flush),
        BlockDesc::READ | BlockDesc::WRITE => {
            if len == 0 || len % BLOCK_SECTOR_SIZE != 0 || len > BLOCK_TRANSFER_MAX {
                return Err(Error::InvalidParameters);
            }
            let count = u64::from(len / BLOCK_SECTOR_SIZE);
            match sector.checked_add(count) {
                Some(end) if end <= region.sectors => {}
                _ => return Err(Error::Denied),
            }
            let sector = region.first_sector + sector;
            Ok(if desc.op == BlockDesc::READ {
                Request::Read {
                    sector,
                    buf_ipa,
                    len,
                }
            } else {
                Request::Write {
                    sector,
                    buf_ipa,
                    len,
                }
            })
        }
        _ => Err(Error::InvalidParameters),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Cpu;

    #[test]
    fn the_ring_is_a_pinned_page_with_a_header() {
        let mut memory = GuestMemory::<Cpu>::new(1, 2, 16 * 4096).unwrap();
        let disk = manifest::DiskRegion {
            offset: 1 << 20,
            size: 64 << 10,
        };
        let io = map_ring(&mut memory, 1, 0x5000, &disk).unwrap();
        assert_eq!(
            io.region,
            Region {
                first_sector: 2048,
                sectors: 128
            }
        );
        let mut header = [0u8; 12];
        memory.read(0x5000, &mut header).unwrap();
        assert_eq!(&header[..4], b"RING");
        assert_eq!(header[4..8], 64u32.to_le_bytes());
        assert_eq!(header[8..12], 32u32.to_le_bytes());
        assert_eq!(memory.unmap(0x5000, 1), Err(Error::Denied));
        assert_eq!(
            memory.protect(0x5000, 1, MemPerms::READ),
            Err(Error::Denied)
        );
    }

    const REGION: Region = Region {
        first_sector: 2048,
        sectors: 256,
    };

    fn desc(op: u32, sector: u64, len: u32) -> BlockDesc {
        BlockDesc {
            op,
            status: 1,
            sector,
            buf_ipa: 0x2_0000_0000,
            len,
            reserved: 0,
        }
    }

    #[test]
    fn good_requests_land_in_the_region() {
        let read = parse(&desc(BlockDesc::READ, 0, 512), &REGION);
        assert_eq!(
            read,
            Ok(Request::Read {
                sector: 2048,
                buf_ipa: 0x2_0000_0000,
                len: 512
            })
        );
        let last = parse(&desc(BlockDesc::WRITE, 255, 512), &REGION);
        assert!(matches!(last, Ok(Request::Write { sector: 2303, .. })));
        let flush = BlockDesc {
            buf_ipa: 0,
            ..desc(BlockDesc::FLUSH, 0, 0)
        };
        assert_eq!(parse(&flush, &REGION), Ok(Request::Flush));
    }

    #[test]
    fn past_the_region_is_denied() {
        for (sector, len) in [(256, 512), (255, 1024), (u64::MAX, 512), (1 << 40, 4096)] {
            assert_eq!(
                parse(&desc(BlockDesc::WRITE, sector, len), &REGION),
                Err(Error::Denied),
                "{sector} {len}"
            );
        }
    }

    #[test]
    fn malformed_descriptors_are_invalid() {
        let invalid = Err(Error::InvalidParameters);
        assert_eq!(parse(&desc(3, 0, 512), &REGION), invalid);
        assert_eq!(parse(&desc(u32::MAX, 0, 512), &REGION), invalid);
        assert_eq!(parse(&desc(BlockDesc::READ, 0, 0), &REGION), invalid);
        assert_eq!(parse(&desc(BlockDesc::READ, 0, 100), &REGION), invalid);
        assert_eq!(
            parse(&desc(BlockDesc::READ, 0, 65536 + 512), &REGION),
            invalid
        );
        assert_eq!(parse(&desc(BlockDesc::READ, 0, u32::MAX), &REGION), invalid);
        let reserved = BlockDesc {
            reserved: 1,
            ..desc(BlockDesc::READ, 0, 512)
        };
        assert_eq!(parse(&reserved, &REGION), invalid);
        assert_eq!(parse(&desc(BlockDesc::FLUSH, 0, 512), &REGION), invalid);
    }
}
