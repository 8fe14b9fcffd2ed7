//! The `block` family: a VM's requests, taken from its ring, checked and performed on its
//! region of the disk. Each descriptor is copied out of the shared page before it is checked,
//! so the guest cannot change it in between; only the producer index in x1 and the slots are
//! read from the guest. Requests are performed synchronously, in order, inside the call.

use super::GuestVm;
use super::guest_buffer::{self, Access};
use crate::disk::{IO_MAX, Io};
use crate::vm::block::{self, Request};
use crate::vm::event::BLOCK_EVENT;
use core::mem::offset_of;
use hypercall_abi::block::{BLOCK_RING_ENTRIES, BLOCK_SECTOR_SIZE, BLOCK_TRANSFER_MAX};
use hypercall_abi::layout::{BlockDesc, RingHeader};
use hypercall_abi::{BlockInfo, Error};

/// BLOCK_INFO: the VM's region.
pub fn info(vm: &mut impl GuestVm) -> Result<[u64; 3], Error> {
    let io = vm.block_io().ok_or(Error::NotSupported)?;
    Ok(BlockInfo {
        sectors: io.region.sectors,
        sector_size: BLOCK_SECTOR_SIZE,
        flags: 0,
    }
    .to_values())
}

/// The most guest bytes one chunk of BLOCK_SUBMIT moves before the call is continued: one
/// largest transfer, or several smaller ones (any descriptors without data besides).
pub const SUBMIT_CHUNK_BYTES: u64 = BLOCK_TRANSFER_MAX as u64;

/// BLOCK_SUBMIT: performs every descriptor from the hyp's consumer index to `producer`, a
/// bounded chunk ([`SUBMIT_CHUNK_BYTES`]) at a time: `None` when descriptors are left, and the
/// call is continued (re-entered at its `HVC`, `producer` still in x1), so the guest sees one
/// call that took them all and reports them all.
pub fn submit(vm: &mut impl GuestVm, producer: u32) -> Result<Option<[u64; 3]>, Error> {
    let io = vm.block_io().ok_or(Error::NotSupported)?;
    let (ring, consumer, region) = (io.ring_ipa, io.consumer, io.region);
    // Where the call began: the hyp's consumer index then (this one, for a fresh call).
    let first = io.submitting.take().unwrap_or(consumer);
    let count = producer.wrapping_sub(consumer);
    if count > BLOCK_RING_ENTRIES || producer.wrapping_sub(first) > BLOCK_RING_ENTRIES {
        return Err(Error::InvalidParameters);
    }
    let (mut done, mut moved) = (0, 0);
    while done < count && moved < SUBMIT_CHUNK_BYTES {
        let slot = ring
            + RingHeader::SLOTS_OFFSET as u64
            + u64::from(consumer.wrapping_add(done) % BLOCK_RING_ENTRIES) * BlockDesc::SIZE as u64;
        let mut raw = [0u8; BlockDesc::SIZE];
        vm.memory().read(slot, &mut raw)?;
        let desc = BlockDesc::from_bytes(&raw);
        let status = match block::parse(&desc, &region) {
            Ok(request) => {
                moved += request.bytes();
                perform(vm, request)
            }
            Err(e) => Err(e),
        };
        let code = status.err().map_or(0, |e| e.code() as i32);
        vm.memory_mut().write(
            slot + offset_of!(BlockDesc, status) as u64,
            &code.to_le_bytes(),
        )?;
        done += 1;
    }
    let consumer = consumer.wrapping_add(done);
    if let Some(io) = vm.block_io() {
        io.consumer = consumer;
        if done < count {
            io.submitting = Some(first);
        }
    }
    vm.memory_mut().write(
        ring + offset_of!(RingHeader, consumer) as u64,
        &consumer.to_le_bytes(),
    )?;
    if done > 0 {
        vm.events().raise(BLOCK_EVENT)?;
        vm.events_changed(None);
    }
    if done < count {
        return Ok(None);
    }
    Ok(Some([producer.wrapping_sub(first).into(), 0, 0]))
}

