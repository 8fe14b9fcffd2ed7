//! The interrupt controller, for the hypervisor's own interrupts: its scheduling timer, the
//! guests' virtual timer, and the kick (an SGI one CPU sends another to make it act at once).
//! Guests never see it: no GIC page is in any stage 2, and their interrupts are events.
//! GICv2 (the Pi 4's GIC-400, `virt` with `--gic 2`) through its MMIO CPU interface, GICv3
//! through the system registers; the `arm-gic` crate sets both up.
//!
//! Set-up and enabling take the GIC lock; taking, ending and sending interrupts do not (they
//! run on every guest exit of every CPU): on GICv3 they are system registers of the CPU, on
//! GICv2 the CPU interface's registers are banked per CPU and GICD_SGIR is one write.

use crate::percpu::MAX_CPUS;
use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3, Group, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup, UniqueMmioPointer};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use devtree::GicVersion;
use spin::Mutex;

enum Driver {
    V2(GicV2<'static>),
    V3(GicV3<'static>),
}

// SAFETY: the driver holds MMIO pointers to the GIC, used only under the GIC lock.
unsafe impl Send for Driver {}

static GIC: Mutex<Option<Driver>> = Mutex::new(None);

/// Which GIC is up (`NONE` until `init`), read without the lock.
static VERSION: AtomicU8 = AtomicU8::new(NONE);
const NONE: u8 = 0;
const V2: u8 = 2;
const V3: u8 = 3;

/// GICv2's distributor and CPU interface (identity-mapped), for the lock-free registers.
static GICD_BASE: AtomicUsize = AtomicUsize::new(0);
static GICC_BASE: AtomicUsize = AtomicUsize::new(0);

/// GICv2 registers (GIC architecture v2, 4.3 and 4.4).
const GICD_ITARGETSR0: usize = 0x800;
const GICD_SGIR: usize = 0xf00;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;
/// GICC_IAR's interrupt ID (bits 12:10 are the CPU that sent an SGI).
const IAR_INTID: u32 = 0x3ff;
/// GICD_SGIR.NSATT: a Group 1 SGI (ignored on a Non-secure write, which sends Group 1 only).
const SGIR_NSATT: u32 = 1 << 15;

/// The SGI that kicks a CPU: it leaves its guest (or its idle wait) and looks at the
/// requests of the vCPUs it runs (vm::sched).
pub const KICK_SGI: u32 = 1;

/// How each logical CPU is named as an SGI target: on GICv3 its MPIDR affinity, on GICv2 its
/// CPU-interface bit, which only that CPU reads (its own banked GICD_ITARGETSR0).
static SGI_TARGET: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The priority of the hyp's interrupts (lower is more urgent; all are equal here).
const PRIORITY: u8 = 0x80;

/// Why the GIC could not be brought up.
#[derive(Debug)]
pub struct GicUnavailable(pub &'static str);

/// Brings up the distributor and this CPU's interface (CPU 0's, its PerCpu set up), with its
/// kick enabled.
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
            GICD_BASE.store(gic.distributor.base as usize, Ordering::Relaxed);
            GICC_BASE.store(gicc.base as usize, Ordering::Relaxed);
            VERSION.store(V2, Ordering::Release);
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
            VERSION.store(V3, Ordering::Release);
            Driver::V3(d)
        }
    };
    *GIC.lock() = Some(driver);
    enable_kick(crate::percpu::gic_index());
    Ok(())
}

/// Brings up the calling secondary CPU's part of the GIC: on GICv2 its banked CPU interface
/// (and banked group registers), on GICv3 its redistributor (`gic_index`: its place in the
/// `/cpus` list, which is the redistributors' order) and system-register interface; then its
/// kick. `init` has run on CPU 0.
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
        None => return,
    }
    enable_kick(gic_index);
}

/// Records how other CPUs name this one in an SGI, and enables the kick SGI on it.
fn enable_kick(gic_index: usize) {
    use aarch64_cpu::registers::{MPIDR_EL1, Readable};
    let target = match VERSION.load(Ordering::Acquire) {
        V2 => {
            // SAFETY: a read of this CPU's banked, read-only GICD_ITARGETSR0 (its own
            // interface's bit in each byte), in the distributor `init` was given.
            let own = unsafe {
                core::ptr::read_volatile(
                    (GICD_BASE.load(Ordering::Relaxed) + GICD_ITARGETSR0) as *const u32,
                )
            };
            u64::from(own & 0xff)
        }
        _ => MPIDR_EL1.get() & 0xff_00ff_ffff,
    };
    if let Some(slot) = SGI_TARGET.get(crate::percpu::index()) {
        slot.store(target, Ordering::Release);
    }
    enable_private(IntId::sgi(KICK_SGI), gic_index);
}

