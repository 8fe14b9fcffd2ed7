//! The measures, one function each. [`SOLO`] runs in one VM (`bench`); [`PAIR`] needs a second
//! VM running `bench vm_switch partner` beside it, with a channel between them; [`TRAP`] runs
//! in a VM with an emulated PL011. A measure prints its lines (through [`Ctx::report`]) and
//! fails only when the hypervisor misbehaves.
//!
//! Adding a measure: write `fn name(ctx: &Ctx) -> Outcome` and list it below (and in
//! `tools/benchreport/src/catalog.rs`, which orders the table and holds the budgets).
//! `console_trap_over_pv` is derived on the host from the two console measures.

use super::asm::{self, HVC_LOOP_OVERHEAD, TIMED_WINDOW_OVERHEAD};
use super::stats::{BATCHES, Clock, Measured};
use crate::arch::{access, timer};
use crate::drivers::channel::{Channel, Volatile};
use crate::fault;
use crate::mm::batch::BatchPage;
use crate::mm::frames::IpaWindow;
use crate::println;
use crate::programs::UNMAPPED_IPA;
use hypercall_abi::abi::ABI_VERSION;
use hypercall_abi::channel::CHANNEL_NOTIFY;
use hypercall_abi::layout::BatchOp;
use hypercall_abi::mem::{MEM_BATCH, MEM_BATCH_MAX, MEM_MAP, MEM_UNMAP};
use hypercall_abi::standard::SMCCC_VERSION;
use hypercall_abi::vm::VM_YIELD;
use hypercall_abi::{MemPerms, Version};

/// What a measure ends with: `Err` stops the run (the hypervisor did something wrong).
pub type Outcome = Result<(), &'static str>;

/// Yields before `vm_switch` times anything: the partner VM boots during the first.
const SWITCH_WARMUP: u64 = 8;
/// Yields the partner makes beyond the reporter's: it must outlive every yield the reporter
/// times, even when the reporter lost the CPU to its slice end before it started yielding (the
/// partner's surplus yields, once alone, return without a switch).
const SWITCH_MARGIN: u64 = 1000;

/// Settings every measure shares.
pub struct Ctx {
    pub clock: Clock,
    /// Operations per timed batch.
    pub iterations: u64,
}

impl Ctx {
    /// Runs `batch` [`BATCHES`] times, each returning one per-operation figure.
    fn samples(&self, mut batch: impl FnMut() -> Result<u64, &'static str>) -> SamplesResult {
        let mut samples = [0; BATCHES];
        for s in &mut samples {
            *s = batch()?;
        }
        Ok(samples)
    }

    /// As [`Ctx::samples`] for a batch that yields two figures at once.
    fn paired_samples(
        &self,
        mut batch: impl FnMut() -> Result<(u64, u64), &'static str>,
    ) -> Result<([u64; BATCHES], [u64; BATCHES]), &'static str> {
        let (mut a, mut b) = ([0; BATCHES], [0; BATCHES]);
        for i in 0..BATCHES {
            (a[i], b[i]) = batch()?;
        }
        Ok((a, b))
    }

    /// Prints a measured line in this run's unit.
    fn report(&self, name: &str, iterations: u64, samples: [u64; BATCHES]) {
        let unit = self.clock.unit();
        println!(
            "{}",
            Measured {
                name,
                unit,
                iterations,
                samples
            }
        );
    }
}

type SamplesResult = Result<[u64; BATCHES], &'static str>;

/// The measures one VM runs on its own, in order.
pub const SOLO: &[fn(&Ctx) -> Outcome] = &[
    null_hypercall,
    mem_map_unmap_1,
    mem_batch_512,
    stage2_fault_inject,
    console_pv_64b,
];

/// What the shell's `bench` command runs: the measures that need nothing of the VM (no
/// `on_fault = "inject"`, no partner, no particular console).
pub const SHELL: &[fn(&Ctx) -> Outcome] = &[null_hypercall, mem_map_unmap_1, mem_batch_512];

