//! Exceptions the guest takes. Programs that provoke one on purpose arm a probe first: the
//! handler records the syndrome and fault address and resumes the probed code: after the
//! faulting instruction, or, for an instruction abort (the fetch itself failed), at the return
//! address of the call that jumped there (`arch::call`). Anything else is a bug in the guest:
//! it is reported and the VM exits with a failure. Probes are per vCPU: each vCPU arms and
//! reads its own slot, so several may probe at once.

use crate::arch::{MAX_VCPUS, vcpu_index};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

// Per vCPU: several vCPUs may probe at once (each only ever touches its own slot).
static ARMED: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];
static SYNDROME: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
static ADDRESS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// Exit status for an exception nobody expected.
pub const STATUS_UNEXPECTED_EXCEPTION: u64 = 99;

/// ESR_EL1.EC values this guest tells apart.
pub mod ec {
    /// An UNDEFINED instruction (or a trapped one the hypervisor answers as such).
    pub const UNKNOWN: u64 = 0x00;
    /// Instruction abort from a lower EL (as a hypervisor may report a stage-2 fault).
    pub const INSTRUCTION_ABORT_LOWER: u64 = 0x20;
    /// Instruction abort taken without a change of EL.
    pub const INSTRUCTION_ABORT: u64 = 0x21;
    /// Data abort from a lower EL.
    pub const DATA_ABORT_LOWER: u64 = 0x24;
    /// Data abort taken without a change of EL.
    pub const DATA_ABORT: u64 = 0x25;
}

/// ESR_EL1.ISS.WnR of a data abort: the access was a write.
pub const ESR_WNR: u64 = 1 << 6;

/// A fault a probe caught.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// ESR_EL1 (bit 63 set as a marker; the architecture leaves it RES0).
    pub esr: u64,
    /// FAR_EL1.
    pub far: u64,
}

impl Fault {
    /// The exception class.
    pub fn class(&self) -> u64 {
        class(self.esr)
    }

    /// A data abort.
    pub fn is_data_abort(&self) -> bool {
        matches!(self.class(), ec::DATA_ABORT | ec::DATA_ABORT_LOWER)
    }

    /// An instruction abort.
    pub fn is_instruction_abort(&self) -> bool {
        matches!(
            self.class(),
            ec::INSTRUCTION_ABORT | ec::INSTRUCTION_ABORT_LOWER
        )
    }

    /// A data abort on a write.
    pub fn is_write(&self) -> bool {
        self.is_data_abort() && self.esr & ESR_WNR != 0
    }

    /// The fault status code (ISS bits 5:0) of an abort.
    pub fn status_code(&self) -> u64 {
        self.esr & 0x3f
    }
}

/// Runs `f`, which may fault once; the fault, if it took one. The faulting instruction must
/// have no other effect (no address writeback): use `arch::access` for the access.
pub fn probe_fault(f: impl FnOnce()) -> Option<Fault> {
    let me = vcpu_index();
    SYNDROME[me].store(0, Ordering::SeqCst);
    ARMED[me].store(true, Ordering::SeqCst);
    f();
    ARMED[me].store(false, Ordering::SeqCst);
    match SYNDROME[me].load(Ordering::SeqCst) {
        0 => None,
        esr => Some(Fault {
            esr,
            far: ADDRESS[me].load(Ordering::SeqCst),
        }),
    }
}

/// Runs `f`, which may fault once; returns the ESR_EL1 of its fault, if it took one.
pub fn probe(f: impl FnOnce()) -> Option<u64> {
    probe_fault(f).map(|fault| fault.esr)
}

/// The exception class of an ESR.
pub fn class(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// Where a probed fault resumes: after the faulting instruction, or for an instruction abort at
/// the return address (x30) of the call that reached the bad code.
pub fn resume_address(esr: u64, elr: u64, x30: u64) -> u64 {
    match class(esr) {
        ec::INSTRUCTION_ABORT | ec::INSTRUCTION_ABORT_LOWER => x30,
        _ => elr + 4,
    }
}

#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn guest_exception(
    slot: u64,
    frame: &mut crate::arch::ExceptionFrame,
    esr: u64,
    far: u64,
) {
    // An IRQ (current EL, SP_EL0 or SP_ELx): the hypervisor's virtual IRQ for our events.
    if slot == 1 || slot == 5 {
        crate::events::handle_irq(crate::boot_info());
        return;
    }
    let me = vcpu_index();
    if ARMED[me].swap(false, Ordering::SeqCst) {
        ADDRESS[me].store(far, Ordering::SeqCst);
        // ESR 0 would read as "no fault": keep a marker bit the architecture leaves RES0.
        SYNDROME[me].store(esr | (1 << 63), Ordering::SeqCst);
        frame.elr = resume_address(esr, frame.elr, frame.x[30]);
        return;
    }
    crate::println!(
        "unexpected exception: vector {slot}, ESR {esr:#x}, ELR {:#x}, FAR {far:#x}",
        frame.elr
    );
    crate::exit(STATUS_UNEXPECTED_EXCEPTION);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_aborts_return_to_the_caller() {
        let ia = ec::INSTRUCTION_ABORT << 26 | 0xf;
        let da = ec::DATA_ABORT << 26 | ESR_WNR | 0x7;
        assert_eq!(resume_address(ia, 0x3000_0000, 0x4000_1234), 0x4000_1234);
        assert_eq!(resume_address(da, 0x4000_1000, 0x4000_1234), 0x4000_1004);
        let f = Fault { esr: da, far: 0 };
        assert!(f.is_write() && f.is_data_abort() && !f.is_instruction_abort());
        assert_eq!(f.status_code(), 7);
    }
}
