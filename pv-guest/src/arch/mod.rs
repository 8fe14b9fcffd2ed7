//! EL1 entry and exception vectors, and every other piece of the guest's assembly (the HVC
//! conduit is `hypercall_abi::Hvc`; `hvc` sets and reads back every SMCCC register).

#[cfg(target_os = "none")]
pub mod access;
#[cfg(target_os = "none")]
pub mod fpsimd;
#[cfg(target_os = "none")]
pub mod hvc;
pub mod mmu;
#[cfg(target_os = "none")]
pub mod timer;

/// Bytes of stack for vCPU 0.
pub const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
pub struct Stack(pub [u8; STACK_SIZE]);

/// The boot stack (in .bss, part of the image the hypervisor maps).
#[unsafe(no_mangle)]
pub static mut GUEST_STACK: Stack = Stack([0; STACK_SIZE]);

/// Bytes of stack for each secondary vCPU.
pub const SECONDARY_STACK_SIZE: usize = 16 * 1024;
/// The most vCPUs a VM has.
pub const MAX_VCPUS: usize = 8;

#[repr(C, align(16))]
pub struct SecondaryStack(pub [u8; SECONDARY_STACK_SIZE]);

/// The stacks of vCPUs 1.. (`secondary_entry` takes entry `index - 1`).
#[unsafe(no_mangle)]
pub static mut SECONDARY_STACKS: [SecondaryStack; MAX_VCPUS - 1] =
    [const { SecondaryStack([0; SECONDARY_STACK_SIZE]) }; MAX_VCPUS - 1];

#[cfg(target_os = "none")]
unsafe extern "C" {
    /// Where PSCI CPU_ON starts a secondary vCPU (context ID = its index, 1..MAX_VCPUS).
    fn secondary_entry();
}

/// The entry point to give PSCI CPU_ON for a secondary vCPU.
#[cfg(target_os = "none")]
pub fn secondary_entry_address() -> u64 {
    secondary_entry as *const () as usize as u64
}

/// This vCPU's index: MPIDR_EL1.Aff0 (the hyp gives vCPU i the MPIDR `(1 << 31) | i`), kept
/// below MAX_VCPUS so it can index per-vCPU tables.
#[cfg(target_os = "none")]
pub fn vcpu_index() -> usize {
    let mpidr: u64;
    // SAFETY: reads this vCPU's own MPIDR_EL1; no side effects.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    (mpidr & 0xff) as usize % MAX_VCPUS
}

/// This vCPU's index (on the build machine, for unit tests: always 0).
#[cfg(not(target_os = "none"))]
pub fn vcpu_index() -> usize {
    0
}

/// The interrupted context, as the vectors save it on the stack (x30 at offset 240 in
/// `entry.S` is `x[30]`).
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// Where the exception returns to.
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

const _: () = assert!(core::mem::offset_of!(ExceptionFrame, x) + 30 * 8 == 240);

#[cfg(target_os = "none")]
core::arch::global_asm!(
    include_str!("entry.S"),
    STACK_SIZE = const STACK_SIZE,
    SECONDARY_STACK_SIZE = const SECONDARY_STACK_SIZE,
    MAX_VCPUS = const MAX_VCPUS,
    FRAME_SIZE = const core::mem::size_of::<ExceptionFrame>(),
    FRAME_ELR = const core::mem::offset_of!(ExceptionFrame, elr),
    FRAME_SPSR = const core::mem::offset_of!(ExceptionFrame, spsr),
);

/// Calls the code at `va` as a function without arguments or results (`blr`): if fetching it
/// faults, the fault handler can resume at the return address in x30.
///
/// # Safety
///
/// `va` must hold code that returns and follows the C ABI, or fault on its first fetch.
#[cfg(target_os = "none")]
pub unsafe fn call(va: u64) {
    // SAFETY: the caller vouches for the code; all caller-saved registers are declared
    // clobbered.
    unsafe { core::arch::asm!("blr {}", in(reg) va, clobber_abi("C")) };
}