/// Enables a private interrupt (PPI `ppi`, INTID 16 + ppi) on this CPU (`cpu`: its GIC index).
pub fn enable_ppi(ppi: u32, cpu: usize) {
    enable_private(IntId::ppi(ppi), cpu);
}

fn enable_private(intid: IntId, cpu: usize) {
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
            let gicd = GICD_BASE.load(Ordering::Relaxed);
            // ITARGETSR: byte n targets INTID n; byte 0 (banked) reads as this CPU's own bit.
            // SAFETY: the distributor init mapped, at a byte of its ITARGETSR array.
            unsafe {
                let targets = (gicd + GICD_ITARGETSR0) as *mut u8;
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

/// Makes logical CPU `cpu` take the kick SGI: it leaves its guest, or its idle wait, at once.
/// Memory written before the kick is visible to that CPU when it takes it.
pub fn kick(cpu: usize) {
    let Some(target) = SGI_TARGET.get(cpu).map(|t| t.load(Ordering::Acquire)) else {
        return;
    };
    // The target reads what was written before the kick (requests, queued vCPUs).
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISHST);
    match VERSION.load(Ordering::Acquire) {
        V2 => {
            let sgir = KICK_SGI | ((target as u32 & 0xff) << 16) | SGIR_NSATT;
            // SAFETY: one write of GICD_SGIR, in the distributor `init` was given; it only
            // sends an SGI.
            unsafe {
                core::ptr::write_volatile(
                    (GICD_BASE.load(Ordering::Relaxed) + GICD_SGIR) as *mut u32,
                    sgir,
                )
            };
        }
        V3 => {
            let aff0 = target & 0xff;
            let _ = GicCpuInterface::send_sgi(
                IntId::sgi(KICK_SGI),
                SgiTarget::List {
                    affinity3: (target >> 32) as u8,
                    affinity2: (target >> 16) as u8,
                    affinity1: (target >> 8) as u8,
                    target_list: 1 << (aff0 & 0xf),
                },
                SgiTargetGroup::CurrentGroup1,
            );
            aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        }
        _ => {}
    }
}

/// An interrupt taken by `acknowledge`, to pass to `end`.
#[derive(Clone, Copy, Debug)]
pub struct Acked {
    /// Its INTID.
    pub intid: u32,
    /// What the CPU interface returned (on GICv2 an SGI's sender too): what ends it.
    raw: u32,
}

/// Takes the highest-priority pending interrupt, if any.
pub fn acknowledge() -> Option<Acked> {
    let raw = match VERSION.load(Ordering::Acquire) {
        // On GICv2 the non-secure GICC_IAR/EOIR serve whichever group the hyp's interrupts are
        // in.
        // SAFETY: a read of this CPU's banked GICC_IAR, in the interface `init` was given.
        V2 => unsafe {
            core::ptr::read_volatile((GICC_BASE.load(Ordering::Relaxed) + GICC_IAR) as *const u32)
        },
        V3 => GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1)
            .map_or(IntId::SPECIAL_NONE.into(), u32::from),
        _ => return None,
    };
    let intid = raw & IAR_INTID;
    // 1020..=1023 are special: nothing to take.
    (intid < 1020).then_some(Acked { intid, raw })
}

/// Ends (and deactivates) an interrupt `acknowledge` returned.
pub fn end(acked: Acked) {
    match VERSION.load(Ordering::Acquire) {
        // SAFETY: a write of this CPU's banked GICC_EOIR, in the interface `init` was given.
        V2 => unsafe {
            core::ptr::write_volatile(
                (GICC_BASE.load(Ordering::Relaxed) + GICC_EOIR) as *mut u32,
                acked.raw,
            )
        },
        V3 => {
            if let Ok(id) = IntId::try_from(acked.raw) {
                GicCpuInterface::end_interrupt(id, InterruptGroup::Group1);
            }
        }
        _ => {}
    }
}
