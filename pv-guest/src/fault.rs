//! Exceptions the guest takes. Programs that provoke one on purpose arm a probe first: the
//! handler records the syndrome and resumes after the faulting instruction. Anything else is a
//! bug in the guest: it is reported and the VM exits with a failure.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ARMED: AtomicBool = AtomicBool::new(false);
static SYNDROME: AtomicU64 = AtomicU64::new(0);

/// Exit status for an exception nobody expected.
pub const STATUS_UNEXPECTED_EXCEPTION: u64 = 99;

/// Runs `f`, which may fault once; returns the ESR_EL1 of its fault, if it took one.
pub fn probe(f: impl FnOnce()) -> Option<u64> {
    SYNDROME.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    match SYNDROME.load(Ordering::SeqCst) {
        0 => None,
        esr => Some(esr),
    }
}

/// The exception class of an ESR.
pub fn class(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn guest_exception(slot: u64, esr: u64, elr: u64, far: u64) {
    if ARMED.swap(false, Ordering::SeqCst) {
        // ESR 0 would read as "no fault": keep a marker bit the architecture leaves RES0.
        SYNDROME.store(esr | (1 << 63), Ordering::SeqCst);
        crate::arch::resume_at(elr + 4);
        return;
    }
    crate::println!(
        "unexpected exception: vector {slot}, ESR {esr:#x}, ELR {elr:#x}, FAR {far:#x}"
    );
    crate::exit(STATUS_UNEXPECTED_EXCEPTION);
}
