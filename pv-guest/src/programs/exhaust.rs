//! `exhaust [regions=N] [binds=N] [notifies=N] [console=N]`: one VM tries to exhaust the host
//! and must be stopped at its own limits, each step ending in its documented result (never a
//! hyp panic or a hang), while the VM beside it (`fill wait`, over channel 0) then maps its
//! whole quota. Prints what limit each step hit.
//!
//! - stage-2 tables, swept: maps and unmaps one page in each 2 MiB of its IPA space above its
//!   own windows (`regions=N` of them, default all), so that a hyp that keeps a level-3 table
//!   behind each would spend 4 KiB of host RAM per region; every map succeeds or is refused
//!   with OUT_OF_MEMORY;
//! - stage-2 tables, held: maps one page per 2 MiB until refused (OUT_OF_MEMORY: its quota or
//!   its table allowance), and keeps them while the other VM runs;
//! - events: binds every source `binds=N` times (the same events, or DENIED) and raises every
//!   event number on itself (INVALID_PARAMETERS past the last);
//! - channels: `notifies=N` doorbells on channel 0, and on channels it lacks;
//! - console: `console=N` writes of 4 KiB with no newline, and one of non-printable bytes;
//! - disk: writes across its whole disk region (the RAM disk where the board has no disk).
//!
//! Then it tells the other VM to go, waits for its answer and exits 0 if every step ended as
//! documented. Run it with `on_fault = "kill"`: it never faults on purpose.

use super::args;
use super::checks::Checks;
use crate::drivers::block::Block;
use crate::drivers::channel::{CHANNEL_IPA, Channel, Volatile};
use crate::mm::batch::BatchPage;
use crate::mm::frames::Frames;
use crate::mm::layout::{GIB, IPA_LIMIT, SCRATCH_BASE};
use crate::{events, hv, println};
use hypercall_abi::event::{EVENT_COUNT, EventSource};
use hypercall_abi::layout::BatchOp;
use hypercall_abi::mem::PAGE_SIZE;
use hypercall_abi::{BatchResult, Error, MemPerms};

/// The 2 MiB a level-3 table covers.
const REGION: u64 = 2 << 20;
/// The attack's IPA space: from above the guest's own windows to the top, less the channel's
/// GiB.
const ATTACK_BASE: u64 = SCRATCH_BASE + GIB;
const CHANNEL_SKIP: core::ops::Range<u64> = CHANNEL_IPA..CHANNEL_IPA + GIB;

/// The IPA of region `i` of the attack space.
fn region(i: u64) -> Option<u64> {
    let mut ipa = ATTACK_BASE + i * REGION;
    if ipa >= CHANNEL_SKIP.start {
        ipa += CHANNEL_SKIP.end - CHANNEL_SKIP.start;
    }
    (ipa < IPA_LIMIT).then_some(ipa)
}

/// Regions in the attack space.
fn regions() -> u64 {
    (IPA_LIMIT - ATTACK_BASE - (CHANNEL_SKIP.end - CHANNEL_SKIP.start)) / REGION
}

fn quota_left() -> u64 {
    hv().vm_info().map_or(0, |i| i.mem_available_bytes)
}

/// Regions a sweep batch covers (two entries each), and entries a sparse batch maps: full
/// lists, the fewest calls.
const SWEEP_BATCH: u64 = 256;
const SPARSE_BATCH: u64 = 512;

/// Maps and unmaps a page in each of `count` regions, [`SWEEP_BATCH`] regions a batch.
fn sweep(c: &mut Checks, batch: &mut BatchPage, count: u64) {
    let mut done = 0;
    while done < count {
        let n = (count - done).min(SWEEP_BATCH);
        let mut b = batch.builder();
        for i in done..done + n {
            let ipa = region(i).expect("within the attack space");
            let pushed = b
                .push(BatchOp::Map, ipa, MemPerms::RW)
                .and_then(|()| b.push(BatchOp::Unmap, ipa, MemPerms::empty()));
            c.check("a sweep entry packs", pushed.is_ok());
        }
        let entries = b.count();
        match batch.submit(entries) {
            Ok(BatchResult {
                first_error: None,
                done: d,
            }) if d == entries => done += n,
            Ok(BatchResult {
                first_error: Some(Error::OutOfMemory),
                done: d,
            }) if d % 2 == 0 => {
                println!(
                    "exhaust: tables swept: {} of {count} regions mapped and unmapped, then \
                     OUT_OF_MEMORY",
                    done + d / 2
                );
                return;
            }
            other => {
                println!("exhaust: FAILED: tables swept: batch at region {done}: {other:?}");
                c.check("every sweep map succeeds or is refused for memory", false);
                return;
            }
        }
    }
    println!("exhaust: tables swept: all {count} regions mapped and unmapped");
}

