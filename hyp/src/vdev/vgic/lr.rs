//! The list registers' bit layouts and the arch-neutral image of a vCPU's virtual CPU interface
//! (`LrState`): what `arch::aarch64::vgic` loads into the CPU (ICH_*_EL2 on GICv3, the GICH
//! frame on GICv2) and reads back, as plain numbers. Pure code, tested on the host.

use super::GicModel;

/// Most list registers any GIC has (ICH_VTR_EL2.ListRegs and GICH_VTR.ListRegs allow 16 and 64;
/// the hyp uses at most 16, QEMU has 4, the GIC-400 4).
pub const MAX_LRS: usize = 16;

/// ICH_HCR_EL2 / GICH_HCR (the same bits on both): the virtual CPU interface is on.
pub const HCR_EN: u32 = 1 << 0;
/// Underflow maintenance: asserted while at most one list register holds an interrupt.
pub const HCR_UIE: u32 = 1 << 1;
/// Maintenance while EOIcount is not zero (an EOI of an interrupt in no list register).
pub const HCR_LRENPIE: u32 = 1 << 2;
/// EOIcount: EOIs of interrupts in no list register, since software last cleared it.
pub const HCR_EOICOUNT_SHIFT: u32 = 27;
pub const HCR_EOICOUNT_MASK: u32 = 0x1f;

/// One list register, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lr {
    /// The INTID the guest sees.
    pub vintid: u32,
    /// With `hw`: the physical INTID its deactivation deactivates.
    pub pintid: u32,
    /// GICv2 SGIs: the vCPU that sent it (GICH_LR.CPUID; what the guest's IAR reports).
    pub source: u8,
    /// The guest's priority (GICv2 keeps its top 5 bits).
    pub priority: u8,
    pub group1: bool,
    pub hw: bool,
    /// Without `hw`: a maintenance interrupt when the guest deactivates it.
    pub eoi: bool,
    pub pending: bool,
    pub active: bool,
}

// ICH_LR<n>_EL2 (GICv3, 12.4.6).
const V3_STATE_SHIFT: u32 = 62;
const V3_HW: u64 = 1 << 61;
const V3_GROUP: u64 = 1 << 60;
const V3_PRIORITY_SHIFT: u32 = 48;
const V3_PINTID_SHIFT: u32 = 32;
const V3_PINTID_MASK: u64 = 0x1fff;
const V3_EOI: u64 = 1 << 41;
const V3_VINTID_MASK: u64 = 0xffff_ffff;

// GICH_LR<n> (GICv2, 5.3.11).
const V2_HW: u64 = 1 << 31;
const V2_GROUP1: u64 = 1 << 30;
const V2_STATE_SHIFT: u32 = 28;
const V2_PRIORITY_SHIFT: u32 = 23;
const V2_PHYSID_SHIFT: u32 = 10;
const V2_PHYSID_MASK: u64 = 0x3ff;
const V2_EOI: u64 = 1 << 19;
const V2_CPUID_MASK: u64 = 0x7;
const V2_VIRTID_MASK: u64 = 0x3ff;

const STATE_PENDING: u64 = 0b01;
const STATE_ACTIVE: u64 = 0b10;

impl Lr {
    /// The register value for `model`. A hardware interrupt is never pending and active at
    /// once (the architecture forbids it): active wins.
    pub fn encode(&self, model: GicModel) -> u64 {
        let pending = self.pending && !(self.hw && self.active);
        let state = (u64::from(pending) * STATE_PENDING) | (u64::from(self.active) * STATE_ACTIVE);
        match model {
            GicModel::V3 => {
                let link = if self.hw {
                    V3_HW | (u64::from(self.pintid) & V3_PINTID_MASK) << V3_PINTID_SHIFT
                } else if self.eoi {
                    V3_EOI
                } else {
                    0
                };
                state << V3_STATE_SHIFT
                    | link
                    | if self.group1 { V3_GROUP } else { 0 }
                    | u64::from(self.priority) << V3_PRIORITY_SHIFT
                    | u64::from(self.vintid) & V3_VINTID_MASK
            }
            GicModel::V2 => {
                let link = if self.hw {
                    V2_HW | (u64::from(self.pintid) & V2_PHYSID_MASK) << V2_PHYSID_SHIFT
                } else {
                    (if self.eoi { V2_EOI } else { 0 })
                        | (u64::from(self.source) & V2_CPUID_MASK) << V2_PHYSID_SHIFT
                };
                state << V2_STATE_SHIFT
                    | link
                    | if self.group1 { V2_GROUP1 } else { 0 }
                    | u64::from(self.priority >> 3) << V2_PRIORITY_SHIFT
                    | u64::from(self.vintid) & V2_VIRTID_MASK
            }
        }
    }