/// The measures of the device-owner run (`bench device_owner`, in a VM the manifest assigns a
/// PCI device behind the SMMU): what the SMMU's maintenance adds to a map and an unmap.
pub const DEVICE_OWNER: &[fn(&Ctx) -> Outcome] = &[mem_map_unmap_1_device_owner];

/// The measure of the emulated-PL011 run (`bench console_trap`).
pub const TRAP: &[fn(&Ctx) -> Outcome] = &[console_trap_64b];

/// The measures of the two-VM run (`bench vm_switch` beside `bench vm_switch partner`).
pub const PAIR: &[fn(&Ctx) -> Outcome] = &[vm_switch, event_roundtrip, channel_roundtrip];

/// Per call of `hvc_loop(fid, a1)`: the HVC, the hyp's path, the ERET.
fn hvc_round_trip(ctx: &Ctx, fid: u32, a1: u64) -> SamplesResult {
    let n = ctx.iterations;
    asm::hvc_loop(fid, a1, 8);
    ctx.samples(|| {
        let t0 = timer::ticks();
        asm::hvc_loop(fid, a1, n);
        let ticks = timer::ticks() - t0;
        Ok(ctx.clock.per_op(ticks, n, HVC_LOOP_OVERHEAD))
    })
}

/// The cheapest calls' full round trip, guest HVC to guest: `SMCCC_VERSION` (answered before
/// any VM state is looked at) and `ABI_VERSION` (our own family); `null_hypercall` is the
/// cheaper of the two by median.
fn null_hypercall(ctx: &Ctx) -> Outcome {
    let smccc = hvc_round_trip(ctx, SMCCC_VERSION, 0)?;
    let abi = hvc_round_trip(ctx, ABI_VERSION, Version::CURRENT.to_u64())?;
    let median = |s: &[u64; BATCHES]| super::stats::min_median(s).1;
    let cheapest = if median(&abi) < median(&smccc) {
        abi
    } else {
        smccc
    };
    ctx.report("null_hypercall", ctx.iterations, cheapest);
    ctx.report("null_hypercall_smccc_version", ctx.iterations, smccc);
    ctx.report("null_hypercall_abi_version", ctx.iterations, abi);
    Ok(())
}

/// `MEM_MAP` then `MEM_UNMAP` of the same page, alternately, each call timed on its own (the
/// counter read right around the HVC, padded by varying amounts in between): a map zeroes a
/// fresh frame and writes the stage-2 entry; an unmap breaks it, invalidates the TLB and
/// scrubs the frame.
fn mem_map_unmap_1(ctx: &Ctx) -> Outcome {
    map_unmap_1(ctx, "mem_map_1", "mem_unmap_1")
}

/// [`mem_map_unmap_1`] in a VM that owns a device: its stage 2 is also the device's SMMU
/// table, so each unmap adds `CMD_TLBI_S2_IPA` + `CMD_SYNC` (and the wait for the SMMU).
fn mem_map_unmap_1_device_owner(ctx: &Ctx) -> Outcome {
    map_unmap_1(ctx, "mem_map_1_device_owner", "mem_unmap_1_device_owner")
}

fn map_unmap_1(ctx: &Ctx, map_name: &str, unmap_name: &str) -> Outcome {
    let window = IpaWindow::reserve(1).ok_or("no IPA space for the page")?;
    let ipa = window.page(0);
    let n = ctx.iterations;
    let mut seed = 1;
    let (map, unmap) = ctx.paired_samples(|| {
        let (mut map_ticks, mut unmap_ticks) = (0, 0);
        for _ in 0..n {
            asm::pad(asm::next_pad(&mut seed));
            let (t, x0, _) = asm::timed_hvc(MEM_MAP, ipa, 1, MemPerms::RW.bits());
            if x0 != 0 {
                println!("bench: MEM_MAP {ipa:#x} returned {:#x}", x0);
                return Err("mem.map failed");
            }
            map_ticks += t;
            asm::pad(asm::next_pad(&mut seed));
            let (t, x0, _) = asm::timed_hvc(MEM_UNMAP, ipa, 1, 0);
            if x0 != 0 {
                println!("bench: MEM_UNMAP {ipa:#x} returned {:#x}", x0);
                return Err("mem.unmap failed");
            }
            unmap_ticks += t;
        }
        Ok((
            ctx.clock.per_op(map_ticks, n, TIMED_WINDOW_OVERHEAD),
            ctx.clock.per_op(unmap_ticks, n, TIMED_WINDOW_OVERHEAD),
        ))
    })?;
    ctx.report(map_name, n, map);
    ctx.report(unmap_name, n, unmap);
    Ok(())
}

