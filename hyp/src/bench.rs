//! Figures for `scripts/bench.sh` that only the hyp can see: how far the counter got from its
//! first instruction to the first guest entry (`boot_to_guest`), and the memory it keeps per VM
//! (`hyp_overhead_bytes_per_vm`), both printed once, as log lines, just before the first guest
//! runs; and the longest the hyp held a CPU for one guest exit (`max_hold`), printed when the
//! run ends.
//!
//! `max_hold` is read on the physical counter (CNTPCT_EL0: the guest cannot offset or stop it,
//! where it can reset the PMU's cycle counter), from the first line of Rust after a guest exit
//! to the last before the return path: one tick per 16 instructions at cortex-a72's 62.5 MHz
//! under `-icount shift=0`, which is resolution enough for a maximum. The vector's register
//! save and restore (about 40 instructions) are outside it, and so are the null-hypercall fast
//! path in vectors.S (17 instructions, bounded, answered before anything is saved) and the calls
//! vm::run answers without a lock (about 80, bounded: `null_hypercall_abi_version`). Idle waits
//! inside an exit (nothing to run, and the scheduler lock taken again after one) are not
//! holding the CPU and are left out; waiting for the lock at the start of an exit is in (on
//! one CPU it never waits).

/// What the hyp keeps for one VM, in bytes.
///
/// Heap allocations are counted as the buddy heap serves them (rounded up to a power of two);
/// frames whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmOverhead {
    /// The `Vm` itself (an element of the scheduler's list, on the heap).
    pub vm_struct: u64,
    /// The VM's strings and buffers on the heap (its name, the manifest entry's name, image and
    /// cmdline, the console input queue).
    pub buffers: u64,
    /// Frames the hyp owns for the VM: its stage-2 tables (which also hold each page's record:
    /// frame, permissions and pin live in the descriptor).
    pub table_frames: u64,
}

impl VmOverhead {
    pub fn total(&self) -> u64 {
        self.vm_struct + self.buffers + self.table_frames
    }
}

/// Bytes a buddy-heap allocation of `size` bytes occupies.
pub fn heap_bytes(size: usize) -> u64 {
    if size == 0 {
        0
    } else {
        size.next_power_of_two() as u64
    }
}

/// Why the hyp was entered, as `max_hold` reports it: the exit's kind (vectors.S: 0 is a
/// synchronous exception), its syndrome, and the guest's x0 (a hypercall's function ID, which
/// benchreport names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hold {
    /// Counter ticks from the exit to the return to a guest, idle waits left out.
    pub ticks: u64,
    pub cpu: usize,
    pub kind: u64,
    pub esr: u64,
    pub x0: u64,
}

/// ESR_EL2.EC of an HVC from AArch64.
const EC_HVC64: u64 = 0x16;

impl core::fmt::Display for Hold {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ec = (self.esr >> 26) & 0x3f;
        write!(f, "CPU {}, ", self.cpu)?;
        match self.kind {
            0 if ec == EC_HVC64 => write!(f, "HVC {:#x}", self.x0 as u32),
            0 => write!(f, "trap EC {ec:#x}"),
            1 => write!(f, "IRQ"),
            kind => write!(f, "exception kind {kind}"),
        }
    }
}

/// The longest hold on any CPU, with its cause (each CPU compares against its own maximum
/// first, so this lock is taken only when that is beaten).
#[cfg(target_os = "none")]
static MAX_HOLD: spin::Mutex<Hold> = spin::Mutex::new(Hold {
    ticks: 0,
    cpu: 0,
    kind: 0,
    esr: 0,
    x0: 0,
});

#[cfg(target_os = "none")]
#[inline(always)]
fn counter() -> u64 {
    use aarch64_cpu::registers::{CNTPCT_EL0, Readable};
    CNTPCT_EL0.get()
}

/// One guest exit's stay in the hyp, on this CPU's hold clock.
#[cfg(target_os = "none")]
pub struct HoldTimer(*mut crate::percpu::HoldClock);

#[cfg(target_os = "none")]
impl HoldTimer {
    /// A guest exit begins.
    #[inline(always)]
    pub fn start() -> HoldTimer {
        let clock = crate::percpu::hold_clock();
        // SAFETY: this CPU's own clock (percpu::hold_clock); nothing else holds a reference.
        unsafe { (*clock).start = counter() };
        HoldTimer(clock)
    }

    /// The exit (of `kind`, syndrome `esr`, guest x0 `x0`) returns to a guest: recorded if it
    /// is this CPU's longest.
    #[inline(always)]
    pub fn stop(self, kind: u64, esr: u64, x0: u64) {
        // SAFETY: as in `start`; the exit never left this CPU.
        let (start, max) = unsafe { ((*self.0).start, (*self.0).max) };
        let ticks = counter().wrapping_sub(start);
        if ticks > max {
            record_hold(Hold {
                ticks,
                cpu: crate::percpu::index(),
                kind,
                esr,
                x0,
            });
        }
    }
}

#[cfg(target_os = "none")]
#[cold]
#[inline(never)]
fn record_hold(hold: Hold) {
    let clock = crate::percpu::hold_clock();
    // SAFETY: as in `HoldTimer::start`.
    unsafe { (*clock).max = hold.ticks };
    let mut max = MAX_HOLD.lock();
    if hold.ticks > max.ticks {
        *max = hold;
    }
}

