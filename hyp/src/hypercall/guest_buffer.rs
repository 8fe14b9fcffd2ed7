//! The check a guest's buffer passes before the hyp moves a byte to or from it, so a call never
//! half-fills a buffer it then refuses. `GuestMemory::write` itself ignores the guest's
//! permissions (the hyp fills the read-only boot info with it): a buffer the hyp fills *for*
//! the guest must be one the guest could have written itself.

use crate::addr::{Ipa, PAGE_SIZE};
use crate::arch::Machine;
use crate::vm::mem::GuestMemory;
use hypercall_abi::{Error, MemPerms};

/// What the hyp does with a guest buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The hyp reads it: every page mapped.
    Read,
    /// The hyp writes it: every page mapped writable by the guest.
    Write,
}

/// Whether `[ipa, ipa + len)` is all mapped in `memory` with what `access` needs;
/// `BAD_ADDRESS` if not (or if it wraps). An empty buffer passes.
pub fn check<M: Machine>(
    memory: &GuestMemory<M>,
    ipa: u64,
    len: u64,
    access: Access,
) -> Result<(), Error> {
    let end = ipa.checked_add(len).ok_or(Error::BadAddress)?;
    let mut page = Ipa::new(ipa).page_start().get();
    while page < end {
        let perms = memory
            .query(Ipa::new(page))
            .map_err(|_| Error::BadAddress)?;
        if access == Access::Write && !perms.contains(MemPerms::WRITE) {
            return Err(Error::BadAddress);
        }
        page += PAGE_SIZE;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Cpu;

    #[test]
    fn a_buffer_passes_only_if_every_page_allows_the_access() {
        let mut memory = GuestMemory::<Cpu>::new(1, 2, 16 * 4096).expect("frames");
        memory.map(0x1000, 2, MemPerms::RW).unwrap();
        memory.map(0x3000, 1, MemPerms::READ).unwrap();
        assert_eq!(check(&memory, 0x1000, 0x2000, Access::Write), Ok(()));
        assert_eq!(check(&memory, 0x1ffc, 8, Access::Write), Ok(()));
        // Into the read-only page: readable, not writable.
        assert_eq!(check(&memory, 0x2ffc, 8, Access::Read), Ok(()));
        assert_eq!(
            check(&memory, 0x2ffc, 8, Access::Write),
            Err(Error::BadAddress)
        );
        // Into the unmapped page after it, or wrapping, or beyond the IPA space.
        assert_eq!(
            check(&memory, 0x3ffc, 8, Access::Read),
            Err(Error::BadAddress)
        );
        assert_eq!(
            check(&memory, u64::MAX - 2, 8, Access::Read),
            Err(Error::BadAddress)
        );
        assert_eq!(
            check(&memory, 1 << 50, 1, Access::Read),
            Err(Error::BadAddress)
        );
        assert_eq!(check(&memory, 0x9000, 0, Access::Write), Ok(()));
    }
}
