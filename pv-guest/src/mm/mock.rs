//! A hypervisor stand-in for host tests: the `mem` family's documented semantics over a page
//! map and a quota, so code that maps and unmaps can be tested without a CPU.

use hypercall_abi::mem::PAGE_SIZE;
use hypercall_abi::{Call, Conduit, Error, MemPerms, Regs, encode_return};
use std::collections::BTreeMap;
use std::vec::Vec;

/// The IPA space's size (39 bits, as on pvhyp).
pub const IPA_LIMIT: u64 = 1 << 39;

#[derive(Debug, Default)]
pub struct MockHyp {
    pub pages: BTreeMap<u64, MemPerms>,
    pub quota_left: u64,
    /// Every call received, decoded.
    pub calls: Vec<Call>,
}

impl MockHyp {
    pub fn with_quota(bytes: u64) -> Self {
        MockHyp {
            quota_left: bytes,
            ..Default::default()
        }
    }

    fn range(ipa: u64, pages: u64) -> Result<impl Iterator<Item = u64>, Error> {
        if pages == 0 {
            return Err(Error::InvalidParameters);
        }
        let end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|b| ipa.checked_add(b))
            .ok_or(Error::BadAddress)?;
        if !ipa.is_multiple_of(PAGE_SIZE) || end > IPA_LIMIT {
            return Err(Error::BadAddress);
        }
        Ok((ipa..end).step_by(PAGE_SIZE as usize))
    }

    fn handle(&mut self, call: Call) -> Result<[u64; 3], Error> {
        match call {
            Call::MemMap { ipa, pages, perms } => {
                if !perms.contains(MemPerms::READ) {
                    return Err(Error::InvalidParameters);
                }
                let range: Vec<u64> = Self::range(ipa, pages)?.collect();
                if range.iter().any(|p| self.pages.contains_key(p)) {
                    return Err(Error::AlreadyMapped);
                }
                if pages * PAGE_SIZE > self.quota_left {
                    return Err(Error::OutOfMemory);
                }
                self.quota_left -= pages * PAGE_SIZE;
                self.pages.extend(range.into_iter().map(|p| (p, perms)));
                Ok([0; 3])
            }
            Call::MemUnmap { ipa, pages } => {
                let range: Vec<u64> = Self::range(ipa, pages)?.collect();
                if !range.iter().all(|p| self.pages.contains_key(p)) {
                    return Err(Error::NotMapped);
                }
                for p in range {
                    self.pages.remove(&p);
                }
                self.quota_left += pages * PAGE_SIZE;
                Ok([0; 3])
            }
            Call::MemQuery { ipa } => self
                .pages
                .get(&(ipa & !(PAGE_SIZE - 1)))
                .map(|p| [p.bits(), self.quota_left, 0])
                .ok_or(Error::NotMapped),
            _ => Err(Error::NotSupported),
        }
    }
}

impl Conduit for MockHyp {
    fn call(&mut self, regs: &Regs) -> Regs {
        let result = Call::try_from(regs).and_then(|call| {
            self.calls.push(call);
            self.handle(call)
        });
        let mut out = [0; 18];
        out[..4].copy_from_slice(&encode_return(result));
        out
    }
}