/// A full `MEM_BATCH` list of 512 maps, then one of 512 unmaps of the same pages; per page.
/// Each batch of the measure is enough lists for at least `iterations` pages.
fn mem_batch_512(ctx: &Ctx) -> Outcome {
    let pages = MEM_BATCH_MAX;
    let window = IpaWindow::reserve(pages).ok_or("no IPA space for the batch")?;
    let mut maps = BatchPage::new().map_err(|_| "no page for the map list")?;
    let mut unmaps = BatchPage::new().map_err(|_| "no page for the unmap list")?;
    maps.builder()
        .push_range(BatchOp::Map, window.ipa, pages, MemPerms::RW)
        .map_err(|_| "cannot fill the map list")?;
    unmaps
        .builder()
        .push_range(BatchOp::Unmap, window.ipa, pages, MemPerms::empty())
        .map_err(|_| "cannot fill the unmap list")?;
    let lists = ctx.iterations.div_ceil(pages).max(1);
    let mut seed = 2;
    let (map, unmap) = ctx.paired_samples(|| {
        let (mut map_ticks, mut unmap_ticks) = (0, 0);
        for _ in 0..lists {
            for (list, ticks, what) in [
                (&maps, &mut map_ticks, "map"),
                (&unmaps, &mut unmap_ticks, "unmap"),
            ] {
                asm::pad(asm::next_pad(&mut seed));
                let (t, x0, done) = asm::timed_hvc(MEM_BATCH, list.ipa(), pages, 0);
                if x0 != 0 || done != pages {
                    println!(
                        "bench: {what} batch returned {x0:#x}, {done} of {pages} entries done"
                    );
                    return Err("mem.batch failed");
                }
                *ticks += t;
            }
        }
        Ok((
            ctx.clock.per_op(map_ticks, lists * pages, 0),
            ctx.clock.per_op(unmap_ticks, lists * pages, 0),
        ))
    })?;
    ctx.report("mem_batch_512_per_page", lists * pages, map);
    ctx.report("mem_batch_512_unmap_per_page", lists * pages, unmap);
    Ok(())
}

/// A load from an IPA this VM never mapped, with `on_fault = "inject"`: the stage-2 fault goes
/// to the hyp, which injects a data abort; the guest's handler (`fault::probe`) skips the load.
/// Per probe, guest exception entry and exit included.
fn stage2_fault_inject(ctx: &Ctx) -> Outcome {
    let touch = || {
        // SAFETY: a volatile read of an IPA stage 2 does not map, inside a probe: it faults and
        // the handler resumes after it; it reads no Rust object.
        unsafe { access::read_u64(UNMAPPED_IPA) };
    };
    if fault::probe(touch).is_none() {
        return Err("the unmapped IPA did not fault (is on_fault = \"inject\"?)");
    }
    let n = ctx.iterations;
    let samples = ctx.samples(|| {
        let t0 = timer::ticks();
        for _ in 0..n {
            fault::probe(touch);
        }
        Ok(ctx.clock.per_op(timer::ticks() - t0, n, 0))
    })?;
    ctx.report("stage2_fault_inject", n, samples);
    Ok(())
}

