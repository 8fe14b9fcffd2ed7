//! Stage-2 translation control: VTCR_EL2, a VM's VTTBR_EL2, and stage-2 TLB maintenance.

use super::cpu::pa_range_capped;
use crate::arch::{Cpu, Machine, TlbOp};
use crate::vm::memory::{IPA_BITS, ROOT_LEVEL};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

/// Sets this CPU's stage-2 translation control, shared by all VMs.
pub fn init_vtcr() {
    VTCR_EL2.write(
        VTCR_EL2::RES1::SET
            + VTCR_EL2::PS.val(pa_range_capped())
            + VTCR_EL2::TG0::Granule4KB
            + VTCR_EL2::SH0::Inner
            + VTCR_EL2::ORGN0::NormalWBRAWA
            + VTCR_EL2::IRGN0::NormalWBRAWA
            + VTCR_EL2::SL0.val(match ROOT_LEVEL {
                1 => 1,
                _ => 0,
            })
            + VTCR_EL2::T0SZ.val(64 - u64::from(IPA_BITS)),
    );
    barrier::isb(barrier::SY);
}

/// Makes `vttbr` the current stage-2 context.
pub fn load(vttbr: u64) {
    VTTBR_EL2.set(vttbr);
    barrier::isb(barrier::SY);
}

/// Forgets every stage-1 and stage-2 translation of the VM whose VTTBR is `vttbr` (before a
/// VMID is reused, or after its tables were replaced); leaves that VTTBR loaded.
pub fn flush_vm(vttbr: u64) {
    load(vttbr);
    for op in [
        TlbOp::DsbIshst,
        TlbOp::TlbiVmalls12e1is,
        TlbOp::DsbIsh,
        TlbOp::Isb,
    ] {
        Cpu::tlb(op);
    }
}