    /// Decodes a register value of `model`.
    pub fn decode(raw: u64, model: GicModel) -> Self {
        match model {
            GicModel::V3 => {
                let state = raw >> V3_STATE_SHIFT;
                let hw = raw & V3_HW != 0;
                Self {
                    vintid: (raw & V3_VINTID_MASK) as u32,
                    pintid: if hw {
                        ((raw >> V3_PINTID_SHIFT) & V3_PINTID_MASK) as u32
                    } else {
                        0
                    },
                    source: 0,
                    priority: (raw >> V3_PRIORITY_SHIFT) as u8,
                    group1: raw & V3_GROUP != 0,
                    hw,
                    eoi: !hw && raw & V3_EOI != 0,
                    pending: state & STATE_PENDING != 0,
                    active: state & STATE_ACTIVE != 0,
                }
            }
            GicModel::V2 => {
                let state = (raw >> V2_STATE_SHIFT) & 0b11;
                let hw = raw & V2_HW != 0;
                let link = (raw >> V2_PHYSID_SHIFT) & V2_PHYSID_MASK;
                Self {
                    vintid: (raw & V2_VIRTID_MASK) as u32,
                    pintid: if hw { link as u32 } else { 0 },
                    source: if hw { 0 } else { (link & V2_CPUID_MASK) as u8 },
                    priority: (((raw >> V2_PRIORITY_SHIFT) & 0x1f) << 3) as u8,
                    group1: raw & V2_GROUP1 != 0,
                    hw,
                    eoi: !hw && raw & V2_EOI != 0,
                    pending: state & STATE_PENDING != 0,
                    active: state & STATE_ACTIVE != 0,
                }
            }
        }
    }
}

/// A vCPU's virtual CPU interface as plain numbers: what `VGic::load` fills in and the arch
/// loads into the CPU before the vCPU runs, and what the arch reads back after it left (for
/// `VGic::save`). The guest's own part (`vmcr`, `ap0r`, `ap1r`) only passes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LrState {
    /// The list registers, encoded for the model (`Lr::encode`); `lrs[count..]` unused.
    pub lrs: [u64; MAX_LRS],
    /// How many the CPU has (ICH_VTR_EL2.ListRegs + 1, GICH_VTR.ListRegs + 1), at most
    /// `MAX_LRS`: the arch sets it (`arch::aarch64::vgic::list_registers`).
    pub count: usize,
    /// ICH_HCR_EL2 / GICH_HCR: `HCR_EN` and the maintenance requests `load` makes; EOIcount
    /// comes back on save.
    pub hcr: u32,
    /// ICH_VMCR_EL2 / GICH_VMCR: the guest's PMR, BPRs, group enables, EOI mode.
    pub vmcr: u32,
    /// ICH_AP0R<n>_EL2 (GICv3 only).
    pub ap0r: [u32; 4],
    /// ICH_AP1R<n>_EL2 (GICv3), GICH_APR in `ap1r[0]` (GICv2): the active priorities.
    pub ap1r: [u32; 4],
    /// Read on save, for the caller's information: ICH_MISR_EL2 / GICH_MISR (why a
    /// maintenance interrupt fired), ICH_EISR_EL2 / GICH_EISR0, ICH_ELRSR_EL2 / GICH_ELRSR0.
    pub misr: u32,
    pub eisr: u32,
    pub elrsr: u32,
}

