//! State that belongs to one physical CPU, found through TPIDR_EL2 from the first line on.
//!
//! CPU indices are logical: 0 is the CPU the hyp booted on, the others follow in the order the
//! device tree lists them. Only a CPU itself reads or writes its own `PerCpu`.

/// Bytes of EL2 stack per CPU.
pub const STACK_SIZE: usize = 64 * 1024;
/// CPUs the hyp keeps state for.
pub const MAX_CPUS: usize = 8;

use crate::vm::ids::{VcpuIndex, VmIndex};
use crate::vm::lock::{self, Level};
use crate::vm::sched::VmSlot;

/// The vCPU loaded on a CPU: its VM's slot and its indices.
pub type Current = (&'static VmSlot, VmIndex, VcpuIndex);

/// Per-CPU state. `regs` is read by vectors.S (offset from `offset_of!`).
#[repr(C)]
pub struct PerCpu {
    /// The register block of the vCPU running on this CPU.
    pub regs: *mut crate::arch::aarch64::context::GuestRegs,
    /// This CPU's index (0 is the boot CPU).
    pub index: usize,
    /// The vCPU loaded on this CPU, if any, with its VM's slot (found once, when it is
    /// loaded: every exit needs it).
    pub vm: Option<Current>,
    /// `trace::Record::who` of the vCPU loaded here (0 with none), for `trace_exit`
    /// (near the start: a 32-bit load reaches only so far).
    pub trace_who: u32,
    /// The levels of the ordered locks this CPU holds, a bit each (debug builds: vm::lock).
    pub held_locks: u32,
    /// Whether the vCPU loaded here came on by a switch (a yield, a notify's hand-over), in
    /// the rest of another's slice, and has not had a whole one of its own since
    /// ([`take_switched_in`]).
    pub switched_in: bool,
    /// x0 of the call the vCPU loaded here made at its last exit by `HVC #0` that vm::run did
    /// not answer itself ([`note_call`]), for [`trace_noted_call`].
    pub call_function: u64,
    /// This CPU's place in the device tree's `/cpus` list: its GIC redistributor's index.
    pub gic_index: usize,
    /// How long this CPU has been in the hyp for the current guest exit (bench.rs).
    pub hold: HoldClock,
    /// What this CPU did, for the end of the run.
    pub stats: CpuStats,
    /// Whose FP/SIMD registers are live here, switched lazily (before the trace ring: within
    /// a load's immediate offset, for every switch's two looks).
    pub fp: crate::arch::aarch64::context::LazyFp,
    /// The last guest exits this CPU handled (written only when tracing is on).
    pub trace: TraceRing,
}

/// One CPU's counters: only that CPU writes them.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct CpuStats {
    /// Guest exits it handled.
    pub exits: u64,
    /// Counter ticks it spent idle (nothing to run).
    pub idle_ticks: u64,
    /// Spins it made waiting for a VM's or the run queue's lock held elsewhere (vm::lock).
    pub lock_waits: u64,
}

/// A CPU's exit trace.
pub type TraceRing = crate::trace::Ring<crate::trace::Record, { crate::trace::RING_LEN }>;

const BLANK_RECORD: crate::trace::Record = crate::trace::Record {
    counter: 0,
    function: 0,
    ipa: 0,
    result: 0,
    esr: 0,
    who: 0,
};

/// The clock of bench.rs's `max_hold`, in counter ticks.
#[repr(C)]
pub struct HoldClock {
    /// When the current guest exit began, moved later by the idle waits inside it.
    pub start: u64,
    /// The longest stay in the hyp for one exit on this CPU so far.
    pub max: u64,
}

/// Bytes of the stack a CPU's stack-overflow report runs on (vectors.S switches to it).
pub const EMERGENCY_STACK_SIZE: usize = 16 * 1024;
const PAGE: usize = 4096;

/// One CPU's stacks: the stack fills the upper half, so an address's bit log2(STACK_SIZE) says
/// which half it is in (vectors.S's overflow check, before it stores anything). The lower half
/// is unmapped (mmu.rs), a guard against an overflow, but for the emergency stack one page
/// above its bottom (a guard of its own below it, the previous CPU's stack above that).
#[repr(C, align(131072))]
pub struct Stack(pub [u8; 2 * STACK_SIZE]);
const _: () = assert!(core::mem::align_of::<Stack>() == 2 * STACK_SIZE);
const _: () = assert!(STACK_SIZE.is_power_of_two());

/// The mapped parts of a `Stack`, as offsets: the emergency stack, then the stack.
pub const STACK_PARTS: [(usize, usize); 2] = [
    (PAGE, PAGE + EMERGENCY_STACK_SIZE),
    (STACK_SIZE, 2 * STACK_SIZE),
];

/// EL2 stacks: entry.S points CPU `i`'s SP at the end of `HYP_STACKS[i]`. Outside .bss
/// (hyp.ld), which entry.S zeroes: a stack is never read before it is written.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".bss.stacks")]
pub static mut HYP_STACKS: [Stack; MAX_CPUS] = [const { Stack([0; 2 * STACK_SIZE]) }; MAX_CPUS];

