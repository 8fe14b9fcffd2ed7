//! `icv [after-ms=A]`: what a PV vCPU reads of the virtual GIC CPU interface (GICv3 boards: the
//! ICV_* system registers reach EL1 without a trap while the interface is off). Nothing a Linux
//! vCPU left on this CPU may be readable: ICV_PMR_EL1, ICV_IGRPEN1_EL1 and ICV_AP1R0_EL1 must
//! read 0. First waits A ms in WFI, so that a Linux VM pinned to the same CPU runs before. On a
//! GICv2 board (no system-register interface) it says so and exits 0: nothing is readable.

use super::args;
use crate::arch::timer::{self, arm, disarm};
use crate::events;
use crate::{hv, println};
use core::arch::asm;
use hypercall_abi::BootInfo;

pub fn run(info: &BootInfo, argv: &str) -> u64 {
    let after = args::number(argv, "after-ms").unwrap_or(0);
    let mut hv = hv();
    let _ = hv.event_unmask(info.timer_event);
    arm(timer::ticks() + timer::frequency() * after / 1000);
    while !events::is_pending(info, info.timer_event) {
        // SAFETY: waits for the hypervisor to raise an event.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
    disarm();
    let _ = hv.event_ack(info.timer_event);
    // ICC_SRE_EL1.SRE set (system-register access to the interface): on a GICv2 board there is
    // none, and the first access is UNDEFINED.
    let mut sre = 0u64;
    // SAFETY: one read of ICC_SRE_EL1 (the probe catches its fault: one instruction, so one
    // fault at most).
    let undefined = crate::fault::probe(|| unsafe {
        asm!("mrs {}, s3_0_c12_c12_5", out(reg) sre, options(nomem, nostack))
    });
    if undefined.is_some() {
        println!("icv: no GIC system-register interface here (GICv2): nothing to read");
        return 0;
    }
    // SAFETY: ICC_SRE_EL1.SRE set, which exists (read above).
    unsafe { asm!("msr s3_0_c12_c12_5, {}", "isb", in(reg) sre | 1, options(nomem, nostack)) };
    let (pmr, igrpen1, ap1r0): (u64, u64, u64);
    // SAFETY: three reads of the virtual interface's registers; nothing changes.
    unsafe {
        asm!(
            "mrs {pmr}, s3_0_c4_c6_0",
            "mrs {grp}, s3_0_c12_c12_7",
            "mrs {ap}, s3_0_c12_c9_0",
            pmr = out(reg) pmr, grp = out(reg) igrpen1, ap = out(reg) ap1r0,
            options(nomem, nostack),
        )
    };
    println!("icv: ICV_PMR_EL1 {pmr:#x}, ICV_IGRPEN1_EL1 {igrpen1:#x}, ICV_AP1R0_EL1 {ap1r0:#x}");
    if pmr | igrpen1 | ap1r0 == 0 {
        println!("icv: nothing of another vCPU's interface is readable");
        0
    } else {
        println!("icv: ANOTHER vCPU'S INTERFACE IS READABLE");
        1
    }
}
