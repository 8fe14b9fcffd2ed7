//! Starting the secondary CPUs: what their entry code (entry.S, `secondary_entry`) needs from
//! CPU 0, and the two ways of releasing them (PSCI CPU_ON through SMC, the spin table).
//!
//! A secondary starts at EL2 with its MMU and caches off, at the physical address of
//! `secondary_entry`. It reads the boot block below with its caches off, so CPU 0 cleans the
//! block to the point of coherency before releasing anyone. It finds its logical index by
//! looking its MPIDR up in the block, turns its MMU on (the boot tables first: they identity-map
//! the code it runs; then CPU 0's final tables), takes `HYP_STACKS[index]` and calls
//! `secondary_main(index)`.

use crate::percpu::MAX_CPUS;
use aarch64_cpu::registers::{MAIR_EL2, Readable, TCR_EL2, TTBR0_EL2};
use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// What a secondary's entry code reads before its MMU is on. Layout shared with entry.S
/// (offsets from `offset_of!`).
#[repr(C)]
pub struct SecondaryBoot {
    /// TTBR0_EL2 of the final EL2 tables.
    pub ttbr0: u64,
    /// TCR_EL2 (the same for the boot and the final tables).
    pub tcr: u64,
    /// MAIR_EL2.
    pub mair: u64,
    /// The MPIDR affinity (Aff3, Aff2..Aff0) of each logical CPU; `NO_CPU` in unused slots.
    pub mpidr: [u64; MAX_CPUS],
}

/// An MPIDR no CPU has (bits outside the affinity fields are set).
pub const NO_CPU: u64 = u64::MAX;

/// Written by CPU 0 before any release; read by the secondaries with their caches off.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data")]
pub static mut SECONDARY_BOOT: SecondaryBoot = SecondaryBoot {
    ttbr0: 0,
    tcr: 0,
    mair: 0,
    mpidr: [NO_CPU; MAX_CPUS],
};

unsafe extern "C" {
    /// The secondaries' entry; runs at its physical address with the MMU off.
    static secondary_entry: u8;
}

/// Fills the boot block with this CPU's EL2 translation registers (the final tables are in
/// force) and the logical CPUs' MPIDRs, and cleans it to the point of coherency.
pub fn publish(mpidrs: &[u64]) {
    let block = &raw mut SECONDARY_BOOT;
    // SAFETY: only CPU 0 writes the block, before it releases any secondary; nothing else
    // holds a reference to it.
    unsafe {
        (*block).ttbr0 = TTBR0_EL2.get();
        (*block).tcr = TCR_EL2.get();
        (*block).mair = MAIR_EL2.get();
        for (slot, &m) in (*block).mpidr.iter_mut().zip(mpidrs) {
            *slot = m;
        }
    }
    let start = block as usize;
    let end = start + core::mem::size_of::<SecondaryBoot>();
    let mut line = start & !63;
    while line < end {
        // SAFETY: cleaning a line of our own .data to the point of coherency changes no value.
        unsafe { asm!("dc cvac, {}", in(reg) line, options(nostack, preserves_flags)) };
        line += 64;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// The physical address secondaries start at; `image_offset` is link minus load address.
pub fn entry_pa(image_offset: usize) -> u64 {
    // SAFETY: only the symbol's address is taken.
    let va = unsafe { &secondary_entry as *const u8 as usize };
    (va - image_offset) as u64
}

/// Starts the CPU `mpidr` at `entry` through PSCI CPU_ON over SMC (`function`: the tree's or
/// the standard CPU_ON_64 ID); the PSCI status.
pub fn psci_cpu_on(function: u32, mpidr: u64, entry: u64, context_id: u64) -> i32 {
    super::cpu::smc(function, mpidr, entry, context_id) as i32
}

/// Secondaries that have finished their own set-up.
static ONLINE: AtomicUsize = AtomicUsize::new(0);

/// The logical CPUs that are up, as a mask (bit i = CPU i; the boot CPU always).
static ONLINE_SET: AtomicUsize = AtomicUsize::new(1);

/// Secondary `index` says it is up.
pub fn mark_online(index: usize) {
    if index < usize::BITS as usize {
        ONLINE_SET.fetch_or(1 << index, Ordering::Release);
    }
    ONLINE.fetch_add(1, Ordering::Release);
    aarch64_cpu::asm::sev();
}

/// Whether logical CPU `index` is up (has finished its set-up).
pub fn is_online(index: usize) -> bool {
    index < usize::BITS as usize && ONLINE_SET.load(Ordering::Acquire) & (1 << index) != 0
}

/// Waits until `n` secondaries are up, or `timeout_ms` has passed; how many are up.
///
/// In `WFE` between looks: each secondary's [`mark_online`] sends an event, and the counter's
/// event stream (on for this wait only: an event every 2^16 ticks, about a millisecond) ends a
/// wait that no secondary does. An emulator runs the other CPUs meanwhile rather than this
/// one's spinning (under QEMU's `-icount`, 43 million of the Pi's 44 million instructions
/// from reset to the first guest were this loop).
pub fn wait_online(n: usize, timeout_ms: u64) -> usize {
    use aarch64_cpu::asm::barrier;
    use aarch64_cpu::registers::{CNTFRQ_EL0, CNTHCTL_EL2, CNTPCT_EL0, Writeable};
    /// CNTHCTL_EL2.EVNTEN, and EVNTI (bits 7:4): the counter bit whose rise is an event.
    const EVNTEN: u64 = 1 << 2;
    const EVNTI_BIT_15: u64 = 15 << 4;
    let deadline = CNTPCT_EL0.get() + CNTFRQ_EL0.get() * timeout_ms / 1000;
    let cnthctl = CNTHCTL_EL2.get();
    CNTHCTL_EL2.set(cnthctl | EVNTEN | EVNTI_BIT_15);
    barrier::isb(barrier::SY);
    let up = loop {
        let up = ONLINE.load(Ordering::Acquire);
        if up >= n || CNTPCT_EL0.get() >= deadline {
            break up;
        }
        aarch64_cpu::asm::wfe();
    };
    CNTHCTL_EL2.set(cnthctl);
    barrier::isb(barrier::SY);
    up
}
