//! Memory calls with arguments the hypervisor must refuse, and batch lists with bad entries.

use super::Report;
use crate::hv;
use crate::mm::batch::BatchPage;
use crate::mm::frames::IpaWindow;
use crate::mm::layout::IPA_LIMIT;
use hypercall_abi::mem::{MEM_BATCH_MAX, MEM_MAP, PAGE_SIZE};
use hypercall_abi::{BatchResult, BootInfo, Conduit, Error, MemPerms};

const P: u64 = PAGE_SIZE;
/// The most any IPA range here may reach: the top page-aligned u64.
const TOP_PAGE: u64 = !(P - 1);

pub fn run(r: &mut Report, info: &BootInfo) {
    let Some(w) = IpaWindow::reserve(4) else {
        r.through("reserving IPA space for the call attacks", "none left");
        return;
    };
    let boot_info = core::ptr::from_ref(info) as u64;
    ranges(r, info, boot_info, w.ipa);
    quota(r);
    batches(r, info, boot_info, w.ipa);
}

fn ranges(r: &mut Report, info: &BootInfo, boot_info: u64, x: u64) {
    let mut hv = hv();
    let rw = MemPerms::RW;
    use Error::*;
    let maps: [(&str, u64, u64, Error); 15] = [
        (
            "mapping over our own image",
            info.image_start,
            1,
            AlreadyMapped,
        ),
        (
            "mapping over the boot-info page",
            boot_info,
            1,
            AlreadyMapped,
        ),
        (
            "mapping a range that ends in our image",
            info.image_start - P,
            2,
            AlreadyMapped,
        ),
        ("mapping an unaligned IPA (+1)", x + 1, 1, BadAddress),
        (
            "mapping an unaligned IPA (+0x800)",
            x + 0x800,
            1,
            BadAddress,
        ),
        ("mapping at the IPA size (2^39)", IPA_LIMIT, 1, BadAddress),
        ("mapping at 2^40", 1 << 40, 1, BadAddress),
        ("mapping at 2^63", 1 << 63, 1, BadAddress),
        ("mapping across the IPA size", IPA_LIMIT - P, 2, BadAddress),
        (
            "mapping a range that wraps around 2^64",
            TOP_PAGE,
            2,
            BadAddress,
        ),
        ("mapping u64::MAX pages", x, u64::MAX, BadAddress),
        ("mapping 2^52 pages", x, 1 << 52, BadAddress),
        (
            "mapping 2^27 pages (the whole IPA space)",
            x,
            1 << 27,
            BadAddress,
        ),
        ("mapping 0 pages", x, 0, InvalidParameters),
        (
            "mapping 2^20 pages (4 GiB, past the quota)",
            x,
            1 << 20,
            OutOfMemory,
        ),
    ];
    for (what, ipa, pages, want) in maps {
        r.expect_err(what, hv.mem_map(ipa, pages, rw), want);
    }
    r.expect_err(
        "mapping without READ",
        hv.mem_map(x, 1, MemPerms::WRITE | MemPerms::EXEC),
        InvalidParameters,
    );
    let mut regs = [0u64; 18];
    regs[..4].copy_from_slice(&[MEM_MAP.into(), x, 1, u64::MAX]);
    let x0 = hv.conduit_mut().call(&regs)[0] as i64;
    r.expect_err(
        "mapping with every perm bit set",
        if x0 == 0 {
            Ok(())
        } else {
            Err(Error::from_code(x0))
        },
        InvalidParameters,
    );
    r.expect_err(
        "unmapping our own image",
        hv.mem_unmap(info.image_start, 1),
        Denied,
    );
    r.expect_err(
        "unmapping the boot-info page",
        hv.mem_unmap(boot_info, 1),
        Denied,
    );
    r.expect_err(
        "making the boot-info page writable",
        hv.mem_protect(boot_info, 1, rw),
        Denied,
    );
    r.expect_err(
        "unmapping pages we never mapped",
        hv.mem_unmap(x, 2),
        NotMapped,
    );
    r.expect_err(
        "protecting pages we never mapped",
        hv.mem_protect(x, 1, MemPerms::READ),
        NotMapped,
    );
    r.expect_err(
        "unmapping an unaligned IPA",
        hv.mem_unmap(x + 8, 1),
        BadAddress,
    );
    r.expect_err(
        "unmapping beyond the IPA size",
        hv.mem_unmap(IPA_LIMIT, 1),
        BadAddress,
    );
    r.expect_err(
        "unmapping a wrapping range",
        hv.mem_unmap(TOP_PAGE, 2),
        BadAddress,
    );
    r.expect_err(
        "protecting beyond the IPA size",
        hv.mem_protect(1 << 48, 1, MemPerms::READ),
        BadAddress,
    );
    r.expect_err(
        "protecting 0 pages",
        hv.mem_protect(info.image_start, 0, MemPerms::RX),
        InvalidParameters,
    );
    r.expect_err(
        "querying beyond the IPA size",
        hv.mem_query(IPA_LIMIT),
        BadAddress,
    );
    r.expect_err("querying another VM's page", hv.mem_query(x), NotMapped);
    // The pages the refused maps above would have touched first.
    for ipa in [x, info.image_start - P] {
        match hv.mem_query(ipa) {
            Err(_) => r.blocked(
                format_args!("refused maps leave nothing mapped at {ipa:#x}"),
                "NOT_MAPPED",
            ),
            Ok(p) => r.through(
                format_args!("refused maps leave nothing mapped at {ipa:#x}"),
                format_args!("mapped {p:?}"),
            ),
        }
    }
}

