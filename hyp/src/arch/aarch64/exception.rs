//! Entering a guest and what brings it back: `enter` runs the vCPU loaded on this CPU until
//! its next exit and returns it (`RawExit`): answered in place and resumed, or decoded into an
//! [`Exit`]; generic code (vm::run) decides which and what follows. Also the entry point
//! vectors.S calls for a fault of the hypervisor itself. The decoding is pure and built for
//! host tests.

#[cfg(target_os = "none")]
use super::context::GuestRegs;
use crate::arch::aarch64::esr::Syndrome;

/// Kinds of guest exit, as vectors.S returns them from `guest_enter`.
pub const EXIT_SYNC: u64 = 0;
/// A physical IRQ arrived while a guest ran.
pub const EXIT_IRQ: u64 = 1;
/// A physical FIQ arrived while a guest ran.
pub const EXIT_FIQ: u64 = 2;
/// A physical SError arrived while a guest ran.
pub const EXIT_SERROR: u64 = 3;

/// Why the guest left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `HVC #0`: a call under SMCCC, with the guest's x0 at the exit (its function ID). Told
    /// from every other synchronous exit by ESR_EL2 alone: no syndrome is decoded for it.
    Call(u64),
    /// Any other synchronous exception, with the guest's x0 at the exit.
    Sync(Syndrome, u64),
    Irq,
    Unexpected {
        kind: u64,
        esr: u64,
    },
}

impl Exit {
    /// The exit of `kind` (vectors.S) with ESR_EL2, FAR_EL2 and HPFAR_EL2 as the CPU left
    /// them, and the guest's x0.
    #[inline(always)]
    pub fn decode(kind: u64, esr: u64, far: u64, hpfar: u64, x0: u64) -> Exit {
        match kind {
            EXIT_SYNC if is_hvc0(esr) => Exit::Call(x0),
            EXIT_SYNC => Exit::Sync(Syndrome::decode(esr, far, hpfar), x0),
            EXIT_IRQ => Exit::Irq,
            _ => Exit::Unexpected { kind, esr },
        }
    }

    /// The kind vectors.S gave it (EXIT_*), its ESR_EL2 (0 for an IRQ) and the guest's x0 (0
    /// unless synchronous): what bench.rs's `max_hold` names a hold by.
    pub fn raw(&self) -> (u64, u64, u64) {
        match *self {
            Exit::Call(x0) => (EXIT_SYNC, u64::from(ESR_HVC0), x0),
            Exit::Sync(s, x0) => (EXIT_SYNC, s.esr, x0),
            Exit::Irq => (EXIT_IRQ, 0, 0),
            Exit::Unexpected { kind, esr } => (kind, esr, 0),
        }
    }
}

/// ESR_EL2 (its low 32 bits: ISS2 above is not about HVC) of `HVC #0` from AArch64: EC 0x16,
/// IL set, the immediate 0. SMCCC reserves HVC #0 for calls; other immediates are not calls.
pub const ESR_HVC0: u32 = (0x16 << 26) | (1 << 25);

/// Whether a synchronous exit's ESR_EL2 is `HVC #0`: a call under SMCCC.
#[inline(always)]
pub fn is_hvc0(esr: u64) -> bool {
    esr as u32 == ESR_HVC0
}

/// A guest exit as the vectors left it: the guest's x0..x19, x29 and x30 in its vCPU's block,
/// its x20..x28 carried here (`carried`: the entry's `asm!` operands, so that neither the vector
/// nor an answered call saves or restores them; written into the block only for the general
/// path), ELR_EL2, SPSR_EL2 and the syndrome registers still
/// in the CPU. Either answered in place and resumed ([`RawExit::call_regs`],
/// [`RawExit::resume`]), or decoded for the general path ([`RawExit::decode`]), which completes
/// the block. Not `Clone`: one exit is resumed or decoded once.
#[cfg(target_os = "none")]
pub struct RawExit {
    kind: u64,
    regs: core::ptr::NonNull<GuestRegs>,
    carried: [u64; 9],
}

