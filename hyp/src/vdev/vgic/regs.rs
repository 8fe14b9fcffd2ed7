//! The distributor's and redistributors' registers as a guest reads and writes them (GIC
//! architecture v3/v4 chapter 12, v2 chapter 4): offsets, access widths, reset values. Anything
//! not listed, misaligned or of the wrong width reads as zero and ignores writes.

use super::{
    CTLR_GRP0, CTLR_GRP1, FIRST_SPI, GicModel, MmioAccess, PRIORITY_MASK, SGIS, VGic, VcpuMask,
};
use crate::vdev::layout::{GICD_IPA, GICD_SIZE, GICR_IPA, GICR_STRIDE};

// GICD (both models unless said).
const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IIDR: u64 = 0x0008;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ISPENDR: u64 = 0x0200;
const GICD_ICPENDR: u64 = 0x0280;
const GICD_ISACTIVER: u64 = 0x0300;
const GICD_ICACTIVER: u64 = 0x0380;
const GICD_IPRIORITYR: u64 = 0x0400;
/// GICv2 only.
const GICD_ITARGETSR: u64 = 0x0800;
const GICD_ICFGR: u64 = 0x0c00;
/// GICv2 only: SGIR (write-only), CPENDSGIR, SPENDSGIR.
const GICD_SGIR: u64 = 0x0f00;
const GICD_CPENDSGIR: u64 = 0x0f10;
const GICD_SPENDSGIR: u64 = 0x0f20;
/// GICv3 only: 64-bit, one an INTID (0..31 reserved).
const GICD_IROUTER: u64 = 0x6000;
const GICD_PIDR2: u64 = 0xffe8;

// GICR RD frame, then its SGI frame 64 KiB on (GICv3).
const GICR_CTLR: u64 = 0x0000;
const GICR_IIDR: u64 = 0x0004;
const GICR_TYPER: u64 = 0x0008;
const GICR_WAKER: u64 = 0x0014;
const GICR_PIDR2: u64 = 0xffe8;
const SGI_FRAME: u64 = 0x1_0000;

/// The bank of 32 INTIDs each register of a bitmap array covers: registers 0..=2 (INTIDs
/// 0..95) exist.
const BANKS: u64 = (super::INTIDS / 32) as u64;

/// GICD_CTLR (GICv3, DS = 1): ARE (affinity routing, always on) and DS (one security state).
const CTLR_ARE: u32 = 1 << 4;
const CTLR_DS: u32 = 1 << 6;
/// GICD_IROUTER.Interrupt_Routing_Mode: any one participating vCPU.
pub(super) const IROUTER_IRM: u64 = 1 << 31;
/// The bits of GICD_IROUTER kept: Aff3, IRM, Aff2, Aff1, Aff0.
const IROUTER_VALID: u64 = 0xff_8000_0000 | 0xff_ffff;
/// Implementer Arm (0x43b), product 0x50 ('P'vhyp): no erratum a guest knows matches it.
const IIDR: u64 = 0x5000_043b;
/// PIDR2.ArchRev (bits 7:4) and the JEP106 bits of Arm (0xb).
const PIDR2_V2: u64 = 0x2b;
const PIDR2_V3: u64 = 0x3b;
/// GICD_TYPER: ITLinesNumber (32 * (N + 1) INTIDs), IDbits 10 (v3), No1N (v3: no 1-of-N).
const TYPER_IT_LINES: u64 = BANKS - 1;
const TYPER_IDBITS_10: u64 = 9 << 19;
const TYPER_NO1N: u64 = 1 << 25;
/// GICR_TYPER.Last, and where Processor_Number and the affinity go.
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_TYPER_PROCESSOR_SHIFT: u32 = 8;
const GICR_TYPER_AFFINITY_SHIFT: u32 = 32;
/// GICR_WAKER.ProcessorSleep and ChildrenAsleep.
const WAKER_SLEEP: u64 = 1 << 1;
const WAKER_ASLEEP: u64 = 1 << 2;

/// Which of an interrupt's bitmap states a register array shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bits {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

