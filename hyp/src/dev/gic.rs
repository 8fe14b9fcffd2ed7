//! The interrupt controller, for the hypervisor's own interrupts: its scheduling timer, the
//! guests' virtual timer, and the kick (an SGI one CPU sends another to make it act at once).
//! Guests never see it: no GIC page is in any stage 2, and their interrupts are events.
//! GICv2 (the Pi 4's GIC-400, `virt` with `--gic 2`) through its MMIO CPU interface, GICv3
//! through the system registers; the `arm-gic` crate sets both up.
//!
//! For a Linux VM's vGIC it also knows the virtualization side: GICv3's ICH_* list registers
//! (`list_registers`), GICv2's GICH frame (`gich`, mapped for the hyp) and GICV frames
//! (`gicv_base`, for the guest's stage 2 where its GICC is), the maintenance interrupt
//! (`maintenance_intid`, enabled on every CPU), and forwarded interrupts: the CPU interface
//! runs with EOImode 1, so `end` drops the priority and deactivates, `end_forwarded` (the
//! virtual timer of a Linux vCPU, handed on through a hardware list register) only drops the
//! priority and leaves the deactivation to the guest.
//!
//! Set-up and enabling take the GIC lock; taking, ending and sending interrupts do not (they
//! run on every guest exit of every CPU): on GICv3 they are system registers of the CPU, on
//! GICv2 the CPU interface's registers are banked per CPU and GICD_SGIR is one write.

use crate::addr::PhysAddr;
use crate::arch::aarch64::vgic as cpu_if;
use crate::percpu::MAX_CPUS;
use crate::vdev::vgic::GicModel;
use arm_gic::gicv2::GicV2;
use arm_gic::gicv3::{GicCpuInterface, GicV3, Group, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup, UniqueMmioPointer};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
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

/// GICv2: the virtual interface control (GICH, identity-mapped for the hyp) and the virtual
/// CPU interface (GICV, the guest's; never mapped for the hyp); 0: the board has none.
static GICH_BASE: AtomicUsize = AtomicUsize::new(0);
static GICV_BASE: AtomicU64 = AtomicU64::new(0);
/// The list registers of this board's virtual CPU interfaces (0: no virtualization), and on
/// GICv3 its active-priority registers per group.
static LIST_REGISTERS: AtomicUsize = AtomicUsize::new(0);
static V3_APRS: AtomicUsize = AtomicUsize::new(1);
/// The maintenance interrupt's INTID (0: none).
static MAINTENANCE_INTID: AtomicU32 = AtomicU32::new(0);
/// GICv3: each logical CPU's redistributor SGI frame, for its private interrupts' active state.
static GICR_SGI_BASE: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// The maintenance interrupt where the device tree names none: PPI 9, as on `virt` and the Pi.
const DEFAULT_MAINTENANCE_INTID: u32 = 25;

/// GICv2 registers (GIC architecture v2, 4.3 and 4.4).
const GICD_ISACTIVER0: usize = 0x300;
const GICD_ICACTIVER0: usize = 0x380;
const GICD_ITARGETSR0: usize = 0x800;
const GICD_SGIR: usize = 0xf00;
const GICC_IAR: usize = 0x0c;
const GICC_EOIR: usize = 0x10;
/// GICC_CTLR, and its EOImode bit for the hyp's group (EOImodeNS in the Non-secure view of a
/// GIC with security extensions, EOImodeS, which governs group 0, without).
const GICC_CTLR: usize = 0x00;
const GICC_CTLR_EOIMODE: u32 = 1 << 9;
/// GICC_DIR, in the CPU interface's second 4 KiB page.
const GICC_DIR: usize = 0x1000;
/// GICv3 redistributor: the SGI frame follows the RD frame; GICR_TYPER.VLPIS means two more.
const GICR_FRAME: usize = 0x1_0000;
const GICR_TYPER: usize = 0x8;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_ISACTIVER0: usize = 0x300;
const GICR_ICACTIVER0: usize = 0x380;
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
            split_eoi_v2();
            if let (Some(gich), Some(gicv)) = (gic.hyp_interface, gic.vcpu_interface) {
                GICH_BASE.store(gich.base as usize, Ordering::Relaxed);
                GICV_BASE.store(gicv.base, Ordering::Relaxed);
                // SAFETY: per this function's contract, the GICH region is mapped.
                let lrs = unsafe { cpu_if::Gich::new(gich.base as usize) }.list_registers();
                LIST_REGISTERS.store(lrs, Ordering::Relaxed);
            }
            VERSION.store(V2, Ordering::Release);
            Driver::V2(d)
        }
        GicVersion::V3 => {
            let gicr = gic
                .redistributor
                .ok_or(GicUnavailable("GICv3 without redistributors"))?;
            cpu_if::v3_enable_system_registers();
            let gicd =
                NonNull::new(gic.distributor.base as *mut _).ok_or(GicUnavailable("GICD at 0"))?;
            let gicr = NonNull::new(gicr.base as *mut _).ok_or(GicUnavailable("GICR at 0"))?;
            // SAFETY: per this function's contract.
            let mut d = unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, cpus) }
                .map_err(|_| GicUnavailable("GICv3 redistributors not found"))?;
            d.setup(0);
            cpu_if::v3_split_eoi();
            let (lrs, aprs) = cpu_if::v3_interface();
            LIST_REGISTERS.store(lrs, Ordering::Relaxed);
            V3_APRS.store(aprs, Ordering::Relaxed);
            REDISTRIBUTORS.store(gicr.as_ptr() as usize, Ordering::Relaxed);
            VERSION.store(V3, Ordering::Release);
            Driver::V3(d)
        }
    };
    *GIC.lock() = Some(driver);
    let lrs = LIST_REGISTERS.load(Ordering::Relaxed);
    if lrs > 0 {
        let intid = gic.maintenance_irq.unwrap_or(DEFAULT_MAINTENANCE_INTID);
        MAINTENANCE_INTID.store(intid, Ordering::Relaxed);
        match gicv_base() {
            Some(gicv) => info!(
                "vGIC: {lrs} list registers, GICV at {:#x}, maintenance INTID {intid}",
                gicv.get()
            ),
            None => info!("vGIC: {lrs} list registers, maintenance INTID {intid}"),
        }
    }
    enable_this_cpu(crate::percpu::gic_index());
    Ok(())
}

