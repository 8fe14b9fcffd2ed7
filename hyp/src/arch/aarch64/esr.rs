//! Decoding ESR_ELx: why the CPU took an exception, in words a log reader understands.
//! Pure code; unit-tested on the host.

use core::fmt;

/// Exception classes the hypervisor handles (ESR_ELx.EC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Unknown,
    WfiWfe,
    Fp,
    Hvc64,
    Smc64,
    SysReg,
    Sve,
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

impl Class {
    fn from_ec(ec: u8) -> Self {
        match ec {
            0x00 => Self::Unknown,
            0x01 => Self::WfiWfe,
            0x07 => Self::Fp,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::SysReg,
            0x19 => Self::Sve,
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
            Self::Hvc64 => "HVC",
            Self::Smc64 => "SMC",
            Self::SysReg => "system register access trapped",
            Self::Sve => "SVE access trapped",
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
    /// Decodes ESR_EL2 with FAR_EL2 and HPFAR_EL2.
    pub fn decode(esr: u64, far: u64, hpfar: u64) -> Self {
        let ec = ((esr >> 26) & 0x3f) as u8;
        // HPFAR_EL2.FIPA (bits 43:4) holds IPA[51:12].
        let ipa = ((hpfar >> 4) & 0xff_ffff_ffff) << 12 | (far & 0xfff);
        Self {
            esr,
            class: Class::from_ec(ec),
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

    /// For HVC/SMC: the immediate.
    pub fn imm16(&self) -> u16 {
        (self.iss & 0xffff) as u16
    }
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ESR {:#010x} ({}", self.esr, self.class.name())?;
        if let Class::Other(ec) = self.class {
            write!(f, " EC {ec:#x}")?;
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
    fn decodes_hvc_immediate_and_unknown_classes() {
        let hvc = Syndrome::decode((0x16 << 26) | (1 << 25) | 0x42, 0, 0);
        assert_eq!((hvc.class, hvc.imm16()), (Class::Hvc64, 0x42));
        let odd = Syndrome::decode(0x3d << 26, 0, 0);
        assert_eq!(odd.class, Class::Other(0x3d));
        assert!(std::format!("{odd}").contains("EC 0x3d"));
    }
}
