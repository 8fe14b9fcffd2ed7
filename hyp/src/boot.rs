//! The boot steps `hyp_main` reads as a story, each a function with one job.

use crate::arch::aarch64::{cpu, mmu, smp, stage2};
use crate::dev::bcm2835_aux::Bcm2835Aux;
use crate::dev::console::{self, Uart};
use crate::dev::pl011::Pl011;
use crate::mm::frames;
use crate::mm::regions::{Range, free_ram};
use crate::percpu;
use crate::power::{self, PowerOff};
use crate::vm::Vm;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use devtree::{Board, EnableMethod, PsciMethod, UartKind};

/// The hyp's link address minus where the bootloader put it (see hyp.ld).
const HYP_LINK_START: usize = 0x7F_C008_0000;

/// Where the device tree lies, address and size, once read_device_tree has validated it (the
/// boot CPU's, before any other runs).
static DTB_PA: AtomicU64 = AtomicU64::new(0);
static DTB_SIZE: AtomicU64 = AtomicU64::new(0);

/// The device tree's (address, size); (0, 0) before `read_device_tree`.
fn dtb() -> (u64, u64) {
    (
        DTB_PA.load(Ordering::Relaxed),
        DTB_SIZE.load(Ordering::Relaxed),
    )
}

/// Parses the device tree entry.S left identity-mapped. Without one we cannot even print.
/// A tree without RAM (the Pi's, when nothing filled in its memory node) is still read, so
/// that the console it names can say why the boot stops (init_power).
pub fn read_device_tree(dtb_pa: usize) -> Board<'static> {
    // SAFETY: entry.S identity-mapped the GiB around x0, which holds the header.
    let header = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, devtree::HEADER_SIZE) };
    // At most devtree::MAX_TOTAL_SIZE (2 MiB).
    let size = devtree::total_size(header).unwrap_or_else(|| cpu::wait_forever());
    // SAFETY: the header says the blob is `size` bytes; the bootloader placed it in RAM, which
    // stays mapped and is excluded from the frame allocator, so it lives as long as the hyp.
    let blob = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, size) };
    DTB_PA.store(dtb_pa as u64, Ordering::Relaxed);
    DTB_SIZE.store(size as u64, Ordering::Relaxed);
    devtree::parse_allow_no_memory(blob).unwrap_or_else(|_| cpu::wait_forever())
}

/// Replaces the boot tables with precise ones: image by section, RAM, the console and the
/// power-management block. Device regions are mapped by the pages that contain them (the Pi's
/// mini UART is a 0x40-byte block at 0xfe215040: its one page).
pub fn take_over_mmu(board: &Board, image_pa: usize) {
    let mut devices: [(u64, u64); 10] = [(0, 0); 10];
    let mut n = 0;
    if let Some(gic) = &board.gic {
        // GICH (GICv2's virtual interface control) for the vGIC; never GICV, the guests'.
        let regions = [
            Some(gic.distributor),
            gic.cpu_interface,
            gic.redistributor,
            gic.hyp_interface,
        ];
        for r in regions.into_iter().flatten() {
            devices[n] = (r.base, r.size.max(1));
            n += 1;
        }
    }
    if let Some(uart) = &board.console {
        devices[n] = (uart.region.base, uart.region.size.max(1));
        n += 1;
    }
    if let Some(pm) = &board.power {
        devices[n] = (pm.region.base, pm.region.size.max(1));
        n += 1;
    }
    // The virtio-mmio slots, where the disk may be: the hyp's map only, never a guest's.
    if let Some(span) = crate::disk::setup::mmio_span(board.virtio()) {
        devices[n] = span;
        n += 1;
    }
    // The SMMU and bus 0 of the PCIe configuration space: the hyp's map only; the BAR window
    // too for the `pvhyp.dma-probe` self-check.
    for region in [
        board.smmu.map(|s| (s.region.base, s.region.size)),
        crate::dev::pci::mmio_region(board),
        crate::dev::dma_probe::mmio_region(board),
    ]
    .into_iter()
    .flatten()
    {
        devices[n] = region;
        n += 1;
    }
    let mut ram_banks = [(0u64, 0u64); devtree::MAX_MEMORY];
    for (slot, r) in ram_banks.iter_mut().zip(board.memory()) {
        *slot = (r.base, r.size);
    }
    let mut banks = board.memory().len();
    if banks == 0 {
        // No RAM to map, but the tree itself must stay readable (the board's strings point
        // into it) until init_power has said why the boot stops.
        ram_banks[0] = dtb();
        banks = 1;
    }
    mmu::switch_to_final_tables(&mmu::Layout {
        image_offset: HYP_LINK_START - image_pa,
        ram: &ram_banks[..banks],
        devices: &devices[..n],
    });
}

