//! The boot steps `hyp_main` reads as a story, each a function with one job.

use crate::arch::aarch64::{cpu, mmu};
use crate::dev::console::{self, Uart};
use crate::dev::pl011::Pl011;
use crate::mm::regions::{Range, RangeSet};
use crate::mm::{PAGE_SIZE, frames};
use crate::percpu;
use crate::power::{self, PowerOff};
use crate::vm::Vm;
use alloc::boxed::Box;
use alloc::vec::Vec;
use devtree::{Board, PsciMethod, UartKind};

/// The hyp's link address minus where the bootloader put it (see hyp.ld).
const HYP_LINK_START: usize = 0x7F_C008_0000;

/// The largest device tree the hyp accepts (also devtree::total_size's limit).
const DTB_MAX: usize = 2 << 20;

/// Parses the device tree entry.S left identity-mapped. Without one we cannot even print.
pub fn read_device_tree(dtb_pa: usize) -> Board<'static> {
    // SAFETY: entry.S identity-mapped the GiB around x0; the header is 40 bytes.
    let header = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, 40) };
    let size = devtree::total_size(header)
        .filter(|&s| s <= DTB_MAX)
        .unwrap_or_else(|| cpu::wait_forever());
    // SAFETY: the header says the blob is `size` bytes; the bootloader placed it in RAM, which
    // stays mapped and is excluded from the frame allocator, so it lives as long as the hyp.
    let blob = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, size) };
    devtree::parse(blob).unwrap_or_else(|_| cpu::wait_forever())
}

/// Replaces the boot tables with precise ones: image by section, RAM, the console and the
/// power-management block.
pub fn take_over_mmu(board: &Board, image_pa: usize) {
    let mut devices: [(u64, u64); 2] = [(0, 0); 2];
    let mut n = 0;
    if let Some(uart) = &board.console {
        devices[n] = (uart.region.base, uart.region.size.max(PAGE_SIZE));
        n += 1;
    }
    if let Some(pm) = &board.power {
        devices[n] = (pm.region.base, pm.region.size.max(PAGE_SIZE));
        n += 1;
    }
    let mut ram_banks = [(0u64, 0u64); devtree::MAX_MEMORY];
    for (slot, r) in ram_banks.iter_mut().zip(board.memory()) {
        *slot = (r.base, r.size);
    }
    mmu::switch_to_final_tables(&mmu::Layout {
        image_offset: HYP_LINK_START - image_pa,
        ram: &ram_banks[..board.memory().len()],
        devices: &devices[..n],
    });
}

/// Starts the console /chosen/stdout-path names, and the logger on it.
pub fn start_console(board: &Board) {
    if let Some(uart) = board.console.filter(|u| u.kind == UartKind::Pl011) {
        // SAFETY: the UART's page is identity-mapped as a device and only the console uses it.
        console::install(Uart::Pl011(unsafe {
            Pl011::new(uart.region.base as usize)
        }));
    }
    crate::logger::init();
}

/// Says what the hyp found, so a user can check the board was understood.
pub fn describe(board: &Board) {
    log::info!(
        "pvhyp {} starting at EL2 on {}",
        env!("CARGO_PKG_VERSION"),
        board.model
    );
    for r in board.memory() {
        log::info!("RAM {:#x}..{:#x} ({} MiB)", r.base, r.end(), r.size >> 20);
    }
    if let Some(uart) = &board.console {
        log::info!("console {:?} at {:#x}", uart.kind, uart.region.base);
    }
    if let Some(gic) = &board.gic {
        log::info!(
            "GIC {:?}, distributor at {:#x}",
            gic.version,
            gic.distributor.base
        );
    }
    log::info!(
        "cpus={} (secondaries stay with the firmware)",
        board.cpus().len()
    );
}

