//! Ending the run: the summary line, then powering the board off the way the device tree says.

use crate::vm::sched::Scheduler;
use spin::Once;

/// How this board is switched off.
#[derive(Clone, Copy, Debug)]
pub enum PowerOff {
    /// PSCI SYSTEM_OFF through SMC (QEMU `virt` with EL2).
    PsciSmc,
    /// The Raspberry Pi's PM block at this (identity-mapped) address: halt through its watchdog.
    PmBlock(usize),
    /// No known way: stop the CPU.
    None,
}

static POWER_OFF: Once<PowerOff> = Once::new();

/// Records how to power off, once the device tree has been read.
pub fn init(method: PowerOff) {
    POWER_OFF.call_once(|| method);
}

/// Prints the summary (if VMs ran) and powers off.
pub fn finish(sched: Option<&Scheduler>) -> ! {
    match sched {
        Some(s) => s.summary(),
        None => crate::println!("hyp: summary: vms=0 ok=0 failed=0"),
    }
    power_off()
}

/// A fatal hypervisor error was reported: power off so nobody waits on a dead machine.
pub fn halt_after_failure() -> ! {
    crate::println!("hyp: summary: vms=0 ok=0 failed=1 error=hyp");
    power_off()
}

fn power_off() -> ! {
    crate::dev::console::flush();
    match POWER_OFF.get() {
        Some(PowerOff::PsciSmc) => {
            crate::arch::aarch64::cpu::smc(hypercall_abi::psci::PSCI_SYSTEM_OFF, 0, 0, 0);
        }
        Some(&PowerOff::PmBlock(base)) => {
            // SAFETY: init_power records only the tree's PM block, which take_over_mmu mapped
            // as a device; this is its only user, and it runs once, at the very end.
            unsafe { crate::board::rpi4::PmWatchdog::new(base) }.halt();
        }
        Some(PowerOff::None) | None => {}
    }
    crate::arch::aarch64::cpu::wait_forever()
}
