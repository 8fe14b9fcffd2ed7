//! The CPU's virtual CPU interface, for a Linux VM's vGIC: GICv3's ICH_*_EL2 system registers,
//! GICv2's GICH frame; and the few ICC_* registers of the hyp's own CPU interface that the
//! forwarding of interrupts needs (split priority drop and deactivation). Only the register
//! accesses are here: the bit layouts are `vdev::vgic::lr`, what goes in them `vdev::vgic`.

use crate::vdev::vgic::lr::{LrState, MAX_LRS};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::arch::asm;

/// GICv3: the list registers the CPU has (ICH_VTR_EL2.ListRegs + 1, at most `MAX_LRS`) and
/// the active-priority registers of each group (1, 2 or 4 as PREbits says 5, 6 or 7 bits).
pub fn v3_interface() -> (usize, usize) {
    let lrs = ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as usize + 1;
    let pre_bits = ICH_VTR_EL2.read(ICH_VTR_EL2::PREbits) as u32 + 1;
    let aprs = 1usize << pre_bits.saturating_sub(5).min(2);
    (lrs.min(MAX_LRS), aprs)
}

macro_rules! lr_access {
    ($($n:literal => $reg:ident),* $(,)?) => {
        fn v3_read_lr(n: usize) -> u64 {
            match n { $($n => $reg.get(),)* _ => 0 }
        }
        // Inlined: `v3_restore` is on the path of every vGIC sync (`v3_clear` the other caller).
        #[inline(always)]
        fn v3_write_lr(n: usize, value: u64) {
            match n { $($n => $reg.set(value),)* _ => {} }
        }
    };
}

lr_access! {
    0 => ICH_LR0_EL2, 1 => ICH_LR1_EL2, 2 => ICH_LR2_EL2, 3 => ICH_LR3_EL2,
    4 => ICH_LR4_EL2, 5 => ICH_LR5_EL2, 6 => ICH_LR6_EL2, 7 => ICH_LR7_EL2,
    8 => ICH_LR8_EL2, 9 => ICH_LR9_EL2, 10 => ICH_LR10_EL2, 11 => ICH_LR11_EL2,
    12 => ICH_LR12_EL2, 13 => ICH_LR13_EL2, 14 => ICH_LR14_EL2, 15 => ICH_LR15_EL2,
}

#[inline(always)]
fn v3_write_aprs(ap0r: &[u32; 4], ap1r: &[u32; 4], aprs: usize) {
    // Highest first: the architecture has AP<g>R<n> only for n < the count.
    if aprs > 2 {
        ICH_AP0R3_EL2.set(u64::from(ap0r[3]));
        ICH_AP0R2_EL2.set(u64::from(ap0r[2]));
        ICH_AP1R3_EL2.set(u64::from(ap1r[3]));
        ICH_AP1R2_EL2.set(u64::from(ap1r[2]));
    }
    if aprs > 1 {
        ICH_AP0R1_EL2.set(u64::from(ap0r[1]));
        ICH_AP1R1_EL2.set(u64::from(ap1r[1]));
    }
    ICH_AP0R0_EL2.set(u64::from(ap0r[0]));
    ICH_AP1R0_EL2.set(u64::from(ap1r[0]));
}

fn v3_read_aprs(state: &mut LrState, aprs: usize) {
    if aprs > 2 {
        state.ap0r[3] = ICH_AP0R3_EL2.get() as u32;
        state.ap0r[2] = ICH_AP0R2_EL2.get() as u32;
        state.ap1r[3] = ICH_AP1R3_EL2.get() as u32;
        state.ap1r[2] = ICH_AP1R2_EL2.get() as u32;
    }
    if aprs > 1 {
        state.ap0r[1] = ICH_AP0R1_EL2.get() as u32;
        state.ap1r[1] = ICH_AP1R1_EL2.get() as u32;
    }
    state.ap0r[0] = ICH_AP0R0_EL2.get() as u32;
    state.ap1r[0] = ICH_AP1R0_EL2.get() as u32;
}

/// GICv3: loads a vCPU's interface (`aprs` from `v3_interface`); it is on (`state.hcr`'s En)
/// from the next entry to EL1.
pub fn v3_restore(state: &LrState, aprs: usize) {
    for (n, &lr) in state.used().iter().enumerate() {
        v3_write_lr(n, lr);
    }
    v3_write_aprs(&state.ap0r, &state.ap1r, aprs);
    ICH_VMCR_EL2.set(u64::from(state.vmcr));
    ICH_HCR_EL2.set(u64::from(state.hcr));
    barrier::isb(barrier::SY);
}

/// GICv3: reads back what the vCPU left in its interface, then turns it off (no maintenance
/// interrupt while another vCPU, or the hyp, has the CPU).
pub fn v3_save(state: &mut LrState, aprs: usize) {
    state.misr = ICH_MISR_EL2.get() as u32;
    let (eisr, elrsr): (u64, u64);
    // SAFETY: reading ICH_EISR_EL2 (s3_4_c12_c11_3) and ICH_ELRSR_EL2 (s3_4_c12_c11_5) has no
    // side effect; the CPU has them (GICv3 with ICC_SRE_EL2.SRE set at boot).
    unsafe {
        asm!("mrs {}, s3_4_c12_c11_3", out(reg) eisr, options(nomem, nostack));
        asm!("mrs {}, s3_4_c12_c11_5", out(reg) elrsr, options(nomem, nostack));
    }
    state.eisr = eisr as u32;
    state.elrsr = elrsr as u32;
    let count = state.used().len();
    for n in 0..count {
        // An empty LR (ELRSR) is known without reading it.
        state.lrs[n] = if elrsr & (1 << n) != 0 {
            0
        } else {
            v3_read_lr(n)
        };
    }
    v3_read_aprs(state, aprs);
    state.vmcr = ICH_VMCR_EL2.get() as u32;
    state.hcr = ICH_HCR_EL2.get() as u32;
    v3_off();
}