/// Enters the guest through `$entry` (vectors.S) with x0 = `$x0`, and the guest's x20..x28 from
/// `$carried` for `guest_resume` (`inout`; `out` for guest_enter, which loads them from the
/// block), and makes the RawExit of its next exit. The entry is an
/// AAPCS64 function that keeps x19 and x29 and returns with x0 = the exit's kind, x1 = the
/// block, x20..x28 = the guest's; every other register it clobbers, as declared.
#[cfg(target_os = "none")]
macro_rules! enter_through {
    ($entry:literal, $x0:expr, $carried:ident: $direction:ident) => {{
        let kind: u64;
        let regs: *mut GuestRegs;
        let c = &mut $carried;
        // SAFETY: the scheduler left a vCPU loaded (PerCpu::regs points at its block, which
        // stays put and which nothing else writes while it is on this CPU); the entry runs the
        // guest and returns here on this stack with x19, x29 and SP as they were, every other
        // register declared as an output or clobbered. `c` holds the guest's x20..x28 after
        // (and, for guest_resume, before).
        unsafe {
            core::arch::asm!(
                concat!("bl ", $entry),
                inout("x0") $x0 => kind, out("x1") regs,
                out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
                out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
                out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _,
                out("x17") _, out("x18") _,
                $direction("x20") c[0], $direction("x21") c[1], $direction("x22") c[2],
                $direction("x23") c[3], $direction("x24") c[4], $direction("x25") c[5],
                $direction("x26") c[6], $direction("x27") c[7], $direction("x28") c[8],
                out("lr") _,
            );
            RawExit {
                kind,
                // The vector returns the block it saved to: PerCpu::regs, never null while a
                // vCPU is loaded (and one is, or it could not have been entered).
                regs: core::ptr::NonNull::new_unchecked(regs),
                carried: $carried,
            }
        }
    }};
}

/// Runs the vCPU loaded on this CPU (its register block at PerCpu::regs, its EL1 state, HCR
/// and stage 2 in the CPU) until it leaves EL1 for a reason the vectors do not answer.
#[cfg(target_os = "none")]
#[inline(always)]
pub fn enter() -> RawExit {
    let mut carried = [0u64; 9];
    enter_through!("guest_enter", 0u64, carried: out)
}

#[cfg(target_os = "none")]
impl RawExit {
    /// ESR_EL2 of this exit if it is synchronous, else 0 (EC 0: no class the run loop answers):
    /// read once an exit, and handed to `call_regs`, `is_fp_trap` and `data_abort`.
    #[inline(always)]
    pub fn esr(&self) -> u64 {
        use aarch64_cpu::registers::{ESR_EL2, Readable};
        if self.kind == EXIT_SYNC {
            ESR_EL2.get()
        } else {
            0
        }
    }

    /// The vCPU's saved registers, if this exit (`esr`: its [`RawExit::esr`]) is `HVC #0`: a
    /// call, to answer in place (x0..x17 hold it; ELR already points past the HVC; x20..x28
    /// are not in the block yet). Borrowed from the exit: the vCPU cannot be entered again while
    /// they are.
    #[inline(always)]
    pub fn call_regs(&mut self, esr: u64) -> Option<&mut GuestRegs> {
        if !is_hvc0(esr) {
            return None;
        }
        // SAFETY: `regs` is the block of the vCPU loaded on this CPU, which the vector just
        // saved and which only this CPU touches while the vCPU is loaded; the reference lives
        // no longer than this borrow of the exit, and nothing else reaches the block meanwhile
        // (no lock is taken, no other code runs on this CPU until the exit is resumed).
        Some(unsafe { self.regs.as_mut() })
    }

    /// Whether this exit (`esr`: its [`RawExit::esr`]) is an FP/SIMD instruction trapped by
    /// CPTR_EL2.TFP (ELR_EL2 points at it: resumed, it runs again).
    #[inline(always)]
    pub fn is_fp_trap(esr: u64) -> bool {
        // The exception class of esr::Class::Fp.
        const EC_FP: u64 = 0x07;
        esr >> 26 & 0x3f == EC_FP
    }

    /// The vCPU's saved registers, if this exit (`esr`: its [`RawExit::esr`]) is a data abort
    /// from the guest: a load to answer in place (`resume_after_load`; its IPA: `fault_ipa`); as
    /// in `call_regs`, x20..x28 are not in the block yet.
    #[inline(always)]
    pub fn data_abort(&mut self, esr: u64) -> Option<&mut GuestRegs> {
        // EC is ESR_EL2 bits 31:26 (ISS2 above them).
        if (esr >> 26) & 0x3f != super::esr::EC_DATA_ABORT_LOWER {
            return None;
        }
        // SAFETY: as in `call_regs`.
        Some(unsafe { self.regs.as_mut() })
    }

    /// The IPA of this exit's stage-2 abort (`data_abort`), as FAR_EL2 and HPFAR_EL2 say it.
    #[inline(always)]
    pub fn fault_ipa() -> u64 {
        let (esr, far, hpfar) = super::cpu::exit_syndrome();
        Syndrome::decode(esr, far, hpfar).ipa
    }