/// The 64 bytes both console measures write: one line.
const LINE_64: &[u8; 64] = b"bench: 64 bytes through the console, measured instruction by on\n";

/// Console writes per batch: each prints a line, so fewer than the other measures.
fn console_iterations(ctx: &Ctx) -> u64 {
    (ctx.iterations / 10).max(1)
}

/// 64 bytes through the PV console: into the ring, one doorbell; the hyp copies them out and
/// queues the line for the UART.
fn console_pv_64b(ctx: &Ctx) -> Outcome {
    if crate::boot_info().console_ring_ipa == 0 {
        return Err("console_pv_64b needs a VM with the PV console");
    }
    console_64b(ctx, "console_pv_64b")
}

/// The same 64 bytes through the emulated PL011: for each byte a trapped read of the flag
/// register and a trapped write of the data register (run in a VM with
/// `console = "emulated-pl011"`: `bench console_trap`).
pub fn console_trap_64b(ctx: &Ctx) -> Outcome {
    if crate::boot_info().pl011_ipa == 0 {
        return Err("console_trap_64b needs a VM with console = \"emulated-pl011\"");
    }
    console_64b(ctx, "console_trap_64b")
}

/// Writes [`LINE_64`] through whichever console path the VM has, per write.
fn console_64b(ctx: &Ctx, name: &str) -> Outcome {
    let n = console_iterations(ctx);
    let samples = ctx.samples(|| {
        let_the_console_drain();
        let t0 = timer::ticks();
        for _ in 0..n {
            crate::console::send(LINE_64);
        }
        Ok(ctx.clock.per_op(timer::ticks() - t0, n, 0))
    })?;
    ctx.report(name, n, samples);
    Ok(())
}

/// Waits a millisecond in WFI on the virtual timer, before a timed batch: the CPU idles and the
/// hypervisor writes out the console lines it has queued, so a batch starts with the queue
/// empty (where the PV side's UART time goes, off its caller's path).
fn let_the_console_drain() {
    let info = crate::boot_info();
    let event = info.timer_event;
    let mut hv = crate::hv();
    let _ = hv.event_unmask(event);
    let deadline = timer::ticks() + timer::frequency() / 1000;
    // SAFETY: the virtual timer is this VM's own; ENABLE = 1, IMASK = 0.
    unsafe {
        core::arch::asm!("msr cntv_cval_el0, {}", "msr cntv_ctl_el0, {}", "isb",
            in(reg) deadline, in(reg) 1u64, options(nomem, nostack))
    };
    crate::events::wait(event, || crate::events::is_pending(info, event));
    // SAFETY: as above; the timer off again.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack)) };
    let _ = hv.event_ack(event);
    let _ = hv.event_mask(event);
}

/// Two VMs yielding to each other: per switch (the HVC, saving one vCPU's full EL1, FP/SIMD
/// and timer state, loading the other's with its VTTBR, the ERET).
fn vm_switch(ctx: &Ctx) -> Outcome {
    let n = ctx.iterations;
    asm::hvc_loop(VM_YIELD, 0, SWITCH_WARMUP);
    let samples = ctx.samples(|| {
        let t0 = timer::ticks();
        asm::hvc_loop(VM_YIELD, 0, n);
        // Each of our yields is two switches: to the partner and back.
        Ok(ctx
            .clock
            .per_op(timer::ticks() - t0, 2 * n, HVC_LOOP_OVERHEAD))
    })?;
    ctx.report("vm_switch", n, samples);
    Ok(())
}

/// The partner's side of [`vm_switch`]: yield as often as the reporter, and more.
fn vm_switch_partner(ctx: &Ctx) -> Outcome {
    asm::hvc_loop(
        VM_YIELD,
        0,
        SWITCH_WARMUP + BATCHES as u64 * ctx.iterations + SWITCH_MARGIN,
    );
    Ok(())
}

/// Round trips after `vm_switch` in the pair run: warm-up, then the timed batches.
fn round_trips(ctx: &Ctx) -> u64 {
    SWITCH_WARMUP + BATCHES as u64 * ctx.iterations
}

