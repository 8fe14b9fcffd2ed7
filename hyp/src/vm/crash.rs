//! Crash reports: what a VM ended by a fault (or the hyp, on an exception of its own) was
//! doing: its syndrome, its registers and a frame-pointer backtrace read from its stack.
//! Every line starts `hyp: crash: `, so that `scripts/run.sh` finds the addresses to resolve.
//! The walk is bounded and reads only through the caller's `read_u64`, which refuses what the
//! crashed party may not read (a hostile guest's frame pointer may point anywhere).

#![forbid(unsafe_code)]

use crate::arch::aarch64::esr::Syndrome;
use core::fmt;

/// The most frames a backtrace shows (bounded work in one exit).
pub const MAX_FRAMES: usize = 16;

/// An AAPCS64 frame record: [fp] the caller's frame pointer, [fp + 8] the return address.
const RETURN_ADDRESS_OFFSET: u64 = 8;
const FRAME_RECORD_ALIGN: u64 = 8;

/// Why a backtrace ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A null frame pointer or return address: the outermost frame.
    Null,
    /// A frame pointer not 8-byte aligned.
    Unaligned,
    /// A caller's frame not above its callee's (stacks grow down): a loop or garbage.
    NotIncreasing,
    /// A frame record the reader refused (unmapped, or not the crashed party's memory).
    Unreadable,
    /// [`MAX_FRAMES`] (or the caller's limit) shown.
    Limit,
}

impl Stop {
    fn describe(self) -> &'static str {
        match self {
            Stop::Null => "outermost frame",
            Stop::Unaligned => "unaligned frame pointer",
            Stop::NotIncreasing => "frame pointer not increasing",
            Stop::Unreadable => "frame record not readable",
            Stop::Limit => "frame limit",
        }
    }
}

/// The return addresses of a frame-pointer walk, innermost first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backtrace {
    returns: [u64; MAX_FRAMES],
    len: usize,
    pub stop: Stop,
}

impl Backtrace {
    pub fn returns(&self) -> &[u64] {
        &self.returns[..self.len]
    }
}

/// Walks the frame records from `fp`, at most `limit` (and [`MAX_FRAMES`]) of them, each
/// word read by `read_u64` (None: not readable).
pub fn walk(mut fp: u64, limit: usize, mut read_u64: impl FnMut(u64) -> Option<u64>) -> Backtrace {
    let limit = limit.min(MAX_FRAMES);
    let mut trace = Backtrace {
        returns: [0; MAX_FRAMES],
        len: 0,
        stop: Stop::Limit,
    };
    while trace.len < limit {
        if fp == 0 {
            trace.stop = Stop::Null;
            return trace;
        }
        if !fp.is_multiple_of(FRAME_RECORD_ALIGN) {
            trace.stop = Stop::Unaligned;
            return trace;
        }
        let record = fp
            .checked_add(RETURN_ADDRESS_OFFSET)
            .and_then(|at| Some((read_u64(fp)?, read_u64(at)?)));
        let Some((caller_fp, return_address)) = record else {
            trace.stop = Stop::Unreadable;
            return trace;
        };
        if return_address == 0 {
            trace.stop = Stop::Null;
            return trace;
        }
        trace.returns[trace.len] = return_address;
        trace.len += 1;
        if caller_fp != 0 && caller_fp <= fp {
            trace.stop = Stop::NotIncreasing;
            return trace;
        }
        fp = caller_fp;
    }
    trace
}

/// Emits the general registers four a line, then the stack pointer (`sp_name`: which one).
pub fn emit_registers(
    x: &[u64; 31],
    sp_name: &str,
    sp: u64,
    emit: &mut impl FnMut(fmt::Arguments),
) {
    for (row, chunk) in x.chunks(4).enumerate() {
        let mut line = Line::new();
        for (i, value) in chunk.iter().enumerate() {
            let _ = fmt::write(&mut line, format_args!(" x{} {value:#x}", row * 4 + i));
        }
        if chunk.len() < 4 {
            let _ = fmt::write(&mut line, format_args!(" {sp_name} {sp:#x}"));
        }
        emit(format_args!("hyp: crash:  {}", line.as_str()));
    }
}

/// Emits the backtrace: `#0 pc` the faulting instruction (if known: a panic has none), then
/// the return addresses.
pub fn emit_backtrace(pc: Option<u64>, trace: &Backtrace, emit: &mut impl FnMut(fmt::Arguments)) {
    let first = match pc {
        Some(pc) => {
            emit(format_args!("hyp: crash:   #0 pc {pc:#x}"));
            1
        }
        None => 0,
    };
    for (i, at) in trace.returns().iter().enumerate() {
        emit(format_args!("hyp: crash:   #{} {at:#x}", first + i));
    }
    emit(format_args!(
        "hyp: crash:   backtrace ends: {}",
        trace.stop.describe()
    ));
}