    /// Completes the guest's load that trapped (`data_abort`): `value` into its register `rt`
    /// (31: none), ELR_EL2 past the load, and enters the vCPU again at once.
    #[inline(always)]
    pub fn resume_after_load(mut self, rt: u8, value: u64) -> RawExit {
        use aarch64_cpu::registers::{ELR_EL2, Readable, Writeable};
        match usize::from(rt) {
            rt @ 20..=28 => self.carried[rt - 20] = value,
            // SAFETY: as in `call_regs`; a plain write, no reference kept.
            rt @ 0..=30 => unsafe { (*self.regs.as_ptr()).x[rt] = value },
            _ => {}
        }
        ELR_EL2.set(ELR_EL2.get().wrapping_add(4));
        self.resume()
    }

    /// Enters the vCPU again at once, ELR_EL2 and SPSR_EL2 as the exit left them (nothing at
    /// EL2 has changed them since: no exception, no other vCPU), until its next exit.
    #[inline(always)]
    pub fn resume(self) -> RawExit {
        let mut carried = self.carried;
        enter_through!("guest_resume", self.regs.as_ptr(), carried: inout)
    }

    /// Decodes the exit for the general path, completing the vCPU's block with x20..x28,
    /// ELR_EL2 and SPSR_EL2 (which the general path may read or change, and guest_enter loads).
    #[inline(always)]
    pub fn decode(self) -> Exit {
        let kind = self.kind;
        self.complete_block();
        // SAFETY: as in `call_regs`; a plain read.
        let x0 = unsafe { (*self.regs.as_ptr()).x[0] };
        let (esr, far, hpfar) = super::cpu::exit_syndrome();
        Exit::decode(kind, esr, far, hpfar, x0)
    }

    /// Writes x20..x28, ELR_EL2 and SPSR_EL2 into the vCPU's block, for the general path (which
    /// may read or change them: a crash report, the switch, a repeated `HVC`; guest_enter loads
    /// them). The exit may still be resumed ([`RawExit::resume`]) if the block's copies were left
    /// as they are, ELR_EL2 and SPSR_EL2 untouched (no other vCPU entered).
    #[inline(always)]
    pub fn complete_block(&self) {
        use aarch64_cpu::registers::{ELR_EL2, Readable, SPSR_EL2};
        let regs = self.regs.as_ptr();
        // SAFETY: as in `call_regs`; plain writes, no reference kept.
        unsafe {
            let [x20, x21, x22, x23, x24, x25, x26, x27, x28] = self.carried;
            let x = &mut (*regs).x;
            (x[20], x[21], x[22], x[23], x[24]) = (x20, x21, x22, x23, x24);
            (x[25], x[26], x[27], x[28]) = (x25, x26, x27, x28);
            // Both read first: the two fields are one store pair.
            let (elr, spsr) = (ELR_EL2.get(), SPSR_EL2.get());
            ((*regs).elr, (*regs).spsr) = (elr, spsr);
        }
    }
}

/// Called by vectors.S for an exception taken at EL2 itself: a hypervisor bug. `regs`: x0..x30
/// as the exception found them, saved by the vector on the stack; `sp`: SP_EL2 then.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn handle_hyp_fault(
    kind: u64,
    esr: u64,
    far: u64,
    elr: u64,
    regs: &[u64; 31],
    sp: u64,
) -> ! {
    let syndrome = Syndrome::decode(esr, far, 0);
    // The console lock may be held (by this CPU, even): the emergency path does not wait.
    let mut emit = crate::dev::console::emergency_println;
    crate::vm::crash::report_hyp_exception(
        kind,
        &syndrome,
        regs,
        sp,
        elr,
        super::translate::read_hyp_stack_word,
        &mut emit,
    );
    emit(format_args!(
        "hyp: exception at EL2 (kind {kind}): {syndrome} at ELR {elr:#x}; stopping"
    ));
    crate::power::halt_after_failure();
    #[allow(unreachable_code)]
    super::cpu::wait_forever()
}

/// Takes a data abort at EL2 (a load from an address above TTBR0_EL2's range): how the
/// `pvhyp.crash-test` bootarg tests the report of the hyp's own exception.
#[cfg(target_os = "none")]
#[inline(never)]
pub fn fault_for_test() {
    const OUTSIDE_TTBR0: u64 = 0xffff_ffff_ffff_f000;
    // SAFETY: the load faults (no EL2 translation covers the address) and the fault handler
    // never returns; nothing is read.
    unsafe { core::arch::asm!("ldr xzr, [{}]", in(reg) OUTSIDE_TTBR0, options(nostack, readonly)) };
}

