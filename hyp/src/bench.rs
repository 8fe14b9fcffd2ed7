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
    /// The boxed `Vm`: registers, EL1 and FP/SIMD state, console line, stage-2 handle.
    pub vm_struct: u64,
    /// The VM's strings and buffers on the heap (its name, the manifest entry's name, image and
    /// cmdline, the console input queue).
    pub buffers: u64,
    /// The nodes of the IPA -> frame record (a `BTreeMap<u64, Page>`), estimated.
    pub page_records: u64,
    /// Frames the hyp owns for the VM: its stage-2 tables.
    pub table_frames: u64,
}

impl VmOverhead {
    pub fn total(&self) -> u64 {
        self.vm_struct + self.buffers + self.page_records + self.table_frames
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

/// The std `BTreeMap`'s node capacity (B = 6).
const BTREE_CAPACITY: u64 = 11;
/// Keys per node after in-order inserts (the hyp maps a VM's pages in ascending IPA order): a
/// full node splits into 6 and 4 and the median moves up, so each node keeps 6 keys plus the
/// one its parent holds for it.
const BTREE_KEYS_PER_NODE_SEQUENTIAL: u64 = 7;

/// Estimated leaf and internal node counts of a `BTreeMap` filled in ascending order.
pub fn btree_nodes(entries: u64) -> (u64, u64) {
    if entries == 0 {
        return (0, 0);
    }
    if entries <= BTREE_CAPACITY {
        return (1, 0);
    }
    let leaves = entries.div_ceil(BTREE_KEYS_PER_NODE_SEQUENTIAL);
    let mut internal = 0;
    let mut level = leaves;
    while level > 1 {
        level = level.div_ceil(BTREE_KEYS_PER_NODE_SEQUENTIAL);
        internal += level;
    }
    (leaves, internal)
}

/// Heap bytes of a `BTreeMap<u64, V>` with `entries` entries filled in order, `value` being
/// `size_of::<V>()` (std's LeafNode: parent pointer, parent index and length, 11 keys, 11
/// values; an InternalNode adds 12 edge pointers).
pub fn btree_bytes(entries: u64, value: usize) -> u64 {
    let header = 8 + 2 + 2;
    let leaf = (header + BTREE_CAPACITY as usize * (8 + value)).next_multiple_of(8);
    let internal = leaf + (BTREE_CAPACITY as usize + 1) * 8;
    let (leaves, internals) = btree_nodes(entries);
    leaves * heap_bytes(leaf) + internals * heap_bytes(internal)
}

/// CNTPCT_EL0 at the hyp's first instruction (entry.S reads it before anything else).
#[cfg(target_os = "none")]
static BOOT_COUNTER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Records the counter entry.S read first thing.
#[cfg(target_os = "none")]
pub fn record_boot_counter(ticks: u64) {
    BOOT_COUNTER.store(ticks, core::sync::atomic::Ordering::Relaxed);
}

/// What `vm::memory` records per guest page (mirrors its private `Page`, for the size).
#[cfg(target_os = "none")]
#[allow(dead_code, reason = "only its size is used")]
struct PageRecord {
    pa: u64,
    perms: hypercall_abi::MemPerms,
    pinned: bool,
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
        page_records: btree_bytes(vm.memory.pages_used(), core::mem::size_of::<PageRecord>()),
        table_frames: table_frames * crate::mm::PAGE_SIZE,
    }
}

/// Called once, just before the first guest entry: reads the counter first, then logs
/// `boot_to_guest` and the per-VM overhead (the first VM's, as built, before it maps anything
/// itself) for scripts/bench.sh.
#[cfg(target_os = "none")]
pub fn at_first_guest_entry(vms: &[alloc::boxed::Box<crate::vm::Vm>]) {
    use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};
    let now = CNTPCT_EL0.get();
    let start = BOOT_COUNTER.load(core::sync::atomic::Ordering::Relaxed);
    log::info!(
        "boot_to_guest: {} counter ticks at {} Hz",
        now.wrapping_sub(start),
        CNTFRQ_EL0.get()
    );
    let Some(first) = vms.first() else { return };
    // Every frame the hyp owns (Owner::Hyp) is a VM's stage-2 table: share them evenly.
    let hyp_frames = crate::mm::frames::count(crate::mm::owner::Owner::Hyp) as u64;
    let tables = hyp_frames / vms.len() as u64;
    let o = overhead(first, tables);
    log::info!(
        "hyp_overhead_bytes_per_vm: {} bytes (Vm struct {}, strings and buffers {}, page records \
         {} for {} pages, stage-2 tables {} in {} frames)",
        o.total(),
        o.vm_struct,
        o.buffers,
        o.page_records,
        first.memory.pages_used(),
        o.table_frames,
        tables
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
    fn btree_node_estimate() {
        assert_eq!(btree_nodes(0), (0, 0));
        assert_eq!(btree_nodes(11), (1, 0));
        assert_eq!(btree_nodes(42), (6, 1));
        assert_eq!(btree_nodes(100), (15, 3 + 1));
        // 24-byte values: a leaf is 12 + 11 * 32 = 364 -> 368 bytes, served as 512.
        assert_eq!(btree_bytes(5, 24), 512);
    }

    #[test]
    fn total_adds_up() {
        let o = VmOverhead {
            vm_struct: 2048,
            buffers: 64,
            page_records: 512,
            table_frames: 3 * 4096,
        };
        assert_eq!(o.total(), 2048 + 64 + 512 + 12288);
    }
}
