//! `smp kick [rounds=N] [bound_us=B]`: how soon an event sent to a vCPU on another CPU arrives
//! (its virtual IRQ taken). vCPU 0 sends event [`EVENT`] to vCPU 1 N times (default 32) for each
//! of two cases: vCPU 1 **waiting** in WFI (descheduled: its CPU idles) and vCPU 1 **running**
//! (spinning with IRQs unmasked: only a kick makes its CPU load the virtual IRQ before its
//! slice ends). Each latency is the virtual counter from just before `EVENT_SEND` to vCPU 1's
//! IRQ handler having seen it.
//!
//! The verdict: in each case at least a quarter of the rounds must arrive within B µs (default
//! 1000, a tenth of the hyp's 10 ms slice). The host that runs QEMU's vCPU threads only ever
//! adds delay, so without kicks at most a tenth of the rounds of the running case could (a
//! uniform point of the slice), and none of the waiting case (its CPU wakes a slice after it
//! idled, 2 ms before the send); with kicks nearly all do on a quiet host, and a quarter still
//! on a loaded one. Needs 2 vCPUs, each with a CPU (the manifest pins them to two).

use super::args;
use crate::arch::timer;
use crate::{boot_info, events, hv, println};
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// The event vCPU 0 sends vCPU 1 (below 64: the IRQ handler records it).
const EVENT: u32 = 48;
/// Most rounds of each case.
const MAX_ROUNDS: usize = 64;

/// The round vCPU 1 is ready for (it has cleared what it saw), one more than its number.
static READY: AtomicU64 = AtomicU64::new(0);
/// The round vCPU 0 asks for next, one more than its number; 0: not started. Its top bit says
/// the case: set for "running".
static ROUND: AtomicU64 = AtomicU64::new(0);
/// The counter just before the send.
static SENT: AtomicU64 = AtomicU64::new(0);
/// The latency of the round just done, in counter ticks (u64::MAX while it runs).
static LATENCY: AtomicU64 = AtomicU64::new(u64::MAX);

const RUNNING: u64 = 1 << 63;

fn wfi() {
    // SAFETY: waits for the hypervisor to raise an event.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}

/// vCPU 1: takes the rounds vCPU 0 asks for, forever (the VM ends when vCPU 0 is done).
pub fn secondary(_index: usize) {
    events::claim(EVENT);
    // SAFETY: unmasks IRQs; the vector acknowledges this vCPU's events and records them.
    unsafe { asm!("msr daifclr, #2", options(nomem, nostack)) };
    let mut done = 0;
    loop {
        let asked = ROUND.load(Ordering::SeqCst);
        let round = asked & !RUNNING;
        if round == done {
            core::hint::spin_loop();
            continue;
        }
        let _ = events::take_seen();
        READY.store(round, Ordering::SeqCst);
        while events::take_seen() & (1 << EVENT) == 0 {
            if asked & RUNNING == 0 {
                wfi();
            } else {
                core::hint::spin_loop();
            }
        }
        let now = timer::ticks();
        LATENCY.store(
            now.wrapping_sub(SENT.load(Ordering::SeqCst)),
            Ordering::SeqCst,
        );
        done = round;
    }
}

/// The median of `v` (sorted in place).
fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(u64::MAX)
}

/// vCPU 0's part: the rounds, measured and judged.
pub fn run(args: &str) -> u64 {
    let info = boot_info();
    if info.vcpu_count < 2 {
        println!("smp kick: needs 2 vCPUs");
        return 1;
    }
    let rounds = (args::number(args, "rounds").unwrap_or(32) as usize).clamp(1, MAX_ROUNDS);
    let bound_us = args::number(args, "bound_us").unwrap_or(1000);
    let mut hv = hv();
    let _ = hv.event_unmask(EVENT);
    if super::smp::start_others(info, "smp kick") != 0 {
        return 1;
    }
    let us = |ticks: u64| ticks * 1_000_000 / timer::frequency();
    let mut round = 0;
    let mut failed = false;
    for (case, flag) in [("waiting", 0), ("running", RUNNING)] {
        let mut latencies = [0u64; MAX_ROUNDS];
        for slot in latencies.iter_mut().take(rounds) {
            round += 1;
            LATENCY.store(u64::MAX, Ordering::SeqCst);
            ROUND.store(round | flag, Ordering::SeqCst);
            while READY.load(Ordering::SeqCst) != round {
                core::hint::spin_loop();
            }
            // Give vCPU 1 time to be in its WFI (descheduled) or its spin loop.
            let settle = timer::ticks() + timer::frequency() / 500;
            while timer::ticks() < settle {
                core::hint::spin_loop();
            }
            SENT.store(timer::ticks(), Ordering::SeqCst);
            if hv.event_send(1, EVENT).is_err() {
                println!("smp kick: EVENT_SEND refused");
                return 1;
            }
            while LATENCY.load(Ordering::SeqCst) == u64::MAX {
                core::hint::spin_loop();
            }
            *slot = LATENCY.load(Ordering::SeqCst);
        }
        let measured = &mut latencies[..rounds];
        let prompt = measured.iter().filter(|&&t| us(t) < bound_us).count();
        let ok = prompt * 4 >= rounds;
        failed |= !ok;
        let mid = median(measured);
        println!(
            "smp kick: {case}: {prompt} of {rounds} within {bound_us} us (median {} us, best {} \
             us, worst {} us): {}",
            us(mid),
            us(measured[0]),
            us(measured[rounds - 1]),
            if ok { "prompt" } else { "too slow" }
        );
    }
    if failed {
        return 1;
    }
    println!("smp kick: an event reaches a vCPU on another CPU at once");
    0
}
