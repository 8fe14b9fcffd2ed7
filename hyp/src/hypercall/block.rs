//! The `block` family: a VM's requests, taken from its ring, checked and handed to its region
//! of the disk. Each descriptor is copied out of the shared page before it is checked, so the
//! guest cannot change it in between; only the producer index in x1 and the slots are read
//! from the guest. On the RAM disk a request is done within the call; on a device it is queued
//! in one of the VM's request slots (a write's data copied into the slot's bounce buffer
//! first) and the call returns, and [`complete`] finishes it after the device's interrupt: a
//! read's data copied into the guest's buffer, which is checked again then (the guest may have
//! unmapped or protected it meanwhile: the request then fails, nothing is written). Either
//! way each descriptor's status is written when it is done and the consumer index advances
//! over the done ones in ring order, the block event raised when it does.

use super::GuestVm;
use super::guest_buffer::{self, Access};
use crate::arch::Cpu;
use crate::disk::queue::{Bounce, Job, Refused};
use crate::disk::{Backend, Disk, IO_MAX, Io, Op};
use crate::mm::PAGE_SIZE;
use crate::vm::block::{self, BlockIo, Request};
use crate::vm::event::BLOCK_EVENT;
use crate::vm::mem::GuestMemory;
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

/// The IPA of ring slot `index`.
fn slot_ipa(ring: u64, index: u32) -> u64 {
    ring + RingHeader::SLOTS_OFFSET as u64
        + u64::from(index % BLOCK_RING_ENTRIES) * BlockDesc::SIZE as u64
}

/// BLOCK_SUBMIT: takes the descriptors from the hyp's next untaken one to `producer`, a bounded
/// chunk ([`SUBMIT_CHUNK_BYTES`]) at a time: `None` when descriptors are left, and the call is
/// continued (re-entered at its `HVC`, `producer` still in x1), so the guest sees one call that
/// took them all and reports them all. It stops early, reporting fewer, when every request
/// slot of the VM is taken (the guest rings again once some are done).
pub fn submit(vm: &mut impl GuestVm, producer: u32) -> Result<Option<[u64; 3]>, Error> {
    let io = vm.block_io().ok_or(Error::NotSupported)?;
    let (ring, consumer, taken, region, owner) =
        (io.ring_ipa, io.consumer, io.taken, io.region, io.vm);
    // Where the call began: the next untaken descriptor then (this one, for a fresh call).
    let first = io.submitting.take().unwrap_or(taken);
    // At most a ring ahead of the last descriptor not done, and not behind what is taken.
    let window = producer.wrapping_sub(consumer);
    if window > BLOCK_RING_ENTRIES
        || producer.wrapping_sub(taken) > window
        || producer.wrapping_sub(first) > BLOCK_RING_ENTRIES
    {
        return Err(Error::InvalidParameters);
    }
    let (mut next, mut moved, mut full) = (taken, 0, false);
    while next != producer && moved < SUBMIT_CHUNK_BYTES {
        let mut raw = [0u8; BlockDesc::SIZE];
        // The ring is pinned: it is always mapped.
        if vm.memory().read(slot_ipa(ring, next), &mut raw).is_err() {
            break;
        }
        let status = match block::parse(&BlockDesc::from_bytes(&raw), &region) {
            Ok(request) => {
                moved += request.bytes();
                match start(vm, owner, next, request) {
                    Started::Queued => None,
                    Started::Done(result) => Some(result),
                    Started::Full => {
                        full = true;
                        break;
                    }
                }
            }
            Err(e) => Some(Err(e)),
        };
        if let Some(io) = vm.block_io() {
            io.taken = next.wrapping_add(1);
        }
        if let Some(result) = status {
            finish(vm, next, result);
        }
        next = next.wrapping_add(1);
    }
    let left = next != producer && !full;
    if left && let Some(io) = vm.block_io() {
        io.submitting = Some(first);
    }
    complete(vm);
    if left {
        return Ok(None);
    }
    Ok(Some([next.wrapping_sub(first).into(), 0, 0]))
}

