//! Stage-2 translation control: VTCR_EL2, a VM's VTTBR_EL2, and stage-2 TLB maintenance.

use super::cpu::pa_range_capped;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::arch::asm;

/// Stage-2 input size: 39-bit IPAs, starting at level 1 (T0SZ = 25, SL0 = 1), valid on every
/// CPU we support (a level-0 start is not on CPUs with 40-bit PAs such as cortex-a53).
pub const IPA_BITS: u32 = 39;
/// The level the stage-2 walk starts at.
pub const ROOT_LEVEL: usize = 1;

/// Sets this CPU's stage-2 translation control, shared by all VMs.
pub fn init_vtcr() {
    VTCR_EL2.write(
        VTCR_EL2::RES1::SET
            + VTCR_EL2::PS.val(pa_range_capped())
            + VTCR_EL2::TG0::Granule4KB
            + VTCR_EL2::SH0::Inner
            + VTCR_EL2::ORGN0::NormalWBRAWA
            + VTCR_EL2::IRGN0::NormalWBRAWA
            + VTCR_EL2::SL0.val(1)
            + VTCR_EL2::T0SZ.val(64 - u64::from(IPA_BITS)),
    );
    barrier::isb(barrier::SY);
}

/// The VTTBR_EL2 value for a VM: its VMID and the physical address of its stage-2 root.
pub fn vttbr(vmid: u16, root_pa: u64) -> u64 {
    (u64::from(vmid) << 48) | root_pa
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
    // SAFETY: TLB maintenance for the current VMID only; no memory is accessed.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack)
        )
    };
}
