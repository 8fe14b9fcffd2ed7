//! `bench smp vm=K of=V [quick] [wall] [calls=N]`: the hot paths with every CPU calling at
//! once. `scripts/bench.sh` boots V VMs (tests/manifests/bench-smp.toml: four, VM K pinned to
//! CPU K) that all run this with their own K. They share no memory, so they meet by the clock:
//! every phase begins at a counter value all of them compute from the same arguments (the
//! hyp gives every VM the same count), each sleeping until then on its virtual timer (a WFI
//! the clock skips under `-icount ... sleep=off`), and ends one phase length later:
//!
//! 1. `smp_hypercall_alone`: VM 0 makes N `ABI_VERSION` calls, the others sleep;
//! 2. `smp_hypercall_4cpu`: every VM makes N `ABI_VERSION` calls at once;
//! 3. `smp_map_alone`: VM 0 maps and unmaps one page N times (a `MEM_MAP` and a `MEM_UNMAP`
//!    call each time, as `mem_map_1` and `mem_unmap_1` time them one by one);
//! 4. `smp_map_4cpu`: every VM does the same at once.
//!
//! (Maps of N fresh pages would time the hyp's bookkeeping of a VM's 10,000 pages rather
//! than the path: a map costs several times `mem_map_1` once thousands are mapped.)
//!
//! Each VM prints, once the last phase is over (a line printed earlier would cost the others'
//! windows the console's work), one line for each phase it timed:
//!
//! ```text
//! bench: smp name=smp_hypercall_4cpu vm=K vms=V start=S end=E calls=N asked=A overhead=O frequency=F
//! ```
//!
//! S and E are its counter right after it woke and right after its last call; a phase whose
//! calls take too long stops them at a cap, and a VM says how many it made (`asked=`: how
//! many it would have). Under `-icount` QEMU runs the CPUs one at a time and the clock counts
//! the instructions of all of them, so the report (tools/benchreport) takes the phase's whole
//! window, the earliest S to the latest E, over the calls of every VM: instructions of all
//! CPUs per call (per map + unmap pair in the map phases), spinning included, less the O
//! instructions a call of the loop adds. With `wall` (QEMU without `-icount`) the same window
//! is nanoseconds of host time.

/// Calls each VM makes in a phase, by default and with `quick`.
pub const CALLS: u64 = 10_000;
pub const QUICK_CALLS: u64 = 64;

/// The timing of the phases, in ns of the counter (instructions under `-icount`; host time in
/// wall mode, which a loaded host stretches). Free under `-icount ... sleep=off` but for the
/// spin: the clock skips a sleep when every CPU sleeps.
struct Timing {
    /// When the first phase begins (the counter starts with the machine): every VM has booted
    /// by then (the hyp's boot is ~2.4 M instructions, a VM's ~1 M, VM 0's calibration ~3.5 M).
    start: u64,
    /// Allowed for each call of a phase (a phase of N calls lasts N times this, at least
    /// `min_work`): far more than one CPU alone spends (~500 an `ABI_VERSION`, ~2,100 a map
    /// and unmap pair); the calls stop at three quarters of it ([`Schedule::cap`]).
    per_call: u64,
    min_work: u64,
    /// A VM sleeps until this long before its phase and spins on the counter for the rest: the
    /// hyp wakes a sleeping vCPU up to a 10 ms slice late, more when its CPUs contend for the
    /// scheduler lock (under `-icount` a CPU spinning on a lock spins for QEMU's whole turn).
    spin: u64,
}

const ICOUNT: Timing = Timing {
    start: 300_000_000,
    per_call: 50_000,
    min_work: 60_000_000,
    spin: 30_000_000,
};

const WALL: Timing = Timing {
    start: 5_000_000_000,
    per_call: 500_000,
    min_work: 200_000_000,
    spin: 50_000_000,
};

/// What a phase does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// N `ABI_VERSION` calls.
    AbiVersion,
    /// N `MEM_MAP` + `MEM_UNMAP` pairs of one page.
    MapUnmap,
}

