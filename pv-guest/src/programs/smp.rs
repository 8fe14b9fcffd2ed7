//! `smp`: vCPU 0 starts every other vCPU with PSCI CPU_ON (checking the errors first), each
//! vCPU runs its checks (ABI handshake, VM_INFO, a page of its own mapped, written, read back
//! and unmapped, an event sent to itself) and reports through atomics, then powers off; vCPU 0
//! waits for AFFINITY_INFO to say OFF for each. `smp stress` is the concurrency check of
//! `smp_stress.rs`, `smp kick` the kick latency of `smp_kick.rs`; `smp kill` starts every vCPU
//! spinning and then faults on the last one, for the hyp to kill the VM on every CPU (with
//! `on_fault = "kill"`). [`start_others`] and [`wait_others_off`] serve every multi-vCPU
//! program.

use crate::{hv, println};
use core::sync::atomic::{AtomicU32, Ordering};
use hypercall_abi::psci::psci_error;
use hypercall_abi::{BootInfo, MemPerms};

/// Each vCPU's result: 0 not run, DONE all checks passed, else the number of the check that
/// failed.
static RESULTS: [AtomicU32; crate::arch::MAX_VCPUS] = [const { AtomicU32::new(0) }; 8];
const DONE: u32 = 0x600d;

/// Where vCPU i maps its page (far above the image; the stage-1 identity map covers it).
const PAGE_BASE: u64 = 0x70_0000_0000;
/// vCPU i sends itself event FIRST_EVENT + i (masked: it only becomes pending).
const FIRST_EVENT: u32 = 100;
/// AFFINITY_INFO's answer for an off vCPU.
const AFFINITY_OFF: i32 = 1;

pub fn mpidr(index: usize) -> u64 {
    (1 << 31) | index as u64
}

/// The checks every vCPU runs; Err(n) names the failed one.
fn checks(info: &BootInfo, index: usize) -> Result<(), u32> {
    let mut hv = hv();
    hv.abi_version().map_err(|_| 1u32)?;
    let vm = hv.vm_info().map_err(|_| 2u32)?;
    if vm.vcpu_count != info.vcpu_count || vm.vm_index != info.vm_index {
        return Err(3);
    }
    let page = PAGE_BASE + index as u64 * 0x1000;
    hv.mem_map(page, 1, MemPerms::RW).map_err(|_| 4u32)?;
    let tag = 0x5eed_0000_0000 | index as u64;
    for off in (0..4096).step_by(512) {
        // SAFETY: the page was just mapped, for this vCPU only; no Rust object lives there.
        unsafe { crate::arch::access::write_u64(page + off, tag ^ off) };
    }
    for off in (0..4096).step_by(512) {
        // SAFETY: as above.
        if unsafe { crate::arch::access::read_u64(page + off) } != tag ^ off {
            return Err(5);
        }
    }
    hv.mem_unmap(page, 1).map_err(|_| 6u32)?;
    let event = FIRST_EVENT + index as u32;
    crate::events::claim(event);
    hv.event_send(index as u32, event).map_err(|_| 7u32)?;
    if !crate::events::is_pending(info, event) {
        return Err(8);
    }
    hv.event_ack(event).map_err(|_| 9u32)?;
    if crate::events::is_pending(info, event) {
        return Err(10);
    }
    Ok(())
}

/// vCPUs spinning in `smp kill`.
static SPINNING: AtomicU32 = AtomicU32::new(0);

/// `smp kill`: every vCPU spins but the last, which faults once all the others spin.
fn kill_part(index: usize) -> ! {
    let others = crate::boot_info().vcpu_count.saturating_sub(1);
    if index + 1 < crate::boot_info().vcpu_count as usize {
        SPINNING.fetch_add(1, Ordering::SeqCst);
        loop {
            core::hint::spin_loop();
        }
    }
    while SPINNING.load(Ordering::SeqCst) < others {
        core::hint::spin_loop();
    }
    println!("smp kill: vCPU {index} faults while {others} vCPU(s) spin");
    // SAFETY: a volatile read of an address stage 1 maps and stage 2 does not: the access
    // faults (the hyp ends the VM), it reads no Rust object.
    let v = unsafe { crate::arch::access::read_u64(super::UNMAPPED_IPA) };
    println!("smp kill: read {v:#x}: the access did not fault");
    loop {
        core::hint::spin_loop();
    }
}