/// Starts the console /chosen/stdout-path names, and the logger on it.
pub fn start_console(board: &Board) {
    if let Some(uart) = board.console {
        let base = uart.region.base as usize;
        // In both arms take_over_mmu identity-mapped the UART's page as a device, and only the
        // console uses it.
        let uart = match uart.kind {
            // SAFETY: see above; the tree says the block is a PL011.
            UartKind::Pl011 => Some(Uart::Pl011(unsafe { Pl011::new(base) })),
            // SAFETY: see above; the tree says the block is a mini UART.
            UartKind::Bcm2835Aux => Some(Uart::Bcm2835Aux(unsafe { Bcm2835Aux::new(base) })),
            // No driver: the hyp runs silently (the summary still ends the run).
            UartKind::Ns16550 => None,
        };
        if let Some(uart) = uart {
            console::install(uart);
        }
    }
    crate::logger::init();
}

/// Says what the hyp found, so a user can check the board was understood.
pub fn describe(board: &Board) {
    info!(
        "pvhyp {} starting at EL2 on {}",
        env!("CARGO_PKG_VERSION"),
        board.model
    );
    for r in board.memory() {
        info!("RAM {:#x}..{:#x} ({} MiB)", r.base, r.end(), r.size >> 20);
    }
    if let Some(uart) = &board.console {
        info!("console {:?} at {:#x}", uart.kind, uart.region.base);
    }
    if let Some(gic) = &board.gic {
        info!(
            "GIC {:?}, distributor at {:#x}",
            gic.version, gic.distributor.base
        );
    }
}

/// Installs vectors and per-CPU state, and the EL2 and stage-2 controls for running guests,
/// on the boot CPU (logical CPU 0).
pub fn init_cpu(board: &Board) {
    let me = boot_cpu_affinity();
    let gic_index = board.cpus().iter().position(|c| c.mpidr == me).unwrap_or(0);
    init_this_cpu(0, gic_index);
}

/// The per-CPU part of `init_cpu`, for any CPU.
fn init_this_cpu(index: usize, gic_index: usize) {
    unsafe extern "C" {
        static hyp_vectors: u8;
    }
    let percpu = percpu::init(index, gic_index);
    // SAFETY: only the address of the vector table is taken.
    let vectors = unsafe { &hyp_vectors as *const u8 as u64 };
    cpu::init_el2(vectors, percpu as u64);
    stage2::init_vtcr();
}

/// Brings up the interrupt controller and the hyp's scheduling timer. Without them guests
/// still run, but a guest that never yields is not preempted: say so.
pub fn init_interrupts(board: &Board) {
    let (Some(gic), Some(timer)) = (&board.gic, &board.timer) else {
        warn!("no GIC or timer in the device tree: guests are not preempted");
        return;
    };
    // SAFETY: take_over_mmu mapped the GIC's regions as device memory; only dev::gic uses them.
    match unsafe { crate::dev::gic::init(gic, board.cpus().len().max(1)) } {
        Ok(()) => {
            crate::vm::exit::set_timer_irqs(16 + timer.hyp_phys_ppi, 16 + timer.virt_ppi);
            enable_timer_ppis(percpu::gic_index());
            info!("preemption: EL2 timer, INTID {}", 16 + timer.hyp_phys_ppi);
        }
        Err(e) => warn!("GIC unusable ({}): guests are not preempted", e.0),
    }
}

/// The PPIs of the hyp's scheduling timer and of the guests' virtual timer, once the GIC is up:
/// every CPU enables them in its own (banked) registers.
fn enable_timer_ppis(gic_index: usize) {
    if let Some((hyp, virt)) = crate::vm::exit::timer_irqs() {
        crate::dev::gic::enable_ppi(hyp - 16, gic_index);
        crate::dev::gic::enable_ppi(virt - 16, gic_index);
    }
}

/// Ranges the hyp keeps out of the free RAM besides the tree's reserved memory: its image, the
/// device tree and the initrd.
const FIXED_HOLES: usize = 3;

// Each hole splits at most one range in two and every RAM bank takes at most one, so removing
// what the tree can list never runs out of fragments; `init_memory` still fails closed if a
// later change breaks this.
const _: () =
    assert!(frames::FRAGMENTS >= devtree::MAX_MEMORY + devtree::MAX_RESERVED + FIXED_HOLES);

