//! The fuzzer on the target: setup, the call loop, the corrupting second vCPU.

use super::draw::{self, Family, P, Prep, SANDBOX_PAGES, Targets, sandbox_ipa};
use super::oracle::{self, Model};
use super::rng::{Rng, pick};
use crate::arch::hvc::call_all;
use crate::mm::batch::BatchPage;
use crate::programs::{args, pattern};
use crate::{hv, println};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use hypercall_abi::layout::{BlockDesc, RingHeader};
use hypercall_abi::{BootInfo, CallInfo, Error, MemPerms, Regs, console, event, mem};

/// Calls per window (the second vCPU corrupts one page for a window).
const WINDOW: u64 = 500;
/// The event CPU_SUSPEND is made to find deliverable.
const SUSPEND_EVENT: u32 = 200;

/// What the second vCPU does.
const IDLE: u8 = 0;
const BATCH: u8 = 1;
const CONSOLE: u8 = 2;
const BLOCK: u8 = 3;
const STOP: u8 = 4;

static MODE: AtomicU8 = AtomicU8::new(IDLE);
/// The mode the second vCPU last saw (it acknowledges a pause by showing IDLE).
static SEEN: AtomicU8 = AtomicU8::new(STOP);
/// Writes the second vCPU made.
static CORRUPTIONS: AtomicU64 = AtomicU64::new(0);
/// Its generator's seed.
static SEED: AtomicU64 = AtomicU64::new(0);
static TARGETS: spin::Mutex<Option<Targets>> = spin::Mutex::new(None);

/// The guarded region: a pattern no call may change (4 pages of .bss, page-aligned). Every
/// word has a reserved bit of a batch entry set, so as a batch list it is refused.
#[repr(C, align(4096))]
struct Guarded([u64; 2048]);
static mut GUARDED: Guarded = Guarded([0; 2048]);

/// Printable text for console writes: lines of `fuzz text` and digits, in `.rodata`.
#[repr(C, align(4096))]
struct Text([u8; draw::TEXT_BYTES as usize]);
static TEXT: Text = Text(text());

const fn text() -> [u8; draw::TEXT_BYTES as usize] {
    let mut t = [b' '; draw::TEXT_BYTES as usize];
    let word = b"fuzz text ";
    let mut i = 0;
    while i < t.len() {
        t[i] = if i % 64 == 63 {
            b'\n'
        } else if i % 64 < 10 {
            word[i % 64]
        } else {
            b'0' + (i % 10) as u8
        };
        i += 1;
    }
    t
}

/// Word `i` of the guarded region's pattern.
fn guarded_word(seed: u64, i: usize) -> u64 {
    pattern::word(seed, i as u64) | 1 << 5
}

fn guarded() -> &'static mut [u64] {
    // SAFETY: only vCPU 0's fuzzer touches GUARDED, and only through this one borrow at a time
    // (filled once, then read).
    // (Guarded is repr(C) around the array alone.)
    unsafe { &mut *(&raw mut GUARDED).cast::<[u64; 2048]>() }
}

fn page_words(ipa: u64) -> [u64; 512] {
    let mut words = [0u64; 512];
    for (i, w) in words.iter_mut().enumerate() {
        // SAFETY: a readable page of ours (VA = IPA), read a word at a time.
        *w = unsafe { core::ptr::read_volatile((ipa + 8 * i as u64) as *const u64) };
    }
    words
}

fn write_u64(ipa: u64, v: u64) {
    // SAFETY: an aligned word of a writable page of ours that holds no Rust object (a shared
    // page or the batch list page).
    unsafe { core::ptr::write_volatile(ipa as *mut u64, v) }
}

fn write_u32(ipa: u64, v: u32) {
    // SAFETY: as `write_u64`.
    unsafe { core::ptr::write_volatile(ipa as *mut u32, v) }
}

fn block_slot(t: &Targets, index: u32) -> u64 {
    t.block_ring
        + RingHeader::SLOTS_OFFSET as u64
        + u64::from(index % hypercall_abi::block::BLOCK_RING_ENTRIES) * 32
}

fn write_desc(t: &Targets, index: u32, d: &BlockDesc) {
    let at = block_slot(t, index);
    // SAFETY: a 32-byte slot of the block ring page (RW, shared with the hyp only).
    unsafe { core::ptr::write_volatile(at as *mut BlockDesc, *d) }
}