/// One phase of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// The measure it reports.
    pub name: &'static str,
    pub work: Work,
    /// Every VM works in it; otherwise VM 0 alone.
    pub everyone: bool,
}

/// The phases, in order.
pub const PHASES: [Phase; 4] = [
    Phase {
        name: "smp_hypercall_alone",
        work: Work::AbiVersion,
        everyone: false,
    },
    Phase {
        name: "smp_hypercall_4cpu",
        work: Work::AbiVersion,
        everyone: true,
    },
    Phase {
        name: "smp_map_alone",
        work: Work::MapUnmap,
        everyone: false,
    },
    Phase {
        name: "smp_map_4cpu",
        work: Work::MapUnmap,
        everyone: true,
    },
];

/// When each phase begins, in counter ticks: the same in every VM given the same arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub first: u64,
    pub length: u64,
    pub spin: u64,
}

impl Schedule {
    pub fn new(frequency: u64, calls: u64, wall: bool) -> Self {
        let ticks = |ns: u64| (u128::from(ns) * u128::from(frequency) / 1_000_000_000) as u64;
        let t = if wall { &WALL } else { &ICOUNT };
        let work = t.per_call.saturating_mul(calls).max(t.min_work);
        Schedule {
            first: ticks(t.start),
            length: ticks(t.spin + work),
            spin: ticks(t.spin),
        }
    }

    /// The counter value phase `i`'s calls begin at (`PHASES.len()`: when the last phase is
    /// over).
    pub fn begins(&self, i: usize) -> u64 {
        self.first + i as u64 * self.length
    }

    /// When phase `i`'s calls stop even if not all were made: so that a path that contends
    /// (a global lock spun on for whole turns of QEMU's) still ends the run in bounded time,
    /// its figure from the calls made. The rest of the phase is for the VMs to see the cap.
    pub fn cap(&self, i: usize) -> u64 {
        self.begins(i) + (self.length - self.spin) * 3 / 4
    }

    /// When a VM stops sleeping before phase `i` and spins.
    pub fn wakes(&self, i: usize) -> u64 {
        self.begins(i) - self.spin
    }
}

/// One timed phase of one VM, as the line the report reads.
pub struct Window {
    pub name: &'static str,
    pub vm: u64,
    /// The VMs in this phase.
    pub vms: u64,
    pub start: u64,
    pub end: u64,
    /// Calls made, and asked for: fewer when the phase's time ran out first.
    pub calls: u64,
    pub asked: u64,
    pub overhead: u64,
    pub frequency: u64,
}

impl core::fmt::Display for Window {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "bench: smp name={} vm={} vms={} start={} end={} calls={} asked={} overhead={} \
             frequency={}",
            self.name,
            self.vm,
            self.vms,
            self.start,
            self.end,
            self.calls,
            self.asked,
            self.overhead,
            self.frequency
        )
    }
}

#[cfg(target_os = "none")]
pub use target::run;

#[cfg(target_os = "none")]
mod target {
    use super::super::asm::{self, HVC_LOOP_UNTIL_OVERHEAD, MAP_UNMAP_LOOP_UNTIL_OVERHEAD};
    use super::super::measures::Outcome;
    use super::*;
    use crate::arch::timer;
    use crate::mm::frames::IpaWindow;
    use crate::println;
    use crate::programs::args;
    use hypercall_abi::abi::ABI_VERSION;
    use hypercall_abi::mem::{MEM_MAP, MEM_UNMAP};
    use hypercall_abi::{MemPerms, Version};

    /// Sleeps on the virtual timer until the counter reaches `deadline`.
    fn sleep_until(deadline: u64) {
        let info = crate::boot_info();
        let event = info.timer_event;
        let _ = crate::hv().event_unmask(event);
        timer::arm(deadline);
        crate::events::wait(event, || timer::ticks() >= deadline);
        timer::disarm();
        let _ = crate::hv().event_ack(event);
    }

    /// Spins on the counter until it reaches `deadline`; returns the count then.
    fn spin_until(deadline: u64) -> u64 {
        loop {
            let now = timer::ticks();
            if now >= deadline {
                return now;
            }
        }
    }