/// Waits (WFI) until the channel's event is pending, then acknowledges it.
fn await_notify(event: u32) {
    let info = crate::boot_info();
    // `wait` leaves an event it returns on pending: consuming it is ours.
    crate::events::wait(event, || crate::events::is_pending(info, event));
    crate::events::ack(info, event);
}

/// Rings the pair's channel 0 doorbell (the peer's event): a bare HVC ([`asm::call`]).
fn notify_peer() {
    let _ = asm::call(CHANNEL_NOTIFY, 0);
}

/// The pair's channel 0 (declared in tests/manifests/bench-switch.toml) and its event.
fn pair_channel() -> Result<(Channel, u32), &'static str> {
    let mut hv = crate::hv();
    let info = hv
        .channel_info(0)
        .map_err(|_| "the pair run needs a channel between its VMs")?;
    let event = hv
        .event_bind(hypercall_abi::event::EventSource::Channel { channel: 0 })
        .map_err(|_| "cannot bind the channel's event")?;
    hv.event_unmask(event)
        .map_err(|_| "cannot unmask the channel's event")?;
    Ok((Channel::new(&info), event))
}

/// VM A notifies VM B, B answers with a notify: per round trip, both doorbells (bare HVCs:
/// [`notify_peer`]), both wake-ups and acknowledgements, and the two VM switches between them
/// (one CPU).
fn event_roundtrip(ctx: &Ctx) -> Outcome {
    let (_, event) = pair_channel()?;
    let mut hv = crate::hv();
    let n = ctx.iterations;
    for _ in 0..SWITCH_WARMUP {
        hv.channel_notify(0).map_err(|_| "notify refused")?;
        await_notify(event);
    }
    let samples = ctx.samples(|| {
        let t0 = timer::ticks();
        for _ in 0..n {
            notify_peer();
            await_notify(event);
        }
        Ok(ctx.clock.per_op(timer::ticks() - t0, n, 0))
    })?;
    ctx.report("event_roundtrip", n, samples);
    Ok(())
}

/// A message over the channel's ring and its answer: the event round trip plus the ring work.
fn channel_roundtrip(ctx: &Ctx) -> Outcome {
    let (ch, event) = pair_channel()?;
    let n = ctx.iterations;
    let round = |i: u64| -> Result<(), &'static str> {
        if !ch.send(&mut Volatile, &i.to_le_bytes()) {
            return Err("the channel ring is full");
        }
        notify_peer();
        await_notify(event);
        match ch.receive(&mut Volatile) {
            Some(m) if m.data[..8] == (!i).to_le_bytes() => Ok(()),
            _ => Err("the partner's answer is wrong"),
        }
    };
    for i in 0..SWITCH_WARMUP {
        round(i)?;
    }
    let samples = ctx.samples(|| {
        let t0 = timer::ticks();
        for i in 0..n {
            round(i)?;
        }
        Ok(ctx.clock.per_op(timer::ticks() - t0, n, 0))
    })?;
    ctx.report("channel_roundtrip", n, samples);
    Ok(())
}

/// The partner's side of the pair run: yield for [`vm_switch`], then answer every event and
/// every message of the two round-trip measures.
pub fn pair_partner(ctx: &Ctx) -> Outcome {
    vm_switch_partner(ctx)?;
    let (ch, event) = pair_channel()?;
    for _ in 0..round_trips(ctx) {
        await_notify(event);
        notify_peer();
    }
    for _ in 0..round_trips(ctx) {
        await_notify(event);
        while let Some(m) = ch.receive(&mut Volatile) {
            let i = u64::from_le_bytes(m.data[..8].try_into().unwrap_or([0; 8]));
            if !ch.send(&mut Volatile, &(!i).to_le_bytes()) {
                return Err("the reply ring is full");
            }
        }
        notify_peer();
    }
    Ok(())
}
