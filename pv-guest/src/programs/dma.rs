//! `dma [write] [verify] [attack] [seed=N]`: drives the PCI disk the VM owns (virtio-pci,
//! `drivers::virtio_pci`) by DMA into its own memory, which the SMMU translates with a DMA
//! table holding the VM's RAM only. `write` writes the pattern for `seed` to the first sectors,
//! flushes, reads them back and compares; `verify` reads them and compares (a second boot with
//! the same image finds what the first wrote); `attack` has the device write into an IPA the VM
//! never mapped and into a page it mapped read-only: the SMMU stops both (the hypervisor logs
//! the SMMU's event and counts it for the VM: each such request fails, `dma: attack: ...:
//! request failed: SMMU stopped it`), and after a reset good requests work; then into its own
//! BAR and into the first page of its channel 0: mapped in its stage 2 but not its RAM, so not
//! in the SMMU's DMA table either. Requests wait for the device's interrupt; `dma: completions
//! came by interrupt: irqs=N` says how many one woke.
//! `dma write reset` writes, restarts the VM, and in its next life reads back through the
//! device the hypervisor assigned to it again.
//! `dma abandon [seed=N]` writes the pattern to the disk's first page, then starts a long read
//! (2 MiB) into the VM's memory and exits at once, without waiting: the hypervisor's teardown must stop the device (its stream aborts, bus
//! mastering off) before it frees the frames the read was headed for.
//! `dma scavenge [rounds=N]`, in a VM beside it that owns no device, yields N times (default
//! 200), then maps 8 MiB and finds every word zero: no DMA reached a frame after its scrub.
//! `dma steal`, in a VM that owns no device, reads where an owner has the device's registers:
//! a stage-2 fault.

use super::args;
use super::checks::Checks;
use super::pattern;
use crate::drivers::virtio_pci::{Failure, SECTOR, T_FLUSH, T_IN, T_OUT, VirtioBlk};
use crate::mm::frames::Frames;
use crate::println;
use hypercall_abi::{BootInfo, MemPerms};

/// Sectors the pattern covers: one page.
const SECTORS: u64 = 8;
const BYTES: u32 = (SECTORS * SECTOR) as u32;

/// Where the hypervisor maps an owner's first BAR (`DEVICE_BASE_IPA` in hyp/src/vm/device.rs;
/// the virtio BAR of QEMU's disk is the page after it).
const DEVICE_BASE_IPA: u64 = 0x50_0000_0000;

pub fn run(info: &BootInfo, argv: &str) -> u64 {
    if argv.split_whitespace().any(|w| w == "steal") {
        return steal(info);
    }
    if argv.split_whitespace().any(|w| w == "scavenge") {
        return scavenge(args::number(argv, "rounds").unwrap_or(SCAVENGE_ROUNDS));
    }
    let seed = args::number(argv, "seed").unwrap_or(1);
    let mut dev = match VirtioBlk::open(info) {
        Ok(d) => d,
        Err(e) => {
            println!("dma: no device: {e}");
            return 1;
        }
    };
    println!(
        "dma: virtio-blk {:04x}:{:04x} (stream {}) up, BAR at IPA {:#x}, flush {}",
        info.device.pci_id & 0xffff,
        info.device.pci_id >> 16,
        info.device.requester_id,
        info.device.bar_ipa,
        if dev.flush { "yes" } else { "no" }
    );
    let Ok(mut buf) = Frames::alloc(1, MemPerms::RW) else {
        println!("dma: no memory for a buffer");
        return 1;
    };
    if argv.split_whitespace().any(|w| w == "abandon") {
        return abandon(&mut dev, &mut buf, seed);
    }
    let mut status = 0;
    // `reset`: the first life writes and restarts (PSCI SYSTEM_RESET); the next one, with the
    // device assigned afresh, reads back what the first wrote.
    if argv.split_whitespace().any(|w| w == "reset") {
        if crate::restarts() > 0 {
            println!("dma: restarted; reading back through the device assigned again");
            let status = verify(&mut dev, &mut buf, seed, "before the restart");
            report_interrupts(&dev);
            return status;
        }
        status |= write(&mut dev, &mut buf, seed);
        if status == 0 {
            println!("dma: restarting (PSCI SYSTEM_RESET)");
            let refused = crate::hv().psci_system_reset();
            println!("dma: SYSTEM_RESET returned: {refused:?}");
        }
        return 1;
    }
    let words = argv.split_whitespace();
    for verb in words {
        status |= match verb {
            "write" => write(&mut dev, &mut buf, seed),
            "verify" => verify(&mut dev, &mut buf, seed, "from the last boot"),
            "attack" => attack(&mut dev, &mut buf, seed) | attack_not_ram(info, &mut dev),
            _ => 0,
        };
    }
    report_interrupts(&dev);
    status
}

