//! `bench [quick] [wall] [iterations=N]`, `bench vm_switch [partner] ...`: instruction counts of
//! the hypervisor's hot paths, read from the virtual counter. `scripts/bench.sh` boots it under
//! QEMU `-icount shift=0`, where the counter advances once per 1e9 / CNTFRQ instructions
//! (16 on cortex-a72, 1 on `max`), identically on every run; it collects the lines
//!
//! ```text
//! bench: name=null_hypercall unit=instructions iterations=1000 min=.. median=..
//! bench: name=event_roundtrip unavailable=REASON
//! ```
//!
//! Each measure runs 9 timed batches of `iterations` operations (default 1000; `quick`: a few,
//! for a smoke test) and reports the minimum and the median of the per-operation figures.
//! First a loop of exactly known length checks the counter's rate: off by more than 1%, the
//! run fails (QEMU without `-icount`?). With `wall` (QEMU without `-icount`) the figures are
//! nanoseconds of wall time, not deterministic, and nothing is checked. A measured path never
//! waits (no WFI), so the clock never jumps ahead.
//!
//! `bench` runs the one-VM measures; `bench device_owner` only `mem_map_1` and `mem_unmap_1`,
//! named `..._device_owner`, for a VM that owns a PCI device behind the SMMU; `bench vm_switch`
//! the two-VM ones, beside a second VM
//! running `bench vm_switch partner` with the same arguments; `bench smp vm=K of=V` VM K's
//! part of the every-CPU-at-once measures (see [`smp`]), VM 0 checking the counter first.

#[cfg(target_os = "none")]
mod asm;
#[cfg(target_os = "none")]
mod measures;
pub mod smp;
pub mod stats;

/// Exit status when the counter does not count instructions at the rate CNTFRQ implies.
pub const STATUS_CALIBRATION: u64 = 3;
/// Exit status when a measured call failed.
pub const STATUS_FAILED: u64 = 4;

/// Operations per timed batch by default, and with `quick`.
const ITERATIONS: u64 = 1000;
const QUICK_ITERATIONS: u64 = 8;
/// Iterations of the calibration loop (3 instructions each), by default and with `quick`.
const CALIBRATION_LOOPS: u64 = 1_000_000;
const QUICK_CALIBRATION_LOOPS: u64 = 20_000;
/// Timed empty windows for the window check.
const WINDOW_CHECKS: u64 = 4096;

#[cfg(target_os = "none")]
pub use target::run;

#[cfg(target_os = "none")]
mod target {
    use super::measures::{self, Ctx};
    use super::stats::{Calibration, Clock};
    use super::*;
    use crate::arch::timer;
    use crate::println;
    use crate::programs::args;

    pub fn run(args: &str) -> u64 {
        let quick = args::flag(args, "quick");
        let ctx = Ctx {
            clock: Clock {
                frequency: timer::frequency(),
                wall: args::flag(args, "wall"),
            },
            iterations: args::number(args, "iterations")
                .unwrap_or(if quick { QUICK_ITERATIONS } else { ITERATIONS })
                .max(1),
        };
        let pair = args::flag(args, "vm_switch");
        if pair && args::flag(args, "partner") {
            return finish(measures::pair_partner(&ctx), false);
        }
        let smp = args::flag(args, "smp");
        // In the smp run only VM 0 calibrates: one check is enough, and the others boot sooner.
        if (!smp || args::number(args, "vm").unwrap_or(0) == 0) && !calibrate(&ctx.clock, quick) {
            return STATUS_CALIBRATION;
        }
        if smp {
            let clock = &ctx.clock;
            return finish(
                super::smp::run(args, clock.frequency, quick, clock.wall),
                true,
            );
        }
        let list = if pair {
            measures::PAIR
        } else if args::flag(args, "console_trap") {
            measures::TRAP
        } else if args::flag(args, "device_owner") {
            measures::DEVICE_OWNER
        } else if args::flag(args, "shell") {
            measures::SHELL
        } else {
            measures::SOLO
        };
        for measure in list {
            if let Err(e) = measure(&ctx) {
                return finish(Err(e), true);
            }
        }
        finish(Ok(()), true)
    }

    fn finish(outcome: measures::Outcome, say: bool) -> u64 {
        match outcome {
            Ok(()) => {
                if say {
                    println!("bench: done");
                }
                0
            }
            Err(e) => {
                println!("bench: failed: {e}");
                STATUS_FAILED
            }
        }
    }

    /// Checks that the counter counts instructions at CNTFRQ's rate (a loop of 3n
    /// instructions), and that a timed window's own cost is what `asm` says.
    fn calibrate(clock: &Clock, quick: bool) -> bool {
        let loops = if quick {
            QUICK_CALIBRATION_LOOPS
        } else {
            CALIBRATION_LOOPS
        };
        let t0 = timer::ticks();
        super::asm::calibration_loop(loops);
        let ticks = timer::ticks() - t0;
        let c = Calibration {
            instructions: 3 * loops,
            ticks,
            frequency: clock.frequency,
        };
        let window = window_cost(clock);
        let centi = |v: u64| (v / 100, v % 100);
        let (m, mf) = centi(c.measured_centi());
        let (e, ef) = centi(clock.expected_per_tick_centi());
        let (w, wf) = centi(window);
        if clock.wall {
            println!(
                "bench: calibration wall frequency={} {} instructions in {ticks} ticks \
                 (figures are nanoseconds of wall time, NOT deterministic)",
                clock.frequency,
                3 * loops
            );
            return true;
        }
        let expected_window = (super::asm::TIMED_WINDOW_OVERHEAD + 1) * 100;
        let window_ok = window.abs_diff(expected_window) <= 50;
        let ok = c.ok() && window_ok;
        println!(
            "bench: calibration frequency={} instructions_per_tick={m}.{mf:02} \
             expected={e}.{ef:02} timed_window={w}.{wf:02} expected_window={} {}",
            clock.frequency,
            expected_window / 100,
            if ok { "ok" } else { "FAILED" }
        );
        if !c.ok() {
            println!(
                "bench: the counter does not follow instructions: is QEMU running with \
                 -icount shift=0? (scripts/bench.sh --no-icount measures wall time)"
            );
        } else if !window_ok {
            println!("bench: a timed window does not cost what bench/asm.rs says it does");
        }
        ok
    }

    /// Average cost of an empty timed window, in hundredths of an instruction.
    fn window_cost(clock: &Clock) -> u64 {
        let mut seed = 3;
        let mut ticks = 0;
        for _ in 0..WINDOW_CHECKS {
            super::asm::pad(super::asm::next_pad(&mut seed));
            ticks += super::asm::timed_nop();
        }
        clock.per_op_centi(ticks, WINDOW_CHECKS)
    }
}

#[cfg(test)]
mod tests {
    use super::super::args;

    #[test]
    fn flags_are_whole_words() {
        assert!(args::flag("quick iterations=3", "quick"));
        assert!(args::flag("vm_switch partner", "partner"));
        assert!(!args::flag("quickly", "quick"));
        assert!(!args::flag("", "quick"));
    }
}