/// Moves a checked request's data between the guest's buffer and the disk, a page at a time
/// through the hyp's own buffer.
fn perform(vm: &mut impl GuestVm, request: Request) -> Result<(), Error> {
    let (sector, buf_ipa, len, to_guest) = match request {
        Request::Read {
            sector,
            buf_ipa,
            len,
        } => (sector, buf_ipa, len, true),
        Request::Write {
            sector,
            buf_ipa,
            len,
        } => (sector, buf_ipa, len, false),
        Request::Flush => return vm.disk_io(0, Io::Flush).map_err(|e| e.to_abi()),
    };
    let access = if to_guest {
        Access::Write
    } else {
        Access::Read
    };
    guest_buffer::check(vm.memory(), buf_ipa, len.into(), access)?;
    let mut bounce = [0u8; IO_MAX];
    for off in (0..len as usize).step_by(IO_MAX) {
        let chunk = &mut bounce[..IO_MAX.min(len as usize - off)];
        let at = sector + off as u64 / u64::from(BLOCK_SECTOR_SIZE);
        let ipa = buf_ipa + off as u64;
        if to_guest {
            vm.disk_io(at, Io::Read(chunk)).map_err(|e| e.to_abi())?;
            vm.memory_mut().write(ipa, chunk)?;
        } else {
            vm.memory().read(ipa, chunk)?;
            vm.disk_io(at, Io::Write(chunk)).map_err(|e| e.to_abi())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeVm, PAGE_IPA};
    use super::*;
    use crate::disk::Backend;
    use crate::vm::block::{BlockIo, Region};
    use hypercall_abi::MemPerms;

    const RING: u64 = 0x8000;
    const BUF: u64 = 0x1_0000;

    /// A VM with a ring, a 4-page buffer and sectors 64..64+128 of the fake disk.
    fn vm() -> FakeVm {
        let mut vm = FakeVm::default();
        vm.memory.map(RING, 1, MemPerms::RW).unwrap();
        vm.memory.map(BUF, 4, MemPerms::RW).unwrap();
        vm.block_io = Some(BlockIo {
            ring_ipa: RING,
            consumer: 0,
            region: Region {
                first_sector: 64,
                sectors: 128,
            },
            submitting: None,
        });
        vm
    }

    /// Submits through the dispatcher as the guest's vCPU would.
    fn submit_all(vm: &mut FakeVm, producer: u32) -> (Result<[u64; 3], Error>, usize) {
        super::super::fake::call_continued(vm, hypercall_abi::Call::BlockSubmit { producer })
    }

    fn put(vm: &mut FakeVm, index: u32, d: BlockDesc) {
        let slot = RING + 192 + u64::from(index % 64) * 32;
        vm.memory.write(slot, &d.to_bytes()).unwrap();
    }

    fn status(vm: &FakeVm, index: u32) -> i32 {
        let mut raw = [0u8; 32];
        let slot = RING + 192 + u64::from(index % 64) * 32;
        vm.memory.read(slot, &mut raw).unwrap();
        BlockDesc::from_bytes(&raw).status
    }

    fn rw(op: u32, sector: u64, buf_ipa: u64, len: u32) -> BlockDesc {
        BlockDesc {
            op,
            status: 1,
            sector,
            buf_ipa,
            len,
            reserved: 0,
        }
    }

    #[test]
    fn no_region_no_disk() {
        let mut vm = FakeVm::default();
        assert_eq!(info(&mut vm), Err(Error::NotSupported));
        assert_eq!(submit(&mut vm, 1), Err(Error::NotSupported));
        assert_eq!(info(&mut self::vm()), Ok([128, 512, 0]));
    }

    #[test]
    fn a_write_then_a_read_round_trip_through_the_region() {
        let mut vm = vm();
        let data: std::vec::Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
        vm.memory.write(BUF, &data).unwrap();
        put(&mut vm, 0, rw(BlockDesc::WRITE, 10, BUF, 8192));
        put(
            &mut vm,
            1,
            BlockDesc {
                buf_ipa: 0,
                ..rw(BlockDesc::FLUSH, 0, 0, 0)
            },
        );
        put(
            &mut vm,
            2,
            rw(BlockDesc::READ, 10, BUF + 0x2000 + 3, 8192 - 512),
        );
        assert_eq!(submit_all(&mut vm, 3), (Ok([3, 0, 0]), 1));
        assert_eq!((status(&vm, 0), status(&vm, 1), status(&vm, 2)), (0, 0, 0));
        let mut back = vec![0u8; 8192 - 512];
        vm.memory.read(BUF + 0x2000 + 3, &mut back).unwrap();
        assert_eq!(back, data[..8192 - 512]);
        // The region starts at disk sector 64.
        let mut raw = [0u8; 512];
        vm.disk.io(74, Io::Read(&mut raw)).unwrap();
        assert_eq!(raw[..], data[..512]);
        let mut consumer = [0u8; 4];
        vm.memory.read(RING + 128, &mut consumer).unwrap();
        assert_eq!(u32::from_le_bytes(consumer), 3);
        assert_ne!(
            vm.events.page().pending[0] & 1 << BLOCK_EVENT,
            0,
            "block event raised"
        );
    }

    #[test]
    fn each_bad_descriptor_gets_its_error_and_the_rest_still_run() {
        let mut vm = vm();
        vm.memory.map(0x2_0000, 1, MemPerms::READ).unwrap();
        let cases = [
            (rw(7, 0, BUF, 512), Error::InvalidParameters),
            (rw(BlockDesc::READ, 0, BUF, 100), Error::InvalidParameters),
            (
                rw(BlockDesc::READ, 0, BUF, 1 << 20),
                Error::InvalidParameters,
            ),
            (rw(BlockDesc::WRITE, 128, BUF, 512), Error::Denied),
            (rw(BlockDesc::WRITE, u64::MAX, BUF, 512), Error::Denied),
            (
                rw(BlockDesc::WRITE, 0, 0x7E_0000_0000, 512),
                Error::BadAddress,
            ),
            (rw(BlockDesc::WRITE, 0, 1 << 45, 512), Error::BadAddress),
            (
                rw(BlockDesc::WRITE, 0, u64::MAX - 100, 512),
                Error::BadAddress,
            ),
            (
                rw(BlockDesc::WRITE, 0, BUF + 0x3F00, 512),
                Error::BadAddress,
            ),
            (rw(BlockDesc::READ, 0, 0x2_0000, 512), Error::BadAddress),
            // A good one after all the bad (its error is not used: it must succeed).
            (rw(BlockDesc::READ, 0, PAGE_IPA, 512), Error::Unknown),
        ];
        for (i, (d, _)) in cases.iter().enumerate() {
            put(&mut vm, 60 + i as u32, *d);
        }
        vm.block_io.as_mut().unwrap().consumer = 60;
        let producer = 60 + cases.len() as u32;
        assert_eq!(
            submit_all(&mut vm, producer).0,
            Ok([cases.len() as u64, 0, 0])
        );
        for (i, (_, want)) in cases.iter().enumerate() {
            let want = if i == cases.len() - 1 {
                0
            } else {
                want.code() as i32
            };
            assert_eq!(status(&vm, 60 + i as u32), want, "case {i}");
        }
    }

    #[test]
    fn a_full_ring_of_largest_transfers_is_one_call_in_bounded_chunks() {
        let mut vm = vm();
        vm.memory.map(0x10_0000, 16, MemPerms::RW).unwrap();
        vm.block_io.as_mut().unwrap().region.sectors = 1 << 20;
        for i in 0..64 {
            let op = if i % 2 == 0 {
                BlockDesc::WRITE
            } else {
                BlockDesc::READ
            };
            put(&mut vm, 5 + i, rw(op, 0, 0x10_0000, BLOCK_TRANSFER_MAX));
        }
        vm.block_io.as_mut().unwrap().consumer = 5;
        // Each chunk moves at most SUBMIT_CHUNK_BYTES: one 64 KiB descriptor each.
        let (answer, entries) = submit_all(&mut vm, 69);
        assert_eq!(
            answer,
            Ok([64, 0, 0]),
            "every descriptor taken, and reported"
        );
        assert_eq!(entries, 64);
        assert!((5..69).all(|i| status(&vm, i) == 0));
        assert_eq!(vm.block_io.as_ref().unwrap().submitting, None);
        assert_eq!(submit_all(&mut vm, 69), (Ok([0, 0, 0]), 1));
    }

    #[test]
    fn a_lying_producer_is_refused_and_nothing_is_taken() {
        let mut vm = vm();
        put(&mut vm, 0, rw(BlockDesc::WRITE, 0, BUF, 512));
        assert_eq!(submit(&mut vm, 65), Err(Error::InvalidParameters));
        assert_eq!(submit(&mut vm, u32::MAX), Err(Error::InvalidParameters));
        assert_eq!(status(&vm, 0), 1);
        assert_eq!(submit(&mut vm, 0), Ok(Some([0, 0, 0])));
    }

    #[test]
    fn garbage_rings_never_panic() {
        let mut vm = vm();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..200u32 {
            for slot in 0..64u32 {
                let mut words = [0u64; 4];
                for w in &mut words {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *w = x;
                }
                // Half the time a plausible op and length, so the checks further in run too.
                if x & 1 == 0 {
                    words[0] &= 0xFFFF_FFFF_0000_0003;
                    words[3] &= 0x0000_FFFF;
                }
                let bytes: std::vec::Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                vm.memory
                    .write(RING + 192 + u64::from(slot) * 32, &bytes)
                    .unwrap();
            }
            let consumer = vm.block_io.as_ref().unwrap().consumer;
            let _ = submit(&mut vm, consumer.wrapping_add(round % 70));
        }
    }
}
