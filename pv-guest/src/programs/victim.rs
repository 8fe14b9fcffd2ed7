//! `victim [rounds=N] [pages=N]`: the other half of the attack test. Maps a region, fills it
//! with a pattern unique to this VM and checksums it, fills all 32 FP/SIMD registers, gives the
//! CPU away N times (the attacker runs), then checks that memory and registers are unchanged.

use super::{args, fpsimd, pattern};
use crate::mm::frames::Frames;
use crate::println;
use hypercall_abi::{BootInfo, MemPerms};

const DEFAULT_ROUNDS: u64 = 5000;
const DEFAULT_PAGES: u64 = 64;

pub fn run(info: &BootInfo, args: &str) -> u64 {
    let rounds = args::number(args, "rounds").unwrap_or(DEFAULT_ROUNDS);
    let pages = args::number(args, "pages").unwrap_or(DEFAULT_PAGES);
    let seed = 0x71C7_1300 ^ u64::from(info.vm_index);
    let mut region = match Frames::alloc(pages, MemPerms::RW) {
        Ok(f) => f,
        Err(e) => {
            println!("victim: cannot map {pages} pages: {e}");
            return 1;
        }
    };
    pattern::fill(region.words(), seed);
    let sum = pattern::checksum(region.words());
    println!(
        "victim: {pages} pages at {:#x} filled (checksum {sum:#018x}); holding FP/SIMD registers \
         across {rounds} yields",
        region.ipa()
    );
    let bad_registers = fpsimd::check_across_yields("victim", info.vm_index, rounds);
    let words = region.words();
    let (after, bad_words) = (pattern::checksum(words), pattern::mismatches(words, seed));
    if bad_words != 0 {
        println!("victim: {bad_words} words changed (checksum {sum:#018x} -> {after:#018x})");
    }
    if bad_registers == 0 && bad_words == 0 {
        println!("victim: memory and FP/SIMD registers unchanged after {rounds} yields");
        0
    } else {
        1
    }
}