/// The width rules of a register.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    /// 32-bit only.
    Word,
    /// Bytes or words (IPRIORITYR, ITARGETSR, C/SPENDSGIR).
    ByteOrWord,
    /// 64-bit or either 32-bit half (IROUTER, GICR_TYPER).
    Double,
}

fn fits(width: Width, offset: u64, size: u8) -> bool {
    let aligned = offset.is_multiple_of(u64::from(size.max(1)));
    aligned
        && match width {
            Width::Word => size == 4,
            Width::ByteOrWord => size == 1 || size == 4,
            Width::Double => size == 4 || size == 8,
        }
}

fn bitmap_array(offset: u64) -> Option<(Bits, u64)> {
    let kinds = [
        (GICD_IGROUPR, Bits::Group),
        (GICD_ISENABLER, Bits::SetEnable),
        (GICD_ICENABLER, Bits::ClearEnable),
        (GICD_ISPENDR, Bits::SetPending),
        (GICD_ICPENDR, Bits::ClearPending),
        (GICD_ISACTIVER, Bits::SetActive),
        (GICD_ICACTIVER, Bits::ClearActive),
    ];
    kinds
        .iter()
        .find(|(base, _)| (*base..*base + 0x80).contains(&offset))
        .map(|&(base, kind)| (kind, (offset - base) / 4))
}

/// The registers of a vGIC that never change: GICD_TYPER, GICD_IIDR, GICD_PIDR2 and each
/// redistributor's GICR_TYPER, GICR_IIDR and GICR_PIDR2 depend only on the model and the number
/// of vCPUs. A vCPU keeps them (`encode`d, in its register block) so that vm::run answers a
/// load of one without the VM's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedRegs {
    model: GicModel,
    /// 1..=MAX_VCPUS.
    vcpus: usize,
}

impl FixedRegs {
    const PRESENT: u64 = 1 << 63;
    const V3: u64 = 1 << 62;
    const VCPUS: u64 = 0xff;

    /// As a vCPU's block keeps it (never 0, which means none: a PV vCPU, or one whose vGIC has
    /// not been seen yet).
    pub fn encode(self) -> u64 {
        let v3 = if self.model == GicModel::V3 {
            Self::V3
        } else {
            0
        };
        Self::PRESENT | v3 | self.vcpus as u64
    }

    /// What `encode` made, `None` for 0 (or anything it cannot have made).
    pub fn decode(bits: u64) -> Option<Self> {
        let vcpus = (bits & Self::VCPUS) as usize;
        let valid = bits & Self::PRESENT != 0 && (1..=super::MAX_VCPUS).contains(&vcpus);
        valid.then_some(Self {
            model: if bits & Self::V3 != 0 {
                GicModel::V3
            } else {
                GicModel::V2
            },
            vcpus,
        })
    }

    /// What a load of `size` bytes at `ipa` reads, if it is one of these registers (aligned, of
    /// its width); `None` for every other access. Inlined into its one hot caller so that the
    /// IPA it was given stays at hand for the exit's trace record.
    #[inline(always)]
    pub fn read(self, ipa: u64, size: u8) -> Option<u64> {
        let v3 = self.model == GicModel::V3;
        let word = |offset| fits(Width::Word, offset, size);
        if let Some(offset) = ipa.checked_sub(GICD_IPA).filter(|&o| o < GICD_SIZE) {
            return match offset {
                GICD_TYPER if word(offset) => {
                    let cpus = (self.vcpus as u64 - 1) << 5;
                    let v3_bits = if v3 { TYPER_IDBITS_10 | TYPER_NO1N } else { 0 };
                    Some(TYPER_IT_LINES | cpus | v3_bits)
                }
                GICD_IIDR if word(offset) => Some(IIDR),
                GICD_PIDR2 if word(offset) => Some(if v3 { PIDR2_V3 } else { PIDR2_V2 }),
                _ => None,
            };
        }
        let r = ipa.checked_sub(GICR_IPA)? / GICR_STRIDE;
        if !v3 || r >= self.vcpus as u64 {
            return None;
        }
        let offset = (ipa - GICR_IPA) % GICR_STRIDE;
        match offset {
            GICR_IIDR if word(offset) => Some(IIDR),
            GICR_TYPER | 0x000c if fits(Width::Double, offset, size) => {
                let last = if r + 1 == self.vcpus as u64 {
                    GICR_TYPER_LAST
                } else {
                    0
                };
                let typer = r << GICR_TYPER_AFFINITY_SHIFT | r << GICR_TYPER_PROCESSOR_SHIFT | last;
                Some(half(typer, size, offset == 0x000c))
            }
            GICR_PIDR2 if word(offset) => Some(PIDR2_V3),
            _ => None,
        }
    }
}

