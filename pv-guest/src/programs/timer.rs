//! `timer [rounds=N] [ms=M]`: the guest's virtual timer works under the hypervisor. Each round
//! sets CNTV for M ms ahead and waits: even rounds in WFI with interrupts masked (the timer
//! event wakes the vCPU), odd rounds with IRQs unmasked (the event's virtual IRQ reaches the
//! guest's vector). Checks the time really passed and the event arrived each time.

use super::args;
use crate::arch::timer::{self, arm, disarm};
use crate::events;
use crate::{hv, println};
use core::arch::asm;
use hypercall_abi::BootInfo;

fn wfi() {
    // SAFETY: waits for the hypervisor to raise an event.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}

pub fn run(info: &BootInfo, argv: &str) -> u64 {
    let rounds = args::number(argv, "rounds").unwrap_or(6);
    let ms = args::number(argv, "ms").unwrap_or(10);
    let ticks = timer::frequency() * ms / 1000;
    let mut hv = hv();
    let _ = hv.event_unmask(info.timer_event);
    let mut failed = 0;
    for round in 0..rounds {
        let with_irq = round % 2 == 1;
        let start = timer::ticks();
        arm(start + ticks);
        if with_irq {
            // SAFETY: unmasks IRQs; the vector acks events and records them.
            unsafe { asm!("msr daifclr, #2", options(nomem, nostack)) };
            while events::take_seen() & (1 << info.timer_event) == 0 {
                wfi();
            }
            // SAFETY: masks IRQs again.
            unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
        } else {
            while !events::is_pending(info, info.timer_event) {
                wfi();
            }
            disarm();
            let _ = hv.event_ack(info.timer_event);
        }
        let waited = timer::ticks() - start;
        disarm();
        if waited < ticks {
            println!("timer: round {round} woke after {waited} ticks, before its {ticks}");
            failed += 1;
        }
    }
    if failed == 0 {
        println!("timer: {rounds} timer events after {ms} ms each (WFI and IRQ), none early");
        0
    } else {
        1
    }
}
