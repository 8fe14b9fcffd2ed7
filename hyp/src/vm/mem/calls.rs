//! Page calls as the guest makes them: bounded work per call. A `MEM_MAP`, `MEM_UNMAP` or
//! `MEM_PROTECT` of more than [`CHUNK_PAGES`] pages is checked whole first (and a map's frames,
//! tables and quota set aside), then done a chunk at a time: after each chunk the caller
//! rewrites the guest's arguments to what is left and has the vCPU issue the call again (a
//! hypercall continuation, as Xen's). Until it is done, the VM's other vCPUs' page calls wait
//! (they are continued without progress), so the whole call keeps its all-or-nothing result.

use super::{GuestMemory, Pin};
use crate::addr::{Ipa, PAGE_SIZE};
use crate::arch::{Machine, TlbOp};
use hypercall_abi::{Error, MemPerms};

/// Pages one chunk of a page call covers before the CPU is given back.
pub const CHUNK_PAGES: u64 = 512;

/// A page call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCall {
    Map(MemPerms),
    Unmap,
    Protect(MemPerms),
}

/// What a page call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// All of it: the call returns success.
    Done,
    /// A chunk: the call goes on with `pages` pages at `ipa`.
    Continue { ipa: u64, pages: u64 },
    /// Nothing: another vCPU's call is under way; this one is issued again later.
    Busy,
}

/// A page call under way: what is left of it, and what is set aside for it.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    vcpu: usize,
    call: PageCall,
    ipa: u64,
    pages: u64,
    /// Frames reserved for the pages and tables still to map.
    frames: u64,
    /// Tables still to add, counted against the table allowance.
    tables: u64,
}

/// Quota pages a map under way has promised.
pub(super) fn promised_pages(pending: &Option<Pending>) -> u64 {
    match pending {
        Some(p) if matches!(p.call, PageCall::Map(_)) => p.pages,
        _ => 0,
    }
}

/// Tables a map under way may still add.
pub(super) fn promised_tables(pending: &Option<Pending>) -> u64 {
    pending.map_or(0, |p| p.tables)
}

/// A map under way took one of its reserved frames (for a table if `table`).
pub(super) fn took_reserved(pending: &mut Option<Pending>, table: bool) {
    if let Some(p) = pending.as_mut() {
        p.frames = p.frames.saturating_sub(1);
        if table {
            p.tables = p.tables.saturating_sub(1);
        }
    }
}

impl<M: Machine> GuestMemory<M> {
    /// The vCPU whose page call is under way, if any.
    pub fn continued_by(&self) -> Option<usize> {
        self.pending.map(|p| p.vcpu)
    }

    /// Drops the page call under way (its vCPU issued another call instead, is off, or the
    /// VM is torn down): what it did stays done, what it set aside is given back.
    pub fn abandon_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            M::release_frames(p.frames as usize);
        }
    }

    /// Serves page call `call` of `pages` pages at `ipa` from vCPU `vcpu`: whole, or its next
    /// chunk.
    pub fn call(
        &mut self,
        vcpu: usize,
        call: PageCall,
        ipa: impl Into<Ipa>,
        pages: u64,
    ) -> Result<Progress, Error> {
        let ipa = ipa.into().get();
        if let Some(p) = self.pending {
            if p.vcpu != vcpu {
                return Ok(Progress::Busy);
            }
            if (p.call, p.ipa, p.pages) == (call, ipa, pages) {
                return self.next_chunk();
            }
            self.abandon_pending();
        }
        if pages <= CHUNK_PAGES {
            match call {
                PageCall::Map(perms) => self.map(ipa, pages, perms),
                PageCall::Unmap => self.unmap(ipa, pages),
                PageCall::Protect(perms) => self.protect(ipa, pages, perms),
            }?;
            return Ok(Progress::Done);
        }
        let (frames, tables) = match call {
            PageCall::Map(perms) => {
                let tables = self.check_map(ipa, pages, perms)?;
                let frames = pages + tables;
                if !M::reserve_frames(frames as usize) {
                    return Err(Error::OutOfMemory);
                }
                (frames, tables)
            }
            PageCall::Unmap => {
                self.check_unmap(ipa, pages)?;
                (0, 0)
            }
            PageCall::Protect(perms) => {
                self.check_protect(ipa, pages, perms)?;
                (0, 0)
            }
        };
        self.pending = Some(Pending {
            vcpu,
            call,
            ipa,
            pages,
            frames,
            tables,
        });
        self.next_chunk()
    }

    /// Does the next chunk of the call under way.
    fn next_chunk(&mut self) -> Result<Progress, Error> {
        let Some(p) = self.pending else {
            return Ok(Progress::Done);
        };
        let n = p.pages.min(CHUNK_PAGES);
        match p.call {
            PageCall::Map(perms) => {
                let mapped = self.map_pages(p.ipa, n, perms, Pin::None, true);
                M::tlb(TlbOp::DsbIshst);
                if let Err(e) = mapped {
                    self.abandon_pending();
                    return Err(e);
                }
            }
            PageCall::Unmap => self.remove(p.ipa, n),
            PageCall::Protect(perms) => self.reprotect(p.ipa, n, perms),
        }
        let left = p.pages - n;
        if left == 0 {
            self.abandon_pending();
            return Ok(Progress::Done);
        }
        let ipa = p.ipa + n * PAGE_SIZE;
        if let Some(p) = self.pending.as_mut() {
            (p.ipa, p.pages) = (ipa, left);
        }
        Ok(Progress::Continue { ipa, pages: left })
    }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
