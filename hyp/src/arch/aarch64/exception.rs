//! Entry points vectors.S calls: guest exits and faults of the hypervisor itself.

use super::context::GuestRegs;
use super::cpu::{exit_syndrome, wait_forever};
use crate::arch::aarch64::esr::Syndrome;

/// Kinds of guest exit, as vectors.S passes them.
pub const EXIT_SYNC: u64 = 0;
/// A physical IRQ arrived while a guest ran.
pub const EXIT_IRQ: u64 = 1;
/// A physical FIQ arrived while a guest ran.
pub const EXIT_FIQ: u64 = 2;
/// A physical SError arrived while a guest ran.
pub const EXIT_SERROR: u64 = 3;

/// Called by vectors.S on every guest exit, with the exiting vCPU's saved registers.
#[unsafe(no_mangle)]
extern "C" fn handle_guest_exit(regs: *mut GuestRegs, kind: u64) {
    let hold = crate::bench::HoldTimer::start();
    // SAFETY: vectors.S just saved the exiting vCPU's registers to `regs`, which nothing else
    // writes while the vCPU is on this CPU; one plain read, no reference kept (the block is
    // otherwise reached through the scheduler, which owns the vCPU).
    let x0 = unsafe { (*regs).x[0] };
    let (esr, far, hpfar) = exit_syndrome();
    crate::percpu::count_exit();
    let exit = match kind {
        EXIT_SYNC => crate::vm::exit::Exit::Sync(Syndrome::decode(esr, far, hpfar), x0),
        EXIT_IRQ => crate::vm::exit::Exit::Irq,
        _ => crate::vm::exit::Exit::Unexpected { kind, esr },
    };
    crate::vm::exit::handle(exit);
    hold.stop(kind, esr, x0);
}

/// Called by vectors.S for an exception taken at EL2 itself: a hypervisor bug.
#[unsafe(no_mangle)]
extern "C" fn handle_hyp_fault(kind: u64, esr: u64, far: u64, elr: u64) -> ! {
    let syndrome = Syndrome::decode(esr, far, 0);
    // The console lock may be held (by this CPU, even): the emergency path does not wait.
    crate::dev::console::emergency_println(format_args!(
        "hyp: exception at EL2 (kind {kind}): {syndrome} at ELR {elr:#x}; stopping"
    ));
    crate::power::halt_after_failure();
    #[allow(unreachable_code)]
    wait_forever()
}
