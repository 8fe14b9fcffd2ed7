//! Ending the run: the summary line, then powering the board off the way the device tree says.
//!
//! The summary also accounts for memory: once every VM and channel is dropped, the frames and
//! heap bytes the hyp holds must be back at their after-boot level (`record_baseline`, plus
//! what boot sets up for the whole run through `held_for_the_run`). What is not is printed as
//! `frames_leaked` and `heap_leaked`.

use crate::mm::frames;
use crate::vm::sched::Tally;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

/// How this board is switched off.
#[derive(Clone, Copy, Debug)]
pub enum PowerOff {
    /// PSCI SYSTEM_OFF through SMC (QEMU `virt` with EL2).
    PsciSmc,
    /// The Raspberry Pi's PM block at this (identity-mapped) address: halt through its watchdog.
    PmBlock(usize),
    /// No known way: stop the CPU.
    None,
}

/// How to power off, as one word (no `Once` of its own in the Image): 0 no known way,
/// [`POWER_OFF_PSCI`], or the PM block's address.
static POWER_OFF: AtomicUsize = AtomicUsize::new(0);
const POWER_OFF_PSCI: usize = 1;

/// Records how to power off, once the device tree has been read.
pub fn init(method: PowerOff) {
    let word = match method {
        PowerOff::PsciSmc => POWER_OFF_PSCI,
        // A PM block at 0 or 1 is no address the word can hold: no known way.
        PowerOff::PmBlock(base) if base > POWER_OFF_PSCI => base,
        PowerOff::PmBlock(_) | PowerOff::None => 0,
    };
    POWER_OFF.store(word, Ordering::Release);
}

/// What the hyp's memory looks like at one moment.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// Frames the allocator can still hand out.
    frames_free: usize,
    /// Heap bytes in use.
    heap_in_use: usize,
}

impl Usage {
    fn now() -> Self {
        Self {
            frames_free: frames::available(),
            heap_in_use: frames::heap_in_use(),
        }
    }
}

/// What the hyp holds for itself after boot: the level the end of the run comes back to.
static BASELINE: Mutex<Option<Usage>> = Mutex::new(None);

/// VMs the boot refused (they never ran), counted as failed in the summary.
static REFUSED_AT_BOOT: AtomicUsize = AtomicUsize::new(0);

/// Records the after-boot level, once the frame allocator and heap are up and before any VM
/// is built.
pub fn record_baseline() {
    *BASELINE.lock() = Some(Usage::now());
}

/// Runs `setup` and counts what it allocates as the hyp's own for the whole run (the disk's
/// driver state), not as a VM's.
pub fn held_for_the_run<T>(setup: impl FnOnce() -> T) -> T {
    let before = Usage::now();
    let result = setup();
    let after = Usage::now();
    if let Some(base) = BASELINE.lock().as_mut() {
        let taken = before.frames_free.saturating_sub(after.frames_free);
        base.frames_free = base.frames_free.saturating_sub(taken);
        base.heap_in_use += after.heap_in_use.saturating_sub(before.heap_in_use);
    }
    result
}

/// Counts a VM the boot refused: it never runs and the summary counts it as failed.
pub fn vm_refused_at_boot() {
    REFUSED_AT_BOOT.fetch_add(1, Ordering::Relaxed);
}

/// Prints the summary of the run (`tally`: the VMs that ran, already dropped with their
/// channels), and powers off.
pub fn finish(tally: Tally) -> ! {
    let refused = REFUSED_AT_BOOT.load(Ordering::Relaxed);
    let vms = tally.vms + refused;
    let (frames_leaked, heap_leaked) = match *BASELINE.lock() {
        Some(base) => {
            let now = Usage::now();
            // Signed: fewer frames in use than after boot is as wrong as more.
            (
                base.frames_free as i64 - now.frames_free as i64,
                now.heap_in_use as i64 - base.heap_in_use as i64,
            )
        }
        None => (0, 0),
    };
    let (frames_leaked, heap_leaked) = (
        crate::logger::Signed(frames_leaked),
        crate::logger::Signed(heap_leaked),
    );
    crate::println!(
        "hyp: summary: vms={vms} ok={} failed={} frames_leaked={frames_leaked} heap_leaked={heap_leaked}{}",
        tally.ok,
        vms - tally.ok,
        tally.totals
    );
    power_off()
}

/// A fatal hypervisor error was reported: dump the exit traces (when on), then power off so
/// nobody waits on a dead machine. Through the console's emergency path: the console lock may
/// be held by the CPU that failed.
pub fn halt_after_failure() -> ! {
    let print = crate::dev::console::emergency_println;
    if crate::trace::enabled() {
        crate::vm::sched::dump_traces(print);
    }
    print(format_args!("hyp: summary: vms=0 ok=0 failed=1 error=hyp"));
    power_off()
}

fn power_off() -> ! {
    crate::dev::console::flush();
    match POWER_OFF.load(Ordering::Acquire) {
        0 => {}
        POWER_OFF_PSCI => {
            crate::arch::aarch64::cpu::smc(hypercall_abi::psci::PSCI_SYSTEM_OFF, 0, 0, 0);
        }
        base => {
            // SAFETY: init_power records only the tree's PM block, which take_over_mmu mapped
            // as a device; this is its only user, and it runs once, at the very end.
            unsafe { crate::board::rpi4::PmWatchdog::new(base) }.halt();
        }
    }
    crate::arch::aarch64::cpu::wait_forever()
}
