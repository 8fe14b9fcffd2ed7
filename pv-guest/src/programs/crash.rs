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

/// The return address of the frame records the hostile variants forge.
pub const FORGED_RETURN: u64 = 0x4000_1234;

/// Reads `ipa` (which faults) with x29 at a frame record on its own stack that returns to
/// [`FORGED_RETURN`] and names `ipa` as its caller's frame: what a hostile guest gives the
/// hyp's backtrace, which must show the one record and stop at `ipa`, reading nothing there.
pub fn read_with_hostile_frame_pointer(ipa: u64) -> u64 {
    let record = [ipa, FORGED_RETURN];
    read_with_frame_pointer(record.as_ptr() as u64, ipa)
}

/// Reads `ipa` (which faults) with x29 at a frame record it writes into channel 0's page,
/// mapped here but shared, not this VM's: the hyp's backtrace must not read it, and stops at
/// the faulting instruction (the record, outermost, would end it "outermost" if read).
pub fn read_with_frame_pointer_in_shared_page(ipa: u64) -> u64 {
    let shared = match crate::hv().channel_info(0) {
        Ok(info) => info.ipa,
        Err(e) => {
            crate::println!("crash: no channel 0 ({e}): the manifest must give this VM one");
            return 1;
        }
    };
    // SAFETY: channel 0's page is mapped read-write at its IPA (VA = IPA); two words of it.
    unsafe {
        crate::arch::access::write_u64(shared, 0);
        crate::arch::access::write_u64(shared + 8, FORGED_RETURN);
    }
    read_with_frame_pointer(shared, ipa)
}

fn read_with_frame_pointer(record: u64, ipa: u64) -> u64 {
    let v: u64;
    // SAFETY: x29 is saved below the stack pointer and put back (if the load returned); the
    // load is a volatile read of an address stage 1 maps and stage 2 does not: it faults.
    unsafe {
        core::arch::asm!(
            "stp x29, xzr, [sp, #-16]!",
            "mov x29, {record}",
            "ldr {v}, [{ipa}]",
            "ldp x29, xzr, [sp], #16",
            record = in(reg) record,
            ipa = in(reg) ipa,
            v = lateout(reg) v,
            options(readonly),
        )
    };
    v
}