/// Hands all free RAM to the frame allocator: RAM minus the hyp image, the device tree, the
/// initrd and reserved memory. Fails closed: if a range in use cannot be kept out of the free
/// RAM, the boot stops rather than hand it out.
pub fn init_memory(board: &Board, image_pa: usize) {
    unsafe extern "C" {
        static __image_end: u8;
    }
    // SAFETY: only the symbol's address is taken.
    let image_size = unsafe { &__image_end as *const u8 as usize } - HYP_LINK_START;
    let ram = board.memory().iter().map(|r| Range::new(r.base, r.size));
    let (dtb_pa, dtb_size) = dtb();
    // No heap yet: the holes are an iterator chain, not a collection.
    let fixed: [(&'static str, Range); FIXED_HOLES] = [
        (
            "the hyp image",
            Range::new(image_pa as u64, image_size as u64),
        ),
        ("the device tree", Range::new(dtb_pa, dtb_size)),
        (
            "the initrd",
            board
                .initrd
                .map_or(Range::new(0, 0), |r| Range::new(r.base, r.size)),
        ),
    ];
    let reserved = board
        .reserved()
        .iter()
        .map(|r| ("reserved memory", Range::new(r.base, r.size)));
    let free = match free_ram::<{ frames::FRAGMENTS }>(ram, fixed.into_iter().chain(reserved)) {
        Ok(free) => free,
        Err(e) => {
            // No heap yet to format into: the log line formats it.
            error!("{e}");
            power::halt_after_failure()
        }
    };
    if free.banks_left_out > 0 {
        warn!(
            "memory map too fragmented: {} RAM bank(s) left unused",
            free.banks_left_out
        );
    }
    info!(
        "{} MiB free for guests and the hyp heap",
        free.ranges.total() >> 20
    );
    let ram_start = board.memory().iter().map(|r| r.base).min().unwrap_or(0);
    let ram_end = board.memory().iter().map(|r| r.end()).max().unwrap_or(0);
    if let Err(e) = frames::init(
        free.ranges,
        Range {
            start: ram_start,
            end: ram_end,
        },
    ) {
        fail(e);
    }
    // What the hyp holds from here on, before any VM, is its own: the end of the run comes
    // back to it.
    power::record_baseline();
}

/// Learns how to switch the board off, so that even a failed boot ends the run: PSCI where the
/// tree has it (`virt`), else the Pi's PM block. Then a board without RAM ends here: nothing
/// could run, and this is the first point where the console can say so and the board stop.
pub fn init_power(board: &Board) {
    power::init(match (board.psci.map(|p| p.method), board.power) {
        (Some(PsciMethod::Smc), _) => PowerOff::PsciSmc,
        (_, Some(pm)) => PowerOff::PmBlock(pm.region.base as usize),
        _ => PowerOff::None,
    });
    if board.memory().is_empty() {
        fail(NO_RAM);
    }
}

/// This CPU's MPIDR_EL1 affinity fields (Aff3, Aff2..Aff0), as the tree's `/cpus` `reg` gives
/// them.
fn boot_cpu_affinity() -> u64 {
    use aarch64_cpu::registers::{MPIDR_EL1, Readable};
    const AFFINITY: u64 = 0xff_00ff_ffff;
    MPIDR_EL1.get() & AFFINITY
}

/// What the hyp says when the device tree's memory node is empty (the Pi's DTB as shipped).
const NO_RAM: &str =
    "no RAM in the device tree memory node: the firmware (or QEMU) must fill it in";

/// Each logical CPU's place in the tree's `/cpus` list (its GIC redistributor), written by
/// CPU 0 before it releases the secondaries.
static GIC_INDEX: [AtomicUsize; percpu::MAX_CPUS] =
    [const { AtomicUsize::new(0) }; percpu::MAX_CPUS];

/// Starts every other CPU the tree lists, the way the tree says (PSCI CPU_ON through SMC on
/// `virt`, the spin table on the Pi), at the hyp's secondary entry; each sets itself up
/// (`init_secondary`) and waits for the scheduler. Logical CPU numbers follow the tree's order,
/// the boot CPU being 0.
pub fn start_secondaries(board: &Board, image_pa: usize) {
    let me = boot_cpu_affinity();
    let mut mpidrs = [smp::NO_CPU; percpu::MAX_CPUS];
    mpidrs[0] = me;
    // No heap yet: fixed tables.
    let mut others = [devtree::Cpu::EMPTY; percpu::MAX_CPUS];
    let mut count = 1;
    for (gic_index, c) in board.cpus().iter().enumerate() {
        if c.mpidr == me {
            continue;
        }
        let logical = count;
        if logical >= percpu::MAX_CPUS {
            warn!(
                "CPU {:#x} stays off: the hyp runs at most {} CPUs",
                c.mpidr,
                percpu::MAX_CPUS
            );
            continue;
        }
        mpidrs[logical] = c.mpidr;
        GIC_INDEX[logical].store(gic_index, Ordering::Relaxed);
        others[logical] = *c;
        count += 1;
    }
    smp::publish(&mpidrs);
    let entry = smp::entry_pa(HYP_LINK_START - image_pa);
    let (mut psci, mut spin) = (0, 0);
    for (logical, c) in others.iter().enumerate().take(count).skip(1) {
        match c.enable {
            EnableMethod::Psci => match board.psci {
                Some(p) if p.method == PsciMethod::Smc => {
                    let function = p.cpu_on.unwrap_or(hypercall_abi::psci::PSCI_CPU_ON_64);
                    match smp::psci_cpu_on(function, c.mpidr, entry, logical as u64) {
                        0 => psci += 1,
                        e => warn!(
                            "CPU {:#x}: PSCI CPU_ON failed ({})",
                            c.mpidr,
                            crate::logger::Signed(i64::from(e))
                        ),
                    }
                }
                _ => warn!(
                    "CPU {:#x} stays off: its PSCI is not reached through SMC",
                    c.mpidr
                ),
            },
            EnableMethod::SpinTable { .. } => {
                match crate::board::spin_table::release(c, board.memory(), entry) {
                    Ok(_) => spin += 1,
                    Err(e) => warn!("CPU {:#x} stays on the firmware's spin table: {e}", c.mpidr),
                }
            }
            EnableMethod::None => warn!(
                "CPU {:#x} stays off: no enable method the hyp knows",
                c.mpidr
            ),
        }
    }
    let up = 1 + smp::wait_online(psci + spin, 1000);
    let n = board.cpus().len().max(1);
    match (up == n, psci, spin) {
        (true, 0, 0) => info!("cpus={up} up"),
        (true, p, 0) => info!("cpus={up} up ({p} started by PSCI CPU_ON)"),
        (true, 0, s) => info!("cpus={up} up ({s} released from the spin table)"),
        (_, p, s) => warn!(
            "cpus={up} up of {n} ({p} started by PSCI CPU_ON, {s} released from the spin table)"
        ),
    }
}

/// A secondary CPU's own set-up, called by `secondary_main` on that CPU: per-CPU state,
/// vectors and EL2 controls, stage-2 control, its part of the GIC and its timer interrupts.
pub fn init_secondary(index: usize) {
    let gic_index = GIC_INDEX
        .get(index)
        .map_or(0, |g| g.load(Ordering::Relaxed));
    init_this_cpu(index, gic_index);
    crate::dev::gic::init_this_cpu(gic_index);
    enable_timer_ppis(gic_index);
    smp::mark_online(index);
}

/// Reads the manifest and images from the initrd and builds every VM. A VM that cannot be
/// built (its image missing or refused, its memory not mappable) is refused alone, with a
/// line naming it and why: the others run, and the summary counts it as failed.
pub fn load_vms(board: &Board) -> Vec<Vm> {
    let Some(initrd) = board.initrd else {
        error!("no initrd: nothing to run (scripts/run.sh packs the VMs into one)");
        power::halt_after_failure();
    };
    // SAFETY: the initrd is RAM the bootloader filled, excluded from the frame allocator and
    // never written, so a 'static shared view of it is sound.
    let archive: &'static [u8] =
        unsafe { core::slice::from_raw_parts(initrd.base as *const u8, initrd.size as usize) };
    let text = match manifest::cpio::find(archive, "manifest") {
        Ok(Some(bytes)) => core::str::from_utf8(bytes).unwrap_or(""),
        Ok(None) => fail("the initrd has no `manifest` file"),
        Err(e) => fail(&alloc::format!(
            "the initrd is not a valid cpio archive: {e}"
        )),
    };
    let manifest =
        manifest::decode(text).unwrap_or_else(|e| fail(&alloc::format!("bad manifest: {e}")));
    let mut vms = Vec::new();
    for (index, spec) in manifest.vms.iter().cloned().enumerate() {
        let name = spec.name.clone();
        match build_vm(archive, index, spec) {
            Ok(mut vm) => {
                info!(
                    "VM {name}: VMID {}, {} pages mapped, entry {:#x}, cmdline \"{}\"",
                    vm.vmid,
                    vm.memory.pages_used(),
                    vm.vcpus[0].regs.elr,
                    vm.spec.cmdline
                );
                if vm.vcpus.len() > 1 {
                    info!(
                        "VM {name}: {} vCPUs (vCPU 0 on; the others wait for PSCI CPU_ON)",
                        vm.vcpus.len()
                    );
                }
                refuse_impossible_pin(&mut vm);
                vms.push(vm);
            }
            Err(why) => {
                error!("VM {name}: refused: {why}; the other VMs run");
                power::vm_refused_at_boot();
            }
        }
    }
    connect_channels(&manifest.channels, &mut vms);
    vms
}

/// Builds VM `index` from its manifest entry and its image in the archive, or says why not.
fn build_vm(
    archive: &'static [u8],
    index: usize,
    spec: manifest::VmSpec,
) -> Result<Vm, alloc::string::String> {
    let image = match manifest::cpio::find(archive, &spec.image) {
        Ok(Some(bytes)) => bytes,
        _ => {
            return Err(alloc::format!(
                "image {} missing from the initrd",
                spec.image
            ));
        }
    };
    let initrd: &'static [u8] = match spec.initrd.as_deref() {
        None => &[],
        Some(name) => match manifest::cpio::find(archive, name) {
            Ok(Some(bytes)) => bytes,
            _ => return Err(alloc::format!("initrd {name} missing from the initrd")),
        },
    };
    // pvpack charges the quota the same way (manifest::VmSpec::hyp_pages); keep them in step.
    // A Linux VM maps all of its memory.
    let expected_pages = match spec.kind {
        manifest::VmKind::Pv => manifest::elf::parse(image, manifest::elf::GUEST_IPA_LIMIT)
            .map(|i| i.pages() + spec.hyp_pages()),
        manifest::VmKind::Linux => Ok(spec.memory_bytes / crate::mm::PAGE_SIZE),
    };
    let index = crate::vm::ids::VmIndex::new(index);
    let vmid = crate::vm::ids::Vmid::of(index);
    let vm = Vm::build(index, vmid, spec, image, initrd, 0).map_err(|e| alloc::format!("{e}"))?;
    debug_assert_eq!(Ok(vm.memory.pages_used()), expected_pages);
    Ok(vm)
}