/// What became of a checked request.
enum Started {
    /// On the device's queue: [`complete`] finishes it.
    Queued,
    /// Done already (the RAM disk, or refused).
    Done(Result<(), Error>),
    /// Every request slot of the VM is taken: not taken.
    Full,
}

/// Checks a request's buffer and does it (the RAM disk) or queues it (a device).
fn start(vm: &mut impl GuestVm, owner: usize, tag: u32, request: Request) -> Started {
    let (op, sector, buf_ipa, len) = match request {
        Request::Read {
            sector,
            buf_ipa,
            len,
        } => (Op::Read, sector, buf_ipa, len),
        Request::Write {
            sector,
            buf_ipa,
            len,
        } => (Op::Write, sector, buf_ipa, len),
        Request::Flush => (Op::Flush, 0, 0, 0),
    };
    let access = if op == Op::Read {
        Access::Write
    } else {
        Access::Read
    };
    if let Err(e) = guest_buffer::check(vm.memory(), buf_ipa, len.into(), access) {
        return Started::Done(Err(e));
    }
    let mut disk = vm.disk().lock();
    match disk.as_mut() {
        None => Started::Done(Err(Error::Busy)),
        Some(Disk::Immediate(backend)) => Started::Done(perform(
            vm.memory_mut(),
            backend.as_mut(),
            op,
            sector,
            buf_ipa,
            len,
        )),
        Some(Disk::Queued(queue)) => {
            let job = Job {
                tag,
                op,
                sector,
                buf_ipa,
                len,
            };
            let memory = vm.memory();
            let fill = |mut bounce: crate::disk::queue::BounceMut<'_>| {
                for (i, off) in pages(len) {
                    memory.read(
                        buf_ipa + off as u64,
                        &mut bounce.page(i)[..page_len(len, off)],
                    )?;
                }
                Ok(())
            };
            match queue.submit(owner, job, fill) {
                Ok(ready) => {
                    crate::disk::mark_ready(ready);
                    Started::Queued
                }
                Err(Refused::Full) => Started::Full,
                Err(Refused::NoSlots) => Started::Done(Err(Error::Busy)),
                Err(Refused::Fill(e)) => Started::Done(Err(e)),
            }
        }
    }
}

/// The pages of a transfer of `len` bytes: (page number, byte offset).
fn pages(len: u32) -> impl Iterator<Item = (usize, usize)> {
    (0..len as usize).step_by(PAGE_SIZE as usize).enumerate()
}

/// The bytes of a transfer of `len` in its page starting at `off`.
fn page_len(len: u32, off: usize) -> usize {
    (PAGE_SIZE as usize).min(len as usize - off)
}

/// Moves a checked request's data between the guest's buffer and a disk that works within the
/// call, a page at a time through the hyp's own buffer.
fn perform(
    memory: &mut GuestMemory<Cpu>,
    backend: &mut dyn Backend,
    op: Op,
    sector: u64,
    buf_ipa: u64,
    len: u32,
) -> Result<(), Error> {
    if op == Op::Flush {
        return backend.io(0, Io::Flush).map_err(|e| e.to_abi());
    }
    let mut bounce = [0u8; IO_MAX];
    for off in (0..len as usize).step_by(IO_MAX) {
        let chunk = &mut bounce[..IO_MAX.min(len as usize - off)];
        let at = sector + off as u64 / u64::from(BLOCK_SECTOR_SIZE);
        let ipa = buf_ipa + off as u64;
        if op == Op::Read {
            backend.io(at, Io::Read(chunk)).map_err(|e| e.to_abi())?;
            memory.write(ipa, chunk)?;
        } else {
            memory.read(ipa, chunk)?;
            backend.io(at, Io::Write(chunk)).map_err(|e| e.to_abi())?;
        }
    }
    Ok(())
}

