//! A vCPU's CPU state: general registers (saved on every exit by vectors.S), and the EL1 system,
//! timer and FP/SIMD registers (switched only when another vCPU takes the CPU). The general
//! registers are plain data (built for host tests too); the rest reads and writes the CPU.

#[cfg(target_os = "none")]
use core::arch::asm;

/// General registers as vectors.S saves them; the layout is shared with the assembly.
#[repr(C)]
#[derive(Clone, Debug, Default)]
pub struct GuestRegs {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    /// Hypercalls answered without a lock (vm::run) since the VM's stats last took them in:
    /// only the CPU running the vCPU writes it, so counting one needs no atomic.
    pub unlocked_calls: u64,
    /// The ABI version the first `ABI_VERSION` answered without a lock stated, encoded (0:
    /// none since the VM last took it in): the VM's revision, folded in under its lock.
    pub stated_version: u64,
    /// Loads answered without a lock (vm::run: a Linux vCPU's fixed vGIC registers) since the
    /// VM's stats last took them in, and what those registers read (`vgic::FixedRegs`, encoded;
    /// 0: none known), both written only by the CPU running the vCPU.
    pub unlocked_loads: u64,
    pub fixed_gic: u64,
}

/// Every AArch64 instruction is 4 bytes.
const INSTRUCTION_BYTES: u64 = 4;

impl GuestRegs {
    /// x0..x17 (SMCCC 1.2), in place: a call's function ID and arguments, and where its
    /// answer goes.
    #[inline(always)]
    pub fn call_regs(&mut self) -> &mut hypercall_abi::Regs {
        let (call, _) = self
            .x
            .split_first_chunk_mut()
            .expect("31 registers hold 18");
        call
    }

    /// Counts one hypercall answered without a lock.
    #[inline(always)]
    pub fn count_unlocked_call(&mut self) {
        self.unlocked_calls = self.unlocked_calls.wrapping_add(1);
    }

    /// The unlocked calls counted since the last take, for the VM's stats (under its lock).
    pub fn take_unlocked_calls(&mut self) -> u64 {
        core::mem::take(&mut self.unlocked_calls)
    }

    /// Records the version an unlocked `ABI_VERSION` stated (`Version::to_u64`, never 0), unless
    /// one waits to be taken.
    #[inline(always)]
    pub fn note_stated_version(&mut self, version: u64) {
        if self.stated_version == 0 {
            self.stated_version = version;
        }
    }

    /// The version noted since the last take, if any.
    pub fn take_stated_version(&mut self) -> Option<u64> {
        Some(core::mem::take(&mut self.stated_version)).filter(|&v| v != 0)
    }

    /// Returns past the instruction that trapped. The address wraps as the PC does: a guest
    /// may put its code at the top of the address space.
    pub fn skip_instruction(&mut self) {
        self.elr = self.elr.wrapping_add(INSTRUCTION_BYTES);
    }

    /// Points ELR back at the instruction that trapped (ELR is past an `HVC`), so that the
    /// vCPU issues it again: a hypercall continuation. Wraps as the PC does.
    pub fn repeat_instruction(&mut self) {
        self.elr = self.elr.wrapping_sub(INSTRUCTION_BYTES);
    }
}

/// The FP/SIMD register file: q0..q31, FPSR, FPCR (layout fixed by fpsimd.S).
#[repr(C, align(16))]
#[derive(Clone, Debug, Default)]
pub struct FpSimd {
    pub q: [u128; 32],
    pub fpsr: u64,
    pub fpcr: u64,
}

const _: () = assert!(core::mem::offset_of!(FpSimd, fpsr) == 512);

#[cfg(target_os = "none")]
unsafe extern "C" {
    fn fpsimd_save(state: *mut FpSimd);
    fn fpsimd_restore(state: *const FpSimd);
}

#[cfg(target_os = "none")]
macro_rules! el1_state {
    ($($field:ident => $reg:literal),* $(,)?) => {
        /// EL1 and EL0 system registers a guest owns, plus its virtual timer and its
        /// DISR_EL1 (held in VDISR_EL2 where the CPU has RAS).
        #[derive(Clone, Debug, Default)]
        pub struct El1State { $(pub $field: u64,)* pub disr: u64 }

        impl El1State {
            /// Reads the registers of the vCPU that is leaving the CPU.
            pub fn save(&mut self) {
                $(
                    // SAFETY: reading an EL1 system register at EL2 has no side effects.
                    unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) self.$field, options(nomem, nostack)) };
                )*
                if cpu_has_ras() {
                    // SAFETY: VDISR_EL2 (s3_4_c12_c1_1) exists where the CPU has RAS; reading
                    // it has no side effect.
                    unsafe { asm!("mrs {}, s3_4_c12_c1_1", out(reg) self.disr, options(nomem, nostack)) };
                }
            }

            /// Loads the registers of the vCPU about to run.
            pub fn restore(&self) {
                $(
                    // SAFETY: these registers only affect EL1/EL0 execution, which the hyp does
                    // not use; the guest that owns them is the next to run.
                    unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) self.$field, options(nomem, nostack)) };
                )*
                if cpu_has_ras() {
                    // SAFETY: VDISR_EL2 exists (RAS); it is what the guest's DISR_EL1 accesses
                    // and ESB reach while HCR_EL2.AMO is set, and nothing else.
                    unsafe { asm!("msr s3_4_c12_c1_1, {}", in(reg) self.disr, options(nomem, nostack)) };
                }
            }
        }
    };
}

