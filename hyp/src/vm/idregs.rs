//! What a guest reads from the feature ID registers (HCR_EL2.TID3 traps every read of the
//! ID space, op0 3, op1 0, CRn 0, CRm 1..7): the CPU's own value with every feature the hyp does
//! not virtualize for the VM reading as absent. Pure logic, tested on the host; reading the real
//! register is arch (`cpu::read_id_register`).
//!
//! Each policy is an allow-list: a register it does not name reads as zero, and so does every
//! field of a named register that it does not name. The ID scheme makes zero mean "not
//! implemented" for every field added since Armv8.0, so a feature a newer CPU brings stays
//! hidden until someone decides to show it. The few older fields where zero means "present"
//! (FP, AdvSIMD, TGran4, TGran64, DoubleLock) are named explicitly.

#![forbid(unsafe_code)]

use super::mem::IPA_BITS;

/// A system register's (op0, op1, CRn, CRm, op2), as `esr::SysRegAccess` decodes it.
pub type Encoding = (u8, u8, u8, u8, u8);

/// Whether `reg` is in the feature ID space HCR_EL2.TID3 traps (CRm 0 is MIDR/MPIDR/REVIDR,
/// which VPIDR_EL2/VMPIDR_EL2 virtualize without a trap).
pub fn is_id_register(reg: Encoding) -> bool {
    matches!(reg, (3, 0, 0, 1..=7, _))
}

/// What the guest sees of one 4-bit field.
#[derive(Clone, Copy, Debug)]
enum Shown {
    /// The CPU's value.
    Cpu,
    /// The CPU's value, at most this one (fields where a higher value is more).
    AtMost(u64),
    /// Always this value, whatever the CPU has.
    Fixed(u64),
}

/// One field a policy lets through: its lowest bit and how it is shown.
#[derive(Clone, Copy, Debug)]
struct Field {
    lsb: u8,
    shown: Shown,
}

const fn cpu(lsb: u8) -> Field {
    Field {
        lsb,
        shown: Shown::Cpu,
    }
}

const fn at_most(lsb: u8, value: u64) -> Field {
    Field {
        lsb,
        shown: Shown::AtMost(value),
    }
}

const fn fixed(lsb: u8, value: u64) -> Field {
    Field {
        lsb,
        shown: Shown::Fixed(value),
    }
}

/// One ID register a policy shows (CRm, op2 in the ID space) and its visible fields.
#[derive(Debug)]
struct Register {
    crm: u8,
    op2: u8,
    fields: &'static [Field],
}

/// What one kind of VM sees of the ID registers.
#[derive(Debug)]
pub struct Policy {
    registers: &'static [Register],
    /// Registers shown otherwise than in `registers` (a kind of VM that sees more of a few).
    overrides: &'static [Register],
}

impl Policy {
    /// The value a guest's read of ID register `reg` returns. `cpu` reads the CPU's own
    /// register; it is called only for a register the policy shows.
    pub fn read(&self, reg: Encoding, cpu: impl FnOnce(Encoding) -> u64) -> u64 {
        let Some(r) = self.register(reg) else {
            return 0;
        };
        let hardware = cpu(reg);
        r.fields.iter().fold(0, |out, f| {
            let value = (hardware >> f.lsb) & FIELD_MASK;
            let shown = match f.shown {
                Shown::Cpu => value,
                Shown::AtMost(max) => value.min(max),
                Shown::Fixed(v) => v,
            };
            out | shown << f.lsb
        })
    }

    fn register(&self, reg: Encoding) -> Option<&Register> {
        if !is_id_register(reg) {
            return None;
        }
        let named = |r: &&Register| (r.crm, r.op2) == (reg.3, reg.4);
        self.overrides
            .iter()
            .find(named)
            .or_else(|| self.registers.iter().find(named))
    }
}

const FIELD_MASK: u64 = 0xf;

/// ID_AA64MMFR0_EL1.PARange for the smallest physical address size that holds `bits`.
const fn pa_range_for(bits: u32) -> u64 {
    match bits {
        0..=32 => 0,
        33..=36 => 1,
        37..=40 => 2,
        41..=42 => 3,
        43..=44 => 4,
        45..=48 => 5,
        _ => 6,
    }
}