/// The block ring's consumer index as the hyp last wrote it.
fn ring_consumer(t: &Targets) -> u32 {
    let at =
        t.block_ring + core::mem::offset_of!(hypercall_abi::layout::RingHeader, consumer) as u64;
    // SAFETY: an aligned u32 of the block ring page.
    unsafe { core::ptr::read_volatile(at as *const u32) }
}

fn read_status(t: &Targets, index: u32) -> i32 {
    let at = block_slot(t, index) + 4;
    // SAFETY: an aligned i32 of the block ring page.
    unsafe { core::ptr::read_volatile(at as *const i32) }
}

/// Counts per family, errors.
struct Tally {
    calls: u64,
    per_family: [u64; Family::ALL.len()],
    errors: u64,
}

struct Fuzzer {
    t: Targets,
    model: Model,
    rng: Rng,
    seed: u64,
    trace: bool,
    /// Check the guarded region after every call, not only between windows.
    watch: bool,
    tally: Tally,
    /// The batch list as the fuzzer last wrote it.
    list: [u64; mem::MEM_BATCH_MAX as usize],
    guarded_sum: u64,
    text_sum: u64,
    boot_info_sum: u64,
    /// A read taken into the block ring page may not have landed yet (on a device requests
    /// complete later): the slots are not the fuzzer's to check until every one taken is done.
    ring_read_pending: bool,
}

/// A failed invariant: everything to reproduce it.
struct Failure;

impl Fuzzer {
    /// Makes one call (counted or bookkeeping) and checks it; the answer.
    fn call(&mut self, what: u64, regs: &Regs, batch: Option<&[u64]>) -> Result<Regs, Failure> {
        if self.trace {
            println!("fuzz: call #{what} {} {:x?}", name(regs), &regs[..4]);
        }
        let out = call_all(regs);
        let id = regs[0] as u32;
        if matches!(id, console::CONSOLE_WRITE | console::CONSOLE_NOTIFY)
            && out[0] == 0
            && out[1] > 0
        {
            CONSOLE_DIRTY.store(true, Ordering::SeqCst);
        }
        if let Err(why) = oracle::check(&self.t, &self.model, regs, &out) {
            self.fail(what, regs, &out, why.as_str());
            return Err(Failure);
        }
        if let Err(why) = event_page_agrees(&self.t, regs, &out) {
            self.fail(what, regs, &out, why);
            return Err(Failure);
        }
        let known = match batch {
            Some(_) if MODE.load(Ordering::SeqCst) == BATCH => None,
            other => other,
        };
        self.model.apply(regs, &out, known);
        Ok(out)
    }

    /// A bookkeeping call with plain arguments.
    fn bookkeeping(&mut self, id: u32, args: [u64; 3]) -> Result<Regs, Failure> {
        let mut regs = [0; 18];
        regs[0] = id.into();
        regs[1..4].copy_from_slice(&args);
        for (i, r) in regs.iter_mut().enumerate().skip(4) {
            *r = 0xB00C_0000 + i as u64;
        }
        self.call(self.tally.calls, &regs, None)
    }

    fn fail(&self, what: u64, regs: &Regs, out: &Regs, why: &str) {
        pause();
        resync_console();
        println!(
            "fuzz: FAILED seed={} call #{what} {} x0..x3={:x?} -> x0..x3={:x?}: expected {why}",
            self.seed,
            name(regs),
            &regs[..4],
            &out[..4]
        );
    }

    fn fail_state(&self, why: core::fmt::Arguments) -> Failure {
        pause();
        resync_console();
        println!(
            "fuzz: FAILED seed={} after call #{}: {why}",
            self.seed, self.tally.calls
        );
        Failure
    }

