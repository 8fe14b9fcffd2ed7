//! `icv [after-ms=A]`: what a PV vCPU reads of the virtual GIC CPU interface (GICv3 boards: the
//! ICV_* system registers reach EL1 without a trap while the interface is off). Nothing a Linux
//! vCPU left on this CPU may be readable: ICV_PMR_EL1, ICV_IGRPEN1_EL1 and ICV_AP1R0_EL1 must
//! read 0. First waits A ms in WFI, so that a Linux VM pinned to the same CPU runs before.

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
    let (pmr, igrpen1, ap1r0): (u64, u64, u64);
    // SAFETY: ICC_SRE_EL1.SRE set (system-register access to the interface), then three reads
    // of the virtual interface's registers; nothing else changes.
    unsafe {
        asm!(
            "mrs {t}, s3_0_c12_c12_5", "orr {t}, {t}, #1", "msr s3_0_c12_c12_5, {t}", "isb",
            "mrs {pmr}, s3_0_c4_c6_0",
            "mrs {grp}, s3_0_c12_c12_7",
            "mrs {ap}, s3_0_c12_c9_0",
            t = out(reg) _, pmr = out(reg) pmr, grp = out(reg) igrpen1, ap = out(reg) ap1r0,
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
