//! `timer [rounds=N] [ms=M] [busy] [after-ms=A]`: the guest's virtual timer works under the
//! hypervisor. Each round sets CNTV for M ms ahead and waits: even rounds in WFI with
//! interrupts masked (the timer event wakes the vCPU), odd rounds with IRQs unmasked (the
//! event's virtual IRQ reaches the guest's vector). Checks the time really passed and the event
//! arrived each time. `busy`: every round spins with IRQs unmasked instead, the vCPU loaded
//! throughout, so the event must come from the timer's interrupt while it runs, and within
//! [`BUSY_LATE_MS`] of its time (a failure, not a hang, when it does not come). `after-ms`:
//! first waits A ms in WFI, which leaves the CPU to others.

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

/// How late a `busy` round's event may be: a vCPU loaded when its timer fires hears at once;
/// one that only hears when it next leaves its CPU hears a slice (10 ms) late, or never.
const BUSY_LATE_MS: u64 = 3;

/// Spins with IRQs unmasked until the timer event's IRQ is seen; false if it is not within
/// [`BUSY_LATE_MS`] of `due`.
fn spin_for_event(info: &BootInfo, due: u64) -> bool {
    let give_up = due + timer::frequency() * BUSY_LATE_MS / 1000;
    // SAFETY: unmasks IRQs; the vector acks events and records them.
    unsafe { asm!("msr daifclr, #2", options(nomem, nostack)) };
    let mut seen = false;
    while !seen && timer::ticks() < give_up {
        seen = events::take_seen() & (1 << info.timer_event) != 0;
    }
    // SAFETY: masks IRQs again.
    unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
    seen
}

pub fn run(info: &BootInfo, argv: &str) -> u64 {
    let rounds = args::number(argv, "rounds").unwrap_or(6);
    let ms = args::number(argv, "ms").unwrap_or(10);
    let busy = args::flag(argv, "busy");
    let ticks = timer::frequency() * ms / 1000;
    let mut hv = hv();
    let _ = hv.event_unmask(info.timer_event);
    if let Some(after) = args::number(argv, "after-ms") {
        arm(timer::ticks() + timer::frequency() * after / 1000);
        while !events::is_pending(info, info.timer_event) {
            wfi();
        }
        disarm();
        let _ = hv.event_ack(info.timer_event);
    }
    let mut failed = 0;
    for round in 0..rounds {
        let with_irq = round % 2 == 1;
        let start = timer::ticks();
        arm(start + ticks);
        if busy {
            if !spin_for_event(info, start + ticks) {
                println!("timer: round {round}: no timer event {BUSY_LATE_MS} ms after its time");
                failed += 1;
            }
        } else if with_irq {
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
        let how = if busy {
            "spinning, each within 3 ms"
        } else {
            "WFI and IRQ"
        };
        println!("timer: {rounds} timer events after {ms} ms each ({how}), none early");
        0
    } else {
        1
    }
}
