//! Decoding ESR_ELx: why the CPU took an exception, in words a log reader understands.
//! Pure code; unit-tested on the host.

use core::fmt;

/// Exception classes the hypervisor handles (ESR_ELx.EC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Unknown,
    WfiWfe,
    Fp,
    PointerAuth,
    Hvc64,
    Smc64,
    SysReg,
    Sve,
    Sme,
    InstructionAbortLower,
    InstructionAbortSame,
    PcAlignment,
    DataAbortLower,
    DataAbortSame,
    SpAlignment,
    SError,
    Brk,
    Other(u8),
}

/// Every EC's class, by EC: a decode is one load, not a search through the classes.
static CLASS_OF_EC: [Class; 64] = {
    let mut table = [Class::Unknown; 64];
    let mut ec = 0;
    while ec < 64 {
        table[ec] = Class::from_ec(ec as u8);
        ec += 1;
    }
    table
};

impl Class {
    const fn from_ec(ec: u8) -> Self {
        match ec {
            0x00 => Self::Unknown,
            0x01 => Self::WfiWfe,
            0x07 => Self::Fp,
            0x09 => Self::PointerAuth,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::SysReg,
            0x19 => Self::Sve,
            0x1d => Self::Sme,
            0x20 => Self::InstructionAbortLower,
            0x21 => Self::InstructionAbortSame,
            0x22 => Self::PcAlignment,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            0x26 => Self::SpAlignment,
            0x2f => Self::SError,
            0x3c => Self::Brk,
            other => Self::Other(other),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown reason (undefined instruction)",
            Self::WfiWfe => "WFI/WFE",
            Self::Fp => "FP/SIMD access trapped",
            Self::PointerAuth => "pointer authentication trapped",
            Self::Hvc64 => "HVC",
            Self::Smc64 => "SMC",
            Self::SysReg => "system register access trapped",
            Self::Sve => "SVE access trapped",
            Self::Sme => "SME access trapped",
            Self::InstructionAbortLower => "instruction abort from a guest",
            Self::InstructionAbortSame => "instruction abort at EL2",
            Self::PcAlignment => "PC alignment fault",
            Self::DataAbortLower => "data abort from a guest",
            Self::DataAbortSame => "data abort at EL2",
            Self::SpAlignment => "SP alignment fault",
            Self::SError => "SError",
            Self::Brk => "BRK",
            Self::Other(_) => "unhandled exception class",
        }
    }
}

/// A decoded exception syndrome with the fault addresses that go with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syndrome {
    pub esr: u64,
    pub class: Class,
    pub iss: u32,
    /// Instruction length: 4 bytes when set, else 2 (never for AArch64 guests).
    pub il32: bool,
    pub far: u64,
    /// The faulting IPA for stage-2 aborts (from HPFAR_EL2 and the FAR's page offset).
    pub ipa: u64,
}

impl Syndrome {
    /// Decodes ESR_EL2 with FAR_EL2 and HPFAR_EL2 (inlined: on every exit's path, where the
    /// fields are built in place).
    #[inline(always)]
    pub fn decode(esr: u64, far: u64, hpfar: u64) -> Self {
        let ec = ((esr >> 26) & 0x3f) as u8;
        // HPFAR_EL2.FIPA (bits 43:4) holds IPA[51:12].
        let ipa = ((hpfar >> 4) & 0xff_ffff_ffff) << 12 | (far & 0xfff);
        Self {
            esr,
            class: CLASS_OF_EC[usize::from(ec) % CLASS_OF_EC.len()],
            iss: (esr & 0x1ff_ffff) as u32,
            il32: esr & (1 << 25) != 0,
            far,
            ipa,
        }
    }

    /// For an abort: the fault status code (DFSC/IFSC) in words.
    pub fn fault_status(&self) -> &'static str {
        match self.iss & 0x3f {
            0x00..=0x03 => "address size fault",
            0x04..=0x07 => "translation fault",
            0x08..=0x0b => "access flag fault",
            0x0c..=0x0f => "permission fault",
            0x10 => "synchronous external abort",
            0x21 => "alignment fault",
            0x30 => "TLB conflict abort",
            _ => "other fault",
        }
    }

    /// For a data abort: whether it was a write (ISS.WnR).
    pub fn is_write(&self) -> bool {
        self.iss & (1 << 6) != 0
    }
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ESR {:#010x} ({}", self.esr, self.class.name())?;
        if let Class::Other(ec) = self.class {
            write!(f, " EC {:#x}", u32::from(ec))?;
        }
        match self.class {
            Class::DataAbortLower | Class::DataAbortSame => write!(
                f,
                ", {} on {}, level {})",
                self.fault_status(),
                if self.is_write() { "write" } else { "read" },
                self.iss & 3
            )?,
            Class::InstructionAbortLower | Class::InstructionAbortSame => {
                write!(f, ", {}, level {})", self.fault_status(), self.iss & 3)?
            }
            _ => write!(f, ")")?,
        }
        write!(f, " FAR {:#x}", self.far)
    }
}