/// GICv3: the first redistributor, to find each CPU's.
static REDISTRIBUTORS: AtomicUsize = AtomicUsize::new(0);

/// GICv2: this CPU's interface drops priority on EOIR and deactivates on DIR (banked).
fn split_eoi_v2() {
    let ctlr = GICC_BASE.load(Ordering::Relaxed) + GICC_CTLR;
    // SAFETY: this CPU's banked GICC_CTLR, in the interface `init` was given; the set-up just
    // enabled it, and the hyp's `end` deactivates explicitly from now on.
    unsafe {
        core::ptr::write_volatile(
            ctlr as *mut u32,
            core::ptr::read_volatile(ctlr as *const u32) | GICC_CTLR_EOIMODE,
        )
    };
}

/// What every CPU sets up in its own banked registers: its virtual interface off, its kick and
/// the maintenance interrupt enabled; on GICv3 it records its redistributor's SGI frame.
fn enable_this_cpu(gic_index: usize) {
    // Its virtual interface starts off (ICH_HCR_EL2 / GICH_HCR reset values are not to be
    // trusted): PV vCPUs run with it off, a Linux vCPU turns it on (`vdev::vgic::hw`).
    match VERSION.load(Ordering::Acquire) {
        V3 => cpu_if::v3_off(),
        V2 => {
            if let Some(gich) = gich() {
                gich.off();
            }
        }
        _ => {}
    }
    if VERSION.load(Ordering::Acquire) == V3 {
        let first = REDISTRIBUTORS.load(Ordering::Relaxed);
        // SAFETY: a read of the first redistributor's GICR_TYPER, mapped by `init`'s contract.
        let typer = unsafe { core::ptr::read_volatile((first + GICR_TYPER) as *const u64) };
        let frames = if typer & GICR_TYPER_VLPIS != 0 { 4 } else { 2 };
        let sgi = first + (gic_index * frames + 1) * GICR_FRAME;
        if let Some(slot) = GICR_SGI_BASE.get(crate::percpu::index()) {
            slot.store(sgi, Ordering::Relaxed);
        }
    }
    enable_kick(gic_index);
    let maintenance = MAINTENANCE_INTID.load(Ordering::Relaxed);
    if (16..32).contains(&maintenance) {
        enable_ppi(maintenance - 16, gic_index);
    }
}

