//! The request queue in front of a disk device that answers by interrupt (virtio-blk): each VM
//! with a disk region has [`SLOTS_PER_VM`] request slots, each with its own bounce buffer of
//! hyp frames ([`BOUNCE_PAGES`], one largest transfer), taken at boot for the hyp's life. A
//! request is queued into a free slot of its VM, and the device does one at a time, oldest
//! first; the interrupt takes its answer and starts the next. Nothing here waits.
//!
//! The device only ever sees bounce frames, never a guest's: a VM that ends or restarts with
//! a request at the device leaves the slot orphaned until the device answers into frames that
//! are still the hyp's, and the data a read brings is copied to the guest only when the VM
//! side collects it (which checks the guest's buffer again then). A VM's slots bound what it
//! can make the hyp hold, and how long another VM's request waits behind its own (at most
//! [`SLOTS_PER_VM`] of each other VM's).

use super::{DiskError, Op};
use crate::arch::Machine;
use crate::mm::PAGE_SIZE;
use crate::mm::owner::Owner;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::marker::PhantomData;
use hypercall_abi::block::BLOCK_TRANSFER_MAX;

/// Requests one VM may have queued or at the device at once.
pub const SLOTS_PER_VM: usize = 4;
/// Frames of one slot's bounce buffer: one largest transfer.
pub const BOUNCE_PAGES: usize = (BLOCK_TRANSFER_MAX as u64 / PAGE_SIZE) as usize;

/// A disk that takes one request at a time and answers later.
pub trait Device: Send {
    /// Its size in sectors.
    fn sectors(&self) -> u64;
    /// Starts `op` on `len` bytes (whole sectors, at most one bounce buffer) of the hyp
    /// frames `data`, from `sector`, on the idle device. `None`: started, answered by
    /// [`Device::answer`] after the device's interrupt; else the answer already (a flush with
    /// no write cache, a device given up on).
    fn start(
        &mut self,
        op: Op,
        sector: u64,
        data: &[u64],
        len: u32,
    ) -> Option<Result<(), DiskError>>;
    /// The answer to the request started, if the device has given it (never waits); also
    /// acknowledges the device's interrupt.
    fn answer(&mut self) -> Option<Result<(), DiskError>>;
}

/// One request, as the VM side queued it: `tag` is its ring index, the rest what it moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    pub tag: u32,
    pub op: Op,
    /// Absolute disk sector.
    pub sector: u64,
    pub buf_ipa: u64,
    pub len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Queued(Job),
    AtDevice(Job),
    /// Answered: the answer, and when (the count of answers before it).
    Done(Job, Result<(), DiskError>, u64),
    /// At the device for a VM that has since ended or restarted: freed when it answers.
    Orphaned,
}

struct Slot {
    bounce: [u64; BOUNCE_PAGES],
    state: State,
}

struct VmSlots {
    vm: usize,
    slots: [Slot; SLOTS_PER_VM],
}

/// A slot's bounce buffer, a page at a time.
pub struct Bounce<'a>(&'a [u64; BOUNCE_PAGES]);

impl Bounce<'_> {
    /// Page `i` of the buffer.
    pub fn page(&self, i: usize) -> &[u8] {
        // SAFETY: a frame the queue took at boot and never gives back (identity-mapped RAM);
        // the device does not write it while its slot is not at the device, and the disk lock
        // is held for the borrow.
        unsafe { core::slice::from_raw_parts(self.0[i] as *const u8, PAGE_SIZE as usize) }
    }
}

/// A slot's bounce buffer, to fill.
pub struct BounceMut<'a>(&'a [u64; BOUNCE_PAGES]);

impl BounceMut<'_> {
    /// Page `i` of the buffer.
    pub fn page(&mut self, i: usize) -> &mut [u8] {
        // SAFETY: as in `Bounce::page`, and the borrow is exclusive: the slot is being filled.
        unsafe { core::slice::from_raw_parts_mut(self.0[i] as *mut u8, PAGE_SIZE as usize) }
    }
}

/// Why a request was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused<E> {
    /// Every slot of the VM is taken: it must collect completions first.
    Full,
    /// The VM has no slots (no disk region), or the bounce frames were not there at boot.
    NoSlots,
    /// Filling the bounce buffer failed.
    Fill(E),
}

/// The requests of every VM on one device.
pub struct Queue<M: Machine> {
    device: Box<dyn Device>,
    vms: Vec<VmSlots>,
    /// Queued requests, oldest first: (position in `vms`, slot).
    waiting: VecDeque<(usize, usize)>,
    at_device: Option<(usize, usize)>,
    /// Answers so far: the order VMs collect theirs in.
    answers: u64,
    machine: PhantomData<fn() -> M>,
}

