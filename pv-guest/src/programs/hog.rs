//! `hog [ms=N]`: spins for N ms of virtual time (default 3000) without ever yielding, then
//! exits 0. Beside it, other VMs must still run and finish: the hypervisor's timer has to take
//! the CPU away. The longest gap between two reads of the counter shows it did.

use super::args;
use crate::arch::timer;
use crate::println;

const DEFAULT_MS: u64 = 3000;

pub fn run(args: &str) -> u64 {
    let ms = args::number(args, "ms").unwrap_or(DEFAULT_MS);
    let per_ms = (timer::frequency() / 1000).max(1);
    println!("hog: spinning for {ms} ms without yielding");
    let start = timer::ticks();
    let (mut last, mut longest_gap) = (start, 0);
    loop {
        let now = timer::ticks();
        longest_gap = longest_gap.max(now - last);
        last = now;
        if now - start >= ms * per_ms {
            break;
        }
    }
    println!(
        "hog: done after {} ms without yielding (longest gap between two counter reads: {} ms)",
        (last - start) / per_ms,
        longest_gap / per_ms
    );
    0
}
