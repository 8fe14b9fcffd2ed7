//! Addresses by kind: a guest-physical address (`Ipa`, what a guest names) and a physical
//! address (`PhysAddr`, a frame of RAM as the hyp reaches it: RAM is identity-mapped at EL2).
//! Two types so that one can never be passed where the other is expected; nothing converts
//! between them but a stage-2 walk, and no arithmetic mixes them. The page size lives here.

#![forbid(unsafe_code)]

/// The translation granule and the unit of guest memory: the guest knows it, so its value is
/// the ABI's.
pub const PAGE_SIZE: u64 = hypercall_abi::mem::PAGE_SIZE;

/// A guest-physical (intermediate physical) address: stage 2's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Ipa(u64);

/// A physical address: stage 2's output, a frame the hyp reaches at the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PhysAddr(u64);

impl Ipa {
    pub const fn new(address: u64) -> Self {
        Self(address)
    }

    /// The address as a number (for a register, a descriptor or a log line).
    pub const fn get(self) -> u64 {
        self.0
    }

    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }

    /// The start of the page holding this address.
    pub const fn page_start(self) -> Self {
        Self(self.0 & !(PAGE_SIZE - 1))
    }

    /// The offset of this address in its page.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }

    /// This address plus `bytes`, if that does not wrap.
    pub const fn checked_add(self, bytes: u64) -> Option<Self> {
        match self.0.checked_add(bytes) {
            Some(a) => Some(Self(a)),
            None => None,
        }
    }

    /// This address plus `pages` pages, if that does not wrap.
    pub const fn add_pages(self, pages: u64) -> Option<Self> {
        match pages.checked_mul(PAGE_SIZE) {
            Some(bytes) => self.checked_add(bytes),
            None => None,
        }
    }
}

/// A guest's register or a manifest's number becomes an IPA here: IPAs come from outside as
/// plain numbers. A `PhysAddr` has no such door; only the frame pool and stage-2 walks make one.
impl From<u64> for Ipa {
    fn from(address: u64) -> Self {
        Self(address)
    }
}

impl core::fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::LowerHex::fmt(&self.0, f)
    }
}

impl PhysAddr {
    pub const fn new(address: u64) -> Self {
        Self(address)
    }

    /// The address as a number (for a descriptor, a pointer or a log line).
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The offset of this address in its frame.
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_helpers_split_an_address() {
        let ipa = Ipa::new(3 * PAGE_SIZE + 5);
        assert!(!ipa.is_page_aligned());
        assert_eq!(ipa.page_start(), Ipa::new(3 * PAGE_SIZE));
        assert_eq!(ipa.page_offset(), 5);
        assert_eq!(
            Ipa::new(PAGE_SIZE).add_pages(2),
            Some(Ipa::new(3 * PAGE_SIZE))
        );
        assert_eq!(PhysAddr::new(2 * PAGE_SIZE + 9).page_offset(), 9);
        assert_eq!(Ipa::new(u64::MAX - 1).checked_add(2), None);
        assert_eq!(Ipa::new(PAGE_SIZE).add_pages(u64::MAX), None);
    }
}
