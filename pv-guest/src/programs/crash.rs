//! `crash`: touches an IPA it never mapped three calls deep, so that the hyp's crash report
//! shows a backtrace (`#0` the faulting load, `#1..#3` the callers) with this program's names.

/// Reads `ipa` from the third of three nested calls (never inlined: each keeps its frame).
pub fn read_three_calls_deep(ipa: u64) -> u64 {
    crash_outer(ipa).wrapping_add(1)
}

#[inline(never)]
fn crash_outer(ipa: u64) -> u64 {
    core::hint::black_box(crash_middle(core::hint::black_box(ipa))).wrapping_add(2)
}

#[inline(never)]
fn crash_middle(ipa: u64) -> u64 {
    core::hint::black_box(crash_inner(core::hint::black_box(ipa))).wrapping_add(3)
}

#[inline(never)]
fn crash_inner(ipa: u64) -> u64 {
    // SAFETY: a volatile read of an address stage 1 maps (the identity map covers the IPA
    // space) and stage 2 does not: the access faults, it reads no Rust object.
    unsafe { crate::arch::access::read_u64(ipa) }
}

/// The return address of the frame record [`read_with_hostile_frame_pointer`] forges.
pub const FORGED_RETURN: u64 = 0x4000_1234;

/// Reads `ipa` (which faults) with x29 at a frame record on its own stack that returns to
/// [`FORGED_RETURN`] and names `ipa` as its caller's frame: what a hostile guest gives the
/// hyp's backtrace, which must show the one record and stop at `ipa`, reading nothing there.
pub fn read_with_hostile_frame_pointer(ipa: u64) -> u64 {
    let record = [ipa, FORGED_RETURN];
    let v: u64;
    // SAFETY: x29 is saved below the stack pointer and put back (if the load returned); the
    // load is a volatile read of an address stage 1 maps and stage 2 does not: it faults.
    unsafe {
        core::arch::asm!(
            "stp x29, xzr, [sp, #-16]!",
            "mov x29, {record}",
            "ldr {v}, [{ipa}]",
            "ldp x29, xzr, [sp], #16",
            record = in(reg) record.as_ptr(),
            ipa = in(reg) ipa,
            v = lateout(reg) v,
            options(readonly),
        )
    };
    v
}
