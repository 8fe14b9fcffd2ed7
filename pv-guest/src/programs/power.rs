//! PSCI calls that end or restart the VM, which selftest cannot make: `reset [times=N]
//! [hold]` restarts itself N times (default 1) with SYSTEM_RESET and checks, in every life
//! after the first, that it came back from its image with fresh memory (the first life maps its
//! whole quota first, so the reset must tear it down before it rebuilds; with `hold` every life
//! does, the hostile neighbour whose every reset scrubs all its memory); `cpuoff` and `off`
//! end with CPU_OFF and SYSTEM_OFF (status 0).
//!
//! With `spin` (`reset spin`, `off spin`), vCPU 0 first starts every other vCPU, which spins
//! forever (on, never off: as a Linux guest's parked secondaries), and makes the call once all
//! spin: the hyp must stop them on whatever CPUs run them. A later life also checks that they
//! are off again, as a fresh VM's are.

use super::args;
use crate::{boot_info, hv, println, restarts};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hypercall_abi::MemPerms;

/// Secondaries spinning in this life.
static SPINNING: AtomicU32 = AtomicU32::new(0);

/// AFFINITY_INFO's answer for an off vCPU.
const AFFINITY_OFF: i32 = 1;

/// Whether the command line asks for spinning secondaries.
fn with_spinners() -> bool {
    super::parse(boot_info().cmdline())
        .args
        .split_whitespace()
        .any(|w| w == "spin")
}

/// vCPU 0 starts the other vCPUs spinning and waits until every one spins; false (reported)
/// if one did not start.
fn start_spinners(program: &str) -> bool {
    let info = boot_info();
    if super::smp::start_others(info, program) != 0 {
        return false;
    }
    let others = info.vcpu_count.saturating_sub(1);
    while SPINNING.load(Ordering::SeqCst) < others {
        core::hint::spin_loop();
    }
    println!("{program}: {others} other vCPU(s) spinning");
    true
}

/// A secondary vCPU's part: spin, on, until the hyp stops the VM.
pub fn spin_forever() -> ! {
    SPINNING.fetch_add(1, Ordering::SeqCst);
    loop {
        core::hint::spin_loop();
    }
}

/// Whether every vCPU but 0 is off.
fn others_off() -> bool {
    let mut hv = hv();
    (1..boot_info().vcpu_count as usize)
        .all(|i| hv.psci_affinity_info(super::smp::mpidr(i), 0) == AFFINITY_OFF)
}

/// Written before the reset: a fresh image has the initial value again.
static MARK: AtomicU64 = AtomicU64::new(0x1111);

/// A page mapped before the reset: a fresh VM does not have it.
const PAGE: u64 = 0x39_0000_0000;

/// Where the rest of the quota is mapped before the reset (in one call: the hyp continues it
/// in chunks), so that a VM holding most of the RAM checks that it can restart.
const BULK: u64 = 0x20_0000_0000;

pub fn reset() -> u64 {
    let mut hv = hv();
    let times = args::number(boot_info().cmdline(), "times").unwrap_or(1);
    // The hyp counts this VM's earlier lives and passes the count in x1 at entry.
    let life = restarts();
    if life > 0 {
        let fresh_image = MARK.load(Ordering::SeqCst) == 0x1111;
        let fresh_memory = hv.mem_query(PAGE).is_err()
            && hv.mem_query(BULK).is_err()
            && (!with_spinners() || others_off());
        if !(fresh_image && fresh_memory) || life >= times {
            let restarted = match life {
                1 => "once".into(),
                n => alloc::format!("{n} times"),
            };
            println!(
                "reset: restarted {restarted}; image fresh: {fresh_image}, memory fresh: {fresh_memory}"
            );
            if life > times {
                println!("reset: restarted {life} times, expected {times}");
            }
            return u64::from(!(fresh_image && fresh_memory && life == times));
        }
    }
    // Leave traces a fresh life must not see, then restart.
    MARK.store(0x2222, Ordering::SeqCst);
    let _ = hv.mem_map(PAGE, 1, MemPerms::RW);
    if life == 0 || super::args::flag(boot_info().cmdline(), "hold") {
        // The first life holds its whole quota, so the reset must tear it down before it
        // builds the fresh VM.
        let left = hv.vm_info().map_or(0, |i| i.mem_available_bytes / 4096);
        if left > 0 && hv.mem_map(BULK, left, MemPerms::RW).is_err() {
            println!("reset: cannot map the {left} pages left of the quota");
            return 1;
        }
    }
    if life == 0 {
        println!("reset: first life; calling PSCI SYSTEM_RESET ({times} time(s) in all)");
    }
    if with_spinners() && !start_spinners("reset") {
        return 1;
    }
    let refused = hv.psci_system_reset();
    println!("reset: SYSTEM_RESET returned {refused}");
    1
}

pub fn cpu_off() -> u64 {
    println!("cpuoff: calling PSCI CPU_OFF on the only vCPU");
    let refused = hv().psci_cpu_off();
    println!("cpuoff: CPU_OFF returned {refused}");
    1
}

pub fn system_off() -> u64 {
    if with_spinners() && !start_spinners("off") {
        return 1;
    }
    println!("off: calling PSCI SYSTEM_OFF");
    let refused = hv().psci_system_off();
    println!("off: SYSTEM_OFF returned {refused}");
    1
}