/// Finishes the VM's requests the device has done (after its interrupt, and at the end of
/// each BLOCK_SUBMIT): statuses written, a read's data into the guest's buffer if that is
/// still the guest's to write, the consumer index advanced and the block event raised if it
/// moved.
pub fn complete(vm: &mut impl GuestVm) {
    let Some(io) = vm.block_io() else { return };
    let owner = io.vm;
    let disk = vm.disk();
    loop {
        let mut guard = disk.lock();
        let Some(Disk::Queued(queue)) = guard.as_mut() else {
            break;
        };
        let memory = vm.memory_mut();
        let collected = queue.collect(owner, |job, answer, bounce| {
            (job.tag, land(memory, job, answer, &bounce))
        });
        drop(guard);
        let Some((tag, result)) = collected else {
            break;
        };
        finish(vm, tag, result);
    }
    advance(vm);
}

/// A done request's outcome for the guest; a read's data copied into its buffer, checked again
/// now (the guest may have unmapped it, or made it read-only, since it was taken).
fn land(
    memory: &mut GuestMemory<Cpu>,
    job: &Job,
    answer: Result<(), crate::disk::DiskError>,
    bounce: &Bounce<'_>,
) -> Result<(), Error> {
    answer.map_err(|e| e.to_abi())?;
    if job.op != Op::Read {
        return Ok(());
    }
    guest_buffer::check(memory, job.buf_ipa, job.len.into(), Access::Write)?;
    for (i, off) in pages(job.len) {
        memory.write(
            job.buf_ipa + off as u64,
            &bounce.page(i)[..page_len(job.len, off)],
        )?;
    }
    Ok(())
}

/// Descriptor `index` is done with `result`: its status written, and it counts as done (if it
/// is one the VM has taken and not finished: anything else is ignored).
fn finish(vm: &mut impl GuestVm, index: u32, result: Result<(), Error>) {
    let Some(io) = vm.block_io() else { return };
    let outstanding = io.taken.wrapping_sub(io.consumer);
    if index.wrapping_sub(io.consumer) >= outstanding || io.done & BlockIo::bit(index) != 0 {
        return;
    }
    io.done |= BlockIo::bit(index);
    let at = slot_ipa(io.ring_ipa, index) + offset_of!(BlockDesc, status) as u64;
    let code = result.err().map_or(0, |e| e.code() as i32);
    // The ring is pinned: the write cannot fail.
    let _ = vm.memory_mut().write(at, &code.to_le_bytes());
}

