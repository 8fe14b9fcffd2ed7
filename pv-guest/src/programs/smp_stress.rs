//! `smp stress [ms=M]`: concurrent `mem.map`/`mem.unmap` from several vCPUs of one VM against a
//! reader that must never see a stale or foreign page. Needs `on_fault = "inject"` and at least
//! 2 vCPUs.
//!
//! vCPUs 1..n are writers: for about M ms (default 300), each maps its own [`PAGES`] pages,
//! checks each reads zero (a fresh page), writes each with its tag and a sequence number (one
//! more per mapping), checks them again and unmaps them. vCPU 0 is the reader: it reads the
//! first word of every writer's pages over and over, each read a probe. A read must either
//! fault (the page is unmapped: a data abort at that address), read zero (mapped, not yet
//! written), or read that page's own tag with a sequence number not older than the last one
//! it saw there. Anything else is a violation; any violation (reader or writer) fails the VM.
//! Coordination goes through atomics in the image's .bss, which every vCPU's stage 1 maps.

use super::args;
use crate::arch::{MAX_VCPUS, access, timer};
use crate::{fault, hv, println};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use hypercall_abi::{BootInfo, MemPerms};

/// Pages each writer maps and unmaps.
const PAGES: usize = 4;
/// Where the writers' pages are: writer w's page k at `BASE + (w * PAGES + k) * 4096` (far
/// above the image and the `smp` program's pages; the stage-1 identity map covers it).
const BASE: u64 = 0x71_0000_0000;
/// The top byte of every value a writer writes.
const MAGIC: u64 = 0xA5;

/// Each writer's end: set once it has unmapped its pages for the last time.
static DONE: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];
/// Each writer's violations (a fresh page not zero, its own page changed under it, a call
/// refused).
static WRITER_BAD: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
/// Each writer's completed rounds (map, write, check, unmap of all its pages).
static ROUNDS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
/// The newest sequence number the reader has seen tagged in each writer's first page: every
/// few rounds a writer waits for it, so the reader surely sees mapped pages (not only faults),
/// however the host schedules the vCPUs.
static ACKED: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
/// How long a writer waits for the reader's acknowledgement at most, in milliseconds.
const ACK_WAIT_MS: u64 = 50;
/// How long the writers run, in counter ticks (vCPU 0 sets it before starting them).
static DURATION: AtomicU64 = AtomicU64::new(0);

fn page(w: usize, k: usize) -> u64 {
    BASE + ((w * PAGES + k) as u64) * 4096
}

/// What writer `w` writes in its page `k` for its `seq`-th mapping of it.
fn value(w: usize, k: usize, seq: u64) -> u64 {
    MAGIC << 56 | (w as u64) << 52 | (k as u64) << 48 | (seq & 0xffff_ffff_ffff)
}

/// A value's writer, page and sequence number, if it has the magic byte.
fn decode(v: u64) -> Option<(usize, usize, u64)> {
    (v >> 56 == MAGIC).then_some((
        (v >> 52 & 0xf) as usize,
        (v >> 48 & 0xf) as usize,
        v & 0xffff_ffff_ffff,
    ))
}

fn read(ipa: u64) -> u64 {
    // SAFETY: an aligned read of a page this VM maps (or, inside a probe, of one that may be
    // unmapped and fault); no Rust object lives there.
    unsafe { access::read_u64(ipa) }
}

fn write(ipa: u64, v: u64) {
    // SAFETY: an aligned write to a page this vCPU just mapped RW, which only it writes.
    unsafe { access::write_u64(ipa, v) }
}