    /// One drawn call with its preparation.
    fn one(&mut self) -> Result<(), Failure> {
        let mut d = draw::call(&mut self.rng, &self.t, self.model.block_consumer);
        for r in &mut d.regs[4..] {
            *r = draw::any_value(&mut self.rng);
        }
        let n = self.tally.calls;
        let mut batch = None;
        let mut descs = [BlockDesc {
            op: 0,
            status: 0,
            sector: 0,
            buf_ipa: 0,
            len: 0,
            reserved: 0,
        }; 64];
        let mut taken = 0;
        match d.prep {
            Prep::None => {}
            Prep::BatchList(count) => {
                for i in 0..count as usize {
                    self.list[i] = draw::batch_entry(&mut self.rng, &self.t);
                    write_u64(self.t.batch_list + 8 * i as u64, self.list[i]);
                }
                batch = Some(count as usize);
            }
            Prep::BlockRing(_) if self.t.block_ring == 0 => {}
            Prep::BlockRing(ahead) => {
                for k in 0..ahead {
                    descs[k as usize] = draw::block_desc(&mut self.rng, &self.t);
                    write_desc(
                        &self.t,
                        self.model.block_consumer.wrapping_add(k),
                        &descs[k as usize],
                    );
                }
                taken = ahead;
            }
            Prep::Deliverable => {
                self.bookkeeping(event::EVENT_UNMASK, [SUSPEND_EVENT.into(), 0, 0])?;
                self.bookkeeping(event::EVENT_SEND, [0, SUSPEND_EVENT.into(), 0])?;
            }
        }
        let consumer = self.model.block_consumer;
        let list = self.list;
        let out = self.call(n, &d.regs, batch.map(|n| &list[..n]))?;
        self.tally.calls += 1;
        self.tally.per_family[Family::ALL.iter().position(|&f| f == d.family).unwrap_or(0)] += 1;
        if out[0] != 0 {
            self.tally.errors += 1;
        }
        if d.prep == Prep::Deliverable {
            self.bookkeeping(event::EVENT_ACK, [SUSPEND_EVENT.into(), 0, 0])?;
            self.bookkeeping(event::EVENT_MASK, [SUSPEND_EVENT.into(), 0, 0])?;
        }
        if self.watch && pattern::checksum(guarded()) != self.guarded_sum {
            self.fail(n, &d.regs, &out, "the guarded region unchanged (watch=1)");
            // What the block ring holds now, where it is not what the fuzzer wrote (a read
            // into the ring replaces the slots the hyp takes next).
            for k in 0..taken {
                let at = block_slot(&self.t, consumer.wrapping_add(k));
                // SAFETY: a slot of the block ring page.
                let now = unsafe { core::ptr::read_volatile(at as *const BlockDesc) };
                let wrote = descs[k as usize];
                if (now.op, now.sector, now.buf_ipa, now.len)
                    != (wrote.op, wrote.sector, wrote.buf_ipa, wrote.len)
                {
                    println!("fuzz: slot {k}: wrote {wrote:x?}, holds {now:x?}");
                }
            }
            return Err(Failure);
        }
        let ring = (self.t.block_ring, self.t.block_ring + P);
        let took = if out[0] == 0 {
            (out[1] as u32).min(taken)
        } else {
            0
        };
        let overwrites_ring = descs[..took as usize].iter().any(|d| {
            d.op == BlockDesc::READ
                && d.buf_ipa < ring.1
                && d.buf_ipa.saturating_add(d.len.into()) > ring.0
        });
        // Descriptors the fuzzer did not just write (a raw call's, or slots the second vCPU
        // rewrote) may be reads into the ring too.
        let submitted = matches!(
            hypercall_abi::Call::try_from(&d.regs),
            Ok(hypercall_abi::Call::BlockSubmit { .. })
        );
        let unknown = submitted
            && out[0] == 0
            && (out[1] > u64::from(took) || MODE.load(Ordering::SeqCst) == BLOCK);
        if overwrites_ring || unknown {
            self.ring_read_pending = true;
        } else if self.ring_read_pending && ring_consumer(&self.t) == consumer.wrapping_add(took) {
            self.ring_read_pending = false;
        }
        if taken > 0
            && out[0] == 0
            && out[1] == u64::from(taken)
            && MODE.load(Ordering::SeqCst) != BLOCK
        {
            // Only the done ones have their status (on a device the rest complete later).
            let done = ring_consumer(&self.t).wrapping_sub(consumer);
            let done = if done <= taken { done } else { 0 };
            for k in 0..done {
                if self.ring_read_pending {
                    break;
                }
                let status = read_status(&self.t, consumer.wrapping_add(k));
                if let Err(why) = oracle::block_status(&self.t, &descs[k as usize], status) {
                    self.fail(n, &d.regs, &out, why.as_str());
                    for (i, d) in descs[..taken as usize].iter().enumerate() {
                        println!(
                            "fuzz: descriptor {i} of {taken} (slot {}): {d:x?}",
                            consumer.wrapping_add(i as u32) % 64
                        );
                    }
                    return Err(Failure);
                }
            }
        }
        Ok(())
    }

