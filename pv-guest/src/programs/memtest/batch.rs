//! memtest's checks of `mem.batch`, and of the allocators built on `mem.map` (heap, frames).

use super::{Hv, baseline, query, quota, read, write};
use crate::mm::batch::BatchPage;
use crate::mm::frames::{Frames, IpaWindow};
use crate::mm::heap;
use crate::mm::layout::IPA_LIMIT;
use crate::programs::checks::Checks;
use crate::programs::pattern;
use alloc::vec;
use hypercall_abi::layout::BatchOp;
use hypercall_abi::mem::{MEM_BATCH_MAX, PAGE_SIZE};
use hypercall_abi::{BatchResult, Error, MemPerms};

pub fn batches(c: &mut Checks, hv: &mut Hv, w: &IpaWindow) {
    let Ok(mut list) = BatchPage::new() else {
        c.check("a page for the batch list", false);
        return;
    };
    let Some(q0) = baseline(c, hv) else {
        return;
    };
    let full = MEM_BATCH_MAX;
    let ok = |done| {
        Ok(BatchResult {
            done,
            first_error: None,
        })
    };

    let mut b = list.builder();
    let _ = b.push_range(BatchOp::Map, w.ipa, full, MemPerms::RW);
    c.expect(
        "a 512-entry batch maps 512 pages",
        list.submit(full),
        ok(full),
    );
    c.expect(
        "...taking 2 MiB of quota",
        quota(hv),
        Ok(q0 - full * PAGE_SIZE),
    );
    c.expect(
        "...the last one RW",
        query(hv, w.page(full - 1)),
        Ok(MemPerms::RW),
    );
    write(w.page(300), 0, 300);
    c.check("...and usable", read(w.page(300), 0) == 300);
    let mut b = list.builder();
    let _ = b.push_range(BatchOp::Unmap, w.ipa, full, MemPerms::empty());
    c.expect("a 512-entry batch unmaps them", list.submit(full), ok(full));
    c.expect("...giving the quota back", quota(hv), Ok(q0));

    let (p0, p1, p2) = (w.page(0), w.page(1), w.page(2));
    let mut b = list.builder();
    let _ = b.push(BatchOp::Map, p0, MemPerms::RW);
    let _ = b.push(BatchOp::Map, p1, MemPerms::RW);
    let _ = b.push(BatchOp::Map, p0, MemPerms::RW);
    let _ = b.push(BatchOp::Map, p2, MemPerms::RW);
    c.expect(
        "a batch stops at its first failing entry",
        list.submit(4),
        Ok(BatchResult {
            done: 2,
            first_error: Some(Error::AlreadyMapped),
        }),
    );
    c.expect(
        "...and runs nothing after it",
        query(hv, p2),
        Err(Error::NotMapped),
    );
    let mut b = list.builder();
    let _ = b.push(BatchOp::Protect, p0, MemPerms::READ);
    let _ = b.push_raw(p1 | 1 << 5 | 1 << 3); // unmap with a reserved bit
    let _ = b.push(BatchOp::Unmap, p0, MemPerms::empty());
    c.expect(
        "an entry with reserved bits is INVALID_PARAMETERS",
        list.submit(3),
        Ok(BatchResult {
            done: 1,
            first_error: Some(Error::InvalidParameters),
        }),
    );
    c.expect(
        "...after the protect took effect",
        query(hv, p0),
        Ok(MemPerms::READ),
    );
    let mut b = list.builder();
    let _ = b.push(BatchOp::Unmap, p0, MemPerms::empty());
    let _ = b.push(BatchOp::Unmap, p1, MemPerms::empty());
    c.expect("a batch of unmaps", list.submit(2), ok(2));
    c.expect("...gives the quota back", quota(hv), Ok(q0));

    let lip = list.ipa();
    c.expect(
        "batch count 0",
        hv.mem_batch(lip, 0),
        Err(Error::InvalidParameters),
    );
    c.expect(
        "batch count 513",
        hv.mem_batch(lip, full + 1),
        Err(Error::InvalidParameters),
    );
    c.expect(
        "batch count u64::MAX",
        hv.mem_batch(lip, u64::MAX),
        Err(Error::InvalidParameters),
    );
    c.expect(
        "an unaligned list",
        hv.mem_batch(lip + 8, 1),
        Err(Error::BadAddress),
    );
    c.expect(
        "an unmapped list",
        hv.mem_batch(p0, 1),
        Err(Error::BadAddress),
    );
    c.expect(
        "a list past the IPA size",
        hv.mem_batch(IPA_LIMIT, 1),
        Err(Error::BadAddress),
    );
    c.expect("refused batches change nothing", quota(hv), Ok(q0));
}

pub fn heap_and_frames(c: &mut Checks, hv: &mut Hv) {
    let Some(q0) = baseline(c, hv) else {
        return;
    };
    let h0 = heap::mapped_bytes();
    let words = 128 * 1024; // 1 MiB
    let v = vec![0xA5A5_5A5Au64; words];
    c.check(
        "the heap grows by mem.map",
        heap::mapped_bytes() >= h0 + (words as u64 * 8)
            && quota(hv).is_ok_and(|q| q <= q0 - (words as u64 * 8)),
    );
    c.check(
        "heap memory holds its values",
        v.iter().all(|&x| x == 0xA5A5_5A5A),
    );
    drop(v);
    let Some(q1) = baseline(c, hv) else {
        return;
    };
    match Frames::alloc(4, MemPerms::RW) {
        Ok(mut f) => {
            c.expect("frames take quota", quota(hv), Ok(q1 - 4 * PAGE_SIZE));
            pattern::fill(f.words(), 9);
            c.expect(
                "frames hold a pattern",
                pattern::mismatches(f.words(), 9),
                0,
            );
            drop(f);
            c.expect("freed frames give their quota back", quota(hv), Ok(q1));
        }
        Err(e) => c.check(&alloc::format!("frames: {e}"), false),
    }
}