/// A PV guest. It sees AArch64 EL0/EL1 with FP/AdvSIMD and the instruction-set
/// extensions that carry no state the hyp would have to switch. Hidden, because the hyp traps
/// them or does not switch their state: EL2/EL3, AArch32 (FPEXC32_EL2 and the other AArch32
/// registers are not switched), SVE, SME, the PMU, pointer authentication (HCR_EL2.API/APK
/// trap it), activity monitors (CPTR_EL2.TAM), MTE (HCR_EL2.ATA is clear), RAS (TERR), LOR
/// (TLOR), SPE, TRBE, BRBE, trace, MPAM, the GIC system registers, WFIT, MOPS, LS64, TME,
/// SCXTNUM (CSV2 shown at most 1), the newer translation controls (TCR2, SCTLR2, permission
/// indirection: ID_AA64MMFR3 reads 0) and everything EL2-only. The debug architecture cannot
/// read as absent: the minimum is shown (v8.0 debug, 2 breakpoints, 2 watchpoints, no OS
/// double lock), and its registers are UNDEFINED (MDCR_EL2.TDA, TDOSA, TDRA).
pub const PV_GUEST: Policy = Policy {
    registers: GUEST_REGISTERS,
    overrides: &[],
};

/// An unmodified Linux kernel (`kind = "linux"`): what a PV guest sees, and the GIC system
/// register interface where the CPU has one (GICv3: its vGIC is driven through the ICC_*
/// registers, ICH_* behind them). Its debug and PMU registers are emulated as doing nothing
/// (`vm::linux::sysreg`), so the same minimum of debug and no PMU are shown.
pub const LINUX_GUEST: Policy = Policy {
    registers: GUEST_REGISTERS,
    overrides: &[Register {
        crm: 4,
        op2: 0,
        fields: &[
            at_most(0, 1),  // EL0: AArch64 only
            at_most(4, 1),  // EL1: AArch64 only
            cpu(16),        // FP
            cpu(20),        // AdvSIMD
            at_most(24, 1), // GIC: the v3.0/4.0 system registers, if the CPU has them
            cpu(48),        // DIT
            at_most(56, 1), // CSV2, without SCXTNUM_ELx
            cpu(60),        // CSV3
        ],
    }],
};