    /// Between windows: the second vCPU paused, the console ring taken back, unknown sandbox
    /// pages queried, every whole-VM invariant checked; sometimes the sandbox emptied.
    fn checkpoint(&mut self) -> Result<(), Failure> {
        pause();
        resync_console();
        let unknown: Indices = self.model.unknown().collect();
        for i in (0..unknown.len).map(|k| unknown.get(k)) {
            let out = self.bookkeeping(mem::MEM_QUERY, [sandbox_ipa(i), 0, 0])?;
            let perms = (out[0] == 0).then(|| MemPerms::from_bits_truncate(out[1]));
            if out[0] != 0 && out[0] as i64 != Error::NotMapped.code() {
                return Err(self.fail_state(format_args!(
                    "MEM_QUERY of sandbox page {i} answered {:#x}",
                    out[0]
                )));
            }
            self.model.set(i, perms);
        }
        let info = self.bookkeeping(hypercall_abi::vm::VM_INFO, [0; 3])?;
        if Some(info[3]) != self.model.quota_left() {
            return Err(self.fail_state(format_args!(
                "quota left {:#x}, expected {:x?} ({} sandbox pages mapped)",
                info[3],
                self.model.quota_left(),
                self.model.mapped_count()
            )));
        }
        let sums = [
            (
                "the guarded region",
                pattern::checksum(guarded()),
                self.guarded_sum,
            ),
            ("the text (read-only data)", text_sum(), self.text_sum),
            (
                "the boot-info page",
                pattern::checksum(&page_words(self.t.boot_info)),
                self.boot_info_sum,
            ),
        ];
        if let Some(i) = (0..guarded().len()).find(|&i| guarded()[i] != guarded_word(self.seed, i))
        {
            let w = guarded()[i];
            let at = self.t.guarded + 8 * i as u64;
            return Err(self.fail_state(format_args!(
                "the guarded region changed: word {i} at {at:#x} is {w:#x}, was {:#x}",
                guarded_word(self.seed, i)
            )));
        }
        for (what, now, then) in sums {
            if now != then {
                return Err(self.fail_state(format_args!(
                    "{what} changed (checksum {then:#x} -> {now:#x})"
                )));
            }
        }
        let low = self
            .model
            .quota_left()
            .is_some_and(|q| q < self.model.quota_base / 4);
        if low || self.rng.one_in(8) {
            self.empty_sandbox()?;
        }
        Ok(())
    }

    /// Unmaps every sandbox page the model says is mapped, in runs.
    fn empty_sandbox(&mut self) -> Result<(), Failure> {
        let mapped: Indices = self.model.mapped().collect();
        let at = |k: usize| sandbox_ipa(mapped.get(k));
        let mut i = 0;
        while i < mapped.len {
            let mut j = i + 1;
            while j < mapped.len && at(j) == at(j - 1) + P {
                j += 1;
            }
            let out = self.bookkeeping(mem::MEM_UNMAP, [at(i), (j - i) as u64, 0])?;
            if out[0] != 0 {
                return Err(self.fail_state(format_args!(
                    "unmapping sandbox pages {:#x} (+{} pages) failed: {:#x}",
                    at(i),
                    j - i,
                    out[0]
                )));
            }
            i = j;
        }
        Ok(())
    }

    fn summary(&self) -> Summary<'_> {
        Summary(self)
    }
}

struct Summary<'a>(&'a Fuzzer);

impl core::fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let t = &self.0.tally;
        write!(f, "seed={} calls={}", self.0.seed, t.calls)?;
        for (family, n) in Family::ALL.iter().zip(t.per_family) {
            write!(f, " {}={n}", family.name())?;
        }
        write!(
            f,
            " errors={} corruptions={}",
            t.errors,
            CORRUPTIONS.load(Ordering::SeqCst)
        )
    }
}

/// Lists of sandbox indices without the heap (the fuzzer allocates nothing once it runs).
struct Indices {
    items: [u16; SANDBOX_PAGES],
    len: usize,
}

