//! `hog [ms=N] [yield-at-us=U] [min-share=P] [max-share=Q]`: spins for N ms of virtual time
//! (default 3000) without ever yielding, then exits 0. Beside it, other VMs must still run and
//! finish: the hypervisor's timer has to take the CPU away. The longest gap between two reads
//! of the counter shows it did, and the time it ran (the counter's steps short of a gap) what
//! share of the CPU it had: with `min-share=P` it fails (exit 1) under P percent, with
//! `max-share=Q` over Q percent (the VM beside it did not get its part).
//!
//! With `yield-at-us=U` it is the hostile neighbour of a time-shared CPU instead: U µs after
//! each time it comes on (after a gap), it yields, just before the hyp would end its slice, so
//! that the next vCPU comes on in what is left of it. A scheduler that lets a slice's rest pass
//! for a whole turn gives that vCPU almost nothing; `min-share` beside it checks it does not.

use super::args;
use crate::arch::timer;
use crate::println;

const DEFAULT_MS: u64 = 3000;

/// A step of the counter longer than this is a gap: the vCPU was off the CPU.
const GAP_US: u64 = 100;

/// Exit status of a hog that ran outside its `min-share`..`max-share`.
const STATUS_UNFAIR: u64 = 1;

pub fn run(args: &str) -> u64 {
    let ms = args::number(args, "ms").unwrap_or(DEFAULT_MS);
    let yield_at_us = args::number(args, "yield-at-us");
    let min_share = args::number(args, "min-share");
    let max_share = args::number(args, "max-share");
    let per_ms = (timer::frequency() / 1000).max(1);
    let per_us = (timer::frequency() / 1_000_000).max(1);
    match yield_at_us {
        Some(us) => println!("hog: spinning for {ms} ms, yielding {us} us into each turn"),
        None => println!("hog: spinning for {ms} ms without yielding"),
    }
    let mut hv = crate::hv();
    let start = timer::ticks();
    let (mut last, mut longest_gap, mut ran, mut turn_start) = (start, 0, 0, start);
    loop {
        let now = timer::ticks();
        let step = now - last;
        longest_gap = longest_gap.max(step);
        if step > GAP_US * per_us {
            turn_start = now;
        } else {
            ran += step;
        }
        last = now;
        if now - start >= ms * per_ms {
            break;
        }
        if yield_at_us.is_some_and(|us| now - turn_start >= us * per_us) {
            let _ = hv.vm_yield();
            // Back at once (nobody else waits) or after a gap: a new turn either way.
            turn_start = timer::ticks();
        }
    }
    let total = last - start;
    let share = ran * 100 / total.max(1);
    let how = if yield_at_us.is_some() {
        "yielding"
    } else {
        "without yielding"
    };
    println!(
        "hog: done after {} ms {how} (longest gap between two counter reads: {} ms; ran {} ms, \
         {share}%)",
        total / per_ms,
        longest_gap / per_ms,
        ran / per_ms,
    );
    if let Some(max) = max_share.filter(|&max| share > max) {
        println!("hog: took too much: ran {share}% of the time, over the {max}% asked");
        return STATUS_UNFAIR;
    }
    match min_share {
        Some(min) if share < min => {
            println!("hog: starved: ran {share}% of the time, under the {min}% asked");
            STATUS_UNFAIR
        }
        Some(min) => {
            println!("hog: share ok: ran {share}% of the time, at least the {min}% asked");
            0
        }
        None => 0,
    }
}