/// Maps one page per region until refused; keeps them. How many.
fn sparse(c: &mut Checks, batch: &mut BatchPage) -> u64 {
    let total = regions();
    let mut mapped = 0;
    while mapped < total {
        let n = (total - mapped).min(SPARSE_BATCH);
        let mut b = batch.builder();
        for i in mapped..mapped + n {
            let ipa = region(i).expect("within the attack space");
            c.check(
                "a sparse entry packs",
                b.push(BatchOp::Map, ipa, MemPerms::RW).is_ok(),
            );
        }
        let entries = b.count();
        match batch.submit(entries) {
            Ok(BatchResult {
                first_error: None,
                done,
            }) if done == entries => mapped += n,
            Ok(BatchResult {
                first_error: Some(Error::OutOfMemory),
                done,
            }) => {
                mapped += done;
                println!(
                    "exhaust: tables held: {mapped} pages mapped one per 2 MiB, then \
                     OUT_OF_MEMORY with {} KiB of quota left",
                    quota_left() >> 10
                );
                return mapped;
            }
            other => {
                println!("exhaust: FAILED: tables held: batch at region {mapped}: {other:?}");
                c.check("every sparse map succeeds or is refused for memory", false);
                return mapped;
            }
        }
    }
    println!("exhaust: tables held: all {mapped} regions mapped, never refused");
    c.check(
        "the sparse mapping is refused before the IPA space ends",
        false,
    );
    mapped
}

fn events(c: &mut Checks, binds: u64) {
    let mut hv = hv();
    let fixed = [
        EventSource::VirtualTimer,
        EventSource::ConsoleRx,
        EventSource::BlockCompletion,
        EventSource::Channel { channel: 0 },
    ];
    let first: [Result<u32, Error>; 4] = fixed.map(|s| hv.event_bind(s));
    c.check("the event sources bind", first.iter().all(|r| r.is_ok()));
    let mut same = true;
    for i in 0..binds {
        same &= fixed.map(|s| hv.event_bind(s)) == first;
        same &= hv.event_bind(EventSource::Channel {
            channel: 1 + (i as u32 % 1000),
        }) == Err(Error::Denied);
    }
    c.check("binding again gives the same events", same);
    c.expect(
        "binding channel u32::MAX",
        hv.event_bind(EventSource::Channel { channel: u32::MAX }),
        Err(Error::Denied),
    );
    // Raised on itself, masked: every number a VM has, then the first it lacks.
    let raised = (0..EVENT_COUNT)
        .filter(|&e| e != 0 && hv.event_send(0, e).is_ok())
        .count();
    c.expect(
        "raising each event on itself",
        raised,
        EVENT_COUNT as usize - 1,
    );
    c.expect(
        "raising the event past the last",
        hv.event_send(0, EVENT_COUNT),
        Err(Error::InvalidParameters),
    );
    for e in 1..EVENT_COUNT {
        let _ = hv.event_ack(e);
    }
    println!(
        "exhaust: events: {binds} rounds of binds gave the same events (DENIED for channels it \
         lacks), {raised} events raised, INVALID_PARAMETERS past {}",
        EVENT_COUNT - 1
    );
}

fn channels(c: &mut Checks, notifies: u64) {
    let mut hv = hv();
    let sent = (0..notifies)
        .filter(|_| hv.channel_notify(0).is_ok())
        .count() as u64;
    c.expect("every doorbell on its channel", sent, notifies);
    let refused = (1..1000u32)
        .filter(|&ch| hv.channel_notify(ch) == Err(Error::InvalidParameters))
        .count();
    c.expect("doorbells on channels it lacks", refused, 999);
    c.expect(
        "a doorbell on channel u32::MAX",
        hv.channel_notify(u32::MAX),
        Err(Error::InvalidParameters),
    );
    println!(
        "exhaust: channels: {sent} doorbells rung, INVALID_PARAMETERS for the {refused} channels \
         it lacks"
    );
}

/// Writes all of `len` bytes at `ipa` with CONSOLE_WRITE; the calls it took, or None if one
/// failed or consumed nothing.
fn console_write_all(ipa: u64, len: u64) -> Option<u64> {
    let (mut done, mut calls) = (0, 0);
    while done < len {
        match hv().console_write(ipa + done, len - done) {
            Ok(n) if n > 0 && n <= len - done => done += n,
            _ => return None,
        }
        calls += 1;
    }
    Some(calls)
}

