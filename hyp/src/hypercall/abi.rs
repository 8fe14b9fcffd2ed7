//! The `abi` family: version handshake and the features bitmap.

use hypercall_abi::{Error, Version, negotiate};

/// A guest states the version it was built for; every minor of our major is accepted.
pub fn version(guest: Version) -> Result<[u64; 3], Error> {
    negotiate(Version::CURRENT, guest).map(|v| [v.to_u64(), 0, 0])
}

/// Which vendor calls this hyp serves.
pub fn features() -> [u64; 3] {
    [hypercall_abi::live_features(), 0, 0]
}