/// A register line, built without the heap (the hyp's own crash may come from its allocator).
struct Line {
    bytes: [u8; 128],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self {
            bytes: [0; 128],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The stack pointer the guest used at the fault, by SPSR.M: SP_EL1 at EL1h, else SP_EL0.
pub fn guest_stack_pointer(spsr: u64, sp_el0: u64, sp_el1: u64) -> (&'static str, u64) {
    const SPSR_M_EL1H: u64 = 0b0101;
    if spsr & 0xf == SPSR_M_EL1H {
        ("sp_el1", sp_el1)
    } else {
        ("sp_el0", sp_el0)
    }
}

/// The report of an exception the hyp took at EL2 (`kind`: its vector): syndrome, registers
/// (`x` as the vector saved them, `sp` before it did), and its own frames, each word read by
/// `read_u64` (which refuses anything outside the hyp's stacks).
pub fn report_hyp_exception(
    kind: u64,
    syndrome: &Syndrome,
    x: &[u64; 31],
    sp: u64,
    elr: u64,
    read_u64: impl FnMut(u64) -> Option<u64>,
    emit: &mut impl FnMut(fmt::Arguments),
) {
    emit(format_args!(
        "hyp: crash: hyp: exception at EL2 (kind {kind}): {syndrome} ELR {elr:#x}"
    ));
    emit_registers(x, "sp_el2", sp, emit);
    emit_backtrace(Some(elr), &walk(x[29], MAX_FRAMES, read_u64), emit);
}

/// The report of a panic of the hyp: its frames from `fp`, the panic handler's.
pub fn report_hyp_panic(
    fp: u64,
    read_u64: impl FnMut(u64) -> Option<u64>,
    emit: &mut impl FnMut(fmt::Arguments),
) {
    emit(format_args!(
        "hyp: crash: hyp: panic, the panic handler's callers:"
    ));
    emit_backtrace(None, &walk(fp, MAX_FRAMES, read_u64), emit);
}

/// The report of `vm`, whose vCPU `v` (its EL1 state loaded on this CPU) is being killed for
/// `reason`: through the console as whole lines, before the kill's own line.
#[cfg(target_os = "none")]
pub fn report_guest(vm: &super::Vm, v: usize, reason: &crate::hypercall::KillReason) {
    use crate::arch::aarch64::translate;
    use crate::arch::stage2::table::read_frame;
    use crate::hypercall::KillReason;
    use crate::owner::Owner;
    let Some(vcpu) = vm.vcpus.get(v) else { return };
    let regs = &vcpu.regs;
    let mut emit = |args: fmt::Arguments| crate::println!("{args}");
    let name = &vm.name;
    let (elr, spsr) = (regs.elr, regs.spsr);
    match reason {
        KillReason::Trap { syndrome, .. } | KillReason::Stage2Fault { syndrome, .. } => {
            emit(format_args!(
                "hyp: crash: VM {name}: {syndrome} IPA {:#x} ELR {elr:#x} SPSR {spsr:#x}",
                syndrome.ipa
            ))
        }
        other => emit(format_args!(
            "hyp: crash: VM {name}: {other}; ELR {elr:#x} SPSR {spsr:#x}"
        )),
    }
    let (sp_el0, sp_el1) = translate::guest_stack_pointers();
    let (sp_name, sp) = guest_stack_pointer(spsr, sp_el0, sp_el1);
    emit_registers(&regs.x, sp_name, sp, &mut emit);
    let own = Owner::Vm(vm.index.owner());
    let trace = walk(regs.x[29], MAX_FRAMES, |va| {
        let pa = translate::guest_read_pa(va)?;
        // Only the VM's own frames: not a shared page, a device, another VM's or the hyp's.
        if crate::mm::frames::owner(pa) != own {
            return None;
        }
        let mut word = [0u8; 8];
        read_frame(pa, &mut word);
        Some(u64::from_le_bytes(word))
    });
    emit_backtrace(Some(elr), &trace, &mut emit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// A stack of frame records at `fps`, each returning to `0x1000 + its index`, the last
    /// record's caller `last_fp`.
    fn stack(fps: &[u64], last_fp: u64) -> HashMap<u64, u64> {
        let mut memory = HashMap::new();
        for (i, &fp) in fps.iter().enumerate() {
            memory.insert(fp, fps.get(i + 1).copied().unwrap_or(last_fp));
            memory.insert(fp + 8, 0x1000 + i as u64);
        }
        memory
    }

    fn walk_in(memory: &HashMap<u64, u64>, fp: u64, limit: usize) -> Backtrace {
        walk(fp, limit, |va| memory.get(&va).copied())
    }

    #[test]
    fn a_walk_ends_at_the_outermost_frame() {
        let memory = stack(&[0x8000, 0x8040, 0x8100], 0);
        let trace = walk_in(&memory, 0x8000, MAX_FRAMES);
        assert_eq!(trace.returns(), &[0x1000, 0x1001, 0x1002]);
        assert_eq!(trace.stop, Stop::Null);
        assert_eq!(walk_in(&memory, 0, MAX_FRAMES).returns(), &[] as &[u64]);
    }

    #[test]
    fn a_walk_stops_at_what_it_cannot_trust() {
        // A caller's frame below its callee's: a loop.
        let looping = stack(&[0x8000, 0x8040], 0x8000);
        let trace = walk_in(&looping, 0x8000, MAX_FRAMES);
        assert_eq!(
            (trace.returns().len(), trace.stop),
            (2, Stop::NotIncreasing)
        );
        // A record naming itself as its caller's.
        let own_caller = stack(&[0x8000], 0x8000);
        let trace = walk_in(&own_caller, 0x8000, MAX_FRAMES);
        assert_eq!(
            (trace.returns().len(), trace.stop),
            (1, Stop::NotIncreasing)
        );
        // A frame pointer the reader refuses (another VM's memory, unmapped).
        let refused = stack(&[0x8000], 0x9000);
        let trace = walk_in(&refused, 0x8000, MAX_FRAMES);
        assert_eq!(
            (trace.returns(), trace.stop),
            (&[0x1000][..], Stop::Unreadable)
        );
        // Unaligned, and at the very top of the address space.
        let unaligned = stack(&[0x8000], 0x8044);
        assert_eq!(walk_in(&unaligned, 0x8000, 4).stop, Stop::Unaligned);
        assert_eq!(walk_in(&unaligned, u64::MAX - 7, 4).stop, Stop::Unreadable);
    }

    #[test]
    fn a_walk_is_bounded() {
        let fps: Vec<u64> = (0..40).map(|i| 0x8000 + 0x20 * i).collect();
        let memory = stack(&fps, 0);
        let trace = walk_in(&memory, 0x8000, 3);
        assert_eq!((trace.returns().len(), trace.stop), (3, Stop::Limit));
        let trace = walk_in(&memory, 0x8000, usize::MAX);
        assert_eq!(
            (trace.returns().len(), trace.stop),
            (MAX_FRAMES, Stop::Limit)
        );
    }

    fn lines(f: impl FnOnce(&mut dyn FnMut(fmt::Arguments))) -> Vec<String> {
        let mut out = Vec::new();
        f(&mut |args| out.push(args.to_string()));
        out
    }

    #[test]
    fn registers_are_four_a_line_then_the_stack_pointer() {
        let x: [u64; 31] = core::array::from_fn(|i| i as u64 * 0x10);
        let out = lines(|emit| emit_registers(&x, "sp_el1", 0x4008_f000, &mut |a| emit(a)));
        assert_eq!(out.len(), 8);
        assert_eq!(out[0], "hyp: crash:   x0 0x0 x1 0x10 x2 0x20 x3 0x30");
        assert_eq!(
            out[7],
            "hyp: crash:   x28 0x1c0 x29 0x1d0 x30 0x1e0 sp_el1 0x4008f000"
        );
    }

    #[test]
    fn a_backtrace_numbers_its_frames_from_the_pc() {
        let memory = stack(&[0x8000, 0x8040], 0);
        let trace = walk_in(&memory, 0x8000, MAX_FRAMES);
        let out = lines(|emit| emit_backtrace(Some(0x4008_0010), &trace, &mut |a| emit(a)));
        assert_eq!(
            out,
            [
                "hyp: crash:   #0 pc 0x40080010",
                "hyp: crash:   #1 0x1000",
                "hyp: crash:   #2 0x1001",
                "hyp: crash:   backtrace ends: outermost frame",
            ]
        );
    }

    #[test]
    fn the_hyps_own_exception_is_reported_whole() {
        let memory = stack(&[0x8000], 0);
        let mut x = [0u64; 31];
        x[29] = 0x8000;
        let syndrome = Syndrome::decode(0x9600_0004, 0xdead_0000, 0);
        let out = lines(|emit| {
            report_hyp_exception(
                2,
                &syndrome,
                &x,
                0x9000,
                0x7fc0_1234,
                |va| memory.get(&va).copied(),
                &mut |a| emit(a),
            )
        });
        assert!(
            out[0].starts_with(
                "hyp: crash: hyp: exception at EL2 (kind 2): ESR 0x96000004 (data abort"
            )
        );
        assert!(
            out[0].ends_with("FAR 0xdead0000 ELR 0x7fc01234"),
            "{}",
            out[0]
        );
        assert!(
            out[8].ends_with("x29 0x8000 x30 0x0 sp_el2 0x9000"),
            "{}",
            out[8]
        );
        assert_eq!(
            &out[9..11],
            ["hyp: crash:   #0 pc 0x7fc01234", "hyp: crash:   #1 0x1000"]
        );
        let out =
            lines(|emit| report_hyp_panic(0x8000, |va| memory.get(&va).copied(), &mut |a| emit(a)));
        assert_eq!(
            &out[1..3],
            [
                "hyp: crash:   #0 0x1000",
                "hyp: crash:   backtrace ends: outermost frame"
            ]
        );
    }

    #[test]
    fn the_stack_pointer_is_the_modes() {
        assert_eq!(guest_stack_pointer(0x3c5, 1, 2), ("sp_el1", 2));
        assert_eq!(guest_stack_pointer(0x3c4, 1, 2), ("sp_el0", 1));
        assert_eq!(guest_stack_pointer(0x0, 1, 2), ("sp_el0", 1));
    }
}