impl FromIterator<usize> for Indices {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Indices {
        let mut l = Indices {
            items: [0; SANDBOX_PAGES],
            len: 0,
        };
        for i in iter.into_iter().take(SANDBOX_PAGES) {
            l.items[l.len] = i as u16;
            l.len += 1;
        }
        l
    }
}

impl Indices {
    fn get(&self, i: usize) -> usize {
        self.items[i].into()
    }
}

/// The text's checksum. The text is an immutable static: its address goes through
/// `black_box`, so the compiler cannot know what the words are and reads them (a write by the
/// hyp behind its back is seen).
fn text_sum() -> u64 {
    let at = core::hint::black_box(core::ptr::from_ref(&TEXT.0).cast::<u64>());
    // SAFETY: TEXT's bytes as words (8-byte aligned: the struct is page-aligned), shared
    // read-only for the program's life.
    pattern::checksum(unsafe { core::slice::from_raw_parts(at, draw::TEXT_BYTES as usize / 8) })
}

/// Whether console calls have printed bytes since the fuzzer's last line (which then may not
/// have ended theirs).
static CONSOLE_DIRTY: AtomicBool = AtomicBool::new(false);

/// Takes the console ring back, and ends the line of bytes the calls printed, if any, so the
/// fuzzer's own line starts a line.
fn resync_console() {
    if crate::console::resync_ring() > 0 || CONSOLE_DIRTY.swap(false, Ordering::SeqCst) {
        println!();
    }
}

/// The event page after an event call that succeeded: `masked` mirrors EVENT_MASK and
/// EVENT_UNMASK, EVENT_SEND leaves the event pending, EVENT_ACK clears it (nothing else raises
/// events here: no timer is armed, no input arrives; block completion is raised inside the
/// fuzzer's own BLOCK_SUBMIT, and on a device also when a request completes, at any time: its
/// EVENT_ACK may find it raised again).
fn event_page_agrees(t: &Targets, regs: &Regs, out: &Regs) -> Result<(), &'static str> {
    use hypercall_abi::Call;
    use hypercall_abi::layout::EventPage;
    if out[0] != 0 {
        return Ok(());
    }
    let bit = |field: usize, e: u32| {
        let word = t.event_page + field as u64 + 8 * u64::from(e / 64);
        // SAFETY: an aligned word of the event page (read-only, mapped for the VM's life).
        let w = unsafe { core::ptr::read_volatile(word as *const u64) };
        w & 1 << (e % 64) != 0
    };
    let (pending, masked) = (
        core::mem::offset_of!(EventPage, pending),
        core::mem::offset_of!(EventPage, masked),
    );
    let (ok, want) = match Call::try_from(regs) {
        Ok(Call::EventMask { event }) => (bit(masked, event), "the event page's masked bit set"),
        Ok(Call::EventUnmask { event }) => (!bit(masked, event), "the masked bit clear"),
        Ok(Call::EventSend { event, .. }) => (bit(pending, event), "the pending bit set"),
        Ok(Call::EventAck { event }) => (
            event == crate::boot_info().block_event || !bit(pending, event),
            "the pending bit clear",
        ),
        _ => (true, ""),
    };
    if ok { Ok(()) } else { Err(want) }
}

/// The name of a register image's call.
fn name(regs: &Regs) -> &'static str {
    CallInfo::find(regs[0] as u32).map_or("an unknown ID", |c| c.name)
}

/// Pauses the second vCPU (it shows IDLE once it has stopped writing; STOP before it starts
/// and after it ends).
fn pause() {
    if MODE.swap(IDLE, Ordering::SeqCst) == STOP {
        MODE.store(STOP, Ordering::SeqCst);
    }
    let mut hv = hv();
    while !matches!(SEEN.load(Ordering::SeqCst), IDLE | STOP) {
        let _ = hv.vm_yield();
    }
}