/// A writer vCPU's part.
pub fn secondary(w: usize) {
    let Some(slot) = DONE.get(w) else { return };
    let mut hv = hv();
    let mut bad = 0u32;
    let mut seq = [0u64; PAGES];
    let deadline = timer::ticks() + DURATION.load(Ordering::SeqCst);
    let mut round = 0u64;
    'rounds: while round < 8 || timer::ticks() < deadline {
        for (k, seq) in seq.iter_mut().enumerate() {
            let p = page(w, k);
            if hv.mem_map(p, 1, MemPerms::RW).is_err() {
                bad += 1;
                break 'rounds;
            }
            *seq += 1;
            if read(p) != 0 || read(p + 4088) != 0 {
                bad += 1; // a fresh page must be zero
            }
            write(p + 4088, value(w, k, *seq));
            write(p, value(w, k, *seq));
        }
        // Every fourth round, hold the pages mapped until the reader has seen one of them (or
        // a while has passed): the check then surely covers mapped pages, not only faults.
        if round.is_multiple_of(4) {
            let wait_end = timer::ticks() + timer::frequency() * ACK_WAIT_MS / 1000;
            while ACKED[w].load(Ordering::SeqCst) < seq[0] && timer::ticks() < wait_end {
                let _ = hv.vm_yield();
            }
        }
        // Give the CPU up now and then in either state, so the reader sees both even when the
        // vCPUs share one CPU.
        if round.is_multiple_of(3) {
            let _ = hv.vm_yield();
        }
        for (k, seq) in seq.iter().enumerate() {
            let p = page(w, k);
            let v = value(w, k, *seq);
            if read(p) != v || read(p + 4088) != v {
                bad += 1; // its own page changed under it
            }
            if hv.mem_unmap(p, 1).is_err() {
                bad += 1;
                break 'rounds;
            }
        }
        if round % 3 == 1 {
            let _ = hv.vm_yield();
        }
        round += 1;
    }
    WRITER_BAD[w].store(bad, Ordering::SeqCst);
    ROUNDS[w].store(round, Ordering::SeqCst);
    slot.store(true, Ordering::SeqCst);
}

/// What the reader saw.
#[derive(Default)]
struct Seen {
    reads: u64,
    faults: u64,
    zeros: u64,
    tagged: u64,
    violations: u64,
}

impl Seen {
    fn violation(&mut self, w: usize, k: usize, what: core::fmt::Arguments) {
        self.violations += 1;
        if self.violations <= 5 {
            println!("smp stress: VIOLATION: writer {w} page {k}: {what}");
        }
    }
}

pub fn run(info: &BootInfo, argv: &str) -> u64 {
    let n = (info.vcpu_count as usize).min(MAX_VCPUS);
    if n < 2 {
        println!("smp stress: needs at least 2 vCPUs (a reader and a writer)");
        return 1;
    }
    let ms = args::number(argv, "ms").unwrap_or(300);
    DURATION.store(timer::frequency() * ms / 1000, Ordering::SeqCst);
    let mut failed = super::smp::start_others(info, "smp stress");
    let mut last = [[0u64; PAGES]; MAX_VCPUS];
    let mut s = Seen::default();
    loop {
        let finished = (1..n).all(|w| DONE[w].load(Ordering::SeqCst));
        for (w, last) in last.iter_mut().enumerate().take(n).skip(1) {
            for (k, last) in last.iter_mut().enumerate() {
                let p = page(w, k);
                let mut v = 0;
                s.reads += 1;
                match fault::probe_fault(|| v = read(p)) {
                    Some(f) if f.is_data_abort() && f.far == p => s.faults += 1,
                    Some(f) => s.violation(w, k, format_args!("unexpected fault {f:x?}")),
                    None if v == 0 => s.zeros += 1,
                    None => match decode(v) {
                        Some((ow, ok, seq)) if ow == w && ok == k && seq >= *last => {
                            *last = seq;
                            s.tagged += 1;
                            if k == 0 {
                                ACKED[w].fetch_max(seq, Ordering::SeqCst);
                            }
                        }
                        Some((ow, ok, seq)) => s.violation(
                            w,
                            k,
                            format_args!("read writer {ow} page {ok} seq {seq} (last seen {last})"),
                        ),
                        None => s.violation(w, k, format_args!("read foreign {v:#x}")),
                    },
                }
            }
        }
        if finished {
            break;
        }
    }
    failed += super::smp::wait_others_off(info, "smp stress");
    let mut rounds = 0;
    for w in 1..n {
        rounds += ROUNDS[w].load(Ordering::SeqCst);
        let bad = WRITER_BAD[w].load(Ordering::SeqCst);
        if bad != 0 {
            println!("smp stress: writer {w}: {bad} violations on its own pages");
            failed += 1;
        }
    }
    println!(
        "smp stress: {} writers, {rounds} rounds of {PAGES} pages; reader: {} reads, {} faults, \
         {} zero, {} tagged, {} violations",
        n - 1,
        s.reads,
        s.faults,
        s.zeros,
        s.tagged,
        s.violations
    );
    if s.faults == 0 || s.tagged == 0 {
        println!("smp stress: the reader never saw a page both mapped and unmapped: no check");
        failed += 1;
    }
    if failed != 0 || s.violations != 0 {
        println!("smp stress: FAILED");
        return 1;
    }
    println!("smp stress: all {} vCPUs, no stale or foreign page", n);
    0
}