/// Installs vectors and per-CPU state, and the EL2 controls for running guests.
pub fn init_cpu() {
    unsafe extern "C" {
        static hyp_vectors: u8;
    }
    let percpu = percpu::init(0);
    // SAFETY: only the address of the vector table is taken.
    let vectors = unsafe { &hyp_vectors as *const u8 as u64 };
    cpu::init_el2(vectors, percpu as u64);
}

/// Hands all free RAM to the frame allocator: RAM minus the hyp image, the device tree, the
/// initrd and reserved memory.
pub fn init_memory(board: &Board, dtb_pa: usize, image_pa: usize) {
    unsafe extern "C" {
        static __image_end: u8;
    }
    // SAFETY: only the symbol's address is taken.
    let image_size = unsafe { &__image_end as *const u8 as usize } - HYP_LINK_START;
    let mut free = RangeSet::<64>::default();
    let mut ok = board
        .memory()
        .iter()
        .all(|r| free.add(Range::new(r.base, r.size)).is_ok());
    // No heap yet: the holes are an iterator chain, not a collection.
    let fixed = [
        Range::new(image_pa as u64, image_size as u64),
        Range::new(dtb_pa as u64, board_dtb_size(dtb_pa) as u64),
        board
            .initrd
            .map_or(Range::new(0, 0), |r| Range::new(r.base, r.size)),
    ];
    let reserved = board.reserved().iter().map(|r| Range::new(r.base, r.size));
    for hole in fixed.into_iter().chain(reserved) {
        ok &= free.remove(hole).is_ok();
    }
    if !ok {
        log::warn!("memory map too fragmented; some RAM is left unused");
    }
    log::info!(
        "{} MiB free for guests and the hyp heap",
        free.total() >> 20
    );
    if let Err(e) = frames::init(free.as_slice()) {
        fail(e);
    }
}

/// Learns how to switch the board off, so that even a failed boot ends the run.
pub fn init_power(board: &Board) {
    power::init(match board.psci.map(|p| p.method) {
        Some(PsciMethod::Smc) => PowerOff::PsciSmc,
        _ => PowerOff::None,
    });
}

fn board_dtb_size(dtb_pa: usize) -> usize {
    // SAFETY: the device tree header was validated by read_device_tree and stays mapped.
    let header = unsafe { core::slice::from_raw_parts(dtb_pa as *const u8, 40) };
    devtree::total_size(header).unwrap_or(0)
}

/// Reads the manifest and images from the initrd and builds every VM.
#[allow(
    clippy::vec_box,
    reason = "a VM must not move: PerCpu points at its registers"
)]
pub fn load_vms(board: &Board) -> Vec<Box<Vm>> {
    let Some(initrd) = board.initrd else {
        log::error!("no initrd: nothing to run (scripts/run.sh packs the VMs into one)");
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
            "the initrd is not a valid cpio archive: {e:?}"
        )),
    };
    let manifest =
        manifest::decode(text).unwrap_or_else(|e| fail(&alloc::format!("bad manifest: {e}")));
    let mut vms = Vec::new();
    for (index, spec) in manifest.vms.into_iter().enumerate() {
        let image = match manifest::cpio::find(archive, &spec.image) {
            Ok(Some(bytes)) => bytes,
            _ => fail(&alloc::format!(
                "VM {}: image {} missing from the initrd",
                spec.name,
                spec.image
            )),
        };
        let name = spec.name.clone();
        // VMID 0 is never used: stale translations of "no VM" cannot match a guest.
        match Vm::build(index, index as u16 + 1, spec, image) {
            Ok(vm) => {
                log::info!(
                    "VM {name}: VMID {}, {} pages mapped, entry {:#x}, cmdline \"{}\"",
                    vm.vmid,
                    vm.memory.pages_used(),
                    vm.vcpu.regs.elr,
                    vm.spec.cmdline
                );
                vms.push(Box::new(vm));
            }
            Err(e) => fail(&alloc::format!("VM {name}: {e}")),
        }
    }
    vms
}

fn fail(reason: &str) -> ! {
    log::error!("{reason}");
    power::halt_after_failure()
}
