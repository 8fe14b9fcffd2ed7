//! The `abi` family: version handshake and the features bitmap.

use super::GuestVm;
use hypercall_abi::{Error, Version, negotiate};

/// A guest states the version it was built for; every minor of our major is accepted. The
/// first stated version of a life is the VM's: VENDOR_HYP_REVISION answers it.
pub fn version(vm: &mut impl GuestVm, guest: Version) -> Result<[u64; 3], Error> {
    let ours = negotiate(Version::CURRENT, guest)?;
    vm.stated_version().get_or_insert(guest);
    Ok([ours.to_u64(), 0, 0])
}

/// The revision VENDOR_HYP_REVISION reports to a VM: ours, or the version its handshake stated
/// when that is older (a guest sees the revision it was built for; the calls it knows behave
/// the same, and a released guest's check for exactly its own revision keeps passing).
pub fn revision(stated: Option<Version>) -> Version {
    stated.map_or(Version::CURRENT, |v| v.min(Version::CURRENT))
}

/// Which vendor calls this hyp serves.
pub fn features() -> [u64; 3] {
    [hypercall_abi::live_features(), 0, 0]
}
