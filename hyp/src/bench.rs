//! Figures for `scripts/bench.sh` that only the hyp can see: how far the counter got from its
//! first instruction to the first guest entry (`boot_to_guest`), and the memory it keeps per VM
//! (`hyp_overhead_bytes_per_vm`). Both are printed once, as log lines, just before the first
//! guest runs.

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

/// Called once, just before the first guest entry: reads the counter first, then logs
/// `boot_to_guest` and the per-VM overhead (the first VM's, as built, before it maps anything
/// itself) for scripts/bench.sh.
#[cfg(target_os = "none")]
pub fn at_first_guest_entry(vms: &[crate::vm::Vm]) {
    use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
    let now = CNTPCT_EL0.get();
    let start = BOOT_COUNTER.load(core::sync::atomic::Ordering::Relaxed);
    log::info!(
        "boot_to_guest: {} counter ticks at {} Hz",
        now.wrapping_sub(start),
        CNTFRQ_EL0.get()
    );
    let Some(first) = vms.first() else { return };
    let tables = first.memory.table_frames();
    let o = overhead(first, tables);
    log::info!(
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
    fn total_adds_up() {
        let o = VmOverhead {
            vm_struct: 2048,
            buffers: 64,
            table_frames: 3 * 4096,
        };
        assert_eq!(o.total(), 2048 + 64 + 12288);
    }
}
