//! The Arm-defined queries every SMCCC client makes: SMCCC version and features, and the
//! vendor-hypervisor service's UID and revision. All but the revision (the VM's: see
//! `abi::revision`) read no state of the VM or the hyp and are answered on the unlocked path
//! ([`super::answer_stateless`]).

use hypercall_abi::standard::{
    SMCCC_ARCH_FEATURES, SMCCC_VERSION, SMCCC_VERSION_1_2, VENDOR_HYP_CALL_UID, VENDOR_HYP_UID,
    arch_features, revision_regs,
};
use hypercall_abi::{Regs, Version};

/// Answers these calls in place, in x0 (and x1..x3) directly, as their specifications define;
/// false for any other function ID.
#[inline(always)]
pub fn handle(function_id: u32, regs: &mut Regs) -> bool {
    match function_id {
        SMCCC_VERSION => regs[0] = u64::from(SMCCC_VERSION_1_2),
        SMCCC_ARCH_FEATURES => regs[0] = arch_features(regs[1] as u32) as i64 as u64,
        VENDOR_HYP_CALL_UID => {
            for (r, word) in regs.iter_mut().zip(VENDOR_HYP_UID) {
                *r = u64::from(word);
            }
        }
        _ => return false,
    }
    true
}

/// Answers VENDOR_HYP_REVISION with `revision`, the VM's.
pub fn revision(regs: &mut Regs, revision: Version) {
    regs[..2].copy_from_slice(&revision_regs(revision));
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeVm, dispatch};
    use hypercall_abi::Call;

    #[test]
    fn answers_as_smccc_clients_expect() {
        let mut vm = FakeVm::default();
        let mut regs = Call::SmcccVersion.to_regs();
        dispatch(&mut vm, &mut regs);
        assert_eq!(regs[0], 0x1_0002);
        let mut regs = Call::SmcccArchFeatures {
            function_id: 0x8000_0000,
        }
        .to_regs();
        dispatch(&mut vm, &mut regs);
        assert_eq!(regs[0], 0);
        let mut regs = Call::SmcccArchFeatures {
            function_id: 0x8000_7FFF,
        }
        .to_regs();
        dispatch(&mut vm, &mut regs);
        assert_eq!(regs[0] as i64, -1);
        let mut regs = Call::VendorHypCallUid.to_regs();
        dispatch(&mut vm, &mut regs);
        assert_eq!(
            [
                regs[0] as u32,
                regs[1] as u32,
                regs[2] as u32,
                regs[3] as u32
            ],
            hypercall_abi::standard::VENDOR_HYP_UID
        );
        let mut regs = Call::VendorHypRevision.to_regs();
        dispatch(&mut vm, &mut regs);
        let v = hypercall_abi::Version::CURRENT;
        assert_eq!((regs[0], regs[1]), (u64::from(v.major), u64::from(v.minor)));
    }
}