/// Moves the consumer index over the done descriptors at its head; if it moved, writes it into
/// the ring (after their statuses) and raises the block event.
fn advance(vm: &mut impl GuestVm) {
    let Some(io) = vm.block_io() else { return };
    let (ring, before) = (io.ring_ipa, io.consumer);
    let mut consumer = before;
    while consumer != io.taken && io.done & BlockIo::bit(consumer) != 0 {
        io.done &= !BlockIo::bit(consumer);
        consumer = consumer.wrapping_add(1);
    }
    io.consumer = consumer;
    if consumer == before {
        return;
    }
    // The statuses before the index that announces them, for a vCPU reading on another CPU.
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    let _ = vm.memory_mut().write(
        ring + offset_of!(RingHeader, consumer) as u64,
        &consumer.to_le_bytes(),
    );
    if vm.events().raise(BLOCK_EVENT).is_ok() {
        vm.events_changed(None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeVm, PAGE_IPA};
    use super::*;
    use crate::vm::block::{BlockIo, Region};
    use hypercall_abi::MemPerms;

    const RING: u64 = 0x8000;
    const BUF: u64 = 0x1_0000;

    /// A VM with a ring, a 4-page buffer and sectors 64..64+128 of the fake disk.
    fn vm() -> FakeVm {
        let mut vm = FakeVm::default();
        vm.memory.map(RING, 1, MemPerms::RW).unwrap();
        vm.memory.map(BUF, 4, MemPerms::RW).unwrap();
        vm.block_io = Some(BlockIo::new(
            RING,
            vm.index as usize,
            Region {
                first_sector: 64,
                sectors: 128,
            },
        ));
        vm
    }

    /// Puts the VM's ring indices at `index` with nothing outstanding.
    fn set_index(vm: &mut FakeVm, index: u32) {
        let io = vm.block_io.as_mut().unwrap();
        (io.consumer, io.taken) = (index, index);
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
        match vm.disk.lock().as_mut() {
            Some(Disk::Immediate(disk)) => disk.io(74, Io::Read(&mut raw)).unwrap(),
            _ => unreachable!("the fake VM's disk is a RAM disk"),
        }
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
        set_index(&mut vm, 60);
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
        set_index(&mut vm, 5);
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
            let taken = vm.block_io.as_ref().unwrap().taken;
            let _ = submit(&mut vm, taken.wrapping_add(round % 70));
        }
    }

    mod on_a_device {
        use super::*;
        use crate::arch::Cpu;
        use crate::disk::queue::fake::{FakeDevice, State};
        use crate::disk::queue::{Queue, SLOTS_PER_VM};
        use std::sync::{Arc, Mutex};

        /// The VM's disk made a device (the fake, 1024 sectors) with the VM's request slots.
        fn on_device(vm: &mut FakeVm) -> Arc<Mutex<State>> {
            let (device, state) = FakeDevice::with_sectors(1024);
            let mut q = Queue::<Cpu>::new(device);
            q.reserve(vm.index as usize).unwrap();
            *vm.disk.lock() = Some(Disk::Queued(q));
            state
        }

        /// The device's interrupt, then the VM collects, as `vm::block::deliver` has it do.
        fn interrupt(vm: &mut FakeVm) {
            if let Some(Disk::Queued(q)) = vm.disk.lock().as_mut() {
                q.on_interrupt();
            }
            complete(vm);
        }

        fn consumer(vm: &FakeVm) -> u32 {
            let mut raw = [0u8; 4];
            vm.memory.read(RING + 128, &mut raw).unwrap();
            u32::from_le_bytes(raw)
        }

        fn block_event(vm: &mut FakeVm) -> bool {
            vm.events.page().pending[0] & 1 << BLOCK_EVENT != 0
        }

        /// Disk bytes from sector `sector` on, as a pattern of `seed`.
        fn fill_disk(dev: &Arc<Mutex<State>>, sector: u64, len: usize, seed: u8) {
            let at = sector as usize * 512;
            for (i, b) in dev.lock().unwrap().bytes[at..at + len]
                .iter_mut()
                .enumerate()
            {
                *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
            }
        }

        fn read_guest(vm: &FakeVm, ipa: u64, len: usize) -> std::vec::Vec<u8> {
            let mut v = vec![0u8; len];
            vm.memory.read(ipa, &mut v).unwrap();
            v
        }

        #[test]
        fn a_request_is_queued_by_the_call_and_done_at_the_interrupt() {
            let mut vm = vm();
            let dev = on_device(&mut vm);
            let data: std::vec::Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
            vm.memory.write(BUF, &data).unwrap();
            put(&mut vm, 0, rw(BlockDesc::WRITE, 10, BUF, 8192));
            put(
                &mut vm,
                1,
                rw(BlockDesc::READ, 10, BUF + 0x2003, 8192 - 512),
            );
            assert_eq!(submit_all(&mut vm, 2), (Ok([2, 0, 0]), 1));
            assert_eq!((status(&vm, 0), status(&vm, 1)), (1, 1), "not done yet");
            assert_eq!(consumer(&vm), 0);
            assert!(!block_event(&mut vm));
            assert_eq!(dev.lock().unwrap().log, [(Op::Write, 74)], "the read waits");
            interrupt(&mut vm);
            assert_eq!((status(&vm, 0), status(&vm, 1), consumer(&vm)), (0, 1, 1));
            assert!(block_event(&mut vm));
            assert_eq!(
                dev.lock().unwrap().bytes[74 * 512..74 * 512 + 8192],
                data[..]
            );
            interrupt(&mut vm);
            assert_eq!((status(&vm, 1), consumer(&vm)), (0, 2));
            assert_eq!(
                read_guest(&vm, BUF + 0x2003, 8192 - 512),
                data[..8192 - 512]
            );
        }

        #[test]
        fn a_buffer_unmapped_or_made_read_only_in_flight_is_not_written() {
            let mut vm = vm();
            let dev = on_device(&mut vm);
            fill_disk(&dev, 64, 4096, 7);
            for (i, page) in [0, 1, 2].into_iter().enumerate() {
                put(
                    &mut vm,
                    i as u32,
                    rw(BlockDesc::READ, 0, BUF + page * 0x1000, 4096),
                );
            }
            assert_eq!(submit_all(&mut vm, 3).0, Ok([3, 0, 0]));
            // Meanwhile the guest unmaps the first buffer and write-protects the second.
            vm.memory.unmap(BUF, 1).unwrap();
            vm.memory.protect(BUF + 0x1000, 1, MemPerms::READ).unwrap();
            for _ in 0..3 {
                interrupt(&mut vm);
            }
            let bad = Error::BadAddress.code() as i32;
            assert_eq!(
                (status(&vm, 0), status(&vm, 1), status(&vm, 2)),
                (bad, bad, 0)
            );
            assert_eq!(consumer(&vm), 3);
            assert!(read_guest(&vm, BUF + 0x1000, 4096).iter().all(|&b| b == 0));
            let want = dev.lock().unwrap().bytes[64 * 512..64 * 512 + 4096].to_vec();
            assert_eq!(read_guest(&vm, BUF + 0x2000, 4096), want);
        }

        #[test]
        fn the_same_buffer_twice_gets_both_reads_in_ring_order() {
            let mut vm = vm();
            let dev = on_device(&mut vm);
            fill_disk(&dev, 64, 512, 1);
            fill_disk(&dev, 65, 512, 2);
            put(&mut vm, 0, rw(BlockDesc::READ, 0, BUF, 512));
            put(&mut vm, 1, rw(BlockDesc::READ, 1, BUF, 512));
            assert_eq!(submit_all(&mut vm, 2).0, Ok([2, 0, 0]));
            interrupt(&mut vm);
            interrupt(&mut vm);
            assert_eq!((status(&vm, 0), status(&vm, 1), consumer(&vm)), (0, 0, 2));
            let second = dev.lock().unwrap().bytes[65 * 512..66 * 512].to_vec();
            assert_eq!(read_guest(&vm, BUF, 512), second);
            // Again with both done before the VM collects, the first in a later slot: slot 0
            // is busy when it is taken, free again for the second.
            put(&mut vm, 2, rw(BlockDesc::READ, 5, BUF + 0x1000, 512));
            put(&mut vm, 3, rw(BlockDesc::READ, 1, BUF, 512));
            assert_eq!(submit_all(&mut vm, 4).0, Ok([2, 0, 0]));
            interrupt(&mut vm);
            put(&mut vm, 4, rw(BlockDesc::READ, 0, BUF, 512));
            assert_eq!(submit_all(&mut vm, 5).0, Ok([1, 0, 0]));
            for _ in 0..2 {
                if let Some(Disk::Queued(q)) = vm.disk.lock().as_mut() {
                    q.on_interrupt();
                }
            }
            complete(&mut vm);
            assert_eq!(consumer(&vm), 5);
            let first = dev.lock().unwrap().bytes[64 * 512..65 * 512].to_vec();
            assert_eq!(
                read_guest(&vm, BUF, 512),
                first,
                "the later read lands last"
            );
        }

        #[test]
        fn a_device_error_is_busy_and_the_rest_still_run() {
            let mut vm = vm();
            let dev = on_device(&mut vm);
            dev.lock().unwrap().fail_next = true;
            put(&mut vm, 0, rw(BlockDesc::READ, 0, BUF, 512));
            put(&mut vm, 1, rw(BlockDesc::WRITE, 200, BUF, 512));
            put(&mut vm, 2, rw(BlockDesc::READ, 1, BUF, 512));
            assert_eq!(submit_all(&mut vm, 3).0, Ok([3, 0, 0]));
            assert_eq!(consumer(&vm), 0, "the denied one waits behind the first");
            interrupt(&mut vm);
            assert_eq!(consumer(&vm), 2);
            interrupt(&mut vm);
            let (busy, denied) = (Error::Busy.code() as i32, Error::Denied.code() as i32);
            assert_eq!(
                (status(&vm, 0), status(&vm, 1), status(&vm, 2)),
                (busy, denied, 0)
            );
            assert_eq!(consumer(&vm), 3);
        }

        #[test]
        fn a_storm_of_a_full_ring_is_taken_a_few_slots_at_a_time_and_all_completes() {
            let mut vm = vm();
            let _dev = on_device(&mut vm);
            vm.memory.map(0x10_0000, 16, MemPerms::RW).unwrap();
            for i in 0..64 {
                put(
                    &mut vm,
                    i,
                    rw(BlockDesc::READ, 0, 0x10_0000, BLOCK_TRANSFER_MAX),
                );
            }
            let mut rounds = 0;
            while consumer(&vm) != 64 {
                let (answer, _) = submit_all(&mut vm, 64);
                let taken = answer.unwrap()[0] as usize;
                assert!(
                    taken <= SLOTS_PER_VM,
                    "{taken} taken with {SLOTS_PER_VM} slots"
                );
                for _ in 0..taken {
                    interrupt(&mut vm);
                }
                rounds += 1;
                assert!(
                    rounds <= 64 / SLOTS_PER_VM,
                    "every round takes a full set of slots"
                );
            }
            assert!((0..64).all(|i| status(&vm, i) == 0));
            assert_eq!(submit_all(&mut vm, 64), (Ok([0, 0, 0]), 1));
        }

        #[test]
        fn a_lying_producer_is_refused_while_requests_are_in_flight() {
            let mut vm = vm();
            let _dev = on_device(&mut vm);
            for i in 0..3 {
                put(&mut vm, i, rw(BlockDesc::READ, 0, BUF, 512));
            }
            assert_eq!(submit_all(&mut vm, 3).0, Ok([3, 0, 0]));
            let invalid = Err(Error::InvalidParameters);
            for producer in [2, 65, u32::MAX, 1 << 31] {
                assert_eq!(submit(&mut vm, producer), invalid, "producer {producer}");
            }
            assert_eq!(
                submit(&mut vm, 3),
                Ok(Some([0, 0, 0])),
                "nothing new: none taken"
            );
            for _ in 0..3 {
                interrupt(&mut vm);
            }
            assert_eq!(consumer(&vm), 3);
        }

        #[test]
        fn a_restarted_vms_requests_in_flight_never_reach_its_new_life() {
            let mut vm = vm();
            let dev = on_device(&mut vm);
            fill_disk(&dev, 64, 4096, 9);
            for i in 0..4 {
                put(&mut vm, i, rw(BlockDesc::READ, 0, BUF, 4096));
            }
            assert_eq!(submit_all(&mut vm, 4).0, Ok([4, 0, 0]));
            // The VM restarts (vm::block::map_ring): its requests are forgotten, the ring new.
            dev.lock().unwrap().hold = true;
            if let Some(Disk::Queued(q)) = vm.disk.lock().as_mut() {
                q.cancel(vm.index as usize);
            }
            let region = vm.block_io.as_ref().unwrap().region;
            vm.block_io = Some(BlockIo::new(RING, vm.index as usize, region));
            for i in 0..4 {
                put(&mut vm, i, rw(BlockDesc::WRITE, 5, BUF + 0x1000, 512));
            }
            dev.lock().unwrap().hold = false;
            for _ in 0..4 {
                interrupt(&mut vm);
            }
            assert_eq!(consumer(&vm), 0, "no old completion moves the new ring");
            assert!((0..4).all(|i| status(&vm, i) == 1));
            assert!(read_guest(&vm, BUF, 4096).iter().all(|&b| b == 0));
            assert_eq!(
                dev.lock().unwrap().log.len(),
                1,
                "only the one at the device ran"
            );
            // The new life's requests work.
            assert_eq!(submit_all(&mut vm, 1).0, Ok([1, 0, 0]));
            interrupt(&mut vm);
            assert_eq!((status(&vm, 0), consumer(&vm)), (0, 1));
        }
    }
}
