//! PSCI calls that end or restart the VM, which selftest cannot make: `reset [times=N]`
//! restarts itself N times (default 1) with SYSTEM_RESET and checks, in every life after the
//! first, that it came back from its image with fresh memory; `cpuoff` and `off` end with
//! CPU_OFF and SYSTEM_OFF (status 0).

use super::args;
use crate::{boot_info, hv, println, restarts};
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall_abi::MemPerms;

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
        let fresh_memory = hv.mem_query(PAGE).is_err() && hv.mem_query(BULK).is_err();
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
    if life == 0 {
        // The first life holds its whole quota, so the reset must tear it down before it
        // builds the fresh VM.
        let left = hv.vm_info().map_or(0, |i| i.mem_available_bytes / 4096);
        if left > 0 && hv.mem_map(BULK, left, MemPerms::RW).is_err() {
            println!("reset: cannot map the {left} pages left of the quota");
            return 1;
        }
        println!("reset: first life; calling PSCI SYSTEM_RESET ({times} time(s) in all)");
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
    println!("off: calling PSCI SYSTEM_OFF");
    let refused = hv().psci_system_off();
    println!("off: SYSTEM_OFF returned {refused}");
    1
}
