//! Exit tracing: each CPU keeps the last [`RING_LEN`] guest exits it handled in its own ring
//! (percpu.rs), off unless the command line (`/chosen/bootargs`) says `pvhyp.trace`. The rings
//! are dumped decoded at the end of a run and when the hyp stops on a panic or a fault of its
//! own. The ring, its records and their decoding are generic, tested on the host.

#![forbid(unsafe_code)]

use crate::arch::aarch64::esr::Syndrome;
use crate::vm::stats::ExitKind;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// Exits each CPU remembers (a power of two: the slot is the sequence number masked).
pub const RING_LEN: usize = 256;

/// The bootargs word that turns tracing on.
pub const BOOTARG: &str = "pvhyp.trace";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether `bootargs` (the device tree's `/chosen/bootargs`) asks for tracing: the word
/// [`BOOTARG`] among its space-separated words; the others are not ours and are ignored.
pub fn requested(bootargs: Option<&str>) -> bool {
    bootargs.is_some_and(|args| args.split_ascii_whitespace().any(|w| w == BOOTARG))
}

/// Turns tracing on or off for the whole run (at boot, before any guest runs).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether exits are traced: one load and one branch on the exit path when off.
#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// [`Record::esr`] of an exit by a physical interrupt: exception class 0x3f, which no
/// synchronous exception has (the architecture reserves it).
pub const ESR_IRQ: u32 = 0xffff_ffff;
/// [`Record::esr`] of an exit by an FIQ or SError (class 0x3f too).
pub const ESR_OTHER_ASYNC: u32 = 0xfc00_0000;

/// One guest exit as the trace remembers it: raw values, copied as they are on the exit path
/// (three store pairs: the fields are in the order the
/// registers come), decoded only when dumped. 64 bytes, so a slot's address
/// is one shift away. The function and the IPA have a field each although no exit needs both:
/// choosing one on the general exit path costs more than the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Record {
    /// CNTPCT_EL0 when a call's or an interrupt's handling ended, when any other exit was
    /// decoded (where its fields are in registers: vm::run).
    pub counter: u64,
    /// x0 after a call's handling (its result); for another exit, x0 when it was recorded.
    pub result: u64,
    /// x0 at the exit (a hypercall's function ID).
    pub function: u64,
    /// The stage-2 fault's IPA (meaningful for stage-2 faults only).
    pub ipa: u64,
    /// ESR_EL2's low 32 bits for a synchronous exit, else [`ESR_IRQ`] or [`ESR_OTHER_ASYNC`].
    pub esr: u32,
    /// [`Record::who`] of the VM and vCPU, made when the vCPU is loaded: beside `esr`, the two
    /// are one store pair.
    pub who: u32,
}

impl Record {
    /// The [`Record::who`] of vCPU `vcpu` of VM `vm` (their indices).
    pub const fn who(vm: u16, vcpu: u16) -> u32 {
        vm as u32 | (vcpu as u32) << 16
    }

    /// The VM's index (the manifest's order).
    pub fn vm(&self) -> u16 {
        self.who as u16
    }

    pub fn vcpu(&self) -> u16 {
        (self.who >> 16) as u16
    }

    /// ESR_EL2's exception class.
    pub fn ec(&self) -> u8 {
        ((self.esr >> 26) & 0x3f) as u8
    }

    pub fn kind(&self) -> ExitKind {
        match self.esr {
            ESR_IRQ => ExitKind::Irq,
            ESR_OTHER_ASYNC => ExitKind::Other,
            esr => ExitKind::of(Syndrome::decode(u64::from(esr), 0, 0).class),
        }
    }
}

/// The last `N` records, overwriting the oldest.
pub struct Ring<T, const N: usize> {
    slots: [T; N],
    /// Records ever written: the next one's sequence number.
    written: u64,
}

impl<T: Copy, const N: usize> Ring<T, N> {
    const POWER_OF_TWO: () = assert!(N.is_power_of_two());

    /// An empty ring, its slots filled with `blank` (never shown).
    pub const fn new(blank: T) -> Self {
        let () = Self::POWER_OF_TWO;
        Self {
            slots: [blank; N],
            written: 0,
        }
    }

    /// Appends `record`, over the oldest one when the ring is full: the slot is the sequence
    /// number masked (no bounds check: `N` is a power of two).
    #[inline(always)]
    pub fn record(&mut self, record: T) {
        self.slots[self.written as usize & (N - 1)] = record;
        self.written = self.written.wrapping_add(1);
    }

    /// Records ever appended (those before the last `N` are gone).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The records kept, oldest first, each with its sequence number.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> + '_ {
        let first = self.written.saturating_sub(N as u64);
        (first..self.written).map(move |seq| (seq, &self.slots[seq as usize & (N - 1)]))
    }
}

/// One record decoded for the dump: `hyp: trace: cpu=C seq=S counter=T vm=V vcpu=P kind=K
/// ec=0xEC` with `function=` and `result=` for a hypercall and `ipa=` for a stage-2 fault.
pub struct Line<'a> {
    pub cpu: usize,
    pub seq: u64,
    pub record: &'a Record,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.record;
        let kind = r.kind();
        write!(
            f,
            "hyp: trace: cpu={} seq={} counter={} vm={} vcpu={} kind={} ec={:#04x}",
            self.cpu,
            self.seq,
            r.counter,
            // The narrow fields as u32: no Display or hex of u8 and u16 in the Image.
            u32::from(r.vm()),
            u32::from(r.vcpu()),
            kind.name(),
            u32::from(r.ec())
        )?;
        match kind {
            // Only a call's record is made after its handling: HVC with another immediate
            // and SMC, refused, are recorded as decoded (vm::run).
            ExitKind::Hypercall if r.esr == crate::arch::aarch64::exception::ESR_HVC0 => {
                write!(f, " function={:#x} result={:#x}", r.function, r.result)
            }
            ExitKind::Hypercall => write!(f, " function={:#x}", r.function),
            ExitKind::Stage2 => write!(f, " ipa={:#x}", r.ipa),
            _ => Ok(()),
        }
    }
}