impl<M: Machine> Queue<M> {
    pub fn new(device: Box<dyn Device>) -> Self {
        Self {
            device,
            vms: Vec::new(),
            waiting: VecDeque::new(),
            at_device: None,
            answers: 0,
            machine: PhantomData,
        }
    }

    /// The device's size in sectors.
    pub fn sectors(&self) -> u64 {
        self.device.sectors()
    }

    /// The frames [`Queue::reserve`] takes for one VM.
    pub const FRAMES_PER_VM: usize = SLOTS_PER_VM * BOUNCE_PAGES;

    /// Takes VM `vm`'s slots and their bounce frames (or nothing, if RAM or heap is short).
    pub fn reserve(&mut self, vm: usize) -> Result<(), ()> {
        if self.vms.iter().any(|v| v.vm == vm) {
            return Ok(());
        }
        let total = (self.vms.len() + 1) * SLOTS_PER_VM;
        if M::frames_available() < Self::FRAMES_PER_VM
            || self.vms.try_reserve(1).is_err()
            || self
                .waiting
                .try_reserve(total.saturating_sub(self.waiting.len()))
                .is_err()
        {
            return Err(());
        }
        let mut frames = [[0u64; BOUNCE_PAGES]; SLOTS_PER_VM];
        for (n, pa) in frames.iter_mut().flatten().enumerate() {
            match M::alloc_frame(Owner::Hyp) {
                Some(frame) => *pa = frame,
                None => {
                    for &taken in frames.iter().flatten().take(n) {
                        M::free_frame(Owner::Hyp, taken);
                    }
                    return Err(());
                }
            }
        }
        self.vms.push(VmSlots {
            vm,
            slots: frames.map(|bounce| Slot {
                bounce,
                state: State::Free,
            }),
        });
        Ok(())
    }

    fn position(&self, vm: usize) -> Option<usize> {
        self.vms.iter().position(|v| v.vm == vm)
    }

