//! ABI versions and the version handshake.

use core::fmt;

use crate::Error;

/// A `major.minor` ABI version.
///
/// Rules (since 1.0):
/// - A hypervisor speaks every minor of its major: a guest built for 1.0 works unchanged on a
///   1.7 hypervisor, and a 1.3 guest works on a 1.0 hypervisor except that calls added after 1.0
///   answer [`Error::NotSupported`].
/// - A different major is refused with [`Error::VersionMismatch`].
/// - New calls get new function IDs and a minor bump; an existing ID's meaning never changes.
///
/// On the wire a version is one register: `(major << 16) | minor`, bits 63:32 zero.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes bump this (never within v1).
    pub major: u16,
    /// Backwards-compatible additions bump this.
    pub minor: u16,
}

impl Version {
    /// The version this crate describes.
    pub const CURRENT: Version = Version { major: 1, minor: 6 };

    /// Makes a version.
    pub const fn new(major: u16, minor: u16) -> Version {
        Version { major, minor }
    }

    /// The register encoding: `(major << 16) | minor`.
    pub const fn to_u64(self) -> u64 {
        ((self.major as u64) << 16) | self.minor as u64
    }

    /// Decodes the register encoding; `None` if any of bits 63:32 is set.
    pub fn from_u64(v: u64) -> Option<Version> {
        if v >> 32 != 0 {
            return None;
        }
        Some(Version {
            major: (v >> 16) as u16,
            minor: v as u16,
        })
    }

    /// Whether two versions can talk: the same major.
    pub fn is_compatible_with(self, other: Version) -> bool {
        self.major == other.major
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The hypervisor's side of `ABI_VERSION`: given the hypervisor's version and the version the
/// guest was built for, the version to report (the hypervisor's own), or
/// [`Error::VersionMismatch`] when the majors differ. Any minor of the same major is accepted,
/// older or newer than the hypervisor's.
pub fn negotiate(hyp: Version, guest: Version) -> Result<Version, Error> {
    if hyp.is_compatible_with(guest) {
        Ok(hyp)
    } else {
        Err(Error::VersionMismatch)
    }
}
