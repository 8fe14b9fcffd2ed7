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