/// Whether the CPU has RAS (ID_AA64PFR0_EL1.RAS, bits 31:28). Then, with HCR_EL2.AMO set, a
/// guest's DISR_EL1 reads and writes reach VDISR_EL2 with no trap: HCR_EL2.TERR covers only the
/// error-record registers (ERR*, ERX*), and no control traps DISR_EL1. VDISR_EL2 is one
/// register per CPU, so it is switched with the vCPU, as KVM does; else it is a channel between
/// the VMs that share a CPU.
#[cfg(target_os = "none")]
fn cpu_has_ras() -> bool {
    use aarch64_cpu::registers::{ID_AA64PFR0_EL1, Readable};
    const PFR0_RAS_SHIFT: u64 = 28;
    (ID_AA64PFR0_EL1.get() >> PFR0_RAS_SHIFT) & 0xf != 0
}

#[cfg(target_os = "none")]
el1_state! {
    sctlr => "sctlr_el1", cpacr => "cpacr_el1", ttbr0 => "ttbr0_el1", ttbr1 => "ttbr1_el1",
    tcr => "tcr_el1", mair => "mair_el1", amair => "amair_el1", vbar => "vbar_el1",
    contextidr => "contextidr_el1", tpidr_el1 => "tpidr_el1", tpidr_el0 => "tpidr_el0",
    tpidrro_el0 => "tpidrro_el0", sp_el0 => "sp_el0", sp_el1 => "sp_el1", elr => "elr_el1",
    spsr => "spsr_el1", esr => "esr_el1", far => "far_el1", afsr0 => "afsr0_el1",
    afsr1 => "afsr1_el1", par => "par_el1", cntkctl => "cntkctl_el1", csselr => "csselr_el1",
    mdscr => "mdscr_el1", cntv_ctl => "cntv_ctl_el0", cntv_cval => "cntv_cval_el0",
    cntvoff => "cntvoff_el2", vmpidr => "vmpidr_el2",
}

/// SCTLR_EL1 at reset: the RES1 bits, MMU and caches off (EL1 boots like a bare CPU).
#[cfg(target_os = "none")]
const SCTLR_EL1_RESET: u64 = 0x30D0_0800;

#[cfg(target_os = "none")]
impl El1State {
    /// The state a vCPU starts in: MMU off, timer off, its own MPIDR.
    pub fn at_reset(vcpu_index: u64) -> Self {
        Self {
            sctlr: SCTLR_EL1_RESET,
            // MPIDR_EL1 bit 31 is RES1; the vCPU index is affinity level 0.
            vmpidr: (1 << 31) | vcpu_index,
            ..Self::default()
        }
    }
}

#[cfg(target_os = "none")]
impl FpSimd {
    /// Saves the live FP/SIMD registers into `self`.
    pub fn save(&mut self) {
        // SAFETY: fpsimd_save writes exactly size_of::<FpSimd>() bytes to a valid, aligned block;
        // CPTR_EL2.TFP is clear, so the accesses do not trap.
        unsafe { fpsimd_save(self) }
    }

    /// Loads `self` into the FP/SIMD registers.
    pub fn restore(&self) {
        // SAFETY: as for save; the hyp itself never uses these registers (soft-float build).
        unsafe { fpsimd_restore(self) }
    }
}

#[cfg(test)]
mod tests {
    use super::GuestRegs;

    #[test]
    fn skipping_an_instruction_wraps_at_the_top_of_the_address_space() {
        let mut regs = GuestRegs {
            elr: 0x4008_0000,
            ..GuestRegs::default()
        };
        regs.skip_instruction();
        assert_eq!(regs.elr, 0x4008_0004);
        regs.elr = u64::MAX - 3;
        regs.skip_instruction();
        assert_eq!(regs.elr, 0);
        regs.repeat_instruction();
        assert_eq!(regs.elr, u64::MAX - 3);
    }

    #[test]
    fn call_registers_are_the_saved_ones_in_place() {
        let mut regs = GuestRegs::default();
        regs.x[17] = 7;
        regs.call_regs()[0] = 1;
        regs.call_regs()[17] += 1;
        assert_eq!((regs.x[0], regs.x[17], regs.x[18]), (1, 8, 0));
    }

    #[test]
    fn unlocked_calls_are_taken_once() {
        let mut regs = GuestRegs::default();
        regs.count_unlocked_call();
        regs.count_unlocked_call();
        assert_eq!(regs.take_unlocked_calls(), 2);
        assert_eq!(regs.take_unlocked_calls(), 0);
    }
}