/// A secondary vCPU's part: the checks, reported in RESULTS (or its part of `smp kill` or
/// `smp kick`).
pub fn secondary(index: usize) {
    match super::parse(crate::boot_info().cmdline())
        .args
        .split_whitespace()
        .next()
    {
        Some("kill") => kill_part(index),
        Some("kick") => return super::smp_kick::secondary(index),
        _ => {}
    }
    let result = match checks(crate::boot_info(), index) {
        Ok(()) => DONE,
        Err(n) => n,
    };
    if let Some(slot) = RESULTS.get(index) {
        slot.store(result, Ordering::SeqCst);
    }
}

/// vCPU 0 starts vCPUs 1..n at the secondary entry (each runs `programs::secondary`); how
/// many CPU_ON calls failed (each reported, prefixed by `program`).
pub fn start_others(info: &BootInfo, program: &str) -> u32 {
    let mut hv = hv();
    let entry = crate::arch::secondary_entry_address();
    let mut failed = 0;
    for i in 1..(info.vcpu_count as usize).min(crate::arch::MAX_VCPUS) {
        let e = hv.psci_cpu_on(mpidr(i), entry, i as u64);
        if e != 0 {
            println!("{program}: CPU_ON of vCPU {i}: error {e}");
            failed += 1;
        }
    }
    failed
}

/// vCPU 0 waits until AFFINITY_INFO says vCPU i is OFF, yielding meanwhile; false (and a
/// report) if it never is.
pub fn wait_off(program: &str, i: usize) -> bool {
    let mut hv = hv();
    let mut spins = 0u64;
    while hv.psci_affinity_info(mpidr(i), 0) != AFFINITY_OFF {
        let _ = hv.vm_yield();
        spins += 1;
        if spins > 10_000_000 {
            println!("{program}: vCPU {i} never powered off");
            return false;
        }
    }
    true
}

/// [`wait_off`] for every vCPU but 0; how many never powered off.
pub fn wait_others_off(info: &BootInfo, program: &str) -> u32 {
    (1..(info.vcpu_count as usize).min(crate::arch::MAX_VCPUS))
        .filter(|&i| !wait_off(program, i))
        .count() as u32
}

pub fn run(info: &BootInfo, args: &str) -> u64 {
    match args.split_whitespace().next() {
        Some("stress") => return super::smp_stress::run(info, args),
        Some("kick") => return super::smp_kick::run(args),
        Some("kill") => {
            if start_others(info, "smp kill") != 0 {
                return 1;
            }
            kill_part(0)
        }
        _ => {}
    }
    let n = info.vcpu_count as usize;
    let mut hv = hv();
    let entry = crate::arch::secondary_entry_address();
    let mut failed = 0;
    let mut expect = |what: &str, got: i32, want: i32| {
        if got != want {
            println!("smp: {what}: got {got}, expected {want}");
            failed += 1;
        }
    };
    expect(
        "CPU_ON of itself",
        hv.psci_cpu_on(mpidr(0), entry, 0),
        psci_error::ALREADY_ON,
    );
    expect(
        "CPU_ON of a vCPU the VM does not have",
        hv.psci_cpu_on(mpidr(n), entry, n as u64),
        psci_error::INVALID_PARAMETERS,
    );
    if n > 1 {
        expect(
            "CPU_ON at an address that is not code",
            hv.psci_cpu_on(mpidr(1), super::UNMAPPED_IPA, 1),
            psci_error::INVALID_ADDRESS,
        );
    }
    for i in 1..n.min(crate::arch::MAX_VCPUS) {
        expect("CPU_ON", hv.psci_cpu_on(mpidr(i), entry, i as u64), 0);
    }
    if let Err(e) = checks(info, 0) {
        println!("smp: vCPU 0 failed check {e}");
        failed += 1;
    }
    for (i, result) in RESULTS.iter().enumerate().take(n).skip(1) {
        if !wait_off("smp", i) {
            return 1;
        }
        match result.load(Ordering::SeqCst) {
            DONE => {}
            r => {
                println!("smp: vCPU {i} failed check {r}");
                failed += 1;
            }
        }
    }
    if failed != 0 {
        println!("smp: {failed} failures");
        return 1;
    }
    println!("smp: all {n} vCPUs ran their checks");
    0
}
