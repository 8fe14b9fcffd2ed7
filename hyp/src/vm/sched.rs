//! Scheduling, and the locks of the run.
//!
//! Each VM lives in its own slot of a fixed table ([`VmSlot`], indexed by [`VmIndex`]), under
//! its own lock; every CPU runs one vCPU at a time (its PerCpu says which) and, when it gives
//! the CPU up, takes the first vCPU of the run queue it may run (round-robin; a VM pinned by
//! the manifest's `cpus` only on the CPUs of its set). Two vCPUs of one VM may run at once on
//! two CPUs; with fewer CPUs than vCPUs they time-share. A CPU with nothing to run idles in
//! WFI until its EL2 timer (the next virtual-timer deadline of a waiting vCPU, or a slice) or
//! a kick.
//!
//! A slice belongs to the CPU: `pick` arms it when it loads a vCPU, and a switch (a yield, the
//! notify's hand-over) passes the rest of it to the vCPU it loads. However its vCPUs switch,
//! every CPU so reaches a slice's end and `pick`'s looks once a slice at least, where typed
//! input and the other VMs' work are looked at; the switch itself looks only at what cannot
//! wait that long (the timers of vCPUs off the CPUs, disk completions, console writers
//! waiting). A vCPU that came on by a switch is owed a slice: at the end of the one it came
//! on in, it goes on with a whole one of its own (`pick`'s looks made, not sent round the
//! queue), so a neighbour that yields just before its slice ends cannot leave it the dregs.
//!
//! # Locks, in the order a CPU may take them
//!
//! 1. **A VM's lock** (`VmSlot::vm`, [`Level::Vm`]): everything of that VM (memory, events,
//!    console, vCPU run states). One VM at a time: a channel notify drops the caller's lock
//!    before it takes the peer's. An exit takes only its own VM's lock, so exits of different
//!    VMs on different CPUs never wait for each other.
//! 2. **The run queue** ([`Level::RunQueue`]): a few instructions (push, or pop the first
//!    vCPU this CPU may run); taken under a VM's lock when a vCPU becomes runnable.
//! 3. Leaf locks of other modules, taken last and never while waiting on another: the console
//!    and its UART, the disk, the frame allocator and the heap, the SMMU's and its unnamed
//!    fault lines' rate limit (`device::assign`).
//!
//! Nothing is held across a guest entry or an idle wait. What only one CPU touches takes no
//! lock: a loaded vCPU's registers, EL1 and FP/SIMD state belong to the CPU it is loaded on
//! (vectors.S saves to them through PerCpu::regs) from `load` to `unload`, both under its VM's
//! lock; no other CPU reads them meanwhile. Lock-free per vCPU ([`VcpuShared`]): the CPU it
//! is on, its request bits, whether it is queued, its timer deadline while off a CPU. Debug
//! builds check the order on every lock taken (`vm::lock`, a held-level mask per CPU).
//!
//! # Requests and kicks
//!
//! Work for a vCPU another CPU runs is a request bit on it ([`REQ_VIRQ`]: its virtual
//! interrupt changed, load its HCR_EL2 again; [`REQ_STOP`]: its VM stops, leave it) plus a kick
//! (the `KICK_SGI` to that CPU, which leaves the guest at once and handles the request in its
//! exit). A vCPU made runnable kicks an idle CPU that may run it. A kick is never lost: the
//! SGI stays pending while the target is in the hyp, and its next guest entry leaves at once.
//!
//! # Stopping a VM everywhere
//!
//! [`stop_vm`] (or an exit: a fault, PSCI SYSTEM_RESET or SYSTEM_OFF, the last CPU_OFF) marks
//! the VM stopping and kicks every CPU running one of its vCPUs with `REQ_STOP`; each leaves
//! its vCPU (its acknowledgement), and the last to leave, under the VM's lock, ends the VM
//! (its stage 2 forgotten) or rebuilds it from its image. No CPU waits for another.

use super::build::{RunState, Vcpu};
use super::ids::{VcpuIndex, VmIndex};
use super::lock::{Level, Ordered, OrderedGuard};
use super::stats::{Ending, Totals, VmLine};
use super::{Vm, VmState};
use crate::arch::aarch64::{cpu, timer};
use crate::dev::{console, gic};
use crate::percpu::{self, MAX_CPUS};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use manifest::MAX_VMS;

/// The byte (Ctrl-]) that moves the console focus to the next VM, or to the hyp's console.
pub const FOCUS_ESCAPE: u8 = 0x1d;

/// The most vCPUs a VM has.
const MAX_VCPUS: usize = super::build::MAX_VCPUS;

/// Request: the vCPU's virtual interrupt (HCR_EL2.VI) changed: its CPU loads its HCR again.
pub const REQ_VIRQ: u32 = 1 << 0;
/// Request: the vCPU's VM stops: its CPU leaves it.
pub const REQ_STOP: u32 = 1 << 1;
/// Request: a Linux vCPU's vGIC changed: its CPU reloads its list registers (every exit of a
/// Linux vCPU does: the kick is what matters).
pub const REQ_VGIC: u32 = 1 << 2;

/// `VcpuShared::on_cpu` of a vCPU no CPU runs.
const NO_CPU: usize = usize::MAX;
/// `VcpuShared::timer_deadline` of a vCPU whose timer cannot fire while it is off a CPU.
const NO_DEADLINE: u64 = u64::MAX;

/// What other CPUs may read or set of a vCPU without its VM's lock.
pub struct VcpuShared {
    /// The CPU it is loaded on ([`NO_CPU`]: none). Changed only under the VM's lock.
    on_cpu: AtomicUsize,
    /// `REQ_*` bits for the CPU it is loaded on.
    requests: AtomicU32,
    /// Whether it is in the run queue.
    queued: AtomicBool,
    /// While it is off a CPU: when its virtual timer fires, as a physical count.
    timer_deadline: AtomicU64,
}

impl VcpuShared {
    const fn idle() -> Self {
        Self {
            on_cpu: AtomicUsize::new(NO_CPU),
            requests: AtomicU32::new(0),
            queued: AtomicBool::new(false),
            timer_deadline: AtomicU64::new(NO_DEADLINE),
        }
    }

    /// The CPU it is loaded on, if any.
    pub fn on_cpu(&self) -> Option<usize> {
        Some(self.on_cpu.load(Ordering::Acquire)).filter(|&c| c != NO_CPU)
    }

    /// Asks the CPU it is loaded on, if another, to act on `request` now.
    pub fn request(&self, request: u32) {
        self.requests.fetch_or(request, Ordering::SeqCst);
        if let Some(cpu) = self.on_cpu().filter(|&c| c != percpu::index()) {
            gic::kick(cpu);
        }
    }

