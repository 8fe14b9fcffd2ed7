//! EL1 entry and exception vectors: the guest's assembly (the HVC conduit is
//! `hypercall_abi::Hvc`).

/// Bytes of stack for the guest's one vCPU.
pub const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
pub struct Stack(pub [u8; STACK_SIZE]);

/// The boot stack (in .bss, part of the image the hypervisor maps).
#[unsafe(no_mangle)]
pub static mut GUEST_STACK: Stack = Stack([0; STACK_SIZE]);

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("entry.S"), STACK_SIZE = const STACK_SIZE);

/// Makes the exception being handled return to `pc`.
#[cfg(target_os = "none")]
pub fn resume_at(pc: u64) {
    // SAFETY: ELR_EL1 is read by the ERET at the end of the vector; `pc` is the next instruction
    // of the code that faulted.
    unsafe { core::arch::asm!("msr elr_el1, {}", in(reg) pc, options(nomem, nostack)) };
}

/// Instructions the hypervisor must not let a guest execute: each traps to EL2, which answers
/// with an UNDEFINED exception (caught by `fault::probe`) or, for SMC, a refusal in x0.
#[cfg(target_os = "none")]
pub mod sensitive {
    use core::arch::asm;

    /// An IMPLEMENTATION DEFINED register (Cortex-A72's CPUECTLR_EL1), trapped by HCR_EL2.TIDCP.
    pub fn read_impdef_register() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, s3_1_c15_c2_1", out(reg) _, options(nomem, nostack)) };
    }

    /// Data-cache clean by set/way, trapped by HCR_EL2.TSW.
    pub fn clean_by_set_way() {
        // SAFETY: cleaning a cache line writes nothing back that is not already memory's; and
        // the instruction traps before executing.
        unsafe { asm!("dc csw, {}", in(reg) 0u64, options(nostack)) };
    }

    /// The auxiliary control register, trapped by HCR_EL2.TACR.
    pub fn read_actlr() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, actlr_el1", out(reg) _, options(nomem, nostack)) };
    }

    /// The PMU control register, trapped by MDCR_EL2.TPMCR.
    pub fn read_pmcr() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, pmcr_el0", out(reg) _, options(nomem, nostack)) };
    }

    /// SMC #0 with `function` in x0; returns x0 as the hypervisor left it.
    pub fn smc(function: u64) -> u64 {
        let mut x0 = function;
        // SAFETY: HCR_EL2.TSC traps the SMC; the hypervisor refuses it in x0 and skips it.
        unsafe { asm!("smc #0", inout("x0") x0, options(nomem, nostack)) };
        x0
    }
}