impl VGic {
    /// Its registers that never change.
    pub fn fixed(&self) -> FixedRegs {
        FixedRegs {
            model: self.model,
            vcpus: self.vcpus.len(),
        }
    }

    /// A guest's access at `ipa` (of vCPU `vcpu`): the distributor, or on GICv3 a
    /// redistributor frame (any vCPU's). `None` if `ipa` is not the vGIC's; else the value a
    /// read returns (0 for a write) and the vCPUs to kick.
    pub fn mmio(&mut self, vcpu: usize, ipa: u64, access: MmioAccess) -> Option<(u64, VcpuMask)> {
        let size = access.size;
        let write = access.write.map(|v| match size {
            1 => v & 0xff,
            2 => v & 0xffff,
            4 => v & 0xffff_ffff,
            _ => v,
        });
        if write.is_none()
            && let Some(value) = self.fixed().read(ipa, size)
        {
            return Some((value, VcpuMask::NONE));
        }
        if (GICD_IPA..GICD_IPA + GICD_SIZE).contains(&ipa) {
            if vcpu >= self.vcpus.len() {
                return Some((0, VcpuMask::NONE));
            }
            return Some(self.distributor(vcpu, ipa - GICD_IPA, size, write));
        }
        let gicr_end = GICR_IPA + self.vcpus.len() as u64 * GICR_STRIDE;
        if self.model == GicModel::V3 && (GICR_IPA..gicr_end).contains(&ipa) {
            let frame = ((ipa - GICR_IPA) / GICR_STRIDE) as usize;
            let offset = (ipa - GICR_IPA) % GICR_STRIDE;
            return Some(self.redistributor(frame, offset, size, write));
        }
        None
    }

    /// Whether a read at `ipa` shows state the list registers own while a vCPU is loaded
    /// (pending and active bits: GICD/GICR_IS/ICPENDR, IS/ICACTIVER, GICv2's C/SPENDSGIR): the
    /// reader's list registers are folded back first, so that a guest polling an interrupt's
    /// state sees its own acknowledgements and deactivations. Every other register's state
    /// only the hyp changes, so a read of it needs no look at the list registers.
    pub fn read_sees_list_registers(&self, ipa: u64) -> bool {
        const LR_OWNED: core::ops::Range<u64> = GICD_ISPENDR..GICD_IPRIORITYR;
        if let Some(offset) = ipa.checked_sub(GICD_IPA).filter(|&o| o < GICD_SIZE) {
            return LR_OWNED.contains(&offset)
                || (self.model == GicModel::V2 && (GICD_CPENDSGIR..0x0f30).contains(&offset));
        }
        let gicr_end = GICR_IPA + self.vcpus.len() as u64 * GICR_STRIDE;
        self.model == GicModel::V3
            && (GICR_IPA..gicr_end).contains(&ipa)
            && LR_OWNED.contains(&(((ipa - GICR_IPA) % GICR_STRIDE).wrapping_sub(SGI_FRAME)))
    }

