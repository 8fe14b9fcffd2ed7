//! `fpsimd [rounds=N]`: fills all 32 vector registers and FPCR with a pattern unique to this
//! VM, gives the CPU away N times (other VMs run and use theirs), and checks that every bit
//! came back (see `arch::fpsimd`).

use crate::arch::fpsimd::hold_across_yields;
use crate::println;
use hypercall_abi::BootInfo;

const DEFAULT_ROUNDS: u64 = 50;

/// A pattern for q0..q31 and FPCR unique to VM `vm_index`.
pub fn pattern(vm_index: u32) -> ([u128; 32], u64) {
    let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(u64::from(vm_index) + 1);
    let mut written = [0u128; 32];
    for (i, q) in written.iter_mut().enumerate() {
        let lo = seed.rotate_left(i as u32) ^ i as u64;
        *q = (u128::from(!lo) << 64) | u128::from(lo);
    }
    // Rounding mode (bits 23:22) and flush-to-zero (bit 24) differ per VM.
    let fpcr = ((u64::from(vm_index) % 4) << 22) | (1 << 24);
    (written, fpcr)
}

/// Holds this VM's pattern across `rounds` yields; the number of registers that changed
/// (each reported as `<program>: ...`).
pub fn check_across_yields(program: &str, vm_index: u32, rounds: u64) -> u32 {
    let (written, fpcr_written) = pattern(vm_index);
    let (read, fpcr_read) = hold_across_yields(&written, fpcr_written, rounds);
    let mut bad = 0;
    for (i, (w, r)) in written.iter().zip(&read).enumerate() {
        if w != r {
            println!("{program}: q{i} changed: wrote {w:#034x}, read {r:#034x}");
            bad += 1;
        }
    }
    if fpcr_read != fpcr_written {
        println!("{program}: FPCR changed: wrote {fpcr_written:#x}, read {fpcr_read:#x}");
        bad += 1;
    }
    bad
}

pub fn run(info: &BootInfo, args: &str) -> u64 {
    let rounds = super::args::number(args, "rounds").unwrap_or(DEFAULT_ROUNDS);
    if check_across_yields("fpsimd", info.vm_index, rounds) == 0 {
        println!("fpsimd: all 32 vector registers and FPCR intact after {rounds} yields");
        0
    } else {
        1
    }
}