/// Says whether the device's interrupt woke the requests (ABI 1.6) or they were polled.
fn report_interrupts(dev: &VirtioBlk) {
    match dev.interrupts {
        0 => println!("dma: no completion came by interrupt: irqs=0"),
        n => println!("dma: completions came by interrupt: irqs={n}"),
    }
}

/// `dma steal` in a VM that owns no device: reads where an owner has the device's registers.
/// Its stage 2 maps nothing there, so the read is a stage-2 fault (on_fault = "kill": the VM
/// ends; "inject": our handler reports it).
fn steal(info: &BootInfo) -> u64 {
    let at = DEVICE_BASE_IPA + 0x1000;
    println!(
        "dma: steal: VM {} (device {:#x}) reads the device's registers at IPA {at:#x}",
        info.name(),
        info.device.pci_id
    );
    // SAFETY: a volatile read at an address stage 1 maps (the identity map covers the IPA
    // space) and this VM's stage 2 does not: it faults, and reads no Rust object.
    let v = unsafe { crate::arch::access::read_u64(at) };
    println!("dma: steal: read {v:#x}: the device's registers were reachable");
    1
}

fn write(dev: &mut VirtioBlk, buf: &mut Frames, seed: u64) -> u64 {
    pattern::fill(buf.words(), seed);
    if let Err(e) = dev.request(T_OUT, 0, buf.ipa(), BYTES) {
        println!("dma: write failed: {e}");
        return 1;
    }
    if dev.flush
        && let Err(e) = dev.request(T_FLUSH, 0, 0, 0)
    {
        println!("dma: flush failed: {e}");
        return 1;
    }
    println!("dma: wrote and flushed {BYTES} bytes with seed {seed}");
    verify(dev, buf, seed, "just written")
}

fn verify(dev: &mut VirtioBlk, buf: &mut Frames, seed: u64, when: &str) -> u64 {
    buf.words().fill(0);
    if let Err(e) = dev.request(T_IN, 0, buf.ipa(), BYTES) {
        println!("dma: read failed: {e}");
        return 1;
    }
    match pattern::mismatches(buf.words(), seed) {
        0 => {
            println!("dma: read {BYTES} bytes with seed {seed} {when}: all match");
            0
        }
        n => {
            println!("dma: read {BYTES} bytes with seed {seed} {when}: {n} words differ");
            1
        }
    }
}