    /// Takes the requests made since the last look (the CPU it is loaded on, under its VM's
    /// lock). A plain load first, the swap only when one is there: most exits have none. A
    /// request made just after the load is not lost: `request` sets its bit before it reads
    /// `on_cpu` and kicks this CPU, whose pending SGI makes the guest exit again at once (and
    /// one made on this CPU was ordered before the load by program order).
    #[inline(always)]
    pub fn take_requests(&self) -> u32 {
        if self.requests.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.requests.swap(0, Ordering::SeqCst)
    }
}

/// A VM's place in the run.
pub struct VmSlot {
    vm: Ordered<Option<Vm>>,
    vcpus: [VcpuShared; MAX_VCPUS],
    /// The CPUs that may run its vCPUs, a bit each (the manifest's pin, or all).
    cpus: AtomicUsize,
}

/// A VM's lock, held.
pub type VmLocked = OrderedGuard<'static, Option<Vm>>;

impl VmSlot {
    const fn empty() -> Self {
        Self {
            vm: Ordered::new(Level::Vm, None),
            vcpus: [const { VcpuShared::idle() }; MAX_VCPUS],
            cpus: AtomicUsize::new(usize::MAX),
        }
    }

    /// Takes the VM's lock.
    pub fn lock(&'static self) -> VmLocked {
        self.vm.lock()
    }

    /// vCPU `v`'s lock-free part.
    pub fn vcpu(&self, v: VcpuIndex) -> &VcpuShared {
        &self.vcpus[v.get() % MAX_VCPUS]
    }
}

/// The run's VMs, by index: one more slot than the highest VM index of the run, on the heap
/// (set up once by `run`, held for the whole run).
static SLOTS: spin::Once<&'static [VmSlot]> = spin::Once::new();

/// What `slot` answers for an index the run has no slot for (before `run`, or beyond the
/// table): an empty slot, whose VM is never there. Made at its first use: a `Once` is all
/// zeros, so .bss (the slot itself, its markers not zero, put 2.5 KiB of .data in the Image).
static NO_SLOT: spin::Once<VmSlot> = spin::Once::new();

fn no_slot() -> &'static VmSlot {
    NO_SLOT.call_once(VmSlot::empty)
}

/// The slot of VM `index`.
pub fn slot(index: VmIndex) -> &'static VmSlot {
    slots().get(index.get()).unwrap_or_else(no_slot)
}

/// The lock-free part of vCPU `v` of VM `index`.
pub fn vcpu(index: VmIndex, v: VcpuIndex) -> &'static VcpuShared {
    slot(index).vcpu(v)
}

fn slots() -> &'static [VmSlot] {
    SLOTS.get().copied().unwrap_or(&[])
}

/// Runnable vCPUs no CPU runs, oldest first (each at most once: `VcpuShared::queued`): a ring,
/// so that taking the oldest (the usual case) moves nothing. An entry may be stale (its vCPU
/// since waits, or its VM stopped): the CPU that pops it checks under the VM's lock.
struct RunQueue {
    /// Room for every vCPU a run may have (allocated once, by `run`: 8 KiB kept out of the
    /// image; [`Queued::none`] where no entry is). A fixed power-of-two length: places wrap
    /// with a mask and index with no bounds check.
    entries: Option<alloc::boxed::Box<[Queued; QUEUE_LEN]>>,
    /// Where the oldest entry is.
    head: usize,
    len: usize,
}

/// A queued vCPU, with its slot (found once, when it is queued).
#[derive(Clone, Copy)]
#[repr(C)]
struct Queued {
    slot: &'static VmSlot,
    vm: VmIndex,
    vcpu: VcpuIndex,
}

impl Queued {
    /// What the queue holds where it holds no entry.
    fn none() -> Self {
        Self {
            slot: no_slot(),
            vm: VmIndex::new(0),
            vcpu: VcpuIndex::new(0),
        }
    }
}

/// Entries the run queue has room for: every vCPU of the most VMs a manifest may have.
const QUEUE_LEN: usize = MAX_VMS * MAX_VCPUS;
const _: () = assert!(QUEUE_LEN.is_power_of_two());

/// The place in the ring `i` entries after `head`.
fn wrap(head: usize, i: usize) -> usize {
    (head + i) & (QUEUE_LEN - 1)
}

impl RunQueue {
    fn push(&mut self, entry: Queued) {
        let (head, len) = (self.head, self.len);
        if let Some(entries) = self.entries.as_mut().filter(|_| len < QUEUE_LEN) {
            entries[wrap(head, len)] = entry;
            self.len += 1;
        }
    }

    /// The place (0: the oldest) of the oldest vCPU `cpu` may run.
    #[inline(always)]
    fn position_for(&self, cpu: usize) -> Option<usize> {
        let entries = self.entries.as_ref()?;
        (0..self.len).find(|&i| {
            entries[wrap(self.head, i)]
                .slot
                .cpus
                .load(Ordering::Relaxed)
                & (1 << cpu)
                != 0
        })
    }

    /// The oldest vCPU `cpu` may run, left queued.
    fn first_for(&self, cpu: usize) -> Option<(VmIndex, VcpuIndex)> {
        let at = self.position_for(cpu)?;
        let entry = self.entries.as_ref()?[wrap(self.head, at)];
        Some((entry.vm, entry.vcpu))
    }

    /// Takes the oldest vCPU `cpu` may run; the older entries it passed move up one. Inlined:
    /// an `Option<Queued>` returned through memory is copied with a call to memcpy.
    #[inline(always)]
    fn pop_for(&mut self, cpu: usize) -> Option<Queued> {
        let found = self.position_for(cpu)?;
        self.pop_at(found)
    }

    /// Takes the oldest vCPU `cpu` may run (with `only`, just when it is that vCPU) and queues
    /// `own` (unless it is queued already: its `queued`, set here): a vCPU handing this CPU
    /// over. With that entry the only one, `own` takes its place, nothing moves; that case is
    /// looked at first, without the search (the switch of two vCPUs on a CPU).
    #[inline(always)]
    fn hand_over(
        &mut self,
        cpu: usize,
        own: Queued,
        queued: &AtomicBool,
        only: Option<(VmIndex, VcpuIndex)>,
    ) -> Option<Queued> {
        let is_wanted = |entry: &Queued| only.is_none_or(|want| (entry.vm, entry.vcpu) == want);
        if self.len == 0 {
            return None;
        }
        if self.len == 1 {
            let head = self.head;
            let entries = self.entries.as_mut()?;
            let entry = entries[wrap(head, 0)];
            if entry.slot.cpus.load(Ordering::Relaxed) & (1 << cpu) == 0 || !is_wanted(&entry) {
                return None;
            }
            entry
                .slot
                .vcpu(entry.vcpu)
                .queued
                .store(false, Ordering::SeqCst);
            if queued.swap(true, Ordering::SeqCst) {
                self.head = wrap(head, 1);
                self.len = 0;
            } else {
                entries[wrap(head, 0)] = own;
            }
            return Some(entry);
        }
        let found = self.position_for(cpu)?;
        if !is_wanted(&self.entries.as_ref()?[wrap(self.head, found)]) {
            return None;
        }
        let entry = self.pop_at(found)?;
        if !queued.swap(true, Ordering::SeqCst) {
            self.push(own);
        }
        Some(entry)
    }

