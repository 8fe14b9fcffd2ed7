//! A vGIC on this CPU: its list registers in and out of the virtual CPU interface
//! (`arch::aarch64::vgic`), and the physical side of hardware-mapped interrupts (`dev::gic`).
//! While a vCPU's virtual timer is in flight in a hardware LR the physical INTID 27 is active,
//! on whichever CPU the vCPU is loaded: cleared when it leaves (whether or not an LR carries
//! it), set again where it returns in an LR, so the next vCPU on the CPU keeps its own timer
//! and the guest's deactivation finds it active.

use super::lr::{Lr, LrState};
use super::{GicModel, VGic, VcpuMask};
use crate::arch::aarch64::vgic as cpu_if;
use crate::dev::gic;

/// The model a Linux VM's vGIC has on this board, `None` if the GIC cannot virtualize.
pub fn model() -> Option<GicModel> {
    gic::model()
}

/// The list registers each CPU has: `LrState::new(hw::list_registers())` for each vCPU.
pub fn list_registers() -> usize {
    gic::list_registers()
}

/// Whether physical `intid` is the maintenance interrupt: the exit of a Linux vCPU then calls
/// `sync` (and `dev::gic::end`).
pub fn is_maintenance(intid: u32) -> bool {
    gic::maintenance_intid() == Some(intid)
}

/// Vcpu `v` is being loaded on this CPU: its LRs built and loaded, its in-flight hardware
/// interrupts made active here. Call before its EL1 state (CNTV_CTL) is restored.
pub fn switch_in(vgic: &mut VGic, v: usize, state: &mut LrState) {
    let model = vgic.model();
    vgic.load(v, state);
    for pintid in in_flight(model, state) {
        gic::set_private_active(pintid, true);
    }
    restore(model, state);
}

/// Vcpu `v` leaves this CPU: its LRs read back and folded, the interface off, its hardware
/// interrupts no longer active here. Call after its timer is stopped (CNTV_CTL 0). Returns the
/// vCPUs to kick (an SPI it released).
pub fn switch_out(vgic: &mut VGic, v: usize, state: &mut LrState) -> VcpuMask {
    let model = vgic.model();
    save(model, state);
    if model == GicModel::V3 {
        // GICv2's GICH frame is the hyp's alone; GICv3's state stays readable (`v3_clear`).
        cpu_if::v3_clear(state, gic::v3_aprs());
    }
    // Every hardware PPI, not only those in an LR: one the guest left where no LR carries it
    // (pending while it disabled it, say) was left active for a deactivation that cannot
    // come, and would hold the timer of every vCPU loaded here after it.
    let mut ppis = vgic.hw_ppis(v);
    while ppis != 0 {
        gic::set_private_active(ppis.trailing_zeros(), false);
        ppis &= ppis - 1;
    }
    vgic.save(v, state)
}

/// Vcpu `v` stays loaded but its LRs must change (a returned mask named it, or the maintenance
/// interrupt fired): read back, folded, rebuilt, loaded. Returns the vCPUs to kick.
pub fn sync(vgic: &mut VGic, v: usize, state: &mut LrState) -> VcpuMask {
    let model = vgic.model();
    save(model, state);
    let kick = vgic.save(v, state);
    vgic.load(v, state);
    restore(model, state);
    kick
}

/// The physical INTIDs of the hardware LRs still pending or active in `state`.
fn in_flight(model: GicModel, state: &LrState) -> impl Iterator<Item = u32> + '_ {
    state
        .used()
        .iter()
        .map(move |&raw| Lr::decode(raw, model))
        .filter(|lr| lr.hw && (lr.pending || lr.active))
        .map(|lr| lr.pintid)
}

fn restore(model: GicModel, state: &LrState) {
    match model {
        GicModel::V3 => cpu_if::v3_restore(state, gic::v3_aprs()),
        GicModel::V2 => {
            if let Some(gich) = gic::gich() {
                gich.restore(state);
            }
        }
    }
}

fn save(model: GicModel, state: &mut LrState) {
    match model {
        GicModel::V3 => cpu_if::v3_save(state, gic::v3_aprs()),
        GicModel::V2 => {
            if let Some(gich) = gic::gich() {
                gich.save(state);
            }
        }
    }
}