    /// Runs this VM's part of every phase, then prints its windows.
    pub fn run(args: &str, frequency: u64, quick: bool, wall: bool) -> Outcome {
        let vm = args::number(args, "vm").unwrap_or(0);
        let vms = args::number(args, "of").unwrap_or(1);
        let calls = args::number(args, "calls")
            .unwrap_or(if quick { QUICK_CALLS } else { CALLS })
            .max(1);
        let schedule = Schedule::new(frequency, calls, wall);
        let page = IpaWindow::reserve(1).ok_or("no IPA space for the page")?;
        let mut windows = [const { None }; PHASES.len()];
        for (i, phase) in PHASES.iter().enumerate() {
            if !phase.everyone && vm != 0 {
                continue;
            }
            sleep_until(schedule.wakes(i));
            let start = spin_until(schedule.begins(i));
            let cap = schedule.cap(i);
            let (left, overhead) = match phase.work {
                Work::AbiVersion => {
                    let a1 = Version::CURRENT.to_u64();
                    let left = asm::hvc_loop_until(ABI_VERSION, a1, calls, cap);
                    (left, HVC_LOOP_UNTIL_OVERHEAD)
                }
                Work::MapUnmap => {
                    let perms = MemPerms::RW.bits();
                    let (left, x0) =
                        asm::map_unmap_loop_until(MEM_MAP, MEM_UNMAP, page.ipa, perms, calls, cap);
                    if x0 != 0 {
                        println!(
                            "bench: smp pair {} of {calls} returned {x0:#x}",
                            calls - left
                        );
                        return Err("mem.map or mem.unmap failed");
                    }
                    (left, MAP_UNMAP_LOOP_UNTIL_OVERHEAD)
                }
            };
            let end = timer::ticks();
            windows[i] = Some(Window {
                name: phase.name,
                vm,
                vms: if phase.everyone { vms } else { 1 },
                start,
                end,
                calls: calls - left,
                asked: calls,
                overhead: if wall { 0 } else { overhead },
                frequency,
            });
        }
        sleep_until(schedule.begins(PHASES.len()));
        for w in windows.iter().flatten() {
            println!("{w}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vm_computes_the_same_phases() {
        // cortex-a72: 62.5 MHz, 16 instructions a tick.
        let s = Schedule::new(62_500_000, CALLS, false);
        assert_eq!(s.first, 300_000_000 / 16);
        assert_eq!(s.length, (30_000_000 + CALLS * 50_000) / 16);
        assert_eq!(s.begins(2), s.first + 2 * s.length);
        assert_eq!(s.wakes(1), s.begins(1) - 30_000_000 / 16);
        let wall = Schedule::new(62_500_000, CALLS, true);
        assert!(wall.first > s.first && wall.length > s.length);
        // A few calls still leave each phase time for the others to come in.
        let quick = Schedule::new(62_500_000, QUICK_CALLS, false);
        assert_eq!(quick.length, (30_000_000 + 60_000_000) / 16);
        assert_eq!(quick.cap(1), quick.begins(1) + 45_000_000 / 16);
        assert!(quick.cap(1) < quick.wakes(2));
    }

    #[test]
    fn each_measure_has_an_alone_twin() {
        for p in PHASES {
            if p.everyone {
                let alone = p.name.replace("_4cpu", "_alone");
                assert!(PHASES.iter().any(|q| q.name == alone && !q.everyone));
            }
        }
    }

    #[test]
    fn the_line_the_report_reads() {
        let w = Window {
            name: "smp_map_4cpu",
            vm: 2,
            vms: 4,
            start: 10,
            end: 20,
            calls: 60,
            asked: 64,
            overhead: 14,
            frequency: 62_500_000,
        };
        assert_eq!(
            w.to_string(),
            "bench: smp name=smp_map_4cpu vm=2 vms=4 start=10 end=20 calls=60 asked=64 \
             overhead=14 frequency=62500000"
        );
    }
}