    /// [`RunQueue::pop_for`] of the entry at place `found`.
    #[inline(always)]
    fn pop_at(&mut self, found: usize) -> Option<Queued> {
        let head = self.head;
        let entries = self.entries.as_mut()?;
        let entry = entries[wrap(head, found)];
        for i in (1..=found).rev() {
            entries[wrap(head, i)] = entries[wrap(head, i - 1)];
        }
        self.head = wrap(head, 1);
        self.len -= 1;
        entry
            .slot
            .vcpu(entry.vcpu)
            .queued
            .store(false, Ordering::SeqCst);
        Some(entry)
    }
}

static RUN_QUEUE: Ordered<RunQueue> = Ordered::new(
    Level::RunQueue,
    RunQueue {
        entries: None,
        head: 0,
        len: 0,
    },
);

/// CPUs idling, a bit each: a vCPU made runnable kicks one of them.
static IDLE_CPUS: AtomicUsize = AtomicUsize::new(0);
/// VMs alive (running or stopping to restart).
static ALIVE: AtomicUsize = AtomicUsize::new(0);
/// Set once CPU 0 has filled the slots: the secondaries wait for it.
static STARTED: AtomicBool = AtomicBool::new(false);
/// Set by the CPU that ends the run.
static FINISHING: AtomicBool = AtomicBool::new(false);
/// No later than the earliest `VcpuShared::timer_deadline` (it may be earlier: a deadline
/// met, or forgotten, leaves it until `poll_timers` next looks): until then there is nothing
/// for `poll_timers` to do, and it looks at no slot.
static EARLIEST_DEADLINE: AtomicU64 = AtomicU64::new(NO_DEADLINE);
/// The VM typed input goes to, or [`HYP_FOCUS`].
static FOCUS: AtomicUsize = AtomicUsize::new(0);
/// `FOCUS` of the hyp's own console (`hyp>`, vm::monitor).
const HYP_FOCUS: usize = usize::MAX;
/// The hyp console's line: the CPU that reads the input holds it (the others, finding it
/// held, leave the input to that CPU, so typed bytes keep their order).
static INPUT: spin::Mutex<crate::monitor::LineEditor> =
    spin::Mutex::new(crate::monitor::LineEditor::new());

/// Queues vCPU `v` of VM `index`, runnable and on no CPU, and kicks an idle CPU that may run
/// it. Called under the VM's lock.
pub fn make_runnable(index: VmIndex, v: VcpuIndex) {
    queue(slot(index), index, v);
}

/// [`make_runnable`], the VM's slot found.
fn queue(slot: &'static VmSlot, index: VmIndex, v: VcpuIndex) {
    let shared = slot.vcpu(v);
    if shared.on_cpu().is_some() || shared.queued.swap(true, Ordering::SeqCst) {
        return;
    }
    RUN_QUEUE.lock().push(Queued {
        slot,
        vm: index,
        vcpu: v,
    });
    kick_idle(slot, percpu::index());
}

/// After a vCPU of `slot` was queued: kicks an idle CPU (not this one, `me`) that may run it.
#[inline(always)]
fn kick_idle(slot: &VmSlot, me: usize) {
    let others = slot.cpus.load(Ordering::Relaxed) & !(1 << me);
    // Only this CPU may run it (pinned here, or a board of one CPU): nobody to kick, and no
    // fence on the switch.
    if others == 0 {
        return;
    }
    // Against `idle`: it marks itself idle, then looks at the queue.
    core::sync::atomic::fence(Ordering::SeqCst);
    let idle = IDLE_CPUS.load(Ordering::SeqCst) & others;
    if idle != 0 {
        gic::kick(idle.trailing_zeros() as usize);
    }
}

/// How a vCPU comes on a CPU: what `load` may skip, and whose slice it runs in.
#[derive(Clone, Copy, PartialEq)]
enum Arrival {
    /// `pick` took it from the run queue: it gets a slice of its own.
    Picked,
    /// A switch (a yield, or a notify's hand-over) loads it in the rest of the slice, which
    /// it is owed a whole one for (`percpu::take_switched_in`). `irq_fresh`: its virtual IRQ
    /// is up for an event the caller has just raised (`Vm::raise_event`).
    Switched { irq_fresh: bool },
}

/// Points this CPU at vCPU `v` of VM `index`: its EL1, timer and FP/SIMD state, its VM's
/// stage 2, and the register block vectors.S restores from. `me`: this CPU's index.
#[inline(always)]
fn load(
    vm: &mut Vm,
    slot: &'static VmSlot,
    index: VmIndex,
    v: VcpuIndex,
    me: usize,
    arrival: Arrival,
) {
    let vttbr = vm.vttbr();
    // One look up of the vCPU for all of its state, before the atomics and the log line below
    // (each `vm.vcpus[v]` after one is a bounds check again, 5 instructions; this one is the
    // caller's).
    let Some(mut vcpu) = vm.vcpus.get_mut(v.get()) else {
        return;
    };
    let shared = slot.vcpu(v);
    shared.on_cpu.store(me, Ordering::SeqCst);
    // What it is loaded with is current: older requests are met.
    shared.requests.store(0, Ordering::SeqCst);
    shared.timer_deadline.store(NO_DEADLINE, Ordering::Relaxed);
    vcpu.el1.restore();
    percpu::load_fp(&mut vcpu.fp);
    // A notify that handed the CPU over left the acknowledgements the guest made in its event
    // page untaken: a virtual IRQ still up for them would keep its next WFI from waiting. Taken
    // here, before the guest entry; a vCPU whose virtual IRQ is down needs none (taking
    // acknowledgements only lowers it), nor one that `irq_fresh` says is up for an event just
    // raised, which the guest has not seen (the notify's hand-over: a look at the page that
    // cannot lower it, ~75 instructions).
    if vcpu.hcr & cpu::HCR_VI != 0 && arrival != (Arrival::Switched { irq_fresh: true }) {
        take_page_acks(vm);
        let Some(again) = vm.vcpus.get_mut(v.get()) else {
            return;
        };
        vcpu = again;
    }
    // HCR_EL2 and VTTBR_EL2 with one `ISB` for both (each setter has its own): nothing between
    // here and the guest entry depends on them, and the TLB maintenance of a later exit comes
    // after that exit's own synchronization.
    {
        use aarch64_cpu::asm::barrier;
        use aarch64_cpu::registers::{HCR_EL2, VTTBR_EL2, Writeable};
        HCR_EL2.set(vcpu.hcr);
        VTTBR_EL2.set(vttbr);
        barrier::isb(barrier::SY);
    }
    let switched_in = arrival != Arrival::Picked;
    percpu::set_current(Some((slot, index, v)), &mut vcpu.regs, switched_in);
    // A PV VM has no vGIC: one inlined look instead of a call that finds none.
    if vm.is_linux() {
        vm.switch_in_vgic(v.get());
    }
    if !vm.has_run && vm.spec.cpus.is_some() {
        vm.has_run = true;
        info!("VM {}: first runs on CPU {me}", vm.name);
    }
}

