//! Single memory accesses for fault probes. A probe resumes after a faulting instruction, so
//! that instruction must do nothing else: these are one plain `ldr`/`str` each (the compiler,
//! left alone, may fold an address increment into the access as writeback, which a skipped
//! instruction never performs).

use core::arch::asm;

/// Reads the u64 at `addr`.
///
/// # Safety
///
/// `addr` is 8-aligned and either readable memory holding no Rust object being written, or
/// memory whose access faults inside `fault::probe`.
pub unsafe fn read_u64(addr: u64) -> u64 {
    let v: u64;
    // SAFETY: as the caller promises; one load, nothing else.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, readonly)) };
    v
}

/// Writes `v` to the u64 at `addr`.
///
/// # Safety
///
/// `addr` is 8-aligned and either writable memory holding no Rust object, or memory whose
/// access faults inside `fault::probe`.
pub unsafe fn write_u64(addr: u64, v: u64) {
    // SAFETY: as the caller promises; one store, nothing else.
    unsafe { asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack)) };
}