// --- The hyp's stack overflow (vectors.S `hyp_fault_el2h`, percpu::Stack's guard). ---

/// Called by vectors.S, on this CPU's emergency stack, for an exception taken at EL2 with SP_EL2
/// outside every stack (`sp`): an overflow into the guard below this CPU's stack. Reported as
/// any fault of the hyp's own, after a line that says so. A fault in that report is taken here
/// again (the emergency stack counts as no stack): the second stops at once, any later one waits.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn handle_hyp_stack_overflow(
    kind: u64,
    esr: u64,
    far: u64,
    elr: u64,
    regs: &[u64; 31],
    sp: u64,
) -> ! {
    use core::sync::atomic::{AtomicU32, Ordering};
    static ENTERED: AtomicU32 = AtomicU32::new(0);
    let emit = crate::dev::console::emergency_println;
    match ENTERED.fetch_add(1, Ordering::Relaxed) {
        0 => {}
        1 => {
            emit(format_args!(
                "hyp: a fault while reporting a stack overflow: ELR {elr:#x} FAR {far:#x} ESR {esr:#x}; stopping"
            ));
            crate::power::halt_after_failure();
        }
        _ => super::cpu::wait_forever(),
    }
    emit(format_args!(
        "hyp: stack overflow on CPU {}: SP {sp:#x} ELR {elr:#x} FAR {far:#x} ESR {esr:#x}",
        crate::percpu::index()
    ));
    handle_hyp_fault(kind, esr, far, elr, regs, sp)
}

/// Recurses until the stack overflows: how the `pvhyp.stack-overflow-test` bootarg (debug
/// builds) tests the guard below the hyp's stack.
#[cfg(all(target_os = "none", debug_assertions))]
#[inline(never)]
pub fn overflow_for_test(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 32]);
    if frame[0] == u64::MAX {
        return 0;
    }
    overflow_for_test(depth + 1).wrapping_add(frame[(depth % 32) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::aarch64::esr::Class;

    /// ESR_EL2 of `HVC #imm` from AArch64: EC 0x16, IL.
    fn hvc(imm: u64) -> u64 {
        (0x16 << 26) | (1 << 25) | imm
    }

    #[test]
    fn a_synchronous_exit_carries_its_syndrome_and_the_guests_x0() {
        // HVC #0 is a call, told apart by ESR_EL2 alone; HVC #1 is not.
        let exit = Exit::decode(EXIT_SYNC, hvc(0), 0, 0, 0xC600_0000);
        assert_eq!(exit, Exit::Call(0xC600_0000));
        assert_eq!(exit.raw(), (EXIT_SYNC, hvc(0), 0xC600_0000));
        let Exit::Sync(s, x0) = Exit::decode(EXIT_SYNC, hvc(1), 0, 0, 7) else {
            panic!()
        };
        assert_eq!((s.class, s.iss & 0xffff, x0), (Class::Hvc64, 1, 7));
        // A data abort keeps its IPA (HPFAR's page, FAR's offset).
        let Exit::Sync(s, _) = Exit::decode(EXIT_SYNC, 0x9200_0047, 0x1234, 0x4_0000 << 4, 0)
        else {
            panic!()
        };
        assert_eq!((s.class, s.ipa), (Class::DataAbortLower, 0x4000_0234));
    }

    #[test]
    fn only_hvc_0_is_a_call() {
        assert!(is_hvc0(hvc(0)));
        // ISS2 (bits 55:32) is not part of HVC's syndrome.
        assert!(is_hvc0(hvc(0) | 1 << 32));
        assert!(!is_hvc0(hvc(1)));
        assert!(!is_hvc0(hvc(0x8000)));
        // SMC from AArch64 (EC 0x17) is trapped, never a call; nor is a 16-bit HVC (IL clear).
        assert!(!is_hvc0((0x17 << 26) | (1 << 25)));
        assert!(!is_hvc0(0x16 << 26));
    }

    #[test]
    fn asynchronous_exits_are_told_apart() {
        assert_eq!(Exit::decode(EXIT_IRQ, 0, 0, 0, 0), Exit::Irq);
        assert_eq!(
            Exit::decode(EXIT_SERROR, 0xbe00_0000, 0, 0, 7),
            Exit::Unexpected {
                kind: EXIT_SERROR,
                esr: 0xbe00_0000
            }
        );
        assert_eq!(
            Exit::decode(EXIT_FIQ, 0, 0, 0, 0),
            Exit::Unexpected {
                kind: EXIT_FIQ,
                esr: 0
            }
        );
    }
}
