//! The run loop of a CPU: enter the vCPU loaded on it, take the exit arch hands back, handle it,
//! again, as KVM's `vcpu_run`. Arch (`exception::enter`) knows registers and vectors and
//! nothing of VMs; the scheduler and the exit handling (vm::exit, under the scheduler's lock)
//! know VMs and nothing of the vectors.
//!
//! The calls that read no state of the VM or the hyp (hypercall::answer_stateless: ABI_VERSION,
//! the SMCCC queries) are answered here, in the vCPU's saved registers, with no lock and no
//! atomic: counted in the vCPU's own counter, which only the CPU running it writes and which
//! vm::exit folds into the VM's stats under the lock at the vCPU's next other exit (every vCPU
//! leaves through one: it ends, or its VM does, only there); traced when tracing is on. They
//! are bounded and short, and so outside bench.rs's `max_hold`, as the vector's own fast path.
//! Such an exit is resumed without reloading ELR_EL2 and SPSR_EL2 (exception::RawExit), every
//! other exit is decoded into an `Exit` for vm::exit. A Linux vCPU's load from a vGIC register
//! that never changes (`answer_fixed_load`: GICD_TYPER, IIDR, PIDR2 and the redistributors'
//! TYPER, IIDR, PIDR2) is answered here the same way, counted in its own `unlocked_loads` and
//! folded into the VM's stage-2 exits, and resumed past the load. What another CPU does to this vCPU's VM (ends it, raises
//! one of its events) takes effect at the vCPU's next other exit, as it did before for every
//! exit: at the latest the end of its slice, an IRQ (or an SGI kick, which is one too).

#![forbid(unsafe_code)]

use crate::arch::aarch64::context::GuestRegs;

/// Answers the call in `regs`, the saved registers of a vCPU that exited by `HVC #0`, if it
/// reads no state, and counts it; false (nothing touched) for every other call.
#[inline(always)]
pub fn answer_unlocked(regs: &mut GuestRegs) -> bool {
    let (function, x1) = (regs.x[0] as u32, regs.x[1]);
    if !crate::hypercall::answer_stateless(regs.call_regs()) {
        return false;
    }
    regs.count_unlocked_call();
    if let Some(version) = crate::hypercall::stated_by_answer(function, x1, regs.x[0]) {
        regs.note_stated_version(version);
    }
    true
}

/// Answers a Linux vCPU's load from a vGIC register that never changes (`vgic::FixedRegs`,
/// which its block keeps once the locked path has seen its vGIC; 0 for every other vCPU), given
/// its saved registers and the ESR_EL2 and IPA of its data abort: the register the load writes
/// and its value, counted; `None`, nothing touched, for every other abort.
#[inline(always)]
pub fn answer_fixed_load(
    regs: &mut GuestRegs,
    esr: u64,
    ipa: impl FnOnce() -> u64,
) -> Option<(u8, u64)> {
    use crate::arch::aarch64::esr::DataAccess;
    /// ISS.S1PTW: the abort was on the guest's own page-table walk, not its load.
    const S1PTW: u64 = 1 << 7;
    let fixed = crate::vdev::vgic::FixedRegs::decode(regs.fixed_gic)?;
    if esr & S1PTW != 0 {
        return None;
    }
    let access = DataAccess::from_iss((esr & 0x1ff_ffff) as u32).filter(|a| !a.is_write)?;
    let value = fixed.read(ipa(), access.size)?;
    regs.unlocked_loads = regs.unlocked_loads.wrapping_add(1);
    Some((access.reg, access.loaded_value(value)))
}