/// Runs `wait` (an idle wait: nothing to run on this CPU) outside the hold being measured.
#[cfg(target_os = "none")]
pub fn idle<T>(wait: impl FnOnce() -> T) -> T {
    let before = counter();
    let woken = wait();
    let clock = crate::percpu::hold_clock();
    // SAFETY: as in `HoldTimer::start`.
    unsafe { (*clock).start = (*clock).start.wrapping_add(counter().wrapping_sub(before)) };
    woken
}

/// Logs `max_hold` for scripts/bench.sh (and anyone reading a run's log): called once, when
/// the run ends.
#[cfg(target_os = "none")]
pub fn at_end() {
    use aarch64_cpu::registers::{CNTFRQ_EL0, Readable};
    let max = *MAX_HOLD.lock();
    info!(
        "max_hold: {} counter ticks at {} Hz ({max})",
        max.ticks,
        CNTFRQ_EL0.get()
    );
}

/// CNTPCT_EL0 at the hyp's first instruction (entry.S reads it before anything else).
#[cfg(target_os = "none")]
static BOOT_COUNTER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records the counter entry.S read first thing.
#[cfg(target_os = "none")]
pub fn record_boot_counter(ticks: u64) {
    BOOT_COUNTER.store(ticks, core::sync::atomic::Ordering::Relaxed);
}

/// The hyp's memory for `vm`; `table_frames` is the stage-2 table frames it holds.
#[cfg(target_os = "none")]
fn overhead(vm: &crate::vm::Vm, table_frames: u64) -> VmOverhead {
    let spec = &vm.spec;
    VmOverhead {
        vm_struct: heap_bytes(core::mem::size_of::<crate::vm::Vm>()),
        buffers: [
            vm.name.capacity(),
            spec.name.capacity(),
            spec.image.capacity(),
            spec.cmdline.capacity(),
            vm.console_io.input.capacity(),
        ]
        .into_iter()
        .map(heap_bytes)
        .sum(),
        table_frames: table_frames * crate::mm::PAGE_SIZE,
    }
}

/// Logs the counter when a VM's emulated UART ends the first line of the Linux initramfs's
/// /init (scripts/linux-init), for bench.sh's `linux_entry_to_init` (less `boot_to_guest`),
/// with the least idle time of any CPU so far: under `-icount` the clock skips ahead only while
/// every CPU idles, which bench.sh subtracts to count instructions alone.
#[cfg(target_os = "none")]
pub fn at_console_line(line: &[u8]) {
    use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
    if line.starts_with(b"init: busybox up") {
        let start = BOOT_COUNTER.load(core::sync::atomic::Ordering::Relaxed);
        let mut idle = u64::MAX;
        crate::percpu::each(|_, stats, _| idle = idle.min(stats.idle_ticks));
        info!(
            "linux_init_line: {} counter ticks at {} Hz (idle {} ticks)",
            CNTPCT_EL0.get().wrapping_sub(start),
            CNTFRQ_EL0.get(),
            if idle == u64::MAX { 0 } else { idle }
        );
    }
}

/// Called once, just before the first guest entry: reads the counter first, then logs
/// `boot_to_guest` and the per-VM overhead (the first VM's, as built, before it maps anything
/// itself) for scripts/bench.sh.
#[cfg(target_os = "none")]
pub fn at_first_guest_entry(vms: &[crate::vm::Vm]) {
    use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
    let now = CNTPCT_EL0.get();
    let start = BOOT_COUNTER.load(core::sync::atomic::Ordering::Relaxed);
    info!(
        "boot_to_guest: {} counter ticks at {} Hz",
        now.wrapping_sub(start),
        CNTFRQ_EL0.get()
    );
    let Some(first) = vms.first() else { return };
    let tables = first.memory.table_frames();
    let o = overhead(first, tables);
    info!(
        "hyp_overhead_bytes_per_vm: {} bytes (Vm struct {}, strings and buffers {}, stage-2 tables \
         {} in {} frames, recording {} pages)",
        o.total(),
        o.vm_struct,
        o.buffers,
        o.table_frames,
        tables,
        first.memory.pages_used()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_rounds_to_powers_of_two() {
        assert_eq!(heap_bytes(0), 0);
        assert_eq!(heap_bytes(1), 1);
        assert_eq!(heap_bytes(600), 1024);
        assert_eq!(heap_bytes(4096), 4096);
    }

    #[test]
    fn a_hold_names_its_call() {
        let hvc = |x0| Hold {
            ticks: 9,
            cpu: 1,
            kind: 0,
            esr: EC_HVC64 << 26 | 1 << 25,
            x0,
        };
        assert_eq!(hvc(0xc600_0030).to_string(), "CPU 1, HVC 0xc6000030");
        // Only w0 is the function ID.
        assert_eq!(hvc(0xffff_0000_0000_1234).to_string(), "CPU 1, HVC 0x1234");
        let abort = Hold {
            esr: 0x24 << 26,
            ..hvc(0)
        };
        assert_eq!(abort.to_string(), "CPU 1, trap EC 0x24");
        let irq = Hold { kind: 1, ..hvc(0) };
        assert_eq!(irq.to_string(), "CPU 1, IRQ");
    }

    #[test]
    fn total_adds_up() {
        let o = VmOverhead {
            vm_struct: 2048,
            buffers: 64,
            table_frames: 3 * 4096,
        };
        assert_eq!(o.total(), 2048 + 64 + 12288);
    }
}