/// GICv3: clears the interface `v3_save` saved into `state` (the vCPU leaves the CPU): off,
/// a PV vCPU loaded next still reads ICV_PMR_EL1 and ICV_IGRPEN1_EL1 (VMCR) and
/// ICV_AP1R<n>_EL1 (the APRs) without a trap. A Linux vCPU's `v3_restore` writes every LR.
pub fn v3_clear(state: &LrState, aprs: usize) {
    for n in 0..state.used().len() {
        if state.elrsr & (1 << n) == 0 {
            v3_write_lr(n, 0);
        }
    }
    v3_write_aprs(&[0; 4], &[0; 4], aprs);
    ICH_VMCR_EL2.set(0);
}

/// GICv3: the virtual CPU interface off (a PV vCPU's state: its interrupts are HCR_EL2.VI).
pub fn v3_off() {
    ICH_HCR_EL2.set(0);
    barrier::isb(barrier::SY);
}

/// ICC_CTLR_EL1.EOImode: a write to ICC_EOIR1_EL1 only drops the priority; ICC_DIR_EL1
/// deactivates.
const ICC_CTLR_EOIMODE: u64 = 1 << 1;

/// GICv3: this CPU's interface splits priority drop (EOIR) from deactivation (DIR), so that a
/// forwarded interrupt stays active until the guest deactivates it through a hardware LR.
pub fn v3_split_eoi() {
    let ctlr = ICC_CTLR_EL1.get() | ICC_CTLR_EOIMODE;
    // SAFETY: ICC_CTLR_EL1 (s3_0_c12_c12_4), written at EL2, is this CPU's own interface's;
    // only EOImode changes, and the hyp's `dev::gic::end` deactivates explicitly from now on.
    unsafe { asm!("msr s3_0_c12_c12_4, {}", in(reg) ctlr, options(nomem, nostack)) };
    barrier::isb(barrier::SY);
}

/// GICv3: deactivates `intid` in this CPU's interface (after its priority drop).
pub fn v3_deactivate(intid: u32) {
    // SAFETY: ICC_DIR_EL1 (s3_0_c12_c11_1) only deactivates the named interrupt of this CPU;
    // the hyp took it (EOImode 1, priority dropped).
    unsafe { asm!("msr s3_0_c12_c11_1, {}", in(reg) u64::from(intid), options(nomem, nostack)) };
}

/// GICv3: EL2 uses the system registers, and EL1 may access ICC_SRE_EL1 (Enable), which
/// Linux's boot protocol requires of a hypervisor (booting.rst). With HCR_EL2.IMO and FMO set
/// every EL1 ICC_* access reaches the virtual interface (ICV_*), never this CPU's own.
pub fn v3_enable_system_registers() {
    ICC_SRE_EL2.write(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
    barrier::isb(barrier::SY);
}

// GICv2's GICH frame (GIC architecture v2, 5.3).
const GICH_HCR: usize = 0x00;
const GICH_VTR: usize = 0x04;
const GICH_VMCR: usize = 0x08;
const GICH_MISR: usize = 0x10;
const GICH_EISR0: usize = 0x20;
const GICH_ELRSR0: usize = 0x30;
const GICH_APR: usize = 0xf0;
const GICH_LR0: usize = 0x100;

/// GICv2: the GICH frame of the CPU's interface (banked per CPU at its base).
#[derive(Clone, Copy, Debug)]
pub struct Gich {
    base: usize,
}

impl Gich {
    /// # Safety
    /// `base` is the GICH frame (4 KiB), identity-mapped as device memory for the hyp, and no
    /// guest's stage 2 maps it.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: a register of the GICH frame `new` was given; reads have no side effect.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: a register of the GICH frame `new` was given; it only changes this CPU's
        // virtual interface, which the hyp owns.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    /// The list registers it has (GICH_VTR.ListRegs + 1, at most `MAX_LRS`).
    pub fn list_registers(&self) -> usize {
        ((self.read(GICH_VTR) & 0x3f) as usize + 1).min(MAX_LRS)
    }

    /// Loads a vCPU's interface.
    pub fn restore(&self, state: &LrState) {
        for (n, &lr) in state.used().iter().enumerate() {
            self.write(GICH_LR0 + 4 * n, lr as u32);
        }
        self.write(GICH_APR, state.ap1r[0]);
        self.write(GICH_VMCR, state.vmcr);
        self.write(GICH_HCR, state.hcr);
    }

    /// Reads back the vCPU's interface, then turns it off.
    pub fn save(&self, state: &mut LrState) {
        state.misr = self.read(GICH_MISR);
        state.eisr = self.read(GICH_EISR0);
        let elrsr = self.read(GICH_ELRSR0);
        state.elrsr = elrsr;
        let count = state.used().len();
        for n in 0..count {
            state.lrs[n] = if elrsr & (1 << n) != 0 {
                0
            } else {
                u64::from(self.read(GICH_LR0 + 4 * n))
            };
        }
        state.ap1r[0] = self.read(GICH_APR);
        state.vmcr = self.read(GICH_VMCR);
        state.hcr = self.read(GICH_HCR);
        self.off();
    }

    /// The virtual interface off.
    pub fn off(&self) {
        self.write(GICH_HCR, 0);
    }
}