/// What the fuzzer knows at the start.
fn targets(info: &BootInfo, batch_list: u64) -> Result<Targets, &'static str> {
    let mut hv = hv();
    let boot_info = core::ptr::from_ref(info) as u64;
    let shared_end = [
        boot_info + P,
        info.event_page_ipa,
        info.console_ring_ipa,
        info.block_ring_ipa,
    ]
    .iter()
    .map(|&ipa| if ipa == 0 { 0 } else { ipa + P })
    .max()
    .unwrap_or(boot_info + P);
    let code = run as *const () as u64 & !(P - 1);
    let text = core::ptr::from_ref(&TEXT) as u64;
    let data = &raw const GUARDED as u64;
    let mut image_pages = [
        (code, MemPerms::RX),
        (text, MemPerms::READ),
        (data, MemPerms::RW),
    ];
    for (ipa, perms) in &mut image_pages {
        *perms = hv
            .mem_query(*ipa)
            .map_err(|_| "an image page is not mapped")?
            .0;
    }
    let (channel_ipa, channel_pages) = if info.channel_count > 0 {
        let c = hv.channel_info(0).map_err(|_| "CHANNEL_INFO(0) failed")?;
        (c.ipa, c.pages)
    } else {
        (0, 0)
    };
    let disk_sectors = hv.block_info().map_or(0, |b| b.sectors);
    Ok(Targets {
        vm_index: info.vm_index,
        vcpus: info.vcpu_count,
        boot_info,
        event_page: info.event_page_ipa,
        console_ring: info.console_ring_ipa,
        block_ring: info.block_ring_ipa,
        shared_end,
        image_start: info.image_start,
        image_end: info.image_end,
        image_pages,
        text,
        guarded: data,
        batch_list,
        channel_ipa,
        channel_pages,
        channel_count: info.channel_count,
        timer_event: info.timer_event,
        console_event: info.console_event,
        block_event: info.block_event,
        disk_sectors,
        quota_pages: 0,
        entry: crate::arch::secondary_entry_address(),
    })
}

pub fn run(info: &BootInfo, argv: &str) -> u64 {
    let (Some(seed), Some(count)) = (args::number(argv, "seed"), args::number(argv, "count"))
    else {
        println!("fuzz: usage: fuzz seed=N count=N [trace=1] [watch=1]");
        return 2;
    };
    if info.vcpu_count != 2 {
        println!(
            "fuzz: needs exactly 2 vCPUs (the second corrupts shared pages), has {}",
            info.vcpu_count
        );
        return 2;
    }
    if crate::restarts() != 0 {
        println!(
            "fuzz: FAILED seed={seed}: the VM was reset (the fuzzer never calls SYSTEM_RESET)"
        );
        return 1;
    }
    let trace = args::number(argv, "trace").is_some_and(|v| v != 0);
    let list = match BatchPage::new() {
        Ok(l) => l,
        Err(e) => {
            println!("fuzz: no page for the batch list: {e}");
            return 2;
        }
    };
    let mut t = match targets(info, list.ipa()) {
        Ok(t) => t,
        Err(e) => {
            println!("fuzz: {e}");
            return 2;
        }
    };
    for (i, w) in guarded().iter_mut().enumerate() {
        *w = guarded_word(seed, i);
    }
    let mut f = Fuzzer {
        model: Model::new(),
        rng: Rng::new(seed),
        seed,
        trace,
        watch: args::number(argv, "watch").is_some_and(|v| v != 0),
        tally: Tally {
            calls: 0,
            per_family: [0; Family::ALL.len()],
            errors: 0,
        },
        list: [0; 512],
        guarded_sum: pattern::checksum(guarded()),
        text_sum: text_sum(),
        boot_info_sum: pattern::checksum(&page_words(t.boot_info)),
        ring_read_pending: false,
        t: t.clone(),
    };
    // The sandbox starts empty: every page answers NOT_MAPPED.
    f.model.quota_base = hv().vm_info().map_or(0, |i| i.mem_available_bytes);
    t.quota_pages = f.model.quota_base / P;
    f.t.quota_pages = t.quota_pages;
    if f.checkpoint().is_err() {
        return 1;
    }
    println!(
        "fuzz: seed={seed} count={count}: sandbox {} pages at 0 and {:#x}, quota {} pages, disk {} sectors, {} channels",
        SANDBOX_PAGES,
        draw::HI_BASE,
        t.quota_pages,
        t.disk_sectors,
        t.channel_count
    );
    *TARGETS.lock() = Some(t);
    SEED.store(seed ^ 0xC022_0F7E, Ordering::SeqCst);
    let e = hv().psci_cpu_on(
        crate::programs::smp::mpidr(1),
        crate::arch::secondary_entry_address(),
        1,
    );
    if e != 0 {
        println!("fuzz: CPU_ON of vCPU 1 failed: {e}");
        return 2;
    }
    while SEEN.load(Ordering::SeqCst) == STOP {
        let _ = hv().vm_yield();
    }
    let status = match f.fuzz(count) {
        Ok(()) => 0,
        Err(Failure) => 1,
    };
    MODE.store(STOP, Ordering::SeqCst);
    if !crate::programs::smp::wait_off("fuzz", 1) {
        return 1;
    }
    resync_console();
    if status == 0 {
        println!("fuzz: {} ok", f.summary());
    } else {
        println!("fuzz: {} FAILED", f.summary());
    }
    drop(list);
    status
}