/// The feature ID registers a guest reads (the hypervisor traps them and shows a sanitised
/// copy): ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, ID_AA64ISAR1_EL1, ID_AA64ISAR2_EL1,
/// ID_AA64DFR0_EL1.
#[cfg(target_os = "none")]
pub fn id_registers() -> [u64; 5] {
    let (pfr0, pfr1, isar1, isar2, dfr0): (u64, u64, u64, u64, u64);
    // SAFETY: reading ID registers has no side effect (ID_AA64ISAR2_EL1 by its encoding, which
    // reads as zero on CPUs older than it).
    unsafe {
        core::arch::asm!(
            "mrs {}, id_aa64pfr0_el1",
            "mrs {}, id_aa64pfr1_el1",
            "mrs {}, id_aa64isar1_el1",
            "mrs {}, s3_0_c0_c6_2",
            "mrs {}, id_aa64dfr0_el1",
            out(reg) pfr0, out(reg) pfr1, out(reg) isar1, out(reg) isar2, out(reg) dfr0,
            options(nomem, nostack)
        )
    };
    [pfr0, pfr1, isar1, isar2, dfr0]
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

    /// DISR_EL1, the deferred-SError record: UNDEFINED where the CPU lacks RAS; with RAS and
    /// HCR_EL2.AMO it reaches VDISR_EL2 without a trap, which the hypervisor switches per vCPU.
    pub fn read_disr() -> u64 {
        let value;
        // SAFETY: a read with no side effect (or an UNDEF that fault::probe catches).
        unsafe { asm!("mrs {}, s3_0_c12_c1_1", out(reg) value, options(nomem, nostack)) };
        value
    }

    /// Writes DISR_EL1 (see [`read_disr`]).
    pub fn write_disr(value: u64) {
        // SAFETY: the record only informs this vCPU's own later reads and ESBs.
        unsafe { asm!("msr s3_0_c12_c1_1, {}", in(reg) value, options(nomem, nostack)) };
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

    /// The debug monitor control register, trapped by MDCR_EL2.TDA.
    pub fn read_mdscr() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, mdscr_el1", out(reg) _, options(nomem, nostack)) };
    }

    /// A breakpoint value register, trapped by MDCR_EL2.TDA.
    pub fn read_dbgbvr0() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, dbgbvr0_el1", out(reg) _, options(nomem, nostack)) };
    }

    /// Writing a breakpoint control register (0: disabled), trapped by MDCR_EL2.TDA.
    pub fn write_dbgbcr0() {
        // SAFETY: writing 0 disables breakpoint 0, which nothing uses; it traps anyway.
        unsafe { asm!("msr dbgbcr0_el1, xzr", options(nomem, nostack)) };
    }

    /// The OS double-lock register, trapped by MDCR_EL2.TDOSA.
    pub fn read_osdlr() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, osdlr_el1", out(reg) _, options(nomem, nostack)) };
    }

    /// The debug ROM address register, trapped by MDCR_EL2.TDRA.
    pub fn read_mdrar() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, mdrar_el1", out(reg) _, options(nomem, nostack)) };
    }

    /// The EL1 physical timer's control, trapped by CNTHCTL_EL2.EL1PCEN = 0.
    pub fn read_cntp_ctl() {
        // SAFETY: a read with no side effect; it traps before executing.
        unsafe { asm!("mrs {}, cntp_ctl_el0", out(reg) _, options(nomem, nostack)) };
    }

    /// Arming the EL1 physical timer, trapped by CNTHCTL_EL2.EL1PCEN = 0.
    pub fn write_cntp_ctl() {
        // SAFETY: enabling the timer with its interrupt masked (IMASK, bit 1) raises nothing;
        // and it traps before executing.
        unsafe { asm!("msr cntp_ctl_el0, {}", in(reg) 0b11u64, options(nomem, nostack)) };
    }

    /// A pointer-authentication instruction (`PACIA x0, x1`, not in the HINT space) with
    /// SCTLR_EL1.EnIA set, which on a CPU with PAC makes it trap to EL2 (HCR_EL2.API clear);
    /// SCTLR_EL1 is restored after it.
    pub fn pointer_auth_enabled() {
        const SCTLR_ENIA: u64 = 1 << 31;
        // SAFETY: with EnIA set only instruction-address signing changes, and nothing else runs
        // before SCTLR_EL1 is restored; PACIA changes only x0 (declared). The fault handler
        // resumes after the PACIA when it is UNDEFINED.
        unsafe {
            asm!(
                "mrs {saved}, sctlr_el1",
                "orr {tmp}, {saved}, {enia}",
                "msr sctlr_el1, {tmp}",
                "isb",
                ".inst 0xdac10020", // pacia x0, x1
                "msr sctlr_el1, {saved}",
                "isb",
                saved = out(reg) _,
                tmp = out(reg) _,
                enia = in(reg) SCTLR_ENIA,
                inout("x0") 0u64 => _,
                in("x1") 0u64,
                options(nostack)
            )
        };
    }

    /// SMC #0 with `function` in x0; returns x0 as the hypervisor left it.
    pub fn smc(function: u64) -> u64 {
        let mut x0 = function;
        // SAFETY: HCR_EL2.TSC traps the SMC; the hypervisor refuses it in x0 and skips it.
        unsafe { asm!("smc #0", inout("x0") x0, options(nomem, nostack)) };
        x0
    }
}