/// [`load`]'s look at the acknowledgements in the event page, out of line: the switch of two
/// vCPUs with no virtual IRQ up keeps its registers.
#[inline(never)]
fn take_page_acks(vm: &mut Vm) {
    if vm.events.acks_shared() {
        vm.deliver_events();
    }
}

/// Takes vCPU `v` off this CPU; `keep` says whether its state is worth saving (not when its
/// VM stops or the vCPU is off). Inlined (in `give_up`'s switch and its other ways off): a call
/// would save and restore the registers it keeps across it.
#[inline(always)]
fn unload(vm: &mut Vm, slot: &VmSlot, v: VcpuIndex, keep: bool) {
    if let Some(vcpu) = vm.vcpus.get_mut(v.get()) {
        save_vcpu(vcpu, slot.vcpu(v), keep);
    }
    unload_saved(vm, slot, v, keep);
}

/// [`unload`]'s part in the vCPU's own block: its EL1 state (if `keep`), and its timer's
/// deadline for `poll_timers`. Apart, so that the switch saves the vCPU it has looked up.
#[inline(always)]
fn save_vcpu(vcpu: &mut Vcpu, shared: &VcpuShared, keep: bool) {
    let mut deadline = NO_DEADLINE;
    if keep {
        vcpu.el1.save();
        let el1 = &vcpu.el1;
        if vcpu.run != RunState::Off && timer::is_armed(el1.cntv_ctl) {
            deadline = el1.cntv_cval.wrapping_add(el1.cntvoff);
        }
    }
    shared.timer_deadline.store(deadline, Ordering::SeqCst);
    if deadline != NO_DEADLINE {
        EARLIEST_DEADLINE.fetch_min(deadline, Ordering::SeqCst);
    }
}

/// The rest of [`unload`], once [`save_vcpu`] has run: the CPU's timer, vGIC and FP/SIMD.
#[inline(always)]
fn unload_saved(vm: &mut Vm, slot: &VmSlot, v: VcpuIndex, keep: bool) {
    let shared = slot.vcpu(v);
    // Its timer must not fire while another vCPU (or nobody) is on the CPU; poll_timers
    // watches its deadline instead.
    cpu::set_cntv_ctl(0);
    if vm.is_linux() {
        vm.switch_out_vgic(v.get());
    }
    percpu::unload_fp(keep);
    // This CPU's current vCPU is left as it was: the next `load` (a switch) sets it, and
    // `pick`, the only other way on, clears it first. Not for a vCPU whose VM may end next
    // (its register block freed).
    if !keep {
        percpu::set_current(None, core::ptr::null_mut(), false);
    }
    shared.on_cpu.store(NO_CPU, Ordering::SeqCst);
}

/// What the vCPU of an exit does with this CPU.
pub enum GiveUp {
    /// It may go on, unless another vCPU waits for this CPU (a yield).
    Yield,
    /// As `Yield`, at the end of its slice, but always through `pick`, which also looks at
    /// typed input and the other work for the VMs (with one CPU and a vCPU that never yields
    /// nor waits, the switch's way would never look: the console's input stalled until a line
    /// of the hyp's own happened to send the CPU through `pick`). Once a slice, off the
    /// calls' path.
    SliceEnd,
    /// It waits, or is off: it leaves the CPU with its state saved.
    Leave,
    /// Its VM stops: it leaves without saving (the stop's acknowledgement).
    Stop,
}

/// The vCPU `v` on this CPU, of the VM `guard` locks (in `slot`: the caller has it, from
/// `percpu::current_vm`, and no lookup is made again), gives the CPU up; returns once this CPU
/// has a vCPU loaded (the caller enters it).
pub fn give_up(mut guard: VmLocked, slot: &'static VmSlot, v: VcpuIndex, how: GiveUp) {
    let Some(vm) = guard.as_mut() else {
        drop(guard);
        return pick();
    };
    let index = vm.index;
    debug_assert!(
        core::ptr::eq(slot, self::slot(index)),
        "give_up: not the guard's slot"
    );
    let me = percpu::index();
    // Work of other VMs (disk completions, console writers to wake) is done by `pick`,
    // with no VM's lock held: with some, the vCPU goes round the queue, else a vCPU that
    // only yields would keep it waiting for good.
    if matches!(how, GiveUp::Yield)
        && let Some(vcpu) = vm.vcpus.get_mut(v.get())
        && vcpu.run == RunState::Runnable
        && !deferred_work()
    {
        // The common case, a switch: in one look at the queue the next vCPU for this CPU
        // comes out and this one goes in (its entry waits for our lock on its VM, which
        // the CPU that pops it takes, until it is unloaded).
        let own = Queued {
            slot,
            vm: index,
            vcpu: v,
        };
        let next = {
            let mut queue = RUN_QUEUE.lock();
            queue.hand_over(me, own, &slot.vcpu(v).queued, None)
        };
        let Some(next) = next else {
            // Nobody else waits: go on, in the rest of the slice (with a virtual IRQ raised
            // meanwhile).
            cpu::set_hcr(vcpu.hcr);
            return;
        };
        save_vcpu(vcpu, slot.vcpu(v), true);
        unload_saved(vm, slot, v, true);
        kick_idle(slot, me);
        drop(guard);
        // What `pick` polls, but the work `deferred_work` found none of, and typed input (the
        // slice's end, through `pick`, looks at that).
        poll_timers();
        let switched = Arrival::Switched { irq_fresh: false };
        if load_queued(next.slot, next.vm, next.vcpu, me, switched) {
            return;
        }
        return pick();
    }
    if matches!(how, GiveUp::SliceEnd) && percpu::take_switched_in() {
        // It came on by a switch, in the rest of another's slice: it goes on, with a whole
        // slice of its own, after `pick`'s looks. Else a vCPU that yields just before its
        // slice ends would hand the next one almost nothing, and take the CPU back at once.
        cpu::set_hcr(vm.vcpu(v.get()).hcr);
        drop(guard);
        look_around();
        timer::arm_slice();
        // What the looks asked of it (a console's kill, a virtual IRQ to recompute) was asked
        // on this CPU, so not kicked: it exits at once to act on it, not a slice later.
        if slot.vcpu(v).requests.load(Ordering::SeqCst) != 0 {
            gic::kick(percpu::index());
        }
        return;
    }
    // Every other way off the CPU: one (inlined) unload for them all.
    let run = vm.vcpu(v.get()).run;
    let (keep, requeue) = match how {
        GiveUp::Yield | GiveUp::SliceEnd => (true, run == RunState::Runnable),
        GiveUp::Leave => (
            run != RunState::Off,
            run == RunState::Runnable && vm.is_alive(),
        ),
        GiveUp::Stop => (false, false),
    };
    unload(vm, slot, v, keep);
    if requeue {
        queue(slot, index, v);
    }
    if matches!(how, GiveUp::Stop) {
        stop_if_left(vm);
    }
    drop(guard);
    pick()
}