/// Brings up the calling secondary CPU's part of the GIC: on GICv2 its banked CPU interface
/// (and banked group registers), on GICv3 its redistributor (`gic_index`: its place in the
/// `/cpus` list, which is the redistributors' order) and system-register interface; then its
/// kick. `init` has run on CPU 0.
pub fn init_this_cpu(gic_index: usize) {
    match GIC.lock().as_mut() {
        // Re-running the set-up writes only idempotent distributor state besides this CPU's
        // banked registers (IGROUPR0, GICC_CTLR, GICC_PMR).
        Some(Driver::V2(d)) => {
            d.setup();
            split_eoi_v2();
        }
        Some(Driver::V3(d)) => {
            cpu_if::v3_enable_system_registers();
            d.init_cpu(gic_index);
            cpu_if::v3_split_eoi();
            GicCpuInterface::enable_group1(true);
        }
        None => return,
    }
    enable_this_cpu(gic_index);
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

/// Enables (`true`) or disables a shared peripheral interrupt `enable_spi` set up, leaving its
/// priority, group and target as they are: a level interrupt the hyp took for a guest stays
/// disabled until that guest has handled it.
pub fn set_spi_enabled(intid: u32, on: bool) {
    let Ok(id) = IntId::try_from(intid) else {
        return;
    };
    match GIC.lock().as_mut() {
        Some(Driver::V2(d)) => {
            let _ = d.enable_interrupt(id, on);
        }
        Some(Driver::V3(d)) => {
            let _ = d.enable_interrupt(id, None, on);
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

/// Ends an interrupt `acknowledge` returned: drops its priority and deactivates it.
pub fn end(acked: Acked) {
    end_forwarded(acked);
    match VERSION.load(Ordering::Acquire) {
        // SAFETY: a write of this CPU's banked GICC_DIR (the interface's second page, mapped
        // with it), in the interface `init` was given.
        V2 => unsafe {
            core::ptr::write_volatile(
                (GICC_BASE.load(Ordering::Relaxed) + GICC_DIR) as *mut u32,
                acked.raw,
            )
        },
        V3 => cpu_if::v3_deactivate(acked.intid),
        _ => {}
    }
}

/// Ends an interrupt `acknowledge` returned that a guest now owns through a hardware list
/// register (a Linux vCPU's virtual timer): only its priority drops; it stays active until
/// the guest deactivates the virtual one.
pub fn end_forwarded(acked: Acked) {
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

/// Sets or clears the active state of private interrupt `intid` (16..31) on this CPU: a
/// Linux vCPU's in-flight virtual timer follows it from CPU to CPU (`vdev::vgic::hw`).
pub fn set_private_active(intid: u32, active: bool) {
    if !(16..32).contains(&intid) {
        return;
    }
    let bit = 1u32 << intid;
    let register = match VERSION.load(Ordering::Acquire) {
        V2 => {
            GICD_BASE.load(Ordering::Relaxed)
                + if active {
                    GICD_ISACTIVER0
                } else {
                    GICD_ICACTIVER0
                }
        }
        V3 => {
            let Some(sgi) = GICR_SGI_BASE.get(crate::percpu::index()) else {
                return;
            };
            sgi.load(Ordering::Relaxed)
                + if active {
                    GICR_ISACTIVER0
                } else {
                    GICR_ICACTIVER0
                }
        }
        _ => return,
    };
    // SAFETY: one write of this CPU's (banked) GICD_I[SC]ACTIVER0, or of its own
    // redistributor's GICR_I[SC]ACTIVER0, mapped by `init`'s contract: it changes only the
    // active state of the private interrupt named.
    unsafe { core::ptr::write_volatile(register as *mut u32, bit) };
}

/// The GIC a Linux VM's vGIC models: the board's, if it has the virtualization extensions
/// (GICv3's ICH_* registers; GICv2's GICH and GICV frames in the device tree).
pub fn model() -> Option<GicModel> {
    if LIST_REGISTERS.load(Ordering::Relaxed) == 0 {
        return None;
    }
    match VERSION.load(Ordering::Acquire) {
        V2 => Some(GicModel::V2),
        V3 => Some(GicModel::V3),
        _ => None,
    }
}

/// How many list registers each CPU's virtual interface has (0: no virtualization).
pub fn list_registers() -> usize {
    LIST_REGISTERS.load(Ordering::Relaxed)
}

/// GICv3: the active-priority registers per group (`arch::aarch64::vgic::v3_interface`).
pub fn v3_aprs() -> usize {
    V3_APRS.load(Ordering::Relaxed)
}

/// The maintenance interrupt's INTID, if the board virtualizes its GIC.
pub fn maintenance_intid() -> Option<u32> {
    Some(MAINTENANCE_INTID.load(Ordering::Relaxed)).filter(|&i| i != 0)
}

/// GICv2: the GICH frame (this CPU's view), mapped for the hyp.
pub fn gich() -> Option<cpu_if::Gich> {
    let base = GICH_BASE.load(Ordering::Relaxed);
    // SAFETY: `init` stored the GICH region of the device tree, which boot maps for the hyp
    // (take_over_mmu) and no guest's stage 2 maps.
    (base != 0).then(|| unsafe { cpu_if::Gich::new(base) })
}

/// GICv2: the physical base of the GICV frames (two 4 KiB pages a Linux VM maps where its GICC
/// is, as Device memory; never RAM, never given to the frame allocator).
pub fn gicv_base() -> Option<PhysAddr> {
    Some(GICV_BASE.load(Ordering::Relaxed))
        .filter(|&b| b != 0)
        .map(PhysAddr::new)
}