    fn distributor(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> (u64, VcpuMask) {
        let v3 = self.model == GicModel::V3;
        let none = (0, VcpuMask::NONE);
        let word = fits(Width::Word, offset, size);
        match offset {
            GICD_CTLR if word => match write {
                None => {
                    let fixed = if v3 { CTLR_ARE | CTLR_DS } else { 0 };
                    (u64::from(self.ctlr | fixed), VcpuMask::NONE)
                }
                Some(v) => {
                    self.ctlr = v as u32 & (CTLR_GRP0 | CTLR_GRP1);
                    (0, self.kick_all_pending())
                }
            },
            GICD_IGROUPR..GICD_IPRIORITYR if word => {
                let Some((kind, bank)) = bitmap_array(offset) else {
                    return none;
                };
                // With affinity routing the private interrupts are the redistributors'.
                if bank == 0 && v3 {
                    return none;
                }
                self.bitmap(vcpu, kind, bank, write)
            }
            GICD_IPRIORITYR..GICD_ITARGETSR if fits(Width::ByteOrWord, offset, size) => {
                let first = (offset - GICD_IPRIORITYR) as u32;
                if v3 && first < FIRST_SPI {
                    return none;
                }
                self.priorities(vcpu, first, size, write)
            }
            GICD_ITARGETSR..GICD_ICFGR if !v3 && fits(Width::ByteOrWord, offset, size) => {
                self.targets((offset - GICD_ITARGETSR) as u32, vcpu, size, write)
            }
            GICD_ICFGR..0x0d00 if word => {
                let reg = (offset - GICD_ICFGR) / 4;
                if v3 && reg < 2 {
                    return none;
                }
                self.config(vcpu, reg, write)
            }
            GICD_SGIR if !v3 && word => match write {
                Some(v) => (0, self.write_sgir(vcpu, v as u32)),
                None => none,
            },
            GICD_CPENDSGIR..0x0f30 if !v3 && fits(Width::ByteOrWord, offset, size) => {
                self.sgi_sources(vcpu, offset, size, write)
            }
            GICD_IROUTER..0x8000 if v3 && fits(Width::Double, offset, size) => {
                let intid = ((offset - GICD_IROUTER) / 8) as u32;
                if !(FIRST_SPI..super::INTIDS).contains(&intid) {
                    return none;
                }
                let i = (intid - FIRST_SPI) as usize;
                let high = offset % 8 == 4;
                let old = self.spi.irouter[i];
                match write {
                    None => (half(old, size, high), VcpuMask::NONE),
                    Some(v) => {
                        self.spi.irouter[i] = set_half(old, v, size, high) & IROUTER_VALID;
                        (0, self.kick_if_deliverable(vcpu, intid))
                    }
                }
            }
            _ => none,
        }
    }

    /// A GICv3 redistributor: frame `r`'s RD page or (64 KiB on) its SGI page.
    fn redistributor(
        &mut self,
        r: usize,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> (u64, VcpuMask) {
        let none = (0, VcpuMask::NONE);
        let word = fits(Width::Word, offset, size);
        if offset >= SGI_FRAME {
            let offset = offset - SGI_FRAME;
            return match offset {
                GICD_IGROUPR..GICD_IPRIORITYR if word => match bitmap_array(offset) {
                    Some((kind, 0)) => self.bitmap(r, kind, 0, write),
                    _ => none,
                },
                GICD_IPRIORITYR..0x0420 if fits(Width::ByteOrWord, offset, size) => {
                    self.priorities(r, (offset - GICD_IPRIORITYR) as u32, size, write)
                }
                GICD_ICFGR | 0x0c04 if word => self.config(r, (offset - GICD_ICFGR) / 4, write),
                _ => none,
            };
        }
        match offset {
            GICR_CTLR if word => none,
            GICR_WAKER if word => {
                let p = &mut self.vcpus[r];
                match write {
                    None => {
                        let bits = if p.asleep {
                            WAKER_SLEEP | WAKER_ASLEEP
                        } else {
                            0
                        };
                        (bits, VcpuMask::NONE)
                    }
                    Some(v) => {
                        p.asleep = v & WAKER_SLEEP != 0;
                        none
                    }
                }
            }
            _ => none,
        }
    }

    /// A register of 32 INTIDs (`bank` 0: the private ones of `vcpu`).
    fn bitmap(
        &mut self,
        vcpu: usize,
        kind: Bits,
        bank: u64,
        write: Option<u64>,
    ) -> (u64, VcpuMask) {
        if bank >= BANKS {
            return (0, VcpuMask::NONE);
        }
        let v2 = self.model == GicModel::V2;
        if bank == 0 {
            let pending = self.private_pending(vcpu);
            let p = &mut self.vcpus[vcpu];
            let Some(v) = write.map(|v| v as u32) else {
                let value = match kind {
                    Bits::Group => p.group1,
                    Bits::SetEnable | Bits::ClearEnable => p.enabled,
                    Bits::SetPending | Bits::ClearPending => pending,
                    Bits::SetActive | Bits::ClearActive => p.active,
                };
                return (u64::from(value), VcpuMask::NONE);
            };
            // GICv2 SGIs are made pending and cleared through S/CPENDSGIR only.
            let pendable = if v2 { v & !0xffff } else { v };
            match kind {
                Bits::Group => p.group1 = v,
                // SGIs are always enabled on GICv2 (GIC-400 behaviour Linux relies on too).
                Bits::SetEnable => p.enabled |= v,
                Bits::ClearEnable => p.enabled &= !(if v2 { v & !0xffff } else { v }),
                Bits::SetPending => p.pending |= pendable,
                Bits::ClearPending => p.pending &= !pendable,
                Bits::SetActive => p.active |= v,
                Bits::ClearActive => p.active &= !v,
            }
            let mut kick = VcpuMask::NONE;
            for intid in super::bits32(v) {
                kick |= self.kick_if_deliverable(vcpu, intid);
            }
            return (0, kick);
        }
        let shift = (bank - 1) * 32;
        let s = &mut self.spi;
        let Some(v) = write else {
            let value = match kind {
                Bits::Group => s.group1,
                Bits::SetEnable | Bits::ClearEnable => s.enabled,
                Bits::SetPending | Bits::ClearPending => s.pending | (s.line & !s.edge),
                Bits::SetActive | Bits::ClearActive => s.active,
            };
            return ((value >> shift) & 0xffff_ffff, VcpuMask::NONE);
        };
        let bits = v << shift;
        match kind {
            Bits::Group => s.group1 = s.group1 & !(0xffff_ffff << shift) | bits,
            Bits::SetEnable => s.enabled |= bits,
            Bits::ClearEnable => s.enabled &= !bits,
            Bits::SetPending => s.pending |= bits,
            Bits::ClearPending => s.pending &= !bits,
            Bits::SetActive => s.active |= bits,
            Bits::ClearActive => {
                s.active &= !bits;
                for i in super::bits64(bits) {
                    s.owner[i] = 0;
                }
            }
        }
        let mut kick = VcpuMask::NONE;
        for i in super::bits64(bits) {
            kick |= self.kick_if_deliverable(vcpu, FIRST_SPI + i as u32);
        }
        (0, kick)
    }

    /// IPRIORITYR bytes from INTID `first` (private ones of `vcpu`).
    fn priorities(
        &mut self,
        vcpu: usize,
        first: u32,
        size: u8,
        write: Option<u64>,
    ) -> (u64, VcpuMask) {
        let mut value = 0u64;
        for n in 0..u32::from(size) {
            let intid = first + n;
            let slot = match intid {
                0..FIRST_SPI => &mut self.vcpus[vcpu].priority[intid as usize],
                FIRST_SPI..super::INTIDS => &mut self.spi.priority[(intid - FIRST_SPI) as usize],
                _ => continue,
            };
            match write {
                Some(v) => *slot = (v >> (8 * n)) as u8 & PRIORITY_MASK,
                None => value |= u64::from(*slot) << (8 * n),
            }
        }
        (value, VcpuMask::NONE)
    }

    /// GICv2 ITARGETSR bytes from INTID `first`: read-only (the reader's own bit) for the
    /// private ones.
    fn targets(
        &mut self,
        first: u32,
        vcpu: usize,
        size: u8,
        write: Option<u64>,
    ) -> (u64, VcpuMask) {
        let all = self.all_vcpus();
        let mut value = 0u64;
        let mut kick = VcpuMask::NONE;
        for n in 0..u32::from(size) {
            let intid = first + n;
            match (intid, write) {
                (0..FIRST_SPI, None) => value |= 1u64 << vcpu << (8 * n),
                (FIRST_SPI..super::INTIDS, None) => {
                    value |= u64::from(self.spi.targets[(intid - FIRST_SPI) as usize]) << (8 * n);
                }
                (FIRST_SPI..super::INTIDS, Some(v)) => {
                    self.spi.targets[(intid - FIRST_SPI) as usize] = (v >> (8 * n)) as u8 & all;
                    kick |= self.kick_if_deliverable(vcpu, intid);
                }
                _ => {}
            }
        }
        (value, kick)
    }

    /// ICFGR `reg` (16 INTIDs, 2 bits each; bit 1 of a pair: edge). SGIs are edge, read-only.
    fn config(&mut self, vcpu: usize, reg: u64, write: Option<u64>) -> (u64, VcpuMask) {
        let first = reg as u32 * 16;
        if first >= super::INTIDS {
            return (0, VcpuMask::NONE);
        }
        // The 16 INTIDs' edge bits, as a 16-bit field.
        let current = if first < FIRST_SPI {
            u64::from(self.vcpus[vcpu].edge >> first) & 0xffff
        } else {
            (self.spi.edge >> (first - FIRST_SPI)) & 0xffff
        };
        let Some(v) = write else {
            let value = (0..16)
                .filter(|n| current & (1 << n) != 0)
                .fold(0u64, |acc, n| acc | 2 << (2 * n));
            return (value, VcpuMask::NONE);
        };
        if first < SGIS {
            return (0, VcpuMask::NONE);
        }
        let edges = (0..16)
            .filter(|n| v & (2 << (2 * n)) != 0)
            .fold(0u64, |acc, n| acc | 1 << n);
        if first < FIRST_SPI {
            let p = &mut self.vcpus[vcpu];
            p.edge = p.edge & !(0xffff << first) | (edges as u32) << first;
        } else {
            let shift = first - FIRST_SPI;
            self.spi.edge = self.spi.edge & !(0xffff << shift) | edges << shift;
        }
        (0, VcpuMask::NONE)
    }

    /// GICv2 GICD_SGIR: TargetListFilter 0 (the list), 1 (all but the writer), 2 (the writer).
    fn write_sgir(&mut self, vcpu: usize, value: u32) -> VcpuMask {
        let intid = value & 0xf;
        let list = (value >> 16) as u8;
        let targets = match (value >> 24) & 0b11 {
            0 => list,
            1 => self.all_vcpus() & !(1 << vcpu),
            2 => 1 << vcpu,
            _ => 0,
        };
        self.send_sgi(vcpu, intid, targets)
    }

    /// GICv2 CPENDSGIR / SPENDSGIR: a byte an SGI, a bit a sender, banked for the reader.
    fn sgi_sources(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> (u64, VcpuMask) {
        let set = offset >= GICD_SPENDSGIR;
        let first = ((offset - GICD_CPENDSGIR) % 0x10) as usize;
        let all = self.all_vcpus();
        let mut value = 0u64;
        let mut kick = VcpuMask::NONE;
        for n in 0..usize::from(size) {
            let sgi = first + n;
            let sources = &mut self.vcpus[vcpu].sgi_sources[sgi];
            match write {
                None => value |= u64::from(*sources) << (8 * n),
                Some(v) => {
                    let bits = (v >> (8 * n)) as u8 & all;
                    if set {
                        *sources |= bits;
                        kick |= self.kick_if_deliverable(vcpu, sgi as u32);
                    } else {
                        *sources &= !bits;
                    }
                }
            }
        }
        (value, kick)
    }
}

/// A 64-bit register's value as read with `size` bytes (`high`: the upper half).
fn half(value: u64, size: u8, high: bool) -> u64 {
    match (size, high) {
        (8, _) => value,
        (_, true) => value >> 32,
        _ => value & 0xffff_ffff,
    }
}

/// `old` with `value` written as `size` bytes (`high`: to the upper half).
fn set_half(old: u64, value: u64, size: u8, high: bool) -> u64 {
    match (size, high) {
        (8, _) => value,
        (_, true) => old & 0xffff_ffff | value << 32,
        _ => old & !0xffff_ffff | value & 0xffff_ffff,
    }
}