fn quota(r: &mut Report) {
    let mut hv = hv();
    let avail = hv.vm_info().map_or(0, |i| i.mem_available_bytes);
    let pages = avail / P + 1;
    match IpaWindow::reserve(pages) {
        Some(w) => r.expect_err(
            format_args!("mapping {pages} pages, one past the quota"),
            hv.mem_map(w.ipa, pages, MemPerms::RW),
            Error::OutOfMemory,
        ),
        None => r.through("mapping past the quota", "no IPA space to try"),
    }
}

fn batches(r: &mut Report, info: &BootInfo, boot_info: u64, x: u64) {
    let Ok(mut list) = BatchPage::new() else {
        r.through("batch attacks", "no page for the list");
        return;
    };
    use Error::*;
    let stop = |done, e| {
        Ok(BatchResult {
            done,
            first_error: Some(e),
        })
    };
    let bad_entries: [(&str, u64, Error); 8] = [
        (
            "a batch entry with a reserved bit",
            x | 1 << 5 | 0b011,
            InvalidParameters,
        ),
        (
            "a batch entry with op 3",
            x | 3 << 3 | 0b011,
            InvalidParameters,
        ),
        (
            "a batch unmap with perms",
            x | 1 << 3 | 0b001,
            InvalidParameters,
        ),
        ("a batch map without READ", x | 0b010, InvalidParameters),
        (
            "a batch map beyond the IPA size",
            IPA_LIMIT | 0b011,
            BadAddress,
        ),
        (
            "a batch map over our own image",
            info.image_start | 0b011,
            AlreadyMapped,
        ),
        (
            "a batch unmap of the boot-info page",
            boot_info | 1 << 3,
            Denied,
        ),
        (
            "a batch unmap of a page we never mapped",
            x | 1 << 3,
            NotMapped,
        ),
    ];
    for (what, raw, want) in bad_entries {
        // A good map first, the bad entry, another good map after: the batch must stop at the
        // bad one, keep the first, and never run the last.
        let mut b = list.builder();
        let _ = b.push_raw((x + P) | 0b011);
        let _ = b.push_raw(raw);
        let _ = b.push_raw((x + 2 * P) | 0b011);
        let count = b.count();
        let got = list.submit(count);
        let mut hv = hv();
        let after_ran = hv.mem_query(x + 2 * P).is_ok();
        let _ = hv.mem_unmap(x + P, 1);
        let _ = hv.mem_unmap(x + 2 * P, 1);
        if got == stop(1, want) && !after_ran {
            r.blocked(what, format_args!("stopped there: done 1, {}", want.name()));
        } else {
            r.through(
                what,
                format_args!("{got:?}, entry after it ran: {after_ran}"),
            );
        }
    }
    let mut hv = hv();
    let lip = list.ipa();
    r.expect_err(
        "a batch of 0 entries",
        hv.mem_batch(lip, 0),
        InvalidParameters,
    );
    r.expect_err(
        "a batch of 513 entries",
        hv.mem_batch(lip, MEM_BATCH_MAX + 1),
        InvalidParameters,
    );
    r.expect_err(
        "a batch of u64::MAX entries",
        hv.mem_batch(lip, u64::MAX),
        InvalidParameters,
    );
    r.expect_err(
        "a batch list at an unaligned IPA",
        hv.mem_batch(lip + 8, 1),
        BadAddress,
    );
    r.expect_err(
        "a batch list at an unmapped IPA",
        hv.mem_batch(x, 1),
        BadAddress,
    );
    r.expect_err(
        "a batch list in hypervisor memory",
        hv.mem_batch(0x4020_0000, 1),
        BadAddress,
    );
    r.expect_err(
        "a batch list beyond the IPA size",
        hv.mem_batch(IPA_LIMIT, 1),
        BadAddress,
    );
}
