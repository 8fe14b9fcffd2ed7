//! `memtest`: the `mem` family's semantics from inside a guest: map, unmap, protect, query and
//! batch, each documented error, the quota, and the faults that follow protect and unmap.
//! Prints each failed check and `memtest: all N checks passed`.
//!
//! Needs `on_fault = "inject"` in its manifest: it provokes stage-2 faults on purpose and
//! catches them with `fault::probe_fault`; with "kill" the first one ends the VM.

mod batch;

use super::checks::Checks;
use super::pattern;
use crate::arch::access;
use crate::fault::{self, Fault};
use crate::mm::frames::IpaWindow;
use crate::mm::layout::IPA_LIMIT;
use crate::{hv, println};
use hypercall_abi::mem::{MEM_BATCH_MAX, MEM_MAP, PAGE_SIZE};
use hypercall_abi::{BootInfo, Conduit, Error, Hvc, Hypervisor, MemPerms};

type Hv = Hypervisor<Hvc>;

/// Pages of IPA space the checks work in (the batch maps a full list).
const WINDOW_PAGES: u64 = MEM_BATCH_MAX + 16;
/// Words in a page.
const WORDS: usize = (PAGE_SIZE / 8) as usize;
/// A perms bit no version defines.
const UNKNOWN_PERM: u64 = 1 << 3;

/// The quota left, as VM_INFO says it.
fn quota(hv: &mut Hv) -> Result<u64, Error> {
    hv.vm_info().map(|i| i.mem_available_bytes)
}

/// The quota left as a baseline: later [`quota`]s are expected to be `Ok` of what it predicts.
/// A refused VM_INFO is a failed check, and `None` (the caller's checks cannot run).
fn baseline(c: &mut Checks, hv: &mut Hv) -> Option<u64> {
    let q = quota(hv);
    c.expect("VM_INFO says the quota", q.map(|_| ()), Ok(()));
    q.ok()
}

/// A page's perms (`mem.query` also says the quota left).
fn query(hv: &mut Hv, ipa: u64) -> Result<MemPerms, Error> {
    hv.mem_query(ipa).map(|(perms, _)| perms)
}

fn read(ipa: u64, i: usize) -> u64 {
    // SAFETY: an aligned read of a mapped page of ours (or, inside a probe, of one that faults).
    unsafe { access::read_u64(ipa + 8 * i as u64) }
}

fn write(ipa: u64, i: usize, v: u64) {
    // SAFETY: an aligned write to a page of ours mapped RW that no Rust object lives in (or,
    // inside a probe, to one that faults).
    unsafe { access::write_u64(ipa + 8 * i as u64, v) }
}

/// Checks that `f` is a data abort at `ipa` (a write if `write`) with a fault status in
/// `status`; prints the fault if not.
fn aborted(
    c: &mut Checks,
    what: &str,
    f: Option<Fault>,
    ipa: u64,
    write: bool,
    status: core::ops::RangeInclusive<u64>,
) {
    let ok = f.is_some_and(|f| {
        f.is_data_abort()
            && f.far == ipa
            && f.is_write() == write
            && status.contains(&f.status_code())
    });
    if !ok {
        println!("memtest: {what}: got {f:x?}, expected at {ipa:#x}");
    }
    c.check(what, ok);
}

/// DFSC translation faults (levels 0..3) and permission faults (levels 0..3).
const TRANSLATION_FAULT: core::ops::RangeInclusive<u64> = 0x04..=0x07;
const PERMISSION_FAULT: core::ops::RangeInclusive<u64> = 0x0c..=0x0f;

pub fn run(info: &BootInfo) -> u64 {
    let mut c = Checks::new("memtest");
    let mut hv = hv();
    let Some(w) = IpaWindow::reserve(WINDOW_PAGES) else {
        println!("memtest: no IPA window");
        return 1;
    };
    let boot_info = core::ptr::from_ref(info) as u64;
    map_and_query(&mut c, &mut hv, &w, info, boot_info);
    refused_arguments(&mut c, &mut hv, &w);
    faults(&mut c, &mut hv, &w);
    quota_limits(&mut c, &mut hv);
    batch::batches(&mut c, &mut hv, &w);
    batch::heap_and_frames(&mut c, &mut hv);
    c.finish()
}