/// Marks VM `vm` (locked by the caller) stopping, to `then` once every CPU has left its vCPUs,
/// and kicks those CPUs; false if it already stops or has ended. The caller, if it runs one of
/// its vCPUs, leaves it next (`GiveUp::Stop`); else it calls [`stop_if_left`].
pub fn begin_stop(vm: &mut Vm, then: Then) -> bool {
    if !vm.is_alive() {
        return false;
    }
    vm.state = VmState::Stopping(then);
    let slot = slot(vm.index);
    // Its timers fire no more: no CPU's look at the deadlines waits on this VM's lock while
    // its stop completes (a reset holds it while it scrubs and reloads the VM's memory).
    forget_deadlines(slot);
    for v in 0..vm.vcpus.len() {
        slot.vcpu(VcpuIndex::new(v)).request(REQ_STOP);
    }
    true
}

/// Completes the stop of `vm` (locked) now if no CPU runs one of its vCPUs any more.
fn stop_if_left(vm: &mut Vm) {
    let slot = slot(vm.index);
    let left = (0..vm.vcpus.len()).all(|i| slot.vcpu(VcpuIndex::new(i)).on_cpu().is_none());
    if matches!(vm.state, VmState::Stopping(_)) && left {
        super::exit::complete_stop(vm);
    }
}

/// What a stopped VM becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// It has ended by itself with this status (SYSTEM_OFF, its last CPU_OFF, an exit call).
    Exit(u64),
    /// The hyp ends it (a fault, a console's kill).
    Kill,
    /// It starts again from its image, with fresh memory (SYSTEM_RESET, a console's restart).
    Restart,
}

/// Stops VM `index` on every CPU, then ends or restarts it (`then`): for the console. False if
/// there is no such VM, or it has ended or already stops. Any CPU may call it, in or out of an
/// exit, with no VM's lock held; it never waits for another CPU.
pub fn stop_vm(index: VmIndex, then: Then) -> bool {
    if index.get() >= slots().len() {
        return false;
    }
    let mut guard = slot(index).lock();
    let Some(vm) = guard.as_mut() else {
        return false;
    };
    if !begin_stop(vm, then) {
        return false;
    }
    match then {
        Then::Kill => error!("VM {} killed from the console", vm.name),
        Then::Restart => info!("VM {} restarts from the console", vm.name),
        Then::Exit(status) => info!("VM {} ended with status {status}", vm.name),
    }
    vm.flush_console();
    stop_if_left(vm);
    true
}

/// Starts VM `index`, which has ended, afresh from its image (the console's `restart`): its
/// memory returned, scrubbed, and loaded again. Refused once the run ends (no VM alive: a CPU
/// may be summing up already). No VM's lock held.
pub fn restart_ended(index: VmIndex) -> Result<(), crate::monitor::Refusal> {
    use crate::monitor::Refusal;
    let mut guard = slot(index).lock();
    let vm = guard.as_mut().ok_or(Refusal::NoSuchVm)?;
    if !matches!(vm.state, VmState::Exited(_) | VmState::Killed) {
        return Err(Refusal::Stopping);
    }
    // Counted alive first, so no CPU ends the run meanwhile; a CPU that saw none alive just
    // before may end it anyway, with this VM counted as not having exited (failed).
    ALIVE.fetch_add(1, Ordering::SeqCst);
    if FINISHING.load(Ordering::SeqCst) {
        ALIVE.fetch_sub(1, Ordering::SeqCst);
        return Err(Refusal::RunEnding);
    }
    if let Err(e) = vm.restart() {
        error!("VM {} cannot restart: {e}", vm.name);
        ALIVE.fetch_sub(1, Ordering::SeqCst);
        return Ok(());
    }
    // Its devices were released when it ended: assigned again, as a reset does.
    if let Err(e) = crate::vm::device::restore(vm) {
        error!("VM {} cannot restart: {e}; killed", vm.name);
        super::exit::end(vm, VmState::Killed);
        return Ok(());
    }
    info!("VM {} restarts from the console (it had ended)", vm.name);
    make_runnable(index, VcpuIndex::new(0));
    Ok(())
}

/// VMs of the run, by index `0..vm_count()` (a slot may be empty: a VM refused at boot).
pub fn vm_count() -> usize {
    slots().len()
}

/// Whether vCPU `v` of VM `index` is the one this CPU would take next (the first in the run
/// queue it may run): a notifier then hands it the CPU now (a directed yield), never out of
/// turn, so two VMs notifying each other cannot starve a third on their CPU. Out of line: the
/// queue's look inlined here would grow the run loop, which inlines this, on every exit.
#[inline(never)]
pub fn is_next_here(index: VmIndex, v: VcpuIndex) -> bool {
    RUN_QUEUE.lock().first_for(percpu::index()) == Some((index, v))
}

/// Raises `event` in VM `index` (a channel notify) if it is alive. No VM's lock held.
pub fn notify(index: VmIndex, event: u32) {
    if index.get() >= slots().len() {
        return;
    }
    let mut guard = slot(index).lock();
    if let Some(vm) = guard.as_mut().filter(|vm| vm.is_alive()) {
        vm.raise_event(event);
    }
}