/// A trapped MSR/MRS (EC 0x18): which register, which general register, which direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    /// (op0, op1, CRn, CRm, op2): the register's encoding.
    pub reg: (u8, u8, u8, u8, u8),
    /// The general register (31 = XZR).
    pub rt: u8,
    pub is_read: bool,
}

impl SysRegAccess {
    /// Decodes the ISS of a trapped MSR/MRS.
    pub fn decode(iss: u32) -> Self {
        let bits = |shift: u32, width: u32| ((iss >> shift) & ((1 << width) - 1)) as u8;
        Self {
            reg: (
                bits(20, 2),
                bits(14, 3),
                bits(10, 4),
                bits(1, 4),
                bits(17, 3),
            ),
            rt: bits(5, 5),
            is_read: iss & 1 != 0,
        }
    }
}

/// A data abort's access, when the syndrome describes it (ISS.ISV): what an emulator needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAccess {
    /// Bytes accessed: 1, 2, 4 or 8.
    pub size: u8,
    /// The general register transferred (31 = XZR/WZR).
    pub reg: u8,
    pub is_write: bool,
    /// A load sign-extends (ISS.SSE).
    pub sign_extend: bool,
    /// A load writes the 64-bit register (ISS.SF), else the 32-bit one.
    pub sixty_four: bool,
}

impl DataAccess {
    /// The access of a data abort, or None if the syndrome does not describe it (e.g. a
    /// load/store pair, or with writeback): such accesses cannot be emulated.
    pub fn decode(s: &Syndrome) -> Option<Self> {
        Self::from_iss(s.iss)
    }

    /// What a load of `value` puts in its register: `size` bytes, sign-extended if the load
    /// sign-extends, to 32 bits unless it writes the whole register.
    pub fn loaded_value(self, value: u64) -> u64 {
        let bits = u32::from(self.size) * 8;
        let mut v = if bits >= 64 {
            value
        } else {
            value & ((1 << bits) - 1)
        };
        if self.sign_extend && bits < 64 {
            let shift = 64 - bits;
            v = (((v << shift) as i64) >> shift) as u64;
        }
        if !self.sixty_four {
            v &= u64::from(u32::MAX);
        }
        v
    }

    /// As `decode`, from the ISS (ESR bits 24:0) of a data abort.
    #[inline(always)]
    pub fn from_iss(iss: u32) -> Option<Self> {
        if iss & (1 << 24) == 0 {
            return None;
        }
        Some(Self {
            size: 1 << ((iss >> 22) & 3),
            reg: ((iss >> 16) & 0x1f) as u8,
            is_write: iss & (1 << 6) != 0,
            sign_extend: iss & (1 << 21) != 0,
            sixty_four: iss & (1 << 15) != 0,
        })
    }
}

/// ESR_ELx.EC of a data abort from a lower exception level (`Class::DataAbortLower`).
pub const EC_DATA_ABORT_LOWER: u64 = 0x24;

/// The (op0, op1, CRn, CRm, op2) of SCTLR_EL1.
pub const SCTLR_EL1: (u8, u8, u8, u8, u8) = (3, 0, 1, 0, 0);

/// GICv3 SGI generation registers: an EL1 write traps to EL2 while HCR_EL2.IMO (SGI1R, ASGI1R)
/// or FMO (SGI0R) is set; a Linux VM's vGIC sends the SGI (`VGic::write_sgi1r`).
pub const ICC_SGI1R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 5);
pub const ICC_ASGI1R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 6);
pub const ICC_SGI0R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 7);