/// Runs vCPUs on this CPU for good: the scheduler has loaded the first.
///
/// A call the unlocked path does not answer goes to vm::exit with the vCPU's block complete;
/// answered in place (vm::exit::handle_call), the vCPU is resumed as it left, x20..x28 from
/// this loop's registers and ELR_EL2 and SPSR_EL2 as they are in the CPU (`guest_resume`: 10
/// instructions fewer than `guest_enter`'s loads from the block), and traced here, where its
/// x0 at the exit is at hand.
#[cfg(target_os = "none")]
pub fn run() -> ! {
    use crate::arch::aarch64::exception;
    let mut raw = exception::enter();
    loop {
        crate::percpu::count_exit();
        let esr = raw.esr();
        let exit = if let Some(regs) = raw.call_regs(esr) {
            let function = regs.x[0];
            if answer_unlocked(regs) {
                if crate::trace::enabled() {
                    crate::percpu::trace_exit(exception::ESR_HVC0, function, 0);
                }
                raw = raw.resume();
                continue;
            }
            let hold = crate::bench::HoldTimer::start();
            raw.complete_block();
            let in_place = super::exit::handle_call(function);
            hold.stop(exception::EXIT_SYNC, exception::ESR_HVC0.into(), function);
            if in_place {
                if crate::trace::enabled() {
                    crate::percpu::trace_exit(exception::ESR_HVC0, function, 0);
                }
                raw = raw.resume();
            } else {
                raw = exception::enter();
            }
            continue;
        } else {
            if exception::RawExit::is_fp_trap(esr) && crate::percpu::fp_first_use() {
                // The lazy FP/SIMD switch (arch::aarch64::context::LazyFp): the instruction again.
                raw = raw.resume();
                continue;
            }
            // The IPA as the answer decoded it, for the record: decoding it again cost 5.
            let mut ipa = 0;
            if let Some(regs) = raw.data_abort(esr)
                && let Some((rt, value)) = answer_fixed_load(regs, esr, || {
                    ipa = exception::RawExit::fault_ipa();
                    ipa
                })
            {
                if crate::trace::enabled() {
                    crate::percpu::trace_exit(esr as u32, 0, ipa);
                }
                raw = raw.resume_after_load(rt, value);
                continue;
            }
            let exit = raw.decode();
            // A synchronous exit but a call is traced as decoded, where its ESR, IPA and x0
            // are in registers: after its handling, from the stack, a stage-2 fault's record
            // cost 18 instructions, and tracing off 7 (`trace::Record::counter`).
            if let exception::Exit::Sync(s, x0) = &exit
                && crate::trace::enabled()
            {
                crate::percpu::trace_exit(s.esr as u32, *x0, s.ipa);
            }
            exit
        };
        let (kind, esr, x0) = exit.raw();
        let hold = crate::bench::HoldTimer::start();
        // Never in place: the vCPU's block (complete) may have changed.
        let _ = super::exit::handle(exit);
        hold.stop(kind, esr, x0);
        raw = exception::enter();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall_abi::Call;

    fn guest_calling(call: Call) -> GuestRegs {
        let mut regs = GuestRegs::default();
        regs.x[..18].copy_from_slice(&call.to_regs());
        regs.x[18] = 0x18;
        regs.x[30] = 0x30;
        regs.elr = 0x4000_1004;
        regs
    }

    #[test]
    fn abi_version_is_answered_in_the_saved_registers_and_counted() {
        let mut regs = guest_calling(Call::AbiVersion {
            guest: hypercall_abi::Version::CURRENT,
        });
        assert!(answer_unlocked(&mut regs));
        assert_eq!(
            (regs.x[0], regs.x[1]),
            (0, hypercall_abi::Version::CURRENT.to_u64())
        );
        // The rest of the vCPU is as it was: ELR already points past the HVC.
        assert_eq!(
            (regs.x[18], regs.x[30], regs.elr),
            (0x18, 0x30, 0x4000_1004)
        );
        assert_eq!(regs.take_unlocked_calls(), 1);
        // The version it stated waits for the VM (VENDOR_HYP_REVISION's), once.
        assert_eq!(
            regs.take_stated_version(),
            Some(hypercall_abi::Version::CURRENT.to_u64())
        );
        assert_eq!(regs.take_stated_version(), None);
    }

    /// ESR_EL2 of a guest's data abort with a valid syndrome: a load (or a store) of `size`
    /// bytes into (from) register `rt`, `sf`: of the 64-bit register.
    fn abort_esr(size_log2: u64, rt: u64, write: bool, sf: bool) -> u64 {
        let (isv, il, wnr) = (1 << 24, 1 << 25, 1 << 6);
        (0x24 << 26)
            | il
            | isv
            | (size_log2 << 22)
            | (rt << 16)
            | (u64::from(sf) << 15)
            | if write { wnr } else { 0 }
            | 0x07
    }

    fn linux_vcpu(vcpus: usize) -> GuestRegs {
        use crate::vdev::vgic::{GicModel, VGic};
        GuestRegs {
            fixed_gic: VGic::new(GicModel::V3, vcpus).fixed().encode(),
            ..GuestRegs::default()
        }
    }

    #[test]
    fn a_linux_vcpus_load_of_a_fixed_vgic_register_is_answered_and_counted() {
        use crate::vdev::layout::{GICD_IPA, GICR_IPA, GICR_STRIDE};
        let mut regs = linux_vcpu(2);
        let typer = answer_fixed_load(&mut regs, abort_esr(2, 21, false, false), || GICD_IPA + 4);
        // ITLinesNumber 2, CPUNumber 1, IDbits 10, No1N.
        assert_eq!(typer, Some((21, (9 << 19) | (1 << 25) | (1 << 5) | 2)));
        // The last redistributor's GICR_TYPER, as 64 bits: Last, its number and affinity 1.
        let gicr_typer = GICR_IPA + GICR_STRIDE + 8;
        let answer = answer_fixed_load(&mut regs, abort_esr(3, 3, false, true), || gicr_typer);
        assert_eq!(answer, Some((3, (1 << 32) | (1 << 8) | (1 << 4))));
        assert_eq!(regs.unlocked_loads, 2);
        assert_eq!(
            regs.x,
            GuestRegs::default().x,
            "vm::run writes the register"
        );
    }

    #[test]
    fn every_other_abort_goes_the_general_way_untouched() {
        use crate::vdev::layout::{GICD_IPA, GICR_IPA, GICR_STRIDE};
        let load = abort_esr(2, 1, false, false);
        for (mut regs, esr, ipa) in [
            // A PV vCPU, or a Linux one whose vGIC the locked path has not seen yet.
            (GuestRegs::default(), load, GICD_IPA + 4),
            // A store, a misaligned or too narrow load, a register that changes (CTLR).
            (linux_vcpu(2), abort_esr(2, 1, true, false), GICD_IPA + 4),
            (linux_vcpu(2), load, GICD_IPA + 6),
            (linux_vcpu(2), abort_esr(0, 1, false, false), GICD_IPA + 4),
            (linux_vcpu(2), load, GICD_IPA),
            // A redistributor the VM does not have; no valid syndrome; a walk's abort.
            (linux_vcpu(2), load, GICR_IPA + 2 * GICR_STRIDE + 8),
            (linux_vcpu(2), load & !(1 << 24), GICD_IPA + 4),
            (linux_vcpu(2), load | (1 << 7), GICD_IPA + 4),
        ] {
            let before = regs.clone();
            assert_eq!(
                answer_fixed_load(&mut regs, esr, || ipa),
                None,
                "{esr:#x} {ipa:#x}"
            );
            assert_eq!(regs.unlocked_loads, before.unlocked_loads);
        }
    }

    #[test]
    fn everything_else_goes_the_general_way_untouched() {
        for call in [
            Call::VmYield,
            Call::VmInfo,
            Call::ConsoleNotify,
            Call::VmExit { status: 0 },
        ] {
            let mut regs = guest_calling(call);
            let before = regs.clone();
            assert!(!answer_unlocked(&mut regs), "{call:?}");
            assert_eq!(regs.x, before.x);
            assert_eq!(regs.unlocked_calls, 0);
        }
    }
}
