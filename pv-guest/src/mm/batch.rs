//! `mem.batch` lists: up to 512 one-page entries in a page of the VM's own RAM.

use hypercall_abi::layout::{BatchEntry, BatchList, BatchOp};
use hypercall_abi::mem::{MEM_BATCH_MAX, PAGE_SIZE};
use hypercall_abi::{Error, MemPerms};

/// Fills a batch list, entry by entry.
pub struct BatchBuilder<'a> {
    list: &'a mut BatchList,
    len: usize,
}

impl<'a> BatchBuilder<'a> {
    /// An empty list over `list`.
    pub fn new(list: &'a mut BatchList) -> Self {
        BatchBuilder { list, len: 0 }
    }

    /// Appends one entry; `INVALID_PARAMETERS` when the list is full or for perms on an unmap,
    /// `BAD_ADDRESS` for an unaligned IPA.
    pub fn push(&mut self, op: BatchOp, ipa: u64, perms: MemPerms) -> Result<(), Error> {
        self.push_raw(BatchEntry::new(op, ipa, perms)?.raw)
    }

    /// Appends `pages` entries, one per page from `ipa`.
    pub fn push_range(
        &mut self,
        op: BatchOp,
        ipa: u64,
        pages: u64,
        perms: MemPerms,
    ) -> Result<(), Error> {
        (0..pages).try_for_each(|i| self.push(op, ipa + i * PAGE_SIZE, perms))
    }

    /// Appends an entry as raw bits, well-formed or not (to test the hypervisor's checks).
    pub fn push_raw(&mut self, raw: u64) -> Result<(), Error> {
        let slot = self
            .list
            .get_mut(self.len)
            .ok_or(Error::InvalidParameters)?;
        *slot = BatchEntry { raw };
        self.len += 1;
        Ok(())
    }

    /// Entries so far: the count to pass to `mem.batch`.
    pub fn count(&self) -> u64 {
        self.len as u64
    }
}

const _: () = assert!(core::mem::size_of::<BatchList>() as u64 == MEM_BATCH_MAX * 8);

#[cfg(target_os = "none")]
mod target {
    use super::BatchBuilder;
    use crate::mm::frames::Frames;
    use hypercall_abi::layout::BatchList;
    use hypercall_abi::{BatchResult, Error, MemPerms};

    /// A page of our RAM that holds a batch list.
    pub struct BatchPage {
        frames: Frames,
    }

    impl BatchPage {
        pub fn new() -> Result<BatchPage, Error> {
            Frames::alloc(1, MemPerms::RW).map(|frames| BatchPage { frames })
        }

        /// The list's IPA.
        pub fn ipa(&self) -> u64 {
            self.frames.ipa()
        }

        /// A builder over this page (starting empty).
        pub fn builder(&mut self) -> BatchBuilder<'_> {
            let ptr = self.frames.words().as_mut_ptr().cast::<BatchList>();
            // SAFETY: the page is 4096 bytes, mapped RW and page-aligned, owned by `self`;
            // BatchList is 512 u64-sized entries, valid for any bits; the borrow of `self`
            // bounds the reference.
            BatchBuilder::new(unsafe { &mut *ptr })
        }

        /// Runs the first `count` entries.
        pub fn submit(&self, count: u64) -> Result<BatchResult, Error> {
            crate::hv().mem_batch(self.ipa(), count)
        }
    }
}

#[cfg(target_os = "none")]
pub use target::BatchPage;

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Box<BatchList> {
        Box::new([BatchEntry { raw: 0 }; 512])
    }

    #[test]
    fn packs_entries_in_order() {
        let mut list = empty();
        let mut b = BatchBuilder::new(&mut list);
        b.push(BatchOp::Map, 0x1000, MemPerms::RW).unwrap();
        b.push(BatchOp::Unmap, 0x2000, MemPerms::empty()).unwrap();
        b.push(BatchOp::Protect, 0x3000, MemPerms::READ).unwrap();
        assert_eq!(b.count(), 3);
        assert_eq!(
            list[..3].iter().map(|e| e.raw).collect::<Vec<_>>(),
            [0x1003, 0x2008, 0x3011]
        );
        assert_eq!(
            list[1].decode(),
            Ok((BatchOp::Unmap, 0x2000, MemPerms::empty()))
        );
    }

    #[test]
    fn refuses_bad_entries_and_overflow() {
        let mut list = empty();
        let mut b = BatchBuilder::new(&mut list);
        assert_eq!(
            b.push(BatchOp::Map, 0x1001, MemPerms::RW),
            Err(Error::BadAddress)
        );
        assert_eq!(
            b.push(BatchOp::Unmap, 0x1000, MemPerms::READ),
            Err(Error::InvalidParameters)
        );
        assert_eq!(b.count(), 0);
        b.push_range(BatchOp::Map, 0x10_0000, 512, MemPerms::RW)
            .unwrap();
        assert_eq!(b.count(), 512);
        assert_eq!(
            b.push(BatchOp::Map, 0x1000, MemPerms::RW),
            Err(Error::InvalidParameters)
        );
        assert_eq!(list[511].raw, 0x10_0000 + 511 * 4096 + 3);
    }

    #[test]
    fn raw_entries_are_kept_as_given() {
        let mut list = empty();
        let mut b = BatchBuilder::new(&mut list);
        b.push_raw(0x1000 | 1 << 5).unwrap(); // a reserved bit
        assert_eq!(list[0].decode(), Err(Error::InvalidParameters));
    }
}