/// A VM pinned (manifest `cpus`) to a CPU that is not up never runs: it is refused here, with
/// a log line, and counts as failed in the summary.
fn refuse_impossible_pin(vm: &mut Vm) {
    let Some(set) = vm.spec.cpus else { return };
    let pinned = set.iter().fold(alloc::string::String::new(), |acc, c| {
        if acc.is_empty() {
            alloc::format!("{c}")
        } else {
            alloc::format!("{acc},{c}")
        }
    });
    if let Some(missing) = set.iter().find(|&c| !smp::is_online(c)) {
        error!(
            "VM {}: refused: pinned to CPUs {pinned}, but CPU {missing} is not up on this board",
            vm.name
        );
        vm.state = crate::vm::VmState::Killed;
    } else {
        info!("VM {}: pinned to CPUs {pinned}", vm.name);
    }
}

/// Finds the disk the VMs' regions lie on (virtio-blk, else a RAM disk), if any VM has one. A
/// VM whose region lies beyond the virtio-blk disk, or that the RAM disk cannot hold, is refused
/// alone (the setup logs why) and counts as failed.
pub fn init_disk(board: &Board, vms: &mut [Vm]) {
    let with_disk: Vec<usize> = (0..vms.len())
        .filter(|&i| vms[i].block_io.is_some())
        .collect();
    let regions: Vec<(&str, usize, crate::vm::block::Region)> = with_disk
        .iter()
        .filter_map(|&i| {
            let region = vms[i].block_io.as_ref()?.region;
            Some((vms[i].name.as_str(), vms[i].index.get(), region))
        })
        .collect();
    // The refused as a set of positions: the list setup returns is freed inside, so that the
    // heap the run holds is what the disk keeps.
    const _: () = assert!(manifest::MAX_VMS <= u64::BITS as usize);
    let refused = power::held_for_the_run(|| {
        crate::disk::setup::init(board, &regions)
            .map(|refused| refused.iter().fold(0u64, |set, &r| set | 1 << r))
    });
    match refused {
        Ok(set) => {
            for (r, &vm) in with_disk.iter().enumerate() {
                if set & 1 << r != 0 {
                    vms[vm].state = crate::vm::VmState::Killed;
                }
            }
        }
        Err(e) => fail(&e),
    }
}