impl LrState {
    /// An interface with `count` list registers (clamped to 1..=MAX_LRS), all empty, off.
    pub fn new(count: usize) -> Self {
        Self {
            lrs: [0; MAX_LRS],
            count: count.clamp(1, MAX_LRS),
            hcr: 0,
            vmcr: 0,
            ap0r: [0; 4],
            ap1r: [0; 4],
            misr: 0,
            eisr: 0,
            elrsr: 0,
        }
    }

    /// The list registers in use, clamped to `MAX_LRS` whatever `count` says.
    pub fn used(&self) -> &[u64] {
        &self.lrs[..self.count.min(MAX_LRS)]
    }

    /// EOIcount of the saved `hcr`.
    pub fn eoi_count(&self) -> u32 {
        (self.hcr >> HCR_EOICOUNT_SHIFT) & HCR_EOICOUNT_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_layout_matches_the_architecture() {
        // vINTID 27, HW with pINTID 27, priority 0xa0, group 1, pending.
        let lr = Lr {
            vintid: 27,
            pintid: 27,
            priority: 0xa0,
            group1: true,
            hw: true,
            pending: true,
            ..Lr::default()
        };
        let raw = lr.encode(GicModel::V3);
        assert_eq!(
            raw,
            1 << 62 | 1 << 61 | 1 << 60 | 0xa0 << 48 | 27 << 32 | 27
        );
        assert_eq!(Lr::decode(raw, GicModel::V3), lr);
        // A software interrupt with EOI maintenance, active and pending.
        let sw = Lr {
            vintid: 33,
            priority: 0x80,
            eoi: true,
            pending: true,
            active: true,
            ..Lr::default()
        };
        let raw = sw.encode(GicModel::V3);
        assert_eq!(raw, 3 << 62 | 1 << 41 | 0x80 << 48 | 33);
        assert_eq!(Lr::decode(raw, GicModel::V3), sw);
    }

    #[test]
    fn v2_layout_matches_the_architecture() {
        // SGI 3 from CPU 5, priority 0xa0 (5 bits kept: 0x14), group 0, pending, EOI.
        let sgi = Lr {
            vintid: 3,
            source: 5,
            priority: 0xa0,
            eoi: true,
            pending: true,
            ..Lr::default()
        };
        let raw = sgi.encode(GicModel::V2);
        assert_eq!(raw, 1 << 28 | 0x14 << 23 | 1 << 19 | 5 << 10 | 3);
        assert_eq!(Lr::decode(raw, GicModel::V2), sgi);
        let hw = Lr {
            vintid: 27,
            pintid: 27,
            priority: 0xf8,
            group1: true,
            hw: true,
            active: true,
            ..Lr::default()
        };
        let raw = hw.encode(GicModel::V2);
        assert_eq!(
            raw,
            1 << 31 | 1 << 30 | 2 << 28 | 0x1f << 23 | 27 << 10 | 27
        );
        assert_eq!(Lr::decode(raw, GicModel::V2), hw);
        // The low 3 priority bits are not kept.
        let p = Lr {
            priority: 0xa7,
            ..Lr::default()
        };
        assert_eq!(
            Lr::decode(p.encode(GicModel::V2), GicModel::V2).priority,
            0xa0
        );
    }

    #[test]
    fn a_hardware_interrupt_is_never_pending_and_active() {
        for model in [GicModel::V2, GicModel::V3] {
            let lr = Lr {
                vintid: 27,
                pintid: 27,
                hw: true,
                pending: true,
                active: true,
                ..Lr::default()
            };
            let back = Lr::decode(lr.encode(model), model);
            assert!(back.active && !back.pending, "{model:?}");
        }
    }

    #[test]
    fn state_counts_are_clamped() {
        assert_eq!(LrState::new(0).count, 1);
        assert_eq!(LrState::new(99).used().len(), MAX_LRS);
        let mut s = LrState::new(4);
        s.count = 1000;
        assert_eq!(s.used().len(), MAX_LRS);
        s.hcr = 5 << HCR_EOICOUNT_SHIFT | HCR_EN;
        assert_eq!(s.eoi_count(), 5);
    }
}