fn map_and_query(c: &mut Checks, hv: &mut Hv, w: &IpaWindow, info: &BootInfo, boot_info: u64) {
    let (p0, p1) = (w.page(0), w.page(1));
    let Some(q0) = baseline(c, hv) else {
        return;
    };
    c.expect("map one page RW", hv.mem_map(p0, 1, MemPerms::RW), Ok(()));
    c.expect("the quota shrinks by a page", quota(hv), Ok(q0 - PAGE_SIZE));
    c.check(
        "a fresh page reads zero",
        (0..WORDS).all(|i| read(p0, i) == 0),
    );
    (0..WORDS).for_each(|i| write(p0, i, pattern::word(1, i as u64)));
    c.check(
        "what is written reads back",
        (0..WORDS).all(|i| read(p0, i) == pattern::word(1, i as u64)),
    );
    c.expect("query reports RW", query(hv, p0), Ok(MemPerms::RW));
    c.expect(
        "mapping over a mapped page is ALREADY_MAPPED",
        hv.mem_map(p0, 2, MemPerms::RW),
        Err(Error::AlreadyMapped),
    );
    c.expect(
        "a refused map changes nothing",
        (query(hv, p1), quota(hv)),
        (Err(Error::NotMapped), Ok(q0 - PAGE_SIZE)),
    );
    c.expect(
        "unmapping an unmapped page is NOT_MAPPED",
        hv.mem_unmap(p1, 1),
        Err(Error::NotMapped),
    );
    c.expect(
        "unmapping a partly mapped range is NOT_MAPPED",
        hv.mem_unmap(p0, 2),
        Err(Error::NotMapped),
    );
    c.expect(
        "...and keeps the mapped page",
        query(hv, p0),
        Ok(MemPerms::RW),
    );
    c.expect(
        "protecting an unmapped page is NOT_MAPPED",
        hv.mem_protect(p1, 1, MemPerms::READ),
        Err(Error::NotMapped),
    );
    c.expect(
        "query of an unmapped page",
        query(hv, p1),
        Err(Error::NotMapped),
    );
    c.expect(
        "unmapping the image is DENIED",
        hv.mem_unmap(info.image_start, 1),
        Err(Error::Denied),
    );
    c.expect(
        "unmapping the boot-info page is DENIED",
        hv.mem_unmap(boot_info, 1),
        Err(Error::Denied),
    );
    c.check(
        "query of the image's first page: readable, executable",
        query(hv, info.image_start).is_ok_and(|p| p.contains(MemPerms::RX)),
    );
    c.expect(
        "query of the boot-info page: read-only",
        query(hv, boot_info),
        Ok(MemPerms::READ),
    );
    c.expect(
        "protecting the boot-info page is DENIED",
        hv.mem_protect(boot_info, 1, MemPerms::RW),
        Err(Error::Denied),
    );
    c.expect("unmap", hv.mem_unmap(p0, 1), Ok(()));
    c.expect("unmapping gives the quota back", quota(hv), Ok(q0));
}

fn refused_arguments(c: &mut Checks, hv: &mut Hv, w: &IpaWindow) {
    let p0 = w.page(0);
    let Some(q0) = baseline(c, hv) else {
        return;
    };
    let bad = [
        ("map of an unaligned IPA", p0 + 8, 1, Error::BadAddress),
        ("map at the IPA size", IPA_LIMIT, 1, Error::BadAddress),
        (
            "map across the IPA size",
            IPA_LIMIT - PAGE_SIZE,
            2,
            Error::BadAddress,
        ),
        ("map far beyond the IPA size", 1 << 52, 1, Error::BadAddress),
        (
            "map of a wrapping range",
            !(PAGE_SIZE - 1),
            2,
            Error::BadAddress,
        ),
        ("map of u64::MAX pages", p0, u64::MAX, Error::BadAddress),
        ("map of 0 pages", p0, 0, Error::InvalidParameters),
        (
            "map of 4 GiB (past the quota)",
            p0,
            1 << 20,
            Error::OutOfMemory,
        ),
    ];
    for (what, ipa, pages, err) in bad {
        c.expect(what, hv.mem_map(ipa, pages, MemPerms::RW), Err(err));
    }
    c.expect(
        "map without READ is INVALID_PARAMETERS",
        hv.mem_map(p0, 1, MemPerms::WRITE),
        Err(Error::InvalidParameters),
    );
    c.expect(
        "map with no perms is INVALID_PARAMETERS",
        hv.mem_map(p0, 1, MemPerms::empty()),
        Err(Error::InvalidParameters),
    );
    let mut regs = [0u64; 18];
    regs[..4].copy_from_slice(&[MEM_MAP.into(), p0, 1, MemPerms::READ.bits() | UNKNOWN_PERM]);
    c.expect(
        "map with an unknown perm bit is INVALID_PARAMETERS",
        hv.conduit_mut().call(&regs)[0] as i64,
        Error::InvalidParameters.code(),
    );
    c.expect(
        "unmap of an unaligned IPA",
        hv.mem_unmap(p0 + 8, 1),
        Err(Error::BadAddress),
    );
    c.expect(
        "unmap beyond the IPA size",
        hv.mem_unmap(IPA_LIMIT, 1),
        Err(Error::BadAddress),
    );
    c.check(
        "unmap of 0 pages is refused",
        matches!(
            hv.mem_unmap(p0, 0),
            Err(Error::InvalidParameters | Error::NotMapped)
        ),
    );
    c.expect(
        "protect beyond the IPA size",
        hv.mem_protect(IPA_LIMIT, 1, MemPerms::READ),
        Err(Error::BadAddress),
    );
    c.expect(
        "query beyond the IPA size",
        query(hv, IPA_LIMIT),
        Err(Error::BadAddress),
    );
    c.expect(
        "refused calls map nothing",
        (query(hv, p0), quota(hv)),
        (Err(Error::NotMapped), Ok(q0)),
    );
}