// --- The channel notify's hand-over (vm::event's hot path; see `notify_from`). ---

/// A channel notify of vCPU `v`, on this CPU, of the VM `guard` locks (alive; in `own`, as
/// for [`give_up`]): raises `event`
/// in VM `peer` and, when the peer's vCPU 0 (which takes hyp-raised events) is the one this
/// CPU would run next anyway (the first in its queue), hands it the CPU now: a directed yield,
/// never out of turn, so two VMs notifying each other cannot starve a third on their CPU.
/// Decided before the raise, from the queue, so the switch takes each VM's lock once: the
/// caller's (its yield: queued again, unloaded), then the peer's (the raise, and its load).
/// Otherwise (the peer runs or waits, another vCPU is first, or `pick` has work for the VMs) as
/// a notify from no lock, then [`is_next_here`] and a yield: the raise is never skipped.
pub fn notify_from(
    mut guard: VmLocked,
    own: &'static VmSlot,
    v: VcpuIndex,
    peer: VmIndex,
    event: u32,
) {
    let me = percpu::index();
    let peer_vcpu = VcpuIndex::new(0);
    let handed = match guard.as_mut() {
        Some(vm) if !deferred_work() => {
            debug_assert!(
                core::ptr::eq(own, slot(vm.index)),
                "notify_from: not the guard's slot"
            );
            let mine = Queued {
                slot: own,
                vm: vm.index,
                vcpu: v,
            };
            let mut queue = RUN_QUEUE.lock();
            let next = queue.hand_over(me, mine, &own.vcpu(v).queued, Some((peer, peer_vcpu)));
            if next.is_some() {
                drop(queue);
                unload(vm, own, v, true);
                kick_idle(own, me);
                next
            } else {
                None
            }
        }
        _ => None,
    };
    let Some(next) = handed else {
        // The caller goes on (or yields): the acknowledgements it made in its event page drop
        // its virtual IRQ now (the notify before a wait is where such a guest makes an exit).
        if let Some(vm) = guard.as_mut().filter(|vm| vm.events.acks_shared()) {
            vm.deliver_events();
        }
        let here = guard.is_some();
        drop(guard);
        notify(peer, event);
        if !here || !is_next_here(peer, peer_vcpu) {
            return;
        }
        let guard = own.lock();
        let alive = guard.as_ref().is_some_and(|vm| vm.is_alive());
        return give_up(
            guard,
            own,
            v,
            if alive { GiveUp::Yield } else { GiveUp::Stop },
        );
    };
    drop(guard);
    // As the switch's (`give_up`).
    poll_timers();
    let mut peer_guard = next.slot.lock();
    if let Some(vm) = peer_guard.as_mut().filter(|vm| vm.is_alive()) {
        // Raised on vCPU 0, which `hand_over` found queued.
        let irq_fresh = vm.raise_event(event);
        if load_if_ready(
            vm,
            next.slot,
            next.vm,
            next.vcpu,
            me,
            Arrival::Switched { irq_fresh },
        ) {
            return;
        }
    }
    drop(peer_guard);
    pick()
}

// --- End of the channel notify's hand-over. ---

/// What `pick` looks at before it takes a vCPU, with no VM's lock held: the work for other
/// VMs, the timers of vCPUs off the CPUs, typed input.
fn look_around() {
    // What the disk's interrupt completed (a waiting vCPU may become runnable).
    super::block::deliver();
    // What a device's interrupt or its SMMU faults raised, for whichever VMs they were.
    super::device::irq::deliver();
    wake_console_writers();
    poll_timers();
    poll_console();
}

/// Loads this CPU's next vCPU and returns (the caller enters it). Idles, holding no lock, while
/// there is nothing to run. When every VM has ended and left its CPUs, the CPU that sees it
/// first prints the summary and powers off; the others stop.
fn pick() {
    let me = percpu::index();
    // No vCPU is loaded here until `load` says which (`unload` leaves the pointers).
    percpu::set_current(None, core::ptr::null_mut(), false);
    loop {
        look_around();
        let next = RUN_QUEUE.lock().pop_for(me);
        if let Some(next) = next {
            if load_queued(next.slot, next.vm, next.vcpu, me, Arrival::Picked) {
                return;
            }
            // A stale entry: the vCPU waits or is off, or its VM stopped.
            continue;
        }
        if ALIVE.load(Ordering::SeqCst) == 0 && none_loaded() {
            if FINISHING.swap(true, Ordering::SeqCst) {
                // Another CPU ends the run, or saw a restart and goes on (below).
                while FINISHING.load(Ordering::SeqCst) {
                    core::hint::spin_loop();
                }
                continue;
            }
            // Against `restart_ended`, which counts its VM alive before it looks at FINISHING:
            // one of the two sees the other.
            if ALIVE.load(Ordering::SeqCst) != 0 {
                FINISHING.store(false, Ordering::SeqCst);
                continue;
            }
            crate::bench::at_end();
            crate::power::finish(finish());
        }
        idle(me);
    }
}

/// Loads vCPU `v` of VM `index` (`slot`), a queue entry just popped, on this CPU (`me`);
/// false if the entry is stale (the vCPU waits or is off, or runs elsewhere, or
/// its VM stopped). The entry's fields apart: a `Queued` passed on is copied with a call to
/// memcpy. Inlined (in
/// `give_up`'s switch and in `pick`), as `load` is into it.
#[inline(always)]
fn load_queued(
    slot: &'static VmSlot,
    index: VmIndex,
    v: VcpuIndex,
    me: usize,
    arrival: Arrival,
) -> bool {
    let mut guard = slot.lock();
    let Some(vm) = guard.as_mut() else {
        return false;
    };
    load_if_ready(vm, slot, index, v, me, arrival)
}

/// [`load_queued`] with the VM's lock held. Inlined into the switch and the notify's
/// hand-over: a call saves and restores every register it keeps.
#[inline(always)]
fn load_if_ready(
    vm: &mut Vm,
    slot: &'static VmSlot,
    index: VmIndex,
    v: VcpuIndex,
    me: usize,
    arrival: Arrival,
) -> bool {
    // The vCPU looked at last, so that `load` finds it with no atomic between.
    let ready = vm.is_alive()
        && slot.vcpu(v).on_cpu().is_none()
        && vm
            .vcpus
            .get(v.get())
            .is_some_and(|c| c.run == RunState::Runnable);
    if ready {
        load(vm, slot, index, v, me, arrival);
        // A slice of its own; a vCPU switched in runs in the rest of the one it came on in.
        if arrival == Arrival::Picked {
            timer::arm_slice();
        }
    }
    ready
}