fn console(c: &mut Checks, buf: &mut Frames, writes: u64) {
    let bytes = buf.words();
    // Printable and no newline: the hyp must cut lines itself, with nothing growing.
    bytes.fill(u64::from_le_bytes(*b"xxxxxxxx"));
    let mut calls = 0;
    for _ in 0..writes {
        match console_write_all(buf.ipa(), PAGE_SIZE) {
            Some(n) => calls += n,
            None => c.check("a console write of a full page", false),
        }
    }
    // Non-printable bytes, then the newline that ends the flood.
    buf.words().fill(0x0101_0101_0101_0101);
    let odd = console_write_all(buf.ipa(), PAGE_SIZE);
    c.check("a console write of non-printable bytes", odd.is_some());
    buf.words()[0] = u64::from(b'\n');
    c.expect("the newline", console_write_all(buf.ipa(), 1), Some(1));
    println!(
        "exhaust: console: {writes} pages with no newline in {calls} writes, and one \
         non-printable page in {} writes",
        odd.unwrap_or(0)
    );
}

fn disk(c: &mut Checks, buf: &mut Frames) {
    let mut block = match Block::open(crate::boot_info()) {
        Ok(b) => b,
        Err(e) => {
            println!("exhaust: disk: none ({e}): skipped");
            return;
        }
    };
    let chunk = PAGE_SIZE * 16 / 512;
    for (i, w) in buf.words().iter_mut().enumerate() {
        *w = super::pattern::word(0xE4A5, i as u64);
    }
    let ipa = buf.ipa();
    // SAFETY: the buffer's 16 pages, mapped read-write and owned by `buf` for this borrow.
    let bytes = unsafe { core::slice::from_raw_parts(ipa as *const u8, (16 * PAGE_SIZE) as usize) };
    let mut sector = 0;
    while sector < block.sectors {
        let n = chunk.min(block.sectors - sector);
        if let Err(e) = block.write(sector, &bytes[..(n * 512) as usize]) {
            println!("exhaust: disk: the write at sector {sector} refused: {e}");
            c.check(
                "a refused disk write names a documented error",
                e != Error::Unknown,
            );
            return;
        }
        sector += n;
    }
    println!(
        "exhaust: disk: wrote all {} KiB of its region",
        block.sectors / 2
    );
}

/// Tells the VM beside it to go (a message on channel 0) and waits for its answer.
fn hand_over(c: &mut Checks) {
    let mut hv = hv();
    let (ch, event) = match (
        hv.channel_info(0),
        hv.event_bind(EventSource::Channel { channel: 0 }),
    ) {
        (Ok(info), Ok(event)) => (Channel::new(&info), event),
        (info, event) => {
            println!("exhaust: no channel 0 to the other VM: {info:?} {event:?}");
            c.check("a channel to the other VM", false);
            return;
        }
    };
    let _ = hv.event_unmask(event);
    c.check("the go message", ch.send(&mut Volatile, b"go"));
    let _ = hv.channel_notify(0);
    let mut answer = None;
    events::wait(event, || {
        answer = ch.receive(&mut Volatile);
        answer.is_some()
    });
    let answer = answer.expect("waited for it");
    let text = core::str::from_utf8(&answer.data[..answer.len as usize]).unwrap_or("?");
    println!("exhaust: the other VM answered \"{text}\"");
}

pub fn run(argv: &str) -> u64 {
    let mut c = Checks::new("exhaust");
    let count = args::number(argv, "regions").map_or(regions(), |n| n.min(regions()));
    let binds = args::number(argv, "binds").unwrap_or(10_000);
    let notifies = args::number(argv, "notifies").unwrap_or(10_000);
    let writes = args::number(argv, "console").unwrap_or(2);
    let (mut batch, mut buf) = match (BatchPage::new(), Frames::alloc(16, MemPerms::RW)) {
        (Ok(batch), Ok(buf)) => (batch, buf),
        _ => {
            println!("exhaust: no memory for its lists");
            return 1;
        }
    };
    println!(
        "exhaust: {} KiB of quota; sweeping {count} regions of 2 MiB",
        quota_left() >> 10
    );
    sweep(&mut c, &mut batch, count);
    sparse(&mut c, &mut batch);
    events(&mut c, binds);
    channels(&mut c, notifies);
    console(&mut c, &mut buf, writes);
    disk(&mut c, &mut buf);
    hand_over(&mut c);
    c.finish()
}
