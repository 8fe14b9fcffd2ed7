//! Registers and instructions the hypervisor traps: each must be UNDEFINED (or, for SMC,
//! refused in x0).

use super::{Described, Report};
use crate::arch::sensitive;
use crate::fault::probe_fault;
use hypercall_abi::standard::SMCCC_VERSION;

pub fn run(r: &mut Report) {
    let trapped: [(&str, fn()); 11] = [
        (
            "an IMPLEMENTATION DEFINED register (HCR_EL2.TIDCP)",
            sensitive::read_impdef_register,
        ),
        (
            "set/way cache maintenance (HCR_EL2.TSW)",
            sensitive::clean_by_set_way,
        ),
        ("ACTLR_EL1 (HCR_EL2.TACR)", sensitive::read_actlr),
        ("PMCR_EL0 (MDCR_EL2.TPM, TPMCR)", sensitive::read_pmcr),
        ("MDSCR_EL1 (MDCR_EL2.TDA)", sensitive::read_mdscr),
        ("DBGBVR0_EL1 (MDCR_EL2.TDA)", sensitive::read_dbgbvr0),
        (
            "writing DBGBCR0_EL1 (MDCR_EL2.TDA)",
            sensitive::write_dbgbcr0,
        ),
        ("OSDLR_EL1 (MDCR_EL2.TDOSA)", sensitive::read_osdlr),
        ("MDRAR_EL1 (MDCR_EL2.TDRA)", sensitive::read_mdrar),
        (
            "CNTP_CTL_EL0 (CNTHCTL_EL2.EL1PCEN)",
            sensitive::read_cntp_ctl,
        ),
        (
            "arming the physical timer (CNTHCTL_EL2.EL1PCEN)",
            sensitive::write_cntp_ctl,
        ),
    ];
    for (what, f) in trapped {
        match probe_fault(f) {
            Some(fault) => r.blocked(what, Described(fault)),
            None => r.through(what, "no exception"),
        }
    }
    let x0 = sensitive::smc(SMCCC_VERSION.into()) as i64;
    if x0 == -1 {
        r.blocked("SMC to the secure monitor (HCR_EL2.TSC)", "NOT_SUPPORTED");
    } else {
        r.through(
            "SMC to the secure monitor (HCR_EL2.TSC)",
            format_args!("x0 = {x0}"),
        );
    }
}
