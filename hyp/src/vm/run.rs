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
//! other exit is decoded into an `Exit` for vm::exit. What another CPU does to this vCPU's VM (ends it, raises
//! one of its events) takes effect at the vCPU's next other exit, as it did before for every
//! exit: at the latest the end of its slice, an IRQ (or an SGI kick, which is one too).

#![forbid(unsafe_code)]

use crate::arch::aarch64::context::GuestRegs;

/// Answers the call in `regs`, the saved registers of a vCPU that exited by `HVC #0`, if it
/// reads no state, and counts it; false (nothing touched) for every other call.
#[inline(always)]
pub fn answer_unlocked(regs: &mut GuestRegs) -> bool {
    let stated = crate::hypercall::stated_version(regs.call_regs());
    if !crate::hypercall::answer_stateless(regs.call_regs()) {
        return false;
    }
    regs.count_unlocked_call();
    if let Some(version) = stated {
        regs.note_stated_version(version.to_u64());
    }
    true
}

/// Runs vCPUs on this CPU for good: the scheduler has loaded the first.
#[cfg(target_os = "none")]
pub fn run() -> ! {
    use crate::arch::aarch64::exception;
    let mut raw = exception::enter();
    loop {
        crate::percpu::count_exit();
        if let Some(regs) = raw.call_regs() {
            let function = regs.x[0];
            if answer_unlocked(regs) {
                if crate::trace::enabled() {
                    trace(function);
                }
                raw = raw.resume();
                continue;
            }
        }
        if raw.is_fp_trap() && crate::percpu::fp_first_use() {
            // The lazy FP/SIMD switch (arch::aarch64::context::LazyFp): the instruction again.
            raw = raw.resume();
            continue;
        }
        let exit = raw.decode();
        let (kind, esr, x0) = exit.raw();
        let hold = crate::bench::HoldTimer::start();
        super::exit::handle(exit);
        hold.stop(kind, esr, x0);
        raw = exception::enter();
    }
}

/// Records a call answered here (`function`: its ID) in this CPU's trace.
#[cfg(target_os = "none")]
#[cold]
#[inline(never)]
fn trace(function: u64) {
    use crate::arch::aarch64::exception::ESR_HVC0;
    if let Some((vm, vcpu)) = crate::percpu::current_vm() {
        crate::percpu::trace_exit(vm, vcpu, ESR_HVC0, function, 0);
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
