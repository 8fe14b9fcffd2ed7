//! The Arm-defined queries every SMCCC client makes: SMCCC version and features, and the
//! vendor-hypervisor service's UID and revision.

use hypercall_abi::standard::{SMCCC_VERSION_1_2, VENDOR_HYP_UID, arch_features, revision_regs};
use hypercall_abi::{Call, Regs, Version};

/// These calls answer in x0 (and x1..x3) directly, as their specifications define; `revision`
/// is the vendor service's revision for this VM.
pub fn handle(call: &Call, regs: &mut Regs, revision: Version) {
    match *call {
        Call::SmcccVersion => regs[0] = u64::from(SMCCC_VERSION_1_2),
        Call::SmcccArchFeatures { function_id } => {
            regs[0] = arch_features(function_id) as i64 as u64
        }
        Call::VendorHypCallUid => {
            for (r, word) in regs.iter_mut().zip(VENDOR_HYP_UID) {
                *r = u64::from(word);
            }
        }
        Call::VendorHypRevision => regs[..2].copy_from_slice(&revision_regs(revision)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::{dispatch, fake::FakeVm};
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