/// Whether the `len` bytes at `va` lie in one mapped part of a CPU's stacks.
pub fn in_stack(va: u64, len: u64) -> bool {
    let start = (&raw const HYP_STACKS) as u64;
    let Some(offset) = va.checked_sub(start) else {
        return false;
    };
    let slot = core::mem::size_of::<Stack>() as u64;
    if offset >= slot * MAX_CPUS as u64 {
        return false;
    }
    let within = offset % slot;
    STACK_PARTS
        .iter()
        .any(|&(from, to)| within >= from as u64 && within.saturating_add(len) <= to as u64)
}

/// One PerCpu per CPU, indexed by CPU number.
static mut PER_CPU: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        regs: core::ptr::null_mut(),
        index: 0,
        vm: None,
        trace_who: 0,
        held_locks: 0,
        switched_in: false,
        call_function: 0,
        gic_index: 0,
        hold: HoldClock { start: 0, max: 0 },
        stats: CpuStats {
            exits: 0,
            idle_ticks: 0,
            lock_waits: 0,
        },
        fp: crate::arch::aarch64::context::LazyFp::new(),
        trace: TraceRing::new(BLANK_RECORD),
    }
}; MAX_CPUS];

/// Prepares CPU `index`'s PerCpu and returns its address (for TPIDR_EL2). Only CPU `index`
/// calls it, once, before anything reads the slot.
pub fn init(index: usize, gic_index: usize) -> *mut PerCpu {
    let index = index.min(MAX_CPUS - 1);
    // SAFETY: each CPU initialises only its own slot, before anything reads it.
    unsafe {
        let percpu = &raw mut PER_CPU[index];
        (*percpu).index = index;
        (*percpu).gic_index = gic_index;
        percpu
    }
}

/// This CPU's PerCpu (TPIDR_EL2, set by `cpu::init_el2`).
pub fn this() -> *mut PerCpu {
    use aarch64_cpu::registers::{Readable, TPIDR_EL2};
    TPIDR_EL2.get() as *mut PerCpu
}

/// This CPU's index.
pub fn index() -> usize {
    // SAFETY: TPIDR_EL2 points at this CPU's own initialised slot; only this CPU writes it.
    unsafe { (*this()).index }
}

/// The vCPU loaded on this CPU, if any, with its VM's slot.
#[inline(always)]
pub fn current_vm() -> Option<Current> {
    // SAFETY: as in `index`.
    unsafe { (*this()).vm }
}

/// Records the vCPU loaded on this CPU and the register block vectors.S saves to and restores
/// from (null with none).
pub fn set_current(
    vm: Option<Current>,
    regs: *mut crate::arch::aarch64::context::GuestRegs,
    switched_in: bool,
) {
    // SAFETY: as in `index`; the caller keeps `regs` valid while the VM is loaded here (a VM's
    // vCPUs live in a heap buffer that never grows, so they stay put even if the VM moves).
    unsafe {
        // One read of TPIDR_EL2 for the fields (each `this` is an `mrs` of its own).
        let this = this();
        (*this).vm = vm;
        (*this).regs = regs;
        (*this).switched_in = switched_in;
        (*this).trace_who = vm.map_or(0, |(_, vm, vcpu)| {
            crate::trace::Record::who(vm.get() as u16, vcpu.get() as u16)
        });
    }
}

/// Whether the vCPU loaded here came on by a switch and has had no whole slice of its own
/// since; clears it (the caller gives it one).
pub fn take_switched_in() -> bool {
    // SAFETY: as in `index`.
    unsafe { core::mem::replace(&mut (*this()).switched_in, false) }
}

/// The vCPU being loaded here keeps its FP/SIMD registers in `block` (valid until
/// [`unload_fp`]): they come in at its first FP/SIMD instruction ([`fp_first_use`]).
#[cfg(target_os = "none")]
pub fn load_fp(block: *mut crate::arch::aarch64::context::FpSimd) {
    // SAFETY: as in `index`.
    unsafe { (*this()).fp.load(block) }
}

/// The vCPU loaded here leaves: its FP/SIMD registers go back to its block if it used them
/// and `keep`.
#[cfg(target_os = "none")]
pub fn unload_fp(keep: bool) {
    // SAFETY: as in `index`.
    unsafe { (*this()).fp.unload(keep) }
}

/// The loaded vCPU trapped on FP/SIMD (CPTR_EL2.TFP): its registers come in; false if that was
/// not the lazy switch's trap.
#[cfg(target_os = "none")]
#[inline(always)]
pub fn fp_first_use() -> bool {
    // SAFETY: as in `index`.
    unsafe { (*this()).fp.first_use() }
}