/// Writes CPU `cpu`'s ring to `out`, one line a record, oldest first, after a header line
/// saying how many were recorded and kept.
pub fn dump<const N: usize>(
    cpu: usize,
    ring: &Ring<Record, N>,
    mut out: impl FnMut(fmt::Arguments),
) {
    let kept = ring.written().min(N as u64);
    out(format_args!(
        "hyp: trace: cpu={cpu} recorded={} kept={kept}",
        ring.written()
    ));
    for (seq, record) in ring.iter() {
        out(format_args!("{}", Line { cpu, seq, record }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    #[test]
    fn ring_keeps_the_last_n_oldest_first() {
        let mut ring: Ring<u32, 4> = Ring::new(0);
        assert_eq!(ring.iter().count(), 0);
        for i in 1..=3 {
            ring.record(i);
        }
        let kept: Vec<(u64, u32)> = ring.iter().map(|(s, &r)| (s, r)).collect();
        assert_eq!(kept, [(0, 1), (1, 2), (2, 3)]);
        for i in 4..=10 {
            ring.record(i);
        }
        let kept: Vec<(u64, u32)> = ring.iter().map(|(s, &r)| (s, r)).collect();
        assert_eq!(kept, [(6, 7), (7, 8), (8, 9), (9, 10)]);
        assert_eq!(ring.written(), 10);
    }

    #[test]
    fn ring_wraps_exactly_at_n() {
        let mut ring: Ring<u32, 2> = Ring::new(0);
        ring.record(1);
        ring.record(2);
        let kept: Vec<u32> = ring.iter().map(|(_, &r)| r).collect();
        assert_eq!(kept, [1, 2]);
        ring.record(3);
        let kept: Vec<u32> = ring.iter().map(|(_, &r)| r).collect();
        assert_eq!(kept, [2, 3]);
    }

    #[test]
    fn bootargs_ask_by_the_whole_word() {
        assert!(requested(Some("pvhyp.trace")));
        assert!(requested(Some("console=ttyAMA0  pvhyp.trace quiet")));
        assert!(!requested(Some("pvhyp.tracer")));
        assert!(!requested(Some("xpvhyp.trace")));
        assert!(!requested(Some("")));
        assert!(!requested(None));
    }

    #[test]
    fn lines_decode_what_each_kind_has() {
        let hvc = Record {
            counter: 77,
            who: Record::who(1, 2),
            esr: crate::arch::aarch64::exception::ESR_HVC0,
            function: 0xc600_0001,
            result: 0,
            ipa: 0xdead,
        };
        let line = Line {
            cpu: 3,
            seq: 9,
            record: &hvc,
        }
        .to_string();
        assert_eq!(
            line,
            "hyp: trace: cpu=3 seq=9 counter=77 vm=1 vcpu=2 kind=hypercall ec=0x16 \
             function=0xc6000001 result=0x0"
        );
        // HVC #1, refused, recorded as decoded: no result.
        let hvc1 = Record {
            esr: crate::arch::aarch64::exception::ESR_HVC0 | 1,
            ..hvc
        };
        let line = Line {
            cpu: 0,
            seq: 0,
            record: &hvc1,
        }
        .to_string();
        assert!(line.ends_with("ec=0x16 function=0xc6000001"), "{line}");
        let fault = Record {
            esr: 0x24 << 26 | 0x46,
            ipa: 0x9000_0000,
            ..hvc
        };
        let line = Line {
            cpu: 0,
            seq: 0,
            record: &fault,
        }
        .to_string();
        assert!(
            line.ends_with("vm=1 vcpu=2 kind=stage2 ec=0x24 ipa=0x90000000"),
            "{line}"
        );
        let irq = Record {
            esr: ESR_IRQ,
            ..hvc
        };
        let line = Line {
            cpu: 0,
            seq: 0,
            record: &irq,
        }
        .to_string();
        assert!(line.ends_with("kind=irq ec=0x3f"), "{line}");
        let wfi = Record {
            esr: 0x01 << 26,
            ..hvc
        };
        let line = Line {
            cpu: 0,
            seq: 0,
            record: &wfi,
        }
        .to_string();
        assert!(line.ends_with("kind=wfi ec=0x01"), "{line}");
        let serror = Record {
            esr: ESR_OTHER_ASYNC,
            ..hvc
        };
        let line = Line {
            cpu: 0,
            seq: 0,
            record: &serror,
        }
        .to_string();
        assert!(line.ends_with("kind=other ec=0x3f"), "{line}");
    }

    #[test]
    fn dump_says_what_was_lost() {
        let mut ring: Ring<Record, 2> = Ring::new(Record::default());
        for counter in 0..3 {
            ring.record(Record {
                counter,
                ..Record::default()
            });
        }
        let mut lines: Vec<String> = Vec::new();
        dump(1, &ring, |args| lines.push(args.to_string()));
        assert_eq!(lines[0], "hyp: trace: cpu=1 recorded=3 kept=2");
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("seq=1 counter=1 "), "{}", lines[1]);
        assert!(lines[2].contains("seq=2 counter=2 "), "{}", lines[2]);
    }
}
