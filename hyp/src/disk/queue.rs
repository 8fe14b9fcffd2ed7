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
    Done(Job, Result<(), DiskError>),
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
    machine: PhantomData<fn() -> M>,
}

impl<M: Machine> Queue<M> {
    pub fn new(device: Box<dyn Device>) -> Self {
        Self {
            device,
            vms: Vec::new(),
            waiting: VecDeque::new(),
            at_device: None,
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
                    slot.state = State::Done(job, result);
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
                    State::Done(job, result)
                }
                _ => State::Free,
            };
        } else if self.at_device.is_none() {
            // Nothing asked: still acknowledge the interrupt.
            let _ = self.device.answer();
        }
        ready | self.start_next()
    }

    /// Collects one of VM `vm`'s done requests: `collect` gets the job, the device's answer
    /// and the bounce buffer (a read's data), and the slot is free again after it. The value
    /// `collect` returned, or None if the VM has nothing done.
    pub fn collect<T>(
        &mut self,
        vm: usize,
        collect: impl FnOnce(&Job, Result<(), DiskError>, Bounce<'_>) -> T,
    ) -> Option<T> {
        let p = self.position(vm)?;
        let slot = self.vms[p]
            .slots
            .iter_mut()
            .find(|s| matches!(s.state, State::Done(..)))?;
        let State::Done(job, result) = slot.state else {
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