/// This CPU takes an ordered lock of `level`: stops the hyp if it holds one of that level or
/// a later one (the order of `vm::sched`), before it could deadlock.
pub fn lock_taken(level: Level) {
    // SAFETY: as in `index`.
    let held = unsafe { (*this()).held_locks };
    match lock::take(held, level) {
        // SAFETY: as in `index`.
        Ok(now) => unsafe { (*this()).held_locks = now },
        Err(e) => panic!(
            "lock order: {:?} taken while holding {:#b}",
            e.level, e.held
        ),
    }
}

/// This CPU released its ordered lock of `level`.
pub fn lock_released(level: Level) {
    // SAFETY: as in `index`.
    unsafe { (*this()).held_locks = lock::release((*this()).held_locks, level) };
}

/// This CPU's GIC redistributor index.
pub fn gic_index() -> usize {
    // SAFETY: as in `index`.
    unsafe { (*this()).gic_index }
}

/// This CPU's hold clock. Only this CPU reads or writes it, and never while an exception could
/// enter the hyp on it (the hyp runs with its exceptions masked).
pub fn hold_clock() -> *mut HoldClock {
    // SAFETY: as in `index`; only the field's address is taken.
    unsafe { &raw mut (*this()).hold }
}

/// Counts one guest exit on this CPU.
#[inline(always)]
pub fn count_exit() {
    // SAFETY: as in `index`.
    unsafe {
        let stats = &raw mut (*this()).stats;
        (*stats).exits = (*stats).exits.wrapping_add(1);
    }
}

/// Adds `ticks` of idle time to this CPU's.
pub fn add_idle(ticks: u64) {
    // SAFETY: as in `index`.
    unsafe {
        let stats = &raw mut (*this()).stats;
        (*stats).idle_ticks = (*stats).idle_ticks.wrapping_add(ticks);
    }
}

/// Adds `spins` to this CPU's lock waits.
pub fn add_lock_waits(spins: u64) {
    // SAFETY: as in `index`.
    unsafe {
        let stats = &raw mut (*this()).stats;
        (*stats).lock_waits = (*stats).lock_waits.wrapping_add(spins);
    }
}

/// Appends the exit just handled by the vCPU loaded here to this CPU's trace: `esr` (its
/// syndrome's low bits, or `trace::ESR_IRQ`/`ESR_OTHER_ASYNC`), `function` (x0 at the exit)
/// and `ipa` (a stage-2 fault's); its result is the vCPU's x0 now. Inlined into each call site:
/// one TPIDR read, the counter read once, four loads, three store pairs and the count's one.
#[inline(always)]
pub fn trace_exit(esr: u32, function: u64, ipa: u64) {
    // SAFETY: `this` is this CPU's own slot.
    unsafe { record_exit(this(), esr, function, ipa) }
}

/// Keeps `function`, x0 of the call the vCPU loaded here exits with, for [`trace_noted_call`]:
/// one store, where x0 is in a register, rather than x0 kept live across the call's handling
/// (tracing off cost the locked calls 10 instructions that way, 2 this way).
#[inline(always)]
pub fn note_call(function: u64) {
    // SAFETY: as in `index`.
    unsafe { (*this()).call_function = function }
}

/// [`trace_exit`] of the call [`note_call`] kept, with the syndrome `esr`.
#[inline(always)]
pub fn trace_noted_call(esr: u32) {
    // SAFETY: as in `index`; `this` is this CPU's own slot.
    unsafe {
        let cpu = this();
        record_exit(cpu, esr, (*cpu).call_function, 0);
    }
}

/// [`trace_exit`] on `cpu`.
///
/// # Safety
/// `cpu` is this CPU's own PerCpu, with a vCPU loaded (its `regs` valid).
#[inline(always)]
unsafe fn record_exit(cpu: *mut PerCpu, esr: u32, function: u64, ipa: u64) {
    use aarch64_cpu::registers::{CNTPCT_EL0, Readable};
    // SAFETY: only this CPU writes its ring. `regs` points at the loaded vCPU's register block
    // (`set_current`), which the exit handling has not unloaded yet (the caller's contract).
    unsafe {
        (*cpu).trace.record(crate::trace::Record {
            counter: CNTPCT_EL0.get(),
            function,
            ipa,
            result: (*(*cpu).regs).x[0],
            esr,
            who: (*cpu).trace_who,
        });
    }
}

/// CPUs that have a PerCpu: their stats and trace rings, for the end of the run and the dump
/// on a hyp failure. Each CPU writes only its own; a reader elsewhere may see a record being
/// written (a torn record in a dump is acceptable, a lock on the exit path is not).
pub fn each(mut f: impl FnMut(usize, &CpuStats, &TraceRing)) {
    for i in (0..MAX_CPUS).filter(|&i| crate::arch::aarch64::smp::is_online(i)) {
        // SAFETY: only plain reads through a raw pointer, of a static slot that outlives the run;
        // see above for concurrent writers.
        unsafe {
            let cpu = &raw const PER_CPU[i];
            f(i, &(*cpu).stats, &(*cpu).trace);
        }
    }
}