/// QEMU's virtio-blk completes a request whose DMA the SMMU stopped with status OK (the
/// transfer just does not happen), or marks itself NEEDS_RESET: either way nothing reaches
/// memory the VM does not own writable. What the guest can check, it checks (the read-only
/// page stays zero); the hypervisor's log names each stopped access (`SMMU: F_...`).
fn attack(dev: &mut VirtioBlk, buf: &mut Frames, seed: u64) -> u64 {
    let mut checks = Checks::new("dma attack");
    // The device writes (a read request) into an IPA this VM never mapped.
    let unmapped = super::UNMAPPED_IPA;
    let r = dev.request(T_IN, 0, unmapped, BYTES);
    stopped(
        &mut checks,
        &alloc::format!("device write to unmapped IPA {unmapped:#x}"),
        r,
    );
    recover(dev, &mut checks, r);
    // The device writes into a page the VM mapped read-only.
    match Frames::alloc(1, MemPerms::READ) {
        Ok(ro) => {
            let r = dev.request(T_IN, 0, ro.ipa(), BYTES);
            stopped(
                &mut checks,
                &alloc::format!("device write to read-only IPA {:#x}", ro.ipa()),
                r,
            );
            let written = (0..PAGE_WORDS)
                // SAFETY: a volatile read of a page this VM mapped readable; no Rust object.
                .filter(|i| unsafe { crate::arch::access::read_u64(ro.ipa() + 8 * i) } != 0)
                .count();
            checks.expect("words the device wrote into the read-only page", written, 0);
            recover(dev, &mut checks, r);
        }
        Err(e) => {
            println!("dma: attack: no read-only page: {e}");
            checks.check("a read-only page", false);
        }
    }
    // A page unmapped just now: the SMMU's TLB forgot it (the hyp invalidated it).
    match Frames::alloc(1, MemPerms::RW) {
        Ok(gone) => {
            let ipa = gone.ipa();
            // Through the device first, so that the SMMU caches its translation.
            let warm = dev.request(T_IN, 0, ipa, BYTES);
            checks.expect("a DMA into a mapped page works", warm, Ok(()));
            drop(gone);
            let r = dev.request(T_IN, 0, ipa, BYTES);
            stopped(
                &mut checks,
                &alloc::format!("device write to just-unmapped IPA {ipa:#x}"),
                r,
            );
            recover(dev, &mut checks, r);
        }
        Err(e) => {
            println!("dma: attack: no page: {e}");
            checks.check("a page", false);
        }
    }
    checks.expect(
        "a good request works after the attacks",
        verify(dev, buf, seed, "after the attacks"),
        0,
    );
    checks.finish()
}

/// The device's own registers and a channel's page are mapped in this VM's stage 2 but are not
/// its RAM: the SMMU's DMA table has neither, so a DMA into either stops (the hypervisor logs
/// an `F_TRANSLATION` for each). The channel page keeps the marker written into it first.
fn attack_not_ram(info: &BootInfo, dev: &mut VirtioBlk) -> u64 {
    let mut checks = Checks::new("dma attack not RAM");
    let bar = info.device.bar_ipa;
    let r = dev.request(T_IN, 0, bar, BYTES);
    stopped(
        &mut checks,
        &alloc::format!("device write to its own BAR at IPA {bar:#x}"),
        r,
    );
    recover(dev, &mut checks, r);
    match crate::hv().channel_info(0) {
        Ok(channel) => {
            let page = channel.ipa;
            // SAFETY: volatile accesses to the first page of channel 0, mapped read-write in
            // this VM; no Rust object lives there.
            unsafe { crate::arch::access::write_u64(page, CHANNEL_MARKER) };
            let r = dev.request(T_IN, 0, page, BYTES);
            stopped(
                &mut checks,
                &alloc::format!("device write to channel page at IPA {page:#x}"),
                r,
            );
            // SAFETY: as above.
            let after = unsafe { crate::arch::access::read_u64(page) };
            checks.expect("the channel page's marker", after, CHANNEL_MARKER);
            recover(dev, &mut checks, r);
        }
        Err(e) => {
            println!("dma: attack: no channel 0: {e}");
            checks.check("a channel", false);
        }
    }
    checks.finish()
}

/// What `attack_not_ram` leaves in the channel page (the disk's pattern never holds it).
const CHANNEL_MARKER: u64 = 0xc4a7_7e11_0000_d0a7;

/// Pages `dma abandon` reads into: 2 MiB (QEMU maps each page the SMMU translates as one of at
/// most 1024 segments a request).
const ABANDON_PAGES: u64 = 512;

