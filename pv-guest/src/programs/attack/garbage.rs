//! Unknown function IDs and garbage in every register: a few thousand pseudo-random register
//! images straight through the conduit. The calls that would end or stop this VM are skipped.

use super::Report;
use crate::hv;
use crate::programs::pattern::XorShift;
use hypercall_abi::mem::{MEM_BATCH, MEM_MAP, MEM_PROTECT, MEM_UNMAP};
use hypercall_abi::{CallInfo, Conduit, Error, Family, Regs};
use hypercall_abi::{console, vm};

/// Function IDs (w0) that end, stop, reset or suspend this VM: VM_EXIT, PSCI CPU_SUSPEND (a
/// wait for an event that nothing here would raise), CPU_OFF, SYSTEM_OFF, SYSTEM_RESET,
/// SYSTEM_RESET2, SYSTEM_SUSPEND, CPU_FREEZE, CPU_DEFAULT_SUSPEND, SYSTEM_OFF2 (32- and 64-bit
/// forms).
const SKIP: [u32; 15] = [
    vm::VM_EXIT,
    0x8400_0001,
    0xC400_0001,
    0x8400_0002,
    0x8400_0008,
    0x8400_0009,
    0x8400_0012,
    0xC400_0012,
    0x8400_000E,
    0xC400_000E,
    0x8400_000B,
    0x8400_000C,
    0xC400_000C,
    0x8400_0015,
    0xC400_0015,
];

/// Register values more likely than random ones to hit a boundary.
const INTERESTING: [u64; 12] = [
    0,
    1,
    u64::MAX,
    1 << 39,
    (1 << 39) - 4096,
    0x4000_0000,
    0x4020_0000,
    0x0900_0000,
    0x8000_0000,
    0xFFFF_FFFF,
    512,
    513,
];

/// A function ID: random, or in one of the ranges calls live in.
fn function_id(rng: &mut XorShift) -> u32 {
    let r = rng.next_u64();
    let low = (r >> 8) as u32;
    match r % 6 {
        0 => low,
        1 | 2 => 0xC600_0000 | (low & 0x7F),
        3 => 0x8400_0000 | (low & 0x1F),
        4 => 0xC400_0000 | (low & 0x1F),
        _ => 0x8000_0000 | (low & 0xFFFF),
    }
}

/// One register image for `id`, its arguments random or boundary values. Memory and console
/// calls get an IPA (x1) no VM can own, so no garbage call maps, unmaps or prints anything.
fn image(rng: &mut XorShift, id: u32) -> Regs {
    let mut regs = [0u64; 18];
    // The upper half of x0 must be ignored: fill it too.
    regs[0] = rng.next_u64() << 32 | u64::from(id);
    for x in &mut regs[1..] {
        let r = rng.next_u64();
        *x = match r % 4 {
            0 => INTERESTING[(r >> 8) as usize % INTERESTING.len()],
            1 => r >> 40,
            _ => r,
        };
    }
    let unmappable = [MEM_MAP, MEM_UNMAP, MEM_PROTECT, MEM_BATCH];
    if unmappable.contains(&id) || (id & 0xFFFF_FFF0) == (console::CONSOLE_WRITE & 0xFFFF_FFF0) {
        regs[1] |= 1 << 39 | 1;
    }
    regs
}

pub fn run(r: &mut Report, info: &hypercall_abi::BootInfo, count: u64) {
    let mut rng = XorShift(0xA77A_C4ED ^ u64::from(info.vm_index));
    let mut hv = hv();
    let (mut unknown, mut known, mut wrong) = (0u64, 0u64, 0u64);
    for i in 0..count {
        let id = function_id(&mut rng);
        if SKIP.contains(&id) {
            continue;
        }
        let regs = image(&mut rng, id);
        let x0 = hv.conduit_mut().call(&regs)[0] as i64;
        let ok = match CallInfo::find(id) {
            None => {
                unknown += 1;
                x0 == Error::NotSupported.code()
            }
            Some(c) if !matches!(c.family, Family::Psci | Family::Smccc) => {
                known += 1;
                x0 == 0 || Error::from_code(x0) != Error::Unknown
            }
            Some(_) => {
                known += 1;
                true
            }
        };
        if !ok {
            wrong += 1;
            if wrong <= 5 {
                crate::println!(
                    "attack: call {id:#010x} with {:x?} answered {x0}",
                    &regs[1..4]
                );
            }
        }
        if i % 64 == 0 {
            let _ = hv.vm_yield();
        }
    }
    let total = unknown + known;
    let what = "garbage register images";
    if wrong == 0 {
        r.blocked(
            format_args!("{total} {what} ({unknown} unknown IDs, {known} known)"),
            "unknown IDs NOT_SUPPORTED, every other answer a documented code",
        );
    } else {
        r.through(
            format_args!("{total} {what} ({unknown} unknown IDs, {known} known)"),
            format_args!("{wrong} undocumented answers"),
        );
    }
}