    /// Queues `job` for VM `vm` in a free slot, after `fill` has put a write's data into its
    /// bounce buffer (a read's and a flush's `fill` is not called), and starts it if the
    /// device is idle. Returns the bit of every VM with a request now done (a device that
    /// answers at once).
    pub fn submit<E>(
        &mut self,
        vm: usize,
        job: Job,
        fill: impl FnOnce(BounceMut<'_>) -> Result<(), E>,
    ) -> Result<u64, Refused<E>> {
        let p = self.position(vm).ok_or(Refused::NoSlots)?;
        let s = self.vms[p]
            .slots
            .iter()
            .position(|s| s.state == State::Free)
            .ok_or(Refused::Full)?;
        if job.op == Op::Write {
            fill(BounceMut(&self.vms[p].slots[s].bounce)).map_err(Refused::Fill)?;
        }
        self.vms[p].slots[s].state = State::Queued(job);
        // Never grows: every slot is in it at most once, and its room was taken at boot.
        self.waiting.push_back((p, s));
        Ok(self.start_next())
    }

    /// Starts queued requests while the device is idle; the bits of VMs whose request the
    /// device answered at once.
    fn start_next(&mut self) -> u64 {
        let mut ready = 0;
        while self.at_device.is_none() {
            let Some((p, s)) = self.waiting.pop_front() else {
                break;
            };
            let VmSlots { vm, slots } = &mut self.vms[p];
            let slot = &mut slots[s];
            let State::Queued(job) = slot.state else {
                continue;
            };
            let pages = (job.len as usize).div_ceil(PAGE_SIZE as usize);
            match self
                .device
                .start(job.op, job.sector, &slot.bounce[..pages], job.len)
            {
                None => {
                    slot.state = State::AtDevice(job);
                    self.at_device = Some((p, s));
                }
                Some(result) => {
                    slot.state = State::Done(job, result, self.answers);
                    self.answers += 1;
                    ready |= bit(*vm);
                }
            }
        }
        ready
    }

    /// The device's interrupt: takes its answer, if any, and starts the next request. The
    /// bits (1 << VM index) of the VMs with a request now done.
    pub fn on_interrupt(&mut self) -> u64 {
        let mut ready = 0;
        if let Some((p, s)) = self.at_device
            && let Some(result) = self.device.answer()
        {
            self.at_device = None;
            let VmSlots { vm, slots } = &mut self.vms[p];
            let slot = &mut slots[s];
            slot.state = match slot.state {
                State::AtDevice(job) => {
                    ready |= bit(*vm);
                    self.answers += 1;
                    State::Done(job, result, self.answers - 1)
                }
                _ => State::Free,
            };
        } else if self.at_device.is_none() {
            // Nothing asked: still acknowledge the interrupt.
            let _ = self.device.answer();
        }
        ready | self.start_next()
    }

    /// Collects the first answered of VM `vm`'s done requests (so that two reads into one
    /// buffer land in the order the device did them): `collect` gets the job, the device's
    /// answer and the bounce buffer (a read's data), and the slot is free again after it. The
    /// value `collect` returned, or None if the VM has nothing done.
    pub fn collect<T>(
        &mut self,
        vm: usize,
        collect: impl FnOnce(&Job, Result<(), DiskError>, Bounce<'_>) -> T,
    ) -> Option<T> {
        let p = self.position(vm)?;
        let slot = self.vms[p]
            .slots
            .iter_mut()
            .filter_map(|s| match s.state {
                State::Done(_, _, when) => Some((when, s)),
                _ => None,
            })
            .min_by_key(|(when, _)| *when)?
            .1;
        let State::Done(job, result, _) = slot.state else {
            return None;
        };
        let value = collect(&job, result, Bounce(&slot.bounce));
        slot.state = State::Free;
        Some(value)
    }

    /// Forgets VM `vm`'s requests (it ended or restarts): queued and done ones are dropped,
    /// one at the device is orphaned until the device answers into its bounce frames.
    pub fn cancel(&mut self, vm: usize) {
        let Some(p) = self.position(vm) else { return };
        for slot in &mut self.vms[p].slots {
            slot.state = match slot.state {
                State::AtDevice(_) | State::Orphaned => State::Orphaned,
                _ => State::Free,
            };
        }
        self.waiting.retain(|&(q, _)| q != p);
    }

    /// VM `vm`'s requests not yet collected (queued, at the device or done).
    #[cfg(test)]
    pub fn outstanding(&self, vm: usize) -> usize {
        self.position(vm).map_or(0, |p| {
            self.vms[p]
                .slots
                .iter()
                .filter(|s| !matches!(s.state, State::Free | State::Orphaned))
                .count()
        })
    }
}

impl<M: Machine> Drop for Queue<M> {
    fn drop(&mut self) {
        for slot in self.vms.iter().flat_map(|v| &v.slots) {
            for &pa in &slot.bounce {
                M::free_frame(Owner::Hyp, pa);
            }
        }
    }
}

/// VM `vm`'s bit in a ready set.
pub fn bit(vm: usize) -> u64 {
    1u64.checked_shl(vm as u32).unwrap_or(0)
}

/// A device for the host tests: a disk in memory that moves the data when it answers (as a
/// device's DMA lands before its interrupt), answering when asked unless held.
#[cfg(test)]
pub mod fake {
    use super::*;
    use crate::disk::SECTOR_SIZE;
    use std::sync::{Arc, Mutex};
    use std::vec::Vec;

    /// What the test sees of the device.
    #[derive(Default)]
    pub struct State {
        pub bytes: Vec<u8>,
        /// The request at the device: op, sector, frames, length.
        pub started: Option<(Op, u64, Vec<u64>, u32)>,
        /// Every request started, in order: (op, sector).
        pub log: Vec<(Op, u64)>,
        /// Not answering yet.
        pub hold: bool,
        /// The next answer is an I/O error.
        pub fail_next: bool,
    }

    pub struct FakeDevice(pub Arc<Mutex<State>>);

    impl FakeDevice {
        /// A device of `sectors` zeroed sectors, and the test's handle on it.
        pub fn with_sectors(sectors: u64) -> (Box<dyn Device>, Arc<Mutex<State>>) {
            let state = Arc::new(Mutex::new(State {
                bytes: std::vec![0; (sectors * SECTOR_SIZE) as usize],
                ..State::default()
            }));
            (Box::new(FakeDevice(state.clone())), state)
        }
    }

    impl Device for FakeDevice {
        fn sectors(&self) -> u64 {
            self.0.lock().unwrap().bytes.len() as u64 / SECTOR_SIZE
        }

        fn start(
            &mut self,
            op: Op,
            sector: u64,
            data: &[u64],
            len: u32,
        ) -> Option<Result<(), DiskError>> {
            let mut s = self.0.lock().unwrap();
            assert!(s.started.is_none(), "one request at a time");
            assert_eq!(data.len(), (len as usize).div_ceil(PAGE_SIZE as usize));
            s.log.push((op, sector));
            s.started = Some((op, sector, data.to_vec(), len));
            None
        }

        fn answer(&mut self) -> Option<Result<(), DiskError>> {
            let mut s = self.0.lock().unwrap();
            if s.hold {
                return None;
            }
            let (op, sector, frames, len) = s.started.take()?;
            if core::mem::take(&mut s.fail_next) {
                return Some(Err(DiskError::Device));
            }
            let start = (sector * SECTOR_SIZE) as usize;
            for (i, &pa) in frames.iter().enumerate() {
                let off = i * PAGE_SIZE as usize;
                let n = (PAGE_SIZE as usize).min(len as usize - off);
                let disk = start + off..start + off + n;
                // SAFETY: a bounce frame of the queue (fake-machine memory), PAGE_SIZE long.
                let frame = unsafe { core::slice::from_raw_parts_mut(pa as *mut u8, n) };
                match op {
                    Op::Read => frame.copy_from_slice(&s.bytes[disk]),
                    Op::Write => s.bytes[disk].copy_from_slice(frame),
                    Op::Flush => {}
                }
            }
            Some(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{FakeDevice, State};
    use super::*;
    use crate::arch::Cpu;
    use crate::arch::fake::FakeMachine;
    use std::sync::{Arc, Mutex};

    fn queue(vms: &[usize]) -> (Queue<Cpu>, Arc<Mutex<State>>) {
        let (device, state) = FakeDevice::with_sectors(1024);
        let mut q = Queue::new(device);
        for &vm in vms {
            q.reserve(vm).unwrap();
        }
        (q, state)
    }

    fn job(tag: u32, op: Op, sector: u64, len: u32) -> Job {
        Job {
            tag,
            op,
            sector,
            buf_ipa: 0x1000,
            len,
        }
    }

    fn no_fill(_: BounceMut<'_>) -> Result<(), ()> {
        panic!("only a write's bounce buffer is filled")
    }

    #[test]
    fn requests_go_to_the_device_one_at_a_time_and_are_collected_with_their_data() {
        let (mut q, dev) = queue(&[3]);
        let fill = |mut b: BounceMut<'_>| -> Result<(), ()> {
            b.page(0)[..512].fill(0xA5);
            b.page(1)[..512].fill(0x5A);
            Ok(())
        };
        assert_eq!(q.submit(3, job(0, Op::Write, 8, 4096 + 512), fill), Ok(0));
        assert_eq!(q.submit(3, job(1, Op::Read, 8, 4096 + 512), no_fill), Ok(0));
        assert_eq!(dev.lock().unwrap().log, [(Op::Write, 8)], "the read waits");
        assert_eq!(
            q.collect(3, |_, _, _| ()),
            None,
            "nothing done before the interrupt"
        );
        assert_eq!(q.on_interrupt(), bit(3));
        assert_eq!(dev.lock().unwrap().log, [(Op::Write, 8), (Op::Read, 8)]);
        assert_eq!(q.collect(3, |j, r, _| (j.tag, r)), Some((0, Ok(()))));
        assert_eq!(
            q.collect(3, |j, _, _| j.tag),
            None,
            "the read is at the device"
        );
        assert_eq!(q.on_interrupt(), bit(3));
        let data = q.collect(3, |j, r, b| {
            assert_eq!((j.tag, r), (1, Ok(())));
            (b.page(0)[..512].to_vec(), b.page(1)[..512].to_vec())
        });
        assert_eq!(data, Some((vec![0xA5; 512], vec![0x5A; 512])));
        assert_eq!(q.outstanding(3), 0);
        assert_eq!(q.on_interrupt(), 0, "an interrupt with nothing asked");
    }

    #[test]
    fn a_vm_holds_at_most_its_slots_and_a_slot_is_free_again_once_collected() {
        let (mut q, _dev) = queue(&[1]);
        for tag in 0..SLOTS_PER_VM as u32 {
            assert!(q.submit(1, job(tag, Op::Read, 0, 512), no_fill).is_ok());
        }
        assert_eq!(
            q.submit(1, job(9, Op::Read, 0, 512), no_fill),
            Err(Refused::Full)
        );
        assert_eq!(
            q.submit(2, job(0, Op::Read, 0, 512), no_fill),
            Err(Refused::NoSlots),
            "a VM without a disk region has no slots"
        );
        q.on_interrupt();
        assert_eq!(q.collect(1, |j, _, _| j.tag), Some(0));
        assert!(q.submit(1, job(9, Op::Read, 0, 512), no_fill).is_ok());
        assert_eq!(q.outstanding(1), SLOTS_PER_VM);
    }

    #[test]
    fn a_failed_fill_takes_no_slot_and_a_device_error_reaches_the_collector() {
        let (mut q, dev) = queue(&[1]);
        let bad = |_: BounceMut<'_>| Err("unmapped");
        assert_eq!(
            q.submit(1, job(0, Op::Write, 0, 512), bad),
            Err(Refused::Fill("unmapped"))
        );
        assert_eq!(q.outstanding(1), 0);
        assert!(dev.lock().unwrap().log.is_empty());
        dev.lock().unwrap().fail_next = true;
        q.submit(1, job(1, Op::Read, 0, 512), no_fill).unwrap();
        q.on_interrupt();
        assert_eq!(q.collect(1, |_, r, _| r), Some(Err(DiskError::Device)));
    }

    #[test]
    fn a_storm_from_one_vm_keeps_anothers_request_behind_at_most_its_slots() {
        let (mut q, dev) = queue(&[1, 2]);
        for tag in 0..SLOTS_PER_VM as u32 {
            q.submit(1, job(tag, Op::Read, 100 + u64::from(tag), 512), no_fill)
                .unwrap();
        }
        q.submit(2, job(0, Op::Read, 7, 512), no_fill).unwrap();
        // VM 1 collects and asks again at every interrupt, as fast as it can.
        let mut tag = SLOTS_PER_VM as u32;
        for _ in 0..3 * SLOTS_PER_VM {
            let ready = q.on_interrupt();
            if ready & bit(1) != 0 {
                q.collect(1, |_, _, _| ());
                q.submit(1, job(tag, Op::Read, 100 + u64::from(tag), 512), no_fill)
                    .unwrap();
                tag += 1;
            }
        }
        let log = dev.lock().unwrap().log.clone();
        let at = log
            .iter()
            .position(|&(_, s)| s == 7)
            .expect("VM 2's read ran");
        assert_eq!(at, SLOTS_PER_VM, "behind VM 1's first slots only: {log:?}");
        assert_eq!(q.collect(2, |j, r, _| (j.tag, r)), Some((0, Ok(()))));
    }

    #[test]
    fn a_cancelled_vms_request_at_the_device_is_orphaned_the_rest_dropped() {
        let (mut q, dev) = queue(&[1, 2]);
        for tag in 0..3 {
            q.submit(1, job(tag, Op::Read, tag.into(), 512), no_fill)
                .unwrap();
        }
        q.submit(2, job(0, Op::Read, 50, 512), no_fill).unwrap();
        dev.lock().unwrap().hold = true;
        // VM 1 restarts: its first read is at the device, writing into a bounce frame.
        q.cancel(1);
        assert_eq!(q.outstanding(1), 0);
        assert_eq!(
            q.submit(1, job(7, Op::Read, 9, 512), no_fill).map(|_| ()),
            Ok(()),
            "the new life has its slots, but for the orphaned one"
        );
        dev.lock().unwrap().hold = false;
        assert_eq!(q.on_interrupt(), 0, "the orphan's answer is nobody's");
        // VM 2's read next (the cancelled ones are gone), then the new life's.
        assert_eq!(q.on_interrupt(), bit(2));
        assert_eq!(q.on_interrupt(), bit(1));
        assert_eq!(
            dev.lock().unwrap().log,
            [(Op::Read, 0), (Op::Read, 50), (Op::Read, 9)]
        );
        assert_eq!(q.collect(1, |j, _, _| j.tag), Some(7));
        assert_eq!(q.collect(1, |j, _, _| j.tag), None);
        // All four slots free again: the orphan's was given back at its answer.
        for tag in 0..SLOTS_PER_VM as u32 {
            assert!(q.submit(1, job(tag, Op::Read, 0, 512), no_fill).is_ok());
        }
    }

    #[test]
    fn the_bounce_frames_are_taken_at_boot_and_given_back() {
        let before = FakeMachine::frames_of(Owner::Hyp);
        let (mut q, _dev) = queue(&[1, 5]);
        assert_eq!(
            FakeMachine::frames_of(Owner::Hyp),
            before + 2 * Queue::<Cpu>::FRAMES_PER_VM
        );
        q.reserve(5).unwrap();
        assert_eq!(
            FakeMachine::frames_of(Owner::Hyp),
            before + 2 * Queue::<Cpu>::FRAMES_PER_VM,
            "once per VM"
        );
        FakeMachine::limit_frames(Some(Queue::<Cpu>::FRAMES_PER_VM - 1));
        assert_eq!(q.reserve(6), Err(()));
        FakeMachine::limit_frames(None);
        assert_eq!(
            q.submit(6, job(0, Op::Read, 0, 512), no_fill),
            Err(Refused::NoSlots)
        );
        drop(q);
        assert_eq!(FakeMachine::frames_of(Owner::Hyp), before);
    }
}