/// Queues a read of [`ABANDON_PAGES`] into this VM's memory and exits before the device answers
/// (status 0: leaving it to the hypervisor is the point).
/// First the pattern for `seed` goes to the disk's first page, so that the read carries data a
/// fresh page never holds.
fn abandon(dev: &mut VirtioBlk, buf: &mut Frames, seed: u64) -> u64 {
    if write(dev, buf, seed) != 0 {
        return 1;
    }
    let Ok(target) = Frames::alloc(ABANDON_PAGES, MemPerms::RW) else {
        println!("dma: abandon: no memory for the read");
        return 1;
    };
    let bytes = (ABANDON_PAGES * 4096) as u32;
    dev.submit(T_IN, 0, target.ipa(), bytes);
    println!(
        "dma: abandon: {bytes} byte read into IPA {:#x} queued; exiting without waiting",
        target.ipa()
    );
    // The frames stay mapped until the hypervisor tears the VM down.
    core::mem::forget(target);
    // A `scavenge` VM on channel 0 waits for this before it counts its yields: it then looks
    // after this VM's end whatever the device's or the scheduler's speed.
    if crate::hv().channel_info(0).is_ok() {
        let _ = crate::hv().channel_notify(0);
    }
    0
}

/// Yields `dma scavenge` waits by default, once its `abandon` peer has queued its DMA: enough
/// for that VM to end.
const SCAVENGE_ROUNDS: u64 = 200;
/// Pages `dma scavenge` maps: half its 16 MiB, more than an `abandon` VM's read.
const SCAVENGE_PAGES: u64 = 2048;

/// Waits for its `abandon` peer's notify and `rounds` yields, then maps [`SCAVENGE_PAGES`] fresh pages and checks that every word is
/// zero: a word that is not is data that reached a frame after the hypervisor scrubbed it (a
/// DMA that outlived its VM's teardown).
fn scavenge(rounds: u64) -> u64 {
    if let Err(e) = wait_for_abandon() {
        println!("dma: scavenge: no word from the abandoning VM on channel 0: {e}");
        return 1;
    }
    for _ in 0..rounds {
        let _ = crate::hv().vm_yield();
    }
    let Ok(mut pages) = Frames::alloc(SCAVENGE_PAGES, MemPerms::RW) else {
        println!("dma: scavenge: no memory for {SCAVENGE_PAGES} pages");
        return 1;
    };
    let dirty = pages.words().iter().filter(|&&w| w != 0).count();
    println!(
        "dma: scavenge: {SCAVENGE_PAGES} fresh pages mapped after {rounds} yields: {dirty} \
         words not zero"
    );
    u64::from(dirty != 0)
}

/// Waits for the notify of channel 0's peer, an `abandon` VM with its DMA queued: only its
/// exit is left to it then.
fn wait_for_abandon() -> Result<(), hypercall_abi::Error> {
    let mut hv = crate::hv();
    let event = hv.event_bind(hypercall_abi::EventSource::Channel { channel: 0 })?;
    hv.event_unmask(event)?;
    let info = crate::boot_info();
    crate::events::wait(event, || crate::events::is_pending(info, event));
    hv.event_ack(event)
}

/// Words of a page.
const PAGE_WORDS: u64 = 512;

/// Reports a request whose DMA the SMMU must stop: it failed, and said why.
fn stopped(checks: &mut Checks, what: &str, r: Result<(), Failure>) {
    match r {
        Err(e) => println!("dma: attack: {what}: request failed: {e}"),
        Ok(()) => println!("dma: attack: {what}: request done"),
    }
    checks.check(
        "a request whose DMA the SMMU stopped fails",
        matches!(r, Err(Failure::Stopped { .. })),
    );
}

/// After a stopped DMA: a device that needs a reset gets one, and answers again.
fn recover(dev: &mut VirtioBlk, checks: &mut Checks, r: Result<(), Failure>) {
    if r.is_err() {
        checks.expect("the device recovers after a reset", dev.restart(), Ok(()));
    }
}
