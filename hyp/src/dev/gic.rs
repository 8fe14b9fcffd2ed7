//! The interrupt controller, for the hypervisor's own interrupts (its scheduling timer).
//! Guests never see it: no GIC page is in any stage 2, and their interrupts are events.
//! GICv2 (the Pi 4's GIC-400, `virt` with `--gic 2`) through its MMIO CPU interface, GICv3
//! through the system registers; the `arm-gic` crate drives both.

use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3, Group};
use arm_gic::{IntId, InterruptGroup, UniqueMmioPointer};
use core::ptr::NonNull;
use devtree::GicVersion;
use spin::Mutex;

enum Driver {
    V2(GicV2<'static>),
    V3(GicV3<'static>),
}

// SAFETY: the driver holds MMIO pointers to the GIC, used only under the GIC lock.
unsafe impl Send for Driver {}

static GIC: Mutex<Option<Driver>> = Mutex::new(None);
/// The GICv2 distributor's address, for the SPI targets the crate does not set (0: GICv3).
static GICD_V2: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// The priority of the hyp's interrupts (lower is more urgent; all are equal here).
const PRIORITY: u8 = 0x80;

/// Why the GIC could not be brought up.
#[derive(Debug)]
pub struct GicUnavailable(pub &'static str);

/// Brings up the distributor and this CPU's interface.
///
/// # Safety
/// The GIC's regions in `gic` must be identity-mapped as device memory and used by nothing else.
pub unsafe fn init(gic: &devtree::Gic, cpus: usize) -> Result<(), GicUnavailable> {
    let driver = match gic.version {
        GicVersion::V2 => {
            let gicc = gic
                .cpu_interface
                .ok_or(GicUnavailable("GICv2 without a CPU interface"))?;
            // SAFETY: per this function's contract.
            let mut d = unsafe { GicV2::new(gic.distributor.base as *mut _, gicc.base as *mut _) };
            d.setup();
            GICD_V2.store(
                gic.distributor.base as usize,
                core::sync::atomic::Ordering::Relaxed,
            );
            Driver::V2(d)
        }
        GicVersion::V3 => {
            let gicr = gic
                .redistributor
                .ok_or(GicUnavailable("GICv3 without redistributors"))?;
            // EL2 uses the system-register interface; EL1 may not enable it (Enable = 0), so a
            // guest cannot reach the physical CPU interface.
            GicCpuInterface::enable_system_register_el2(false);
            let gicd =
                NonNull::new(gic.distributor.base as *mut _).ok_or(GicUnavailable("GICD at 0"))?;
            let gicr = NonNull::new(gicr.base as *mut _).ok_or(GicUnavailable("GICR at 0"))?;
            // SAFETY: per this function's contract.
            let mut d = unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, cpus) }
                .map_err(|_| GicUnavailable("GICv3 redistributors not found"))?;
            d.setup(0);
            Driver::V3(d)
        }
    };
    *GIC.lock() = Some(driver);
    Ok(())
}

/// Brings up the calling secondary CPU's part of the GIC: on GICv2 its banked CPU interface
/// (and banked group registers), on GICv3 its redistributor (`gic_index`: its place in the
/// `/cpus` list, which is the redistributors' order) and system-register interface. `init` has
/// run on CPU 0.
pub fn init_this_cpu(gic_index: usize) {
    match GIC.lock().as_mut() {
        // Re-running the set-up writes only idempotent distributor state besides this CPU's
        // banked registers (IGROUPR0, GICC_CTLR, GICC_PMR).
        Some(Driver::V2(d)) => d.setup(),
        Some(Driver::V3(d)) => {
            GicCpuInterface::enable_system_register_el2(false);
            d.init_cpu(gic_index);
            GicCpuInterface::enable_group1(true);
        }
        None => {}
    }
}

/// Enables a private interrupt (PPI `ppi`, INTID 16 + ppi) on this CPU (`cpu`: its GIC index).
pub fn enable_ppi(ppi: u32, cpu: usize) {
    let intid = IntId::ppi(ppi);
    match GIC.lock().as_mut() {
        Some(Driver::V2(d)) => {
            d.set_interrupt_priority(intid, PRIORITY);
            let _ = d.enable_interrupt(intid, true);
        }
        Some(Driver::V3(d)) => {
            let _ = d.set_interrupt_priority(intid, Some(cpu), PRIORITY);
            let _ = d.set_group(intid, Some(cpu), Group::Group1NS);
            let _ = d.enable_interrupt(intid, Some(cpu), true);
            GicCpuInterface::set_priority_mask(0xff);
        }
        None => {}
    }
}

/// Enables a shared peripheral interrupt (INTID `intid`, a device's), delivered to the calling
/// CPU.
pub fn enable_spi(intid: u32) {
    let Ok(id) = IntId::try_from(intid) else {
        return;
    };
    match GIC.lock().as_mut() {
        Some(Driver::V2(d)) => {
            d.set_interrupt_priority(id, PRIORITY);
            let gicd = GICD_V2.load(core::sync::atomic::Ordering::Relaxed);
            // ITARGETSR: byte n targets INTID n; byte 0 (banked) reads as this CPU's own bit.
            // SAFETY: the distributor init mapped, at a byte of its ITARGETSR array.
            unsafe {
                let targets = (gicd + 0x800) as *mut u8;
                let me = core::ptr::read_volatile(targets);
                core::ptr::write_volatile(targets.add(intid as usize), me);
            }
            let _ = d.enable_interrupt(id, true);
        }
        Some(Driver::V3(d)) => {
            let _ = d.set_interrupt_priority(id, None, PRIORITY);
            let _ = d.set_group(id, None, Group::Group1NS);
            use aarch64_cpu::registers::Readable;
            let mpidr = aarch64_cpu::registers::MPIDR_EL1.get();
            let _ = d.distributor().set_routing(id, Some(mpidr));
            let _ = d.enable_interrupt(id, None, true);
        }
        None => {}
    }
}

/// Takes the highest-priority pending interrupt, if any: its INTID.
pub fn acknowledge() -> Option<u32> {
    // On GICv2 the non-secure GICC_IAR/EOIR serve whichever group the hyp's interrupts are in
    // (the crate calls them the Group 0 registers).
    let id = match GIC.lock().as_mut()? {
        Driver::V2(d) => d.get_and_acknowledge_interrupt(InterruptGroup::Group0),
        Driver::V3(_) => GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1),
    };
    id.map(u32::from)
}

/// Ends (and deactivates) an interrupt `acknowledge` returned.
pub fn end(intid: u32) {
    let Ok(id) = IntId::try_from(intid) else {
        return;
    };
    match GIC.lock().as_mut() {
        Some(Driver::V2(d)) => d.end_interrupt(id, InterruptGroup::Group0),
        Some(Driver::V3(_)) => GicCpuInterface::end_interrupt(id, InterruptGroup::Group1),
        None => {}
    }
}
