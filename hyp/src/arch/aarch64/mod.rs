//! How the hypervisor does things on an AArch64 CPU at EL2: entry, vectors, system registers,
//! the EL2 MMU, stage-2 and TLB maintenance, and the vCPU context switch. Nothing outside this
//! module writes assembly. Only `esr` and `exception`'s `Exit` (pure decoding), the general
//! registers of `context` and the stage-2 table format and walks are built for host tests.

pub mod context;
pub mod esr;
pub mod exception;
pub mod stage2;

#[cfg(target_os = "none")]
pub mod cache;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod machine;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod timer;
#[cfg(target_os = "none")]
pub mod translate;
#[cfg(target_os = "none")]
pub mod vgic;

#[cfg(target_os = "none")]
mod asm {
    use super::smp::SecondaryBoot;
    use super::{context, exception};
    use crate::percpu::{MAX_CPUS, PerCpu, STACK_PARTS, STACK_SIZE, Stack};
    use core::arch::global_asm;
    use core::mem::offset_of;
    use exception::ESR_HVC0;
    use hypercall_abi::standard::{SMCCC_VERSION, SMCCC_VERSION_1_2};

    // The fast path compares only the top half of the function ID.
    const _: () = assert!(SMCCC_VERSION & 0xffff == 0);

    global_asm!(
        include_str!("entry.S"),
        STACK_SLOT = const size_of::<Stack>(),
        MAX_CPUS = const MAX_CPUS,
        SB_TTBR0 = const offset_of!(SecondaryBoot, ttbr0),
        SB_TCR = const offset_of!(SecondaryBoot, tcr),
        SB_MAIR = const offset_of!(SecondaryBoot, mair),
        SB_MPIDR = const offset_of!(SecondaryBoot, mpidr),
    );

    global_asm!(
        include_str!("vectors.S"),
        PERCPU_REGS = const offset_of!(PerCpu, regs),
        REGS_ELR = const offset_of!(context::GuestRegs, elr),
        EXIT_SYNC = const exception::EXIT_SYNC,
        ESR_HVC_HIGH = const ESR_HVC0 >> 24,
        SMCCC_VERSION_HIGH = const SMCCC_VERSION >> 16,
        SMCCC_1_2_LOW = const SMCCC_VERSION_1_2 & 0xffff,
        SMCCC_1_2_HIGH = const SMCCC_VERSION_1_2 >> 16,
        EXIT_IRQ = const exception::EXIT_IRQ,
        EXIT_FIQ = const exception::EXIT_FIQ,
        EXIT_SERROR = const exception::EXIT_SERROR,
        STACK_SHIFT = const STACK_SIZE.trailing_zeros(),
        STACK_SLOT = const size_of::<Stack>(),
        EMERGENCY_TOP = const STACK_PARTS[0].1,
    );

    global_asm!(include_str!("fpsimd.S"));

    global_asm!(include_str!("mem.S"));

    const _: () =
        assert!(offset_of!(context::GuestRegs, spsr) == offset_of!(context::GuestRegs, elr) + 8);
    const _: () = assert!(offset_of!(context::GuestRegs, x) == 0);
}
