//! The `abi` family: version handshake and the features bitmap. Neither reads any state of the
//! VM or the hyp: both are answered on the unlocked path ([`super::answer_stateless`]); the
//! version a handshake states is recorded by its caller ([`stated`]).

use hypercall_abi::abi::{ABI_FEATURES, ABI_VERSION};
use hypercall_abi::{Error, Regs, Version, negotiate};

/// The two calls differ in bit 0 alone: one test tells them from every other call (the hot path
/// of `ABI_VERSION`).
const _: () = assert!(ABI_FEATURES == ABI_VERSION | 1);

/// Answers `ABI_VERSION` and `ABI_FEATURES` in place; false for any other function ID.
#[inline(always)]
pub fn handle(function_id: u32, regs: &mut Regs) -> bool {
    if function_id & !1 != ABI_VERSION {
        return false;
    }
    let result = if function_id == ABI_VERSION {
        Version::from_u64(regs[1])
            .ok_or(Error::InvalidParameters)
            .and_then(version)
    } else {
        Ok(features())
    };
    super::set_return(regs, result);
    true
}

/// A guest states the version it was built for; every minor of our major is accepted.
fn version(guest: Version) -> Result<[u64; 3], Error> {
    negotiate(Version::CURRENT, guest).map(|v| [v.to_u64(), 0, 0])
}

/// The version an `ABI_VERSION` call in `regs` states, if we accept it. A VM's first stated
/// version of a life is the revision VENDOR_HYP_REVISION reports to it ([`revision`]).
#[inline(always)]
pub fn stated(regs: &Regs) -> Option<Version> {
    if regs[0] as u32 != ABI_VERSION {
        return None;
    }
    Version::from_u64(regs[1]).filter(|&guest| negotiate(Version::CURRENT, guest).is_ok())
}

/// The revision VENDOR_HYP_REVISION reports to a VM: ours, or the version its handshake stated
/// when that is older (a guest sees the revision it was built for; the calls it knows behave
/// the same, and a released guest's check for exactly its own revision keeps passing).
pub fn revision(stated: Option<Version>) -> Version {
    stated.map_or(Version::CURRENT, |v| v.min(Version::CURRENT))
}

/// Which vendor calls this hyp serves (computed once, at build time: it walks the catalog).
fn features() -> [u64; 3] {
    const LIVE: u64 = hypercall_abi::live_features();
    [LIVE, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeVm, dispatch};
    use hypercall_abi::{Call, Error, Version};

    #[test]
    fn a_version_with_reserved_bits_is_invalid() {
        let mut regs = Call::AbiVersion {
            guest: Version::CURRENT,
        }
        .to_regs();
        regs[1] |= 1 << 32;
        dispatch(&mut FakeVm::default(), &mut regs);
        assert_eq!(regs[0] as i64, Error::InvalidParameters.code());
    }

    #[test]
    fn features_are_the_live_calls() {
        let mut regs = Call::AbiFeatures.to_regs();
        regs[2] = 5;
        dispatch(&mut FakeVm::default(), &mut regs);
        assert_eq!(
            regs[..4],
            [0, hypercall_abi::live_features(), 0, 0],
            "x2 and x3 are reserved: zero"
        );
    }
}
