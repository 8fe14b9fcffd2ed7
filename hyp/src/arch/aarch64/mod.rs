//! How the hypervisor does things on an AArch64 CPU at EL2: entry, vectors, system registers,
//! the EL2 MMU, stage-2 and TLB maintenance, and the vCPU context switch. Nothing outside this
//! module writes assembly. Only `esr` (pure decoding) is built for host tests.

pub mod esr;

#[cfg(target_os = "none")]
pub mod context;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod exception;
#[cfg(target_os = "none")]
pub mod machine;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod stage2;
#[cfg(target_os = "none")]
pub mod timer;

#[cfg(target_os = "none")]
mod asm {
    use super::{context, exception};
    use crate::percpu::{PerCpu, STACK_SIZE};
    use core::arch::global_asm;
    use core::mem::offset_of;

    global_asm!(
        include_str!("entry.S"),
        STACK_SIZE = const STACK_SIZE,
    );

    global_asm!(
        include_str!("vectors.S"),
        PERCPU_REGS = const offset_of!(PerCpu, regs),
        REGS_ELR = const offset_of!(context::GuestRegs, elr),
        EXIT_SYNC = const exception::EXIT_SYNC,
        EXIT_IRQ = const exception::EXIT_IRQ,
        EXIT_FIQ = const exception::EXIT_FIQ,
        EXIT_SERROR = const exception::EXIT_SERROR,
    );

    global_asm!(include_str!("fpsimd.S"));

    const _: () =
        assert!(offset_of!(context::GuestRegs, spsr) == offset_of!(context::GuestRegs, elr) + 8);
    const _: () = assert!(offset_of!(context::GuestRegs, x) == 0);
}
