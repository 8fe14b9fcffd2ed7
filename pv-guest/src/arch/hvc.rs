//! `HVC #0` with every register of the SMCCC 1.2 convention set and read back (x0..x17), for
//! a caller that checks what the hypervisor must preserve (`hypercall_abi::Hvc` goes through
//! the `smccc` crate, which sets only the argument registers a call takes).

use hypercall_abi::Regs;

/// Sends `regs` (x0..x17) and returns x0..x17 as the hypervisor left them.
pub fn call_all(regs: &Regs) -> Regs {
    let mut r = *regs;
    // SAFETY: HVC traps to the hypervisor, which may change x0..x17 (all declared here) and
    // guest memory (no `nomem`); SMCCC 1.2 makes it preserve x18..x30 and SP.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") r[0], inout("x1") r[1], inout("x2") r[2], inout("x3") r[3],
            inout("x4") r[4], inout("x5") r[5], inout("x6") r[6], inout("x7") r[7],
            inout("x8") r[8], inout("x9") r[9], inout("x10") r[10], inout("x11") r[11],
            inout("x12") r[12], inout("x13") r[13], inout("x14") r[14], inout("x15") r[15],
            inout("x16") r[16], inout("x17") r[17],
            options(nostack),
        );
    }
    r
}