/// The registers both kinds of guest see, as a PV guest sees them.
const GUEST_REGISTERS: &[Register] = &[
    // ID_AA64PFR0_EL1
    Register {
        crm: 4,
        op2: 0,
        fields: &[
            at_most(0, 1),  // EL0: AArch64 only
            at_most(4, 1),  // EL1: AArch64 only
            cpu(16),        // FP
            cpu(20),        // AdvSIMD
            cpu(48),        // DIT
            at_most(56, 1), // CSV2, without SCXTNUM_ELx
            cpu(60),        // CSV3
        ],
    },
    // ID_AA64PFR1_EL1
    Register {
        crm: 4,
        op2: 1,
        fields: &[
            cpu(0), // BT
            cpu(4), // SSBS
        ],
    },
    // ID_AA64DFR0_EL1
    Register {
        crm: 5,
        op2: 0,
        fields: &[
            at_most(0, 6),  // DebugVer: Armv8.0
            at_most(12, 1), // BRPs: 2
            at_most(20, 1), // WRPs: 2
            fixed(36, 0xf), // DoubleLock: not implemented
        ],
    },
    // ID_AA64ISAR0_EL1
    Register {
        crm: 6,
        op2: 0,
        fields: &[
            cpu(4),  // AES
            cpu(8),  // SHA1
            cpu(12), // SHA2
            cpu(16), // CRC32
            cpu(20), // Atomic
            cpu(28), // RDM
            cpu(32), // SHA3
            cpu(36), // SM3
            cpu(40), // SM4
            cpu(44), // DP
            cpu(48), // FHM
            cpu(52), // TS
            cpu(56), // TLB
            cpu(60), // RNDR
        ],
    },
    // ID_AA64ISAR1_EL1
    Register {
        crm: 6,
        op2: 1,
        fields: &[
            cpu(0),  // DPB
            cpu(12), // JSCVT
            cpu(16), // FCMA
            cpu(20), // LRCPC
            cpu(32), // FRINTTS
            cpu(36), // SB
            cpu(40), // SPECRES
            cpu(44), // BF16
            cpu(48), // DGH
            cpu(52), // I8MM
            cpu(56), // XS
        ],
    },
    // ID_AA64ISAR2_EL1
    Register {
        crm: 6,
        op2: 2,
        fields: &[
            cpu(4),  // RPRES
            cpu(20), // BC
            cpu(28), // CLRBHB
            cpu(48), // RPRFM
            cpu(52), // CSSC
            cpu(56), // LUT
        ],
    },
    // ID_AA64MMFR0_EL1
    Register {
        crm: 7,
        op2: 0,
        fields: &[
            at_most(0, pa_range_for(IPA_BITS)), // PARange: the guest's IPA space
            cpu(4),                             // ASIDBits
            cpu(8),                             // BigEnd
            cpu(16),                            // BigEndEL0
            cpu(20),                            // TGran16
            cpu(24),                            // TGran64
            cpu(28),                            // TGran4
            cpu(44),                            // ExS
        ],
    },
    // ID_AA64MMFR1_EL1
    Register {
        crm: 7,
        op2: 1,
        fields: &[
            cpu(0),  // HAFDBS
            cpu(12), // HPDS
            cpu(20), // PAN
            cpu(36), // ETS
            cpu(44), // AFP
            cpu(48), // nTLBPA
            cpu(52), // TIDCP1
            cpu(56), // CMOW
            cpu(60), // ECBHB
        ],
    },
    // ID_AA64MMFR2_EL1
    Register {
        crm: 7,
        op2: 2,
        fields: &[
            cpu(0),  // CnP
            cpu(4),  // UAO
            cpu(8),  // LSM
            cpu(16), // VARange
            cpu(20), // CCIDX
            cpu(28), // ST
            cpu(32), // AT
            cpu(36), // IDS
            cpu(48), // TTL
            cpu(52), // BBM
            cpu(60), // E0PD
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn id(crm: u8, op2: u8) -> Encoding {
        (3, 0, 0, crm, op2)
    }

    const PFR0: Encoding = (3, 0, 0, 4, 0);
    const PFR1: Encoding = (3, 0, 0, 4, 1);
    const ZFR0: Encoding = (3, 0, 0, 4, 4);
    const SMFR0: Encoding = (3, 0, 0, 4, 5);
    const DFR0: Encoding = (3, 0, 0, 5, 0);
    const DFR1: Encoding = (3, 0, 0, 5, 1);
    const ISAR0: Encoding = (3, 0, 0, 6, 0);
    const ISAR1: Encoding = (3, 0, 0, 6, 1);
    const ISAR2: Encoding = (3, 0, 0, 6, 2);
    const MMFR0: Encoding = (3, 0, 0, 7, 0);
    const MMFR1: Encoding = (3, 0, 0, 7, 1);
    const MMFR3: Encoding = (3, 0, 0, 7, 3);

    fn field(value: u64, lsb: u8) -> u64 {
        (value >> lsb) & 0xf
    }

    /// A CPU with every feature: each 4-bit field at 1 (implemented), which for the fields where
    /// 0 means "present" also leaves something to hide.
    const EVERYTHING: u64 = 0x1111_1111_1111_1111;

    fn read(reg: Encoding, hardware: u64) -> u64 {
        PV_GUEST.read(reg, |r| {
            assert_eq!(r, reg, "the CPU read is of the register asked for");
            hardware
        })
    }

    #[test]
    fn what_the_hyp_does_not_virtualize_reads_as_absent() {
        for hardware in [EVERYTHING, u64::MAX] {
            let pfr0 = read(PFR0, hardware);
            assert_eq!(field(pfr0, 32), 0, "SVE");
            assert_eq!(field(pfr0, 44), 0, "AMU");
            assert_eq!(field(pfr0, 28), 0, "RAS");
            assert_eq!(field(pfr0, 24), 0, "GIC system registers");
            assert_eq!(field(pfr0, 40), 0, "MPAM");
            assert_eq!((field(pfr0, 8), field(pfr0, 12)), (0, 0), "EL2, EL3");
            let pfr1 = read(PFR1, hardware);
            assert_eq!(field(pfr1, 24), 0, "SME");
            assert_eq!(field(pfr1, 8), 0, "MTE");
            assert_eq!(field(pfr1, 44), 0, "GCS");
            let dfr0 = read(DFR0, hardware);
            assert_eq!(field(dfr0, 8), 0, "PMUVer");
            assert_eq!(field(dfr0, 32), 0, "PMSVer (SPE)");
            assert_eq!(field(dfr0, 44), 0, "TraceBuffer");
            assert_eq!(field(dfr0, 52), 0, "BRBE");
            assert_eq!(field(dfr0, 4), 0, "TraceVer");
            assert_eq!(field(dfr0, 36), 0xf, "DoubleLock not implemented");
            let isar1 = read(ISAR1, hardware);
            for (lsb, what) in [
                (4, "APA"),
                (8, "API"),
                (24, "GPA"),
                (28, "GPI"),
                (60, "LS64"),
            ] {
                assert_eq!(field(isar1, lsb), 0, "{what}");
            }
            let isar2 = read(ISAR2, hardware);
            for (lsb, what) in [(8, "GPA3"), (12, "APA3"), (24, "PAC_frac"), (0, "WFxT")] {
                assert_eq!(field(isar2, lsb), 0, "{what}");
            }
            assert_eq!(field(read(ISAR0, hardware), 24), 0, "TME");
            assert_eq!(field(read(MMFR1, hardware), 16), 0, "LOR");
            assert_eq!(field(read(MMFR1, hardware), 8), 0, "VH");
            for reg in [ZFR0, SMFR0, DFR1, MMFR3] {
                assert_eq!(read(reg, hardware), 0, "{reg:?} reads as zero");
            }
        }
    }

    #[test]
    fn safe_fields_pass_through() {
        // FP and AdvSIMD with FP16 (1), AArch32 at EL0 and EL1 (2), CSV2_2 (2), CSV3, DIT.
        let pfr0 = 0x1201_0000_0011_0022;
        assert_eq!(read(PFR0, pfr0), 0x1101_0000_0011_0011);
        // FP/AdvSIMD not implemented (0xf) stays so: zero would claim them.
        assert_eq!(read(PFR0, 0xff_0011), 0xff_0011);
        // AES+PMULL, SHA1, SHA256, CRC32, LSE atomics, RDM, DP.
        let isar0 = 0x0000_1000_1021_1120;
        assert_eq!(read(ISAR0, isar0), isar0);
        // DPB, JSCVT, FCMA, LRCPC2 pass; APA/API/GPA/GPI go.
        assert_eq!(read(ISAR1, 0x1121_1111), 0x0021_1001);
        // 4K and 64K granules (0), no 16K (0), 16-bit ASIDs, 36-bit PAs: the CPU's; the
        // secure-memory distinction (SNSMem) goes.
        assert_eq!(read(MMFR0, 0x0000_0000_0000_1121), 0x0000_0000_0000_0121);
        // 48-bit PAs are shown as the 40 bits that hold the guest's 39-bit IPA space; the
        // granules a CPU does not have (0xf) stay so.
        assert_eq!(read(MMFR0, 0x0000_0000_ff00_0025), 0x0000_0000_ff00_0022);
        // Armv8.4 debug with 6 breakpoints: the v8.0 minimum, no double lock.
        assert_eq!(read(DFR0, 0x0000_0000_0050_5019), 0x0000_00f0_0010_1006);
    }

    #[test]
    fn registers_outside_the_policy_read_zero_without_touching_the_cpu() {
        let untouched = |_| panic!("the CPU register is not read");
        for reg in [ZFR0, SMFR0, id(1, 0), id(3, 0), id(7, 7), id(2, 5)] {
            assert_eq!(PV_GUEST.read(reg, untouched), 0, "{reg:?}");
        }
        // Not in the ID space at all: CRm 0 (MIDR_EL1), another op1 (CCSIDR_EL1), SCTLR_EL1.
        for reg in [(3, 0, 0, 0, 0), (3, 1, 0, 0, 0), (3, 0, 1, 0, 0)] {
            assert!(!is_id_register(reg), "{reg:?}");
            assert_eq!(PV_GUEST.read(reg, untouched), 0);
        }
        assert!((1..=7).all(|crm| (0..=7).all(|op2| is_id_register(id(crm, op2)))));
    }

    #[test]
    fn linux_sees_the_gic_system_registers_and_nothing_more() {
        let linux = |reg: Encoding, hardware: u64| LINUX_GUEST.read(reg, |_| hardware);
        for hardware in [EVERYTHING, u64::MAX] {
            let pfr0 = linux(PFR0, hardware);
            assert_eq!(
                field(pfr0, 24),
                1,
                "GICv3 system registers, at most v3.0/4.0"
            );
            assert_eq!(
                pfr0 & !(0xf << 24),
                read(PFR0, hardware),
                "the rest as for PV"
            );
            for reg in [
                PFR1, ZFR0, SMFR0, DFR0, DFR1, ISAR0, ISAR1, ISAR2, MMFR0, MMFR3,
            ] {
                assert_eq!(linux(reg, hardware), read(reg, hardware), "{reg:?}");
            }
        }
        assert_eq!(
            field(linux(PFR0, 0), 24),
            0,
            "no GICv3 CPU interface: none shown"
        );
    }

    #[test]
    fn the_policy_table_is_well_formed() {
        for table in [GUEST_REGISTERS, LINUX_GUEST.overrides] {
            for (i, r) in table.iter().enumerate() {
                let name = (r.crm, r.op2);
                assert!(is_id_register(id(r.crm, r.op2)), "{name:?}");
                assert!(
                    table[..i].iter().all(|o| (o.crm, o.op2) != (r.crm, r.op2)),
                    "{name:?} listed twice"
                );
                let mut used = 0u64;
                for f in r.fields {
                    assert!(f.lsb % 4 == 0 && f.lsb < 64, "{name:?} field at {}", f.lsb);
                    let bits = FIELD_MASK << f.lsb;
                    assert_eq!(used & bits, 0, "{name:?} field at {} twice", f.lsb);
                    used |= bits;
                    if let Shown::AtMost(v) | Shown::Fixed(v) = f.shown {
                        assert!(v <= FIELD_MASK, "{name:?} field at {}", f.lsb);
                    }
                }
            }
        }
        assert_eq!(pa_range_for(IPA_BITS), 2, "39-bit IPAs fit 40-bit PAs");
        assert_eq!(
            (pa_range_for(32), pa_range_for(48), pa_range_for(52)),
            (0, 5, 6)
        );
    }
}
