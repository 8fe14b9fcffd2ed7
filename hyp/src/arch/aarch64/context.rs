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
    (
        switched: [$($f1:ident => $r1:literal, $f2:ident => $r2:literal;)*]
        loaded: [$($l1:ident => $lr1:literal, $l2:ident => $lr2:literal;)*]
    ) => {
        /// EL1 and EL0 system registers a guest owns, plus its virtual timer and its
        /// DISR_EL1 (held in VDISR_EL2 where the CPU has RAS). The `switched` registers the
        /// guest may change are saved and loaded, in pairs (two `mrs` and an `stp`, an `ldp`
        /// and two `msr`); the `loaded` ones are EL2 registers only the hyp sets (CNTVOFF_EL2,
        /// VMPIDR_EL2), loaded and never read back.
        #[repr(C)]
        #[derive(Clone, Debug, Default)]
        pub struct El1State { $(pub $f1: u64, pub $f2: u64,)* $(pub $l1: u64, pub $l2: u64,)* pub disr: u64 }

        impl El1State {
            /// Reads the registers of the vCPU that is leaving the CPU. Inlined into the
            /// switch, as `restore` is: no call, no register moves around it.
            #[inline(always)]
            pub fn save(&mut self) {
                let base: *mut Self = self;
                $(
                    // SAFETY: reading EL1 system registers at EL2 has no side effects; the
                    // pair is stored into two adjacent fields of `*self` (repr(C), offset from
                    // offset_of!), which the exclusive borrow lets us write.
                    unsafe {
                        asm!(
                            concat!("mrs {a}, ", $r1, "\n", "mrs {b}, ", $r2, "\n",
                                "stp {a}, {b}, [{base}, #{at}]"),
                            a = out(reg) _, b = out(reg) _, base = in(reg) base,
                            at = const core::mem::offset_of!(El1State, $f1),
                            options(nostack, preserves_flags),
                        )
                    };
                )*
                if cpu_has_ras() {
                    // SAFETY: VDISR_EL2 (s3_4_c12_c1_1) exists where the CPU has RAS; reading
                    // it has no side effect.
                    unsafe { asm!("mrs {}, s3_4_c12_c1_1", out(reg) self.disr, options(nomem, nostack)) };
                }
            }

            /// Loads the registers of the vCPU about to run.
            #[inline(always)]
            pub fn restore(&self) {
                let base: *const Self = self;
                $(
                    // SAFETY: these registers only affect EL1/EL0 execution, which the hyp does
                    // not use; the guest that owns them is the next to run. The pair is read
                    // from two adjacent fields of `*self`.
                    unsafe {
                        asm!(
                            concat!("ldp {a}, {b}, [{base}, #{at}]", "\n", "msr ", $r1, ", {a}",
                                "\n", "msr ", $r2, ", {b}"),
                            a = out(reg) _, b = out(reg) _, base = in(reg) base,
                            at = const core::mem::offset_of!(El1State, $f1),
                            options(nostack, preserves_flags, readonly),
                        )
                    };
                )*
                $(
                    // SAFETY: as above; CNTVOFF_EL2 and VMPIDR_EL2 set what this guest's
                    // virtual counter and MPIDR_EL1 read, and nothing of the hyp.
                    unsafe {
                        asm!(
                            concat!("ldp {a}, {b}, [{base}, #{at}]", "\n", "msr ", $lr1, ", {a}",
                                "\n", "msr ", $lr2, ", {b}"),
                            a = out(reg) _, b = out(reg) _, base = in(reg) base,
                            at = const core::mem::offset_of!(El1State, $l1),
                            options(nostack, preserves_flags, readonly),
                        )
                    };
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
    switched: [
    sctlr => "sctlr_el1", cpacr => "cpacr_el1"; ttbr0 => "ttbr0_el1", ttbr1 => "ttbr1_el1";
    tcr => "tcr_el1", mair => "mair_el1"; amair => "amair_el1", vbar => "vbar_el1";
    contextidr => "contextidr_el1", tpidr_el1 => "tpidr_el1";
    tpidr_el0 => "tpidr_el0", tpidrro_el0 => "tpidrro_el0"; sp_el0 => "sp_el0", sp_el1 => "sp_el1";
    elr => "elr_el1", spsr => "spsr_el1"; esr => "esr_el1", far => "far_el1";
    afsr0 => "afsr0_el1", afsr1 => "afsr1_el1"; par => "par_el1", cntkctl => "cntkctl_el1";
    csselr => "csselr_el1", mdscr => "mdscr_el1"; cntv_ctl => "cntv_ctl_el0", cntv_cval => "cntv_cval_el0";
    ]
    loaded: [cntvoff => "cntvoff_el2", vmpidr => "vmpidr_el2";]
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

/// CPTR_EL2.TFP: FP/SIMD instructions at EL2 and below trap to EL2.
#[cfg(target_os = "none")]
const CPTR_EL2_TFP: u64 = 1 << 10;

/// A CPU's FP/SIMD registers, switched lazily: a vCPU is loaded with FP/SIMD trapped
/// (CPTR_EL2.TFP) and gets its registers at its first FP/SIMD instruction
/// ([`LazyFp::first_use`]); only then are they saved when it leaves. A vCPU that does not touch
/// them while loaded (most exits of a PV guest) costs no save and no restore, and its saved
/// block stays what it was; the registers it cannot read meanwhile are the last user's. The
/// hyp itself is built soft-float and never uses them. Only its own CPU touches it (PerCpu).
#[derive(Debug)]
pub struct LazyFp {
    /// The saved registers of the vCPU loaded on this CPU (null: none loaded).
    block: *mut FpSimd,
    /// Whether they are in the registers now (the vCPU used FP/SIMD since it was loaded).
    live: bool,
    /// Whether CPTR_EL2.TFP is set.
    trapping: bool,
}

impl LazyFp {
    /// No vCPU loaded; FP/SIMD not trapped (what `cpu::init_el2` leaves).
    pub const fn new() -> Self {
        Self {
            block: core::ptr::null_mut(),
            live: false,
            trapping: false,
        }
    }
}

impl Default for LazyFp {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_os = "none")]
impl LazyFp {
    /// Sets TFP to `on` unless it is already so; an ISB only when it is cleared for the hyp's
    /// own FP/SIMD instructions next (a guest entry synchronizes by itself).
    fn set_trapping(&mut self, on: bool) {
        if self.trapping == on {
            return;
        }
        self.trapping = on;
        let cptr: u64;
        // SAFETY: reads CPTR_EL2, no side effect.
        unsafe { asm!("mrs {}, cptr_el2", out(reg) cptr, options(nomem, nostack)) };
        let cptr = if on {
            cptr | CPTR_EL2_TFP
        } else {
            cptr & !CPTR_EL2_TFP
        };
        // SAFETY: TFP only decides whether FP/SIMD instructions trap to EL2; the hyp executes
        // none but fpsimd.S's, which run only while it is clear (after the ISB below).
        unsafe { asm!("msr cptr_el2, {}", "isb", in(reg) cptr, options(nomem, nostack)) };
    }

    /// A vCPU whose saved FP/SIMD registers are `block` is loaded: they stay where they are
    /// until it uses them. `block` must stay valid until [`LazyFp::unload`].
    pub fn load(&mut self, block: *mut FpSimd) {
        self.block = block;
        self.live = false;
        self.set_trapping(true);
    }

    /// The loaded vCPU executed an FP/SIMD instruction (a TFP trap): its registers go in and
    /// the trap off. False (nothing done) if no vCPU is loaded or its registers already are.
    pub fn first_use(&mut self) -> bool {
        if self.block.is_null() || self.live {
            return false;
        }
        self.set_trapping(false);
        // SAFETY: `block` is the loaded vCPU's (`load`), valid until `unload`, aligned, and
        // touched by no other code meanwhile; TFP is clear (ISB done), so the loads do not trap.
        unsafe { fpsimd_restore(self.block) };
        self.live = true;
        true
    }

    /// The loaded vCPU leaves: its registers are saved into its block if it used them and
    /// `keep` (its state is worth keeping).
    pub fn unload(&mut self, keep: bool) {
        if self.live && keep {
            // SAFETY: as in `first_use`; TFP is clear while the registers are live.
            unsafe { fpsimd_save(self.block) };
        }
        self.block = core::ptr::null_mut();
        self.live = false;
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