fn fail(reason: &str) -> ! {
    error!("{reason}");
    power::halt_after_failure()
}

/// Gives each channel of the manifest its pages (owned by the channel, zeroed, with a ring per
/// direction) and maps them into its two VMs, and nobody else.
fn connect_channels(channels: &[manifest::ChannelSpec], vms: &mut [Vm]) {
    use crate::arch::{Cpu, Machine};
    use crate::mm::PAGE_SIZE;
    use crate::mm::owner::Owner;
    use crate::vm::channel::{ChannelEnd, channel_ipa, ring_headers};
    use crate::vm::event::FIRST_CHANNEL_EVENT;
    for (i, spec) in channels.iter().enumerate() {
        let index_of = |name: &str| vms.iter().position(|vm| vm.name == name);
        // The manifest's channels join its VMs: a VM not found was refused at boot.
        let (Some(a), Some(b)) = (index_of(&spec.a), index_of(&spec.b)) else {
            error!(
                "channel {}: not connected: VM {} was refused",
                spec.name,
                if index_of(&spec.a).is_none() {
                    &spec.a
                } else {
                    &spec.b
                }
            );
            continue;
        };
        let owner = Owner::Shared(i as u16);
        let mut frames: Vec<u64> = Vec::new();
        for _ in 0..spec.pages {
            match Cpu::alloc_frame(owner) {
                Some(pa) => frames.push(pa),
                None => break,
            }
        }
        if frames.len() < spec.pages as usize {
            for pa in frames {
                Cpu::free_frame(owner, pa);
            }
            refuse_for_channel(vms, [a, b], &spec.name, "no RAM left for its pages");
            continue;
        }
        for (offset, header) in ring_headers(u64::from(spec.pages)) {
            let at = frames[(offset / PAGE_SIZE) as usize] + offset % PAGE_SIZE;
            // SAFETY: the frame was just allocated for this channel, is identity-mapped RAM
            // and not yet mapped into any VM; the header fits in the page (offset is 0 or the
            // start of a later page or of a page's second half).
            unsafe {
                core::ptr::write_unaligned(at as *mut hypercall_abi::layout::RingHeader, header)
            };
        }
        let (local_a, local_b) = (vms[a].channels.len(), vms[b].channels.len());
        // The guest sees its peer by manifest index (as VM_INFO's vm_index): a VM refused
        // before the list was built leaves no place in it, so a position is not that index.
        let end = |peer: usize, peer_local: usize, local: usize, first: bool| ChannelEnd {
            channel: i as u16,
            ipa: channel_ipa(local),
            frames: frames.clone(),
            peer_vm: vms[peer].index.get(),
            peer_event: FIRST_CHANNEL_EVENT + peer_local as u32,
            sends_on_first: first,
        };
        let (end_a, end_b) = (
            end(b, local_b, local_a, true),
            end(a, local_a, local_b, false),
        );
        if let Err(e) = vms[a].attach_channel(end_a) {
            // No end holds the frames: they go back now.
            for pa in frames {
                Cpu::free_frame(owner, pa);
            }
            let why = alloc::format!("cannot map it into VM {}: {e}", vms[a].name);
            refuse_for_channel(vms, [a, b], &spec.name, &why);
            continue;
        }
        // From here the first end holds the frames; they go back when the VMs are dropped.
        if let Err(e) = vms[b].attach_channel(end_b) {
            let why = alloc::format!("cannot map it into VM {}: {e}", vms[b].name);
            refuse_for_channel(vms, [a, b], &spec.name, &why);
            continue;
        }
        info!(
            "channel {}: {} <-> {}, {} page(s), owned by the channel",
            spec.name, vms[a].name, vms[b].name, spec.pages
        );
    }
}

/// A channel that cannot be set up refuses the two VMs it joins (each expects it from its first
/// instruction), one line each naming the channel and why; the other VMs run, and the summary
/// counts these as failed.
fn refuse_for_channel(vms: &mut [Vm], ends: [usize; 2], channel: &str, why: &str) {
    for vm in ends {
        error!(
            "VM {}: refused: channel {channel}: {why}; the other VMs run",
            vms[vm].name
        );
        vms[vm].state = crate::vm::VmState::Killed;
    }
}