impl Fuzzer {
    fn fuzz(&mut self, count: u64) -> Result<(), Failure> {
        let mut next_report = count / 4;
        while self.tally.calls < count {
            let modes: &[u8] = if self.t.block_ring != 0 {
                &[IDLE, BATCH, CONSOLE, BLOCK]
            } else {
                &[IDLE, BATCH, CONSOLE]
            };
            // Tracing prints through the console ring: it is left alone then (the same calls
            // are drawn, so a trace reproduces the run up to the ring's corruption).
            let mode = match self.rng.pick(modes) {
                CONSOLE if self.trace => IDLE,
                mode => mode,
            };
            MODE.store(mode, Ordering::SeqCst);
            let end = (self.tally.calls + WINDOW).min(count);
            while self.tally.calls < end {
                self.one()?;
            }
            self.checkpoint()?;
            if self.tally.calls >= next_report && self.tally.calls < count {
                println!("fuzz: progress {}", self.summary());
                next_report += count / 4;
            }
        }
        Ok(())
    }
}

/// The second vCPU: corrupts the page MODE names until told to stop.
pub fn secondary(_index: usize) {
    let Some(t) = TARGETS.lock().clone() else {
        return;
    };
    let mut rng = Rng::new(SEED.load(Ordering::SeqCst));
    let mut hv = hv();
    let mut n = 0u64;
    loop {
        let mode = MODE.load(Ordering::SeqCst);
        SEEN.store(mode, Ordering::SeqCst);
        match mode {
            STOP => break,
            BATCH => {
                let i = if rng.one_in(4) {
                    rng.below(512)
                } else {
                    rng.below(8)
                };
                write_u64(t.batch_list + 8 * i, draw::batch_entry(&mut rng, &t));
            }
            CONSOLE => {
                // The producer index and the slots: all the hyp reads. (The consumer field is the
                // hyp's to write; left alone, it lets the pause take the ring back cleanly.)
                let ring = t.console_ring;
                let consumer = ring + core::mem::offset_of!(RingHeader, consumer) as u64;
                let producer = ring + core::mem::offset_of!(RingHeader, producer) as u64;
                // SAFETY: an aligned u32 of the console ring page.
                let c = unsafe { core::ptr::read_volatile(consumer as *const u32) };
                match rng.below(8) {
                    0..=3 => {
                        let delta = pick!(
                            rng,
                            [0, 1, 2, 8, 64, 2048, 2049, u32::MAX, rng.next_u64() as u32]
                        );
                        // A far producer makes the hyp print up to a ring of bytes: rarely.
                        let delta = if rng.one_in(1 << 16) {
                            delta
                        } else {
                            delta % 16
                        };
                        write_u32(producer, c.wrapping_add(delta));
                    }
                    _ => {
                        let slot = ring + RingHeader::SLOTS_OFFSET as u64 + rng.below(2048);
                        // SAFETY: a byte of the ring's slots.
                        unsafe { core::ptr::write_volatile(slot as *mut u8, rng.pick(b"#.:~")) };
                    }
                }
            }
            BLOCK => {
                let ring = t.block_ring;
                match rng.below(8) {
                    0 => write_u32(
                        ring + core::mem::offset_of!(RingHeader, consumer) as u64,
                        rng.next_u64() as u32,
                    ),
                    1 => write_u32(
                        ring + core::mem::offset_of!(RingHeader, producer) as u64,
                        rng.next_u64() as u32,
                    ),
                    _ => write_desc(&t, rng.below(64) as u32, &draw::block_desc(&mut rng, &t)),
                }
            }
            _ => {
                let _ = hv.vm_yield();
                continue;
            }
        }
        n += 1;
        CORRUPTIONS.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(256) {
            let _ = hv.vm_yield();
        }
    }
}