/// Whether no vCPU is loaded on any CPU.
fn none_loaded() -> bool {
    slots()
        .iter()
        .all(|slot| slot.vcpus.iter().all(|v| v.on_cpu().is_none()))
}

/// Whether there is work for the VMs that `pick` does: disk completions to hand over, console
/// writers to wake.
fn deferred_work() -> bool {
    crate::disk::has_ready() || console::writers_wait()
}

/// Writers the console queue turned away run again once a drain has made room (each issues
/// its call again; one that still finds none waits again). While some wait (or lines of the
/// hyp's own do), a bounded part of the queue is drained here first: with every CPU busy
/// (vCPUs that only yield never reach an idle CPU's drain) a writer would otherwise wait for
/// the exit of a slice's end to make room. Two atomics when there
/// is nothing to do; else the VMs made room for locked in turn, none held while another is
/// taken.
pub fn wake_console_writers() {
    if console::drain_wanted() {
        console::drain(console::EXIT_DRAIN);
    }
    let writers = console::take_room_made();
    if writers == 0 {
        return;
    }
    for (i, slot) in slots().iter().enumerate() {
        if writers & (1 << (i % super::console::MAX_WRITERS)) == 0 {
            continue;
        }
        if let Some(vm) = slot.lock().as_mut().filter(|vm| vm.is_alive()) {
            super::console::wake_writers(vm);
        }
    }
}

/// Waits for work: a kick, this CPU's next timer deadline, or a slice.
fn idle(me: usize) {
    let bit = 1 << me;
    IDLE_CPUS.fetch_or(bit, Ordering::SeqCst);
    // Against `make_runnable`: it queues, then looks for idle CPUs.
    core::sync::atomic::fence(Ordering::SeqCst);
    let queued = RUN_QUEUE.lock().position_for(me).is_some();
    if !queued {
        let deadline = next_deadline();
        let idle_from = timer::counter();
        crate::bench::idle(|| {
            // The console's lines first; sleep only once they are out.
            if !console::drain(console::IDLE_DRAIN) {
                timer::wait_until(deadline);
            }
            super::exit::take_interrupts(None);
        });
        percpu::add_idle(timer::counter().wrapping_sub(idle_from));
    }
    IDLE_CPUS.fetch_and(!bit, Ordering::SeqCst);
}

/// Raises the timer event of every vCPU off the CPUs whose virtual timer has expired (on that
/// vCPU), and masks that timer until the guest acknowledges the event. Reads the deadlines
/// without a lock; locks only a VM with one expired. Inlined: nothing is due on almost every
/// switch, and that one look needs no call.
#[inline(always)]
fn poll_timers() {
    let now = timer::counter();
    if now >= EARLIEST_DEADLINE.load(Ordering::SeqCst) {
        expire_timers(now);
    }
}

/// [`poll_timers`] once a deadline may have passed (`now`).
#[inline(never)]
fn expire_timers(now: u64) {
    // Against `unload`: it stores a deadline, then lowers the earliest; a deadline stored
    // before this reset is seen by the look below, one after it lowers the earliest again.
    EARLIEST_DEADLINE.store(NO_DEADLINE, Ordering::SeqCst);
    let mut later = NO_DEADLINE;
    for (i, slot) in slots().iter().enumerate() {
        let mut expired = false;
        for v in &slot.vcpus {
            let deadline = v.timer_deadline.load(Ordering::SeqCst);
            if deadline <= now {
                expired = true;
            } else {
                later = later.min(deadline);
            }
        }
        if !expired {
            continue;
        }
        let mut guard = slot.lock();
        let Some(vm) = guard.as_mut().filter(|vm| vm.is_alive()) else {
            // Ended or stopping: its timers fire no more (a restart starts them off).
            forget_deadlines(slot);
            continue;
        };
        for v in 0..vm.vcpus.len() {
            let shared = &slot.vcpus[v];
            if shared.timer_deadline.load(Ordering::SeqCst) > now || shared.on_cpu().is_some() {
                continue;
            }
            shared.timer_deadline.store(NO_DEADLINE, Ordering::SeqCst);
            let vcpu = vm.vcpu_mut(v);
            let el1 = &mut vcpu.el1;
            if vcpu.run != RunState::Off
                && timer::is_armed(el1.cntv_ctl)
                && el1.cntv_cval <= now.wrapping_sub(el1.cntvoff)
            {
                vm.vtimer_expired(v);
            }
        }
        debug_assert_eq!(vm.index.get(), i);
    }
    EARLIEST_DEADLINE.fetch_min(later, Ordering::SeqCst);
}

fn forget_deadlines(slot: &VmSlot) {
    for v in &slot.vcpus {
        v.timer_deadline.store(NO_DEADLINE, Ordering::SeqCst);
    }
}

/// The earliest virtual-timer deadline of a vCPU off the CPUs, as a physical count.
fn next_deadline() -> Option<u64> {
    slots()
        .iter()
        .flat_map(|slot| slot.vcpus.iter())
        .map(|v| v.timer_deadline.load(Ordering::Relaxed))
        .min()
        .filter(|&d| d != NO_DEADLINE)
}

/// Hands typed bytes to the focused VM (raising its console event), or to the hyp's console;
/// the escape byte moves the focus to the next VM still running, or to the hyp's console.
/// Called with no VM's lock held (commands of the hyp's console take them).
fn poll_console() {
    let Some(mut editor) = INPUT.try_lock() else {
        return;
    };
    // Nothing typed (almost always): one look at the UART, no buffer.
    let Some(first) = console::read_byte() else {
        return;
    };
    let mut typed = [0u8; 64];
    let mut n = 0;
    for byte in core::iter::once(first).chain(core::iter::from_fn(console::read_byte)) {
        if byte == FOCUS_ESCAPE {
            deliver_input(&typed[..n]);
            n = 0;
            next_focus(&editor);
        } else if FOCUS.load(Ordering::Relaxed) == HYP_FOCUS {
            super::monitor::typed(&mut editor, byte);
        } else if n < typed.len() {
            typed[n] = byte;
            n += 1;
        }
    }
    deliver_input(&typed[..n]);
}

fn deliver_input(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let Some(slot) = slots().get(FOCUS.load(Ordering::Relaxed)) else {
        return;
    };
    let mut guard = slot.lock();
    let Some(vm) = guard.as_mut().filter(|vm| vm.is_alive()) else {
        return;
    };
    if vm.console_io.push_input(bytes) {
        vm.console_input_arrived();
    }
}