fn faults(c: &mut Checks, hv: &mut Hv, w: &IpaWindow) {
    let p0 = w.page(0);
    let Some(q0) = baseline(c, hv) else {
        return;
    };
    c.expect("map", hv.mem_map(p0, 1, MemPerms::RW), Ok(()));
    write(p0, 1, 0x5EED);
    c.expect(
        "protect RW -> RO",
        hv.mem_protect(p0, 1, MemPerms::READ),
        Ok(()),
    );
    c.expect("query reports RO", query(hv, p0), Ok(MemPerms::READ));
    let f = fault::probe_fault(|| write(p0, 1, 0xBAD));
    aborted(
        c,
        "a write to a read-only page is a permission fault (write, FAR = the address)",
        f,
        p0 + 8,
        true,
        PERMISSION_FAULT,
    );
    let mut value = None;
    let fault = fault::probe(|| value = Some(read(p0, 1)));
    c.expect(
        "a read-only page still reads, unchanged",
        (fault, value),
        (None, Some(0x5EED)),
    );
    c.expect(
        "protect RO -> RW",
        hv.mem_protect(p0, 1, MemPerms::RW),
        Ok(()),
    );
    c.check(
        "writable again",
        fault::probe(|| write(p0, 1, 0x600D)).is_none() && read(p0, 1) == 0x600D,
    );
    c.expect("unmap", hv.mem_unmap(p0, 1), Ok(()));
    c.expect("the quota is back", quota(hv), Ok(q0));
    let f = fault::probe_fault(|| {
        read(p0 + 16, 0);
    });
    aborted(
        c,
        "a read after unmap is a translation fault (read, FAR = the address)",
        f,
        p0 + 16,
        false,
        TRANSLATION_FAULT,
    );
    c.expect(
        "map the page again",
        hv.mem_map(p0, 1, MemPerms::RW),
        Ok(()),
    );
    c.check(
        "its frame is a fresh, zeroed one",
        (0..WORDS).all(|i| read(p0, i) == 0),
    );
    c.expect("unmap", hv.mem_unmap(p0, 1), Ok(()));
}

fn quota_limits(c: &mut Checks, hv: &mut Hv) {
    let Some(avail) = baseline(c, hv) else {
        return;
    };
    let pages = avail / PAGE_SIZE;
    let Some(w) = IpaWindow::reserve(pages + 1) else {
        c.check("IPA space for the quota test", false);
        return;
    };
    c.expect(
        "mapping one page past the quota is OUT_OF_MEMORY",
        hv.mem_map(w.ipa, pages + 1, MemPerms::RW),
        Err(Error::OutOfMemory),
    );
    c.expect("...and takes nothing", quota(hv), Ok(avail));
    c.expect(
        "mapping the whole quota",
        hv.mem_map(w.ipa, pages, MemPerms::RW),
        Ok(()),
    );
    c.expect("no quota left", quota(hv), Ok(0));
    c.expect(
        "one more page is OUT_OF_MEMORY",
        hv.mem_map(w.page(pages), 1, MemPerms::RW),
        Err(Error::OutOfMemory),
    );
    c.expect("unmapping it all", hv.mem_unmap(w.ipa, pages), Ok(()));
    c.expect("gives the whole quota back", quota(hv), Ok(avail));
}