/// Builds the syndrome a guest sees for a stage-2 fault the hyp injects back as an abort
/// taken to EL1: the same-EL class if the guest was at EL1, with the write flag and the fault
/// status code of the original (which say what happened), and nothing stage-2 specific.
pub fn injected_abort_syndrome(s: &Syndrome, from_el1: bool) -> u64 {
    const WNR: u64 = 1 << 6;
    const FSC: u64 = 0x3f;
    let ec: u64 = match (s.class, from_el1) {
        (Class::InstructionAbortLower, true) => 0x21,
        (Class::InstructionAbortLower, false) => 0x20,
        (_, true) => 0x25,
        (_, false) => 0x24,
    };
    let iss = u64::from(s.iss)
        & if s.class == Class::DataAbortLower {
            WNR | FSC
        } else {
            FSC
        };
    (ec << 26) | (1 << 25) | iss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_stage2_write_translation_fault() {
        // EC 0x24, IL, WnR, DFSC 0x07 (translation fault, level 3).
        let esr = (0x24 << 26) | (1 << 25) | (1 << 6) | 0x07;
        let s = Syndrome::decode(esr, 0x1234_5678, 0x0123_4560);
        assert_eq!(s.class, Class::DataAbortLower);
        assert!(s.is_write());
        assert_eq!(s.fault_status(), "translation fault");
        assert_eq!(s.ipa, 0x0001_2345_6000 | 0x678);
        let text = std::format!("{s}");
        assert!(
            text.contains("data abort from a guest, translation fault on write, level 3"),
            "{text}"
        );
    }

    #[test]
    fn decodes_a_trapped_sctlr_write() {
        // MSR SCTLR_EL1, x3: Op0 3, Op2 0, Op1 0, CRn 1, Rt 3, CRm 0, write.
        let iss = (3 << 20) | (1 << 10) | (3 << 5);
        let a = SysRegAccess::decode(iss);
        assert_eq!(
            a,
            SysRegAccess {
                reg: SCTLR_EL1,
                rt: 3,
                is_read: false
            }
        );
        // MRS x7, TCR_EL1 (3, 0, 2, 0, 2).
        let iss = (3 << 20) | (2 << 17) | (2 << 10) | (7 << 5) | 1;
        assert_eq!(
            SysRegAccess::decode(iss),
            SysRegAccess {
                reg: (3, 0, 2, 0, 2),
                rt: 7,
                is_read: true
            }
        );
    }

    #[test]
    fn decodes_a_trapped_sgi1r_write() {
        // MSR ICC_SGI1R_EL1, x2: Op0 3, Op2 5, Op1 0, CRn 12, Rt 2, CRm 11, write.
        let iss = (3 << 20) | (5 << 17) | (12 << 10) | (2 << 5) | (11 << 1);
        let a = SysRegAccess::decode(iss);
        assert_eq!((a.reg, a.rt, a.is_read), (ICC_SGI1R_EL1, 2, false));
        assert_ne!(ICC_SGI1R_EL1, ICC_ASGI1R_EL1);
        assert_ne!(ICC_SGI1R_EL1, ICC_SGI0R_EL1);
    }

    #[test]
    fn decodes_an_emulatable_data_access() {
        // STR w3, [..]: ISV, SAS = 2 (word), SRT = 3, WnR.
        let esr = (0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (3 << 16) | (1 << 6) | 0x07;
        let a = DataAccess::decode(&Syndrome::decode(esr, 0, 0)).unwrap();
        assert_eq!(
            (a.size, a.reg, a.is_write, a.sixty_four),
            (4, 3, true, false)
        );
        // Without ISV (e.g. LDP) nothing can be emulated.
        assert_eq!(
            DataAccess::decode(&Syndrome::decode((0x24 << 26) | 0x07, 0, 0)),
            None
        );
    }

    #[test]
    fn injected_aborts_keep_what_the_guest_needs() {
        // A write translation fault at level 3 from EL1, with stage-2-only bits (ISV, S1PTW).
        let esr = (0x24 << 26) | (1 << 25) | (1 << 24) | (1 << 7) | (1 << 6) | 0x07;
        let s = Syndrome::decode(esr, 0x1000, 0);
        assert_eq!(
            injected_abort_syndrome(&s, true),
            (0x25 << 26) | (1 << 25) | (1 << 6) | 0x07
        );
        let ia = Syndrome::decode((0x20 << 26) | (1 << 25) | 0x0f, 0, 0);
        assert_eq!(
            injected_abort_syndrome(&ia, true),
            (0x21 << 26) | (1 << 25) | 0x0f
        );
        assert_eq!(injected_abort_syndrome(&ia, false) >> 26, 0x20);
    }

    #[test]
    fn decodes_hvc_immediate_and_unknown_classes() {
        let hvc = Syndrome::decode((0x16 << 26) | (1 << 25) | 0x42, 0, 0);
        assert_eq!((hvc.class, hvc.iss & 0xffff), (Class::Hvc64, 0x42));
        for (ec, class) in [
            (0x09, Class::PointerAuth),
            (0x19, Class::Sve),
            (0x1d, Class::Sme),
        ] {
            assert_eq!(Syndrome::decode(ec << 26, 0, 0).class, class, "EC {ec:#x}");
        }
        let odd = Syndrome::decode(0x3d << 26, 0, 0);
        assert_eq!(odd.class, Class::Other(0x3d));
        assert!(std::format!("{odd}").contains("EC 0x3d"));
    }
}
