//! State that belongs to one physical CPU, found through TPIDR_EL2 from the first line on.

/// Bytes of EL2 stack per CPU.
pub const STACK_SIZE: usize = 64 * 1024;
/// CPUs the hyp keeps state for.
pub const MAX_CPUS: usize = 8;

/// Per-CPU state. `regs` is read by vectors.S (offset from `offset_of!`).
#[repr(C)]
pub struct PerCpu {
    /// The register block of the vCPU running on this CPU.
    pub regs: *mut crate::arch::aarch64::context::GuestRegs,
    /// This CPU's index (0 is the boot CPU).
    pub index: usize,
    /// Top of this CPU's EL2 stack.
    pub stack_top: usize,
}

#[repr(C, align(16))]
pub struct Stack(pub [u8; STACK_SIZE]);

/// EL2 stacks; entry.S points CPU 0's SP at the end of the first one.
#[unsafe(no_mangle)]
pub static mut HYP_STACKS: [Stack; MAX_CPUS] = [const { Stack([0; STACK_SIZE]) }; MAX_CPUS];

/// One PerCpu per CPU, indexed by CPU number.
pub static mut PER_CPU: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        regs: core::ptr::null_mut(),
        index: 0,
        stack_top: 0,
    }
}; MAX_CPUS];

/// Prepares CPU `index`'s PerCpu and returns its address (for TPIDR_EL2).
pub fn init(index: usize) -> *mut PerCpu {
    // SAFETY: each CPU initialises only its own slot, before anything reads it.
    unsafe {
        let stack = &raw mut HYP_STACKS[index];
        let percpu = &raw mut PER_CPU[index];
        (*percpu).index = index;
        (*percpu).stack_top = stack as usize + STACK_SIZE;
        percpu
    }
}