/// Moves the console focus to the next live VM, after the last to the hyp's console, and says
/// so; the new focus shows its partial line (`editor`: the hyp's).
fn next_focus(editor: &crate::monitor::LineEditor) {
    let slots = slots();
    let n = slots.len();
    // Positions 0..n are the VMs, n the hyp's console.
    let at = FOCUS.load(Ordering::Relaxed).min(n);
    for i in (1..=n + 1).map(|i| (at + i) % (n + 1)) {
        if i == n {
            FOCUS.store(HYP_FOCUS, Ordering::Relaxed);
            let prompt = editor.shown();
            console::set_focus(Some(crate::echo::HYP_WRITER), "", prompt.as_bytes());
            crate::println!("hyp: console focus: hyp (type help; Ctrl-] moves it)");
            console::refresh();
            return;
        }
        let guard = slots[i].lock();
        if let Some(vm) = guard.as_ref().filter(|vm| vm.is_alive()) {
            FOCUS.store(i, Ordering::Relaxed);
            console::set_focus(Some(i), &vm.name, vm.console.partial());
            crate::println!("hyp: console focus: {} (Ctrl-] moves it)", vm.name);
            drop(guard);
            console::refresh();
            return;
        }
    }
}

/// Ends the run's VMs for the summary: counts them, then drops them and the channels between
/// them, so that every frame and heap byte they held goes back (the summary reports what does
/// not). Every VM has ended: no CPU runs or will run a vCPU.
fn finish() -> Tally {
    use crate::arch::{Cpu, Machine};
    use crate::mm::owner::Owner;
    // A partial line shown (the hyp's prompt) ends where it is: the summary starts a line.
    console::end_partial_line();
    console::set_focus(None, "", &[]);
    let vms: Vec<Vm> = slots().iter().filter_map(|s| s.lock().take()).collect();
    let ok = vms
        .iter()
        .filter(|vm| vm.state == VmState::Exited(0))
        .count();
    let mut totals = Totals::default();
    for vm in &vms {
        totals.add(&vm.stats);
        crate::println!("{}", vm_line(vm));
    }
    percpu::each(|cpu, stats, _| {
        crate::println!(
            "hyp: cpustats: cpu={cpu} exits={} idle_ticks={}",
            stats.exits,
            stats.idle_ticks
        );
    });
    if crate::trace::enabled() {
        dump_traces(|line| crate::println!("{line}"));
    }
    let tally = Tally {
        vms: vms.len(),
        ok,
        totals,
    };
    // A channel's frames are listed by both its ends: take them from the first end.
    let channels: Vec<(u16, Vec<u64>)> = vms
        .iter()
        .flat_map(|vm| vm.channels.iter())
        .filter(|end| end.sends_on_first)
        .map(|end| (end.channel, end.frames.clone()))
        .collect();
    // No VM maps the channels' frames once the VMs are gone.
    drop(vms);
    for (channel, frames) in channels {
        for pa in frames {
            Cpu::free_frame(Owner::Shared(channel), pa);
        }
    }
    tally
}

/// Counts a VM that has ended (the run ends when none is alive).
pub fn vm_ended() {
    ALIVE.fetch_sub(1, Ordering::SeqCst);
}

/// The summary's count of VMs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// VMs that were built.
    pub vms: usize,
    /// Of those, the ones that exited with status 0.
    pub ok: usize,
    /// Their exits, hypercalls and faults.
    pub totals: Totals,
}

/// A VM's `hyp: vmstats:` line.
fn vm_line(vm: &Vm) -> VmLine<'_> {
    let pages = vm.memory.pages_used();
    VmLine {
        name: &vm.name,
        ending: match vm.state {
            VmState::Alive | VmState::Stopping(_) => Ending::Alive,
            VmState::Exited(status) => Ending::Exited(status),
            VmState::Killed => Ending::Killed,
        },
        vcpus: vm.vcpus.len(),
        restarts: vm.restarts,
        stats: &vm.stats,
        mapped_pages: pages,
        quota_pages: pages + vm.memory.quota_left_bytes() / crate::mm::PAGE_SIZE,
    }
}

/// Writes every CPU's trace ring through `out` (the console, or its emergency path), oldest
/// record first, CPU by CPU. Takes no lock.
pub fn dump_traces(mut out: impl FnMut(core::fmt::Arguments)) {
    percpu::each(|cpu, _, ring| crate::trace::dump(cpu, ring, &mut out));
}

/// The CPUs of a pin, a bit each (all without one).
fn cpu_mask(vm: &Vm) -> usize {
    match vm.spec.cpus {
        Some(set) => (0..MAX_CPUS)
            .filter(|&c| set.contains(c))
            .fold(0, |m, c| m | 1 << c),
        None => usize::MAX,
    }
}

/// Runs the VMs on the boot CPU (the secondaries join in `run_secondary`); never returns.
pub fn run(vms: Vec<Vm>) -> ! {
    if vms.is_empty() {
        crate::power::finish(Tally::default());
    }
    info!("console input goes to {} (Ctrl-] moves it)", vms[0].name);
    FOCUS.store(vms[0].index.get(), Ordering::Relaxed);
    console::set_focus(Some(vms[0].index.get()), &vms[0].name, &[]);
    crate::bench::at_first_guest_entry(&vms);
    let count = vms.iter().map(|vm| vm.index.get() + 1).max().unwrap_or(0);
    // The hyp's own for the run (not a VM's): the summary's heap figure does not count it.
    crate::power::held_for_the_run(|| {
        let table: Vec<VmSlot> = (0..count.min(MAX_VMS)).map(|_| VmSlot::empty()).collect();
        SLOTS.call_once(|| alloc::boxed::Box::leak(table.into_boxed_slice()));
        RUN_QUEUE.lock().entries = Some(alloc::boxed::Box::new([Queued::none(); QUEUE_LEN]));
    });
    // VM 0 first, on CPU 0: the queue in manifest order.
    for vm in vms {
        let index = vm.index;
        let slot = slot(index);
        slot.cpus.store(cpu_mask(&vm), Ordering::Relaxed);
        let runnable = vm.is_alive();
        if runnable {
            ALIVE.fetch_add(1, Ordering::SeqCst);
        }
        let mut guard = slot.lock();
        *guard = Some(vm);
        if runnable {
            make_runnable(index, VcpuIndex::new(0));
        }
    }
    STARTED.store(true, Ordering::Release);
    aarch64_cpu::asm::sev();
    pick();
    super::run::run()
}

/// A secondary CPU, set up, waits for the VMs and then runs them with the others.
pub fn run_secondary() -> ! {
    while !STARTED.load(Ordering::Acquire) {
        aarch64_cpu::asm::wfe();
    }
    pick();
    super::run::run()
}
