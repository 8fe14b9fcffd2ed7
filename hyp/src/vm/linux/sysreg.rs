//! The system registers a Linux VM's trapped accesses reach, beyond the ID space
//! (`vm::idregs`): what its early setup touches must not be UNDEFINED, since Linux writes them
//! before its vectors exist. Pure logic, tested on the host.

#![forbid(unsafe_code)]

use super::super::idregs::Encoding;

/// What the hyp does with one trapped MSR/MRS of a Linux vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// Reads as this value; writes are ignored. The debug, OS-lock and PMU registers: the ID
    /// registers show no PMU and the minimum of debug, whose registers then do nothing.
    Fixed(u64),
    /// A write of ICC_SGI1R_EL1 (GICv3, trapped by HCR_EL2.IMO): an SGI to other vCPUs.
    Sgi1r,
    /// Not emulated: the guest takes an UNDEFINED exception, as on a CPU without it.
    Undefined,
}

/// OSLSR_EL1 as the guest reads it: the OS lock is implemented (OSLM = 0b10) and unlocked.
pub const OSLSR_UNLOCKED: u64 = 0b1000;

const OSLSR_EL1: Encoding = (2, 0, 1, 1, 4);
const ICC_SGI1R_EL1: Encoding = (3, 0, 12, 11, 5);
/// ICC_ASGI1R_EL1 and ICC_SGI0R_EL1 trap with SGI1R: Linux sends neither (its SGIs are
/// Group 1 of its own Security state), and their writes are ignored.
const ICC_ASGI1R_EL1: Encoding = (3, 0, 12, 11, 6);
const ICC_SGI0R_EL1: Encoding = (3, 0, 12, 11, 7);

/// What a trapped access (a read if `is_read`) of `reg` does for a Linux vCPU.
pub fn emulated(reg: Encoding, is_read: bool) -> Emulated {
    match reg {
        OSLSR_EL1 => Emulated::Fixed(OSLSR_UNLOCKED),
        // op0 2: every debug register (MDCR_EL2.TDA, TDOSA, TDRA): MDSCR_EL1, the OS lock and
        // double lock, the breakpoints and watchpoints, the DCC, the claim tags.
        (2, ..) => Emulated::Fixed(0),
        ICC_SGI1R_EL1 if !is_read => Emulated::Sgi1r,
        ICC_ASGI1R_EL1 | ICC_SGI0R_EL1 if !is_read => Emulated::Fixed(0),
        _ if is_pmu(reg) => Emulated::Fixed(0),
        _ => Emulated::Undefined,
    }
}

/// The PMU's registers (MDCR_EL2.TPM, TPMCR): PMCR_EL0 and the others of CRn 9 (CRm 12..14),
/// the event counters and type registers and PMCCFILTR_EL0 (op1 3, CRn 14, CRm 8..15).
fn is_pmu(reg: Encoding) -> bool {
    matches!(reg, (3, 0 | 3, 9, 12..=14, _) | (3, 3, 14, 8..=15, _))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDSCR_EL1: Encoding = (2, 0, 0, 2, 2);
    const OSLAR_EL1: Encoding = (2, 0, 1, 0, 4);
    const OSDLR_EL1: Encoding = (2, 0, 1, 3, 4);
    const DBGBCR0_EL1: Encoding = (2, 0, 0, 0, 5);
    const PMUSERENR_EL0: Encoding = (3, 3, 9, 14, 0);
    const PMCR_EL0: Encoding = (3, 3, 9, 12, 0);
    const PMINTENCLR_EL1: Encoding = (3, 0, 9, 14, 2);
    const PMCCFILTR_EL0: Encoding = (3, 3, 14, 15, 7);

    #[test]
    fn early_setup_registers_read_as_zero_and_ignore_writes() {
        for reg in [
            MDSCR_EL1,
            OSLAR_EL1,
            OSDLR_EL1,
            DBGBCR0_EL1,
            PMUSERENR_EL0,
            PMCR_EL0,
            PMINTENCLR_EL1,
            PMCCFILTR_EL0,
        ] {
            for is_read in [true, false] {
                assert_eq!(emulated(reg, is_read), Emulated::Fixed(0), "{reg:?}");
            }
        }
        assert_eq!(emulated(OSLSR_EL1, true), Emulated::Fixed(OSLSR_UNLOCKED));
        assert_eq!(OSLSR_UNLOCKED & 0b10, 0, "OSLK clear: unlocked");
    }

    #[test]
    fn sgis_are_sent_and_everything_else_is_undefined() {
        assert_eq!(emulated(ICC_SGI1R_EL1, false), Emulated::Sgi1r);
        assert_eq!(emulated(ICC_SGI1R_EL1, true), Emulated::Undefined);
        assert_eq!(emulated(ICC_SGI0R_EL1, false), Emulated::Fixed(0));
        // AMUSERENR_EL0 (the ID registers hide the AMU), an IMPDEF register, SCTLR_EL1.
        for reg in [(3, 3, 13, 2, 3), (3, 0, 15, 2, 0), (3, 0, 1, 0, 0)] {
            assert_eq!(emulated(reg, true), Emulated::Undefined, "{reg:?}");
        }
    }
}
