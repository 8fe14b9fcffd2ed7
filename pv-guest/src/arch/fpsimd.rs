//! Holding values in every FP/SIMD register across hypercalls that give the CPU away: the fill,
//! the yields and the read-back are one assembly block, so no compiler code can touch the
//! registers in between. What comes back is what the hypervisor restored.

use hypercall_abi::vm::VM_YIELD;

/// Loads q0..q31 from `written` and FPCR from `fpcr`, calls `VM_YIELD` `rounds` times (at
/// least once), then returns q0..q31 and FPCR as they are (FPCR is reset to 0 afterwards).
pub fn hold_across_yields(written: &[u128; 32], fpcr: u64, rounds: u64) -> ([u128; 32], u64) {
    let mut read = [0u128; 32];
    let fpcr_read: u64;
    // SAFETY: the block reads `written` and writes `read` (both 512 bytes, 16-aligned as
    // u128 arrays), declares every register it or the hypervisor call may change, and
    // restores nothing the compiler relies on: all vector registers are declared clobbered.
    unsafe {
        core::arch::asm!(
            "msr fpcr, {fpcr_in}",
            "ldp q0, q1, [{src}, #0]", "ldp q2, q3, [{src}, #32]", "ldp q4, q5, [{src}, #64]",
            "ldp q6, q7, [{src}, #96]", "ldp q8, q9, [{src}, #128]", "ldp q10, q11, [{src}, #160]",
            "ldp q12, q13, [{src}, #192]", "ldp q14, q15, [{src}, #224]", "ldp q16, q17, [{src}, #256]",
            "ldp q18, q19, [{src}, #288]", "ldp q20, q21, [{src}, #320]", "ldp q22, q23, [{src}, #352]",
            "ldp q24, q25, [{src}, #384]", "ldp q26, q27, [{src}, #416]", "ldp q28, q29, [{src}, #448]",
            "ldp q30, q31, [{src}, #480]",
            "2:",
            "mov x0, {yield_id}",
            "hvc #0",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "stp q0, q1, [{dst}, #0]", "stp q2, q3, [{dst}, #32]", "stp q4, q5, [{dst}, #64]",
            "stp q6, q7, [{dst}, #96]", "stp q8, q9, [{dst}, #128]", "stp q10, q11, [{dst}, #160]",
            "stp q12, q13, [{dst}, #192]", "stp q14, q15, [{dst}, #224]", "stp q16, q17, [{dst}, #256]",
            "stp q18, q19, [{dst}, #288]", "stp q20, q21, [{dst}, #320]", "stp q22, q23, [{dst}, #352]",
            "stp q24, q25, [{dst}, #384]", "stp q26, q27, [{dst}, #416]", "stp q28, q29, [{dst}, #448]",
            "stp q30, q31, [{dst}, #480]",
            "mrs {fpcr_out}, fpcr",
            "msr fpcr, xzr",
            src = in(reg) written.as_ptr(),
            dst = in(reg) read.as_mut_ptr(),
            n = inout(reg) rounds.max(1) => _,
            yield_id = in(reg) u64::from(VM_YIELD),
            fpcr_in = in(reg) fpcr,
            fpcr_out = lateout(reg) fpcr_read,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _,
            out("x6") _, out("x7") _, out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _,
            out("v6") _, out("v7") _, out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _, out("v16") _, out("v17") _,
            out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _, out("v23") _,
            out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nostack)
        );
    }
    (read, fpcr_read)
}
