//! Host tests of the drawing (reproducible, every call reached, never aimed where a success
//! would hurt the fuzzer) and of the oracle (documented answers pass, others fail).

use super::draw::{self, P, Prep, SANDBOX_PAGES, Targets, in_batch_zone, sandbox_index};
use super::oracle::{self, Model};
use super::rng::Rng;
use crate::mm::layout::IPA_LIMIT;
use hypercall_abi::layout::{BatchEntry, BatchOp, BlockDesc};
use hypercall_abi::psci::*;
use hypercall_abi::{CALLS, Call, Error, MemPerms, Regs, Version, encode_return, mem, vm};
use std::collections::BTreeSet;

/// The layout a fuzz VM gets from the hyp (image at 1 GiB, shared pages after it).
fn targets() -> Targets {
    let image_start = 0x4000_0000;
    let image_end = image_start + 100 * P;
    Targets {
        vm_index: 1,
        vcpus: 2,
        boot_info: image_end,
        event_page: image_end + P,
        console_ring: image_end + 2 * P,
        block_ring: image_end + 3 * P,
        shared_end: image_end + 4 * P,
        image_start,
        image_end,
        image_pages: [
            (image_start + 3 * P, MemPerms::RX),
            (image_start + 40 * P, MemPerms::READ),
            (image_start + 80 * P, MemPerms::RW),
        ],
        text: image_start + 40 * P,

        guarded: image_start + 80 * P,
        batch_list: 0x2_0000_5000,
        channel_ipa: 0x40_0000_0000,
        channel_pages: 1,
        channel_count: 1,
        timer_event: 0,
        console_event: 1,
        block_event: 2,
        disk_sectors: 2048,
        quota_pages: 1900,
        entry: image_start + 0x40,
    }
}

/// A model that knows the sandbox is empty.
fn empty_model(t: &Targets) -> Model {
    let mut m = Model::new();
    for i in 0..SANDBOX_PAGES {
        m.set(i, None);
    }
    m.quota_base = t.quota_pages * P;
    m
}

fn answer(result: Result<[u64; 3], Error>, input: &Regs) -> Regs {
    let mut out = *input;
    out[..4].copy_from_slice(&encode_return(result));
    out
}

fn regs(id: u32, args: [u64; 3]) -> Regs {
    let mut r = [0; 18];
    r[0] = id.into();
    r[1..4].copy_from_slice(&args);
    for (i, x) in r.iter_mut().enumerate().skip(4) {
        *x = 0x1000 + i as u64;
    }
    r
}

#[test]
fn a_seed_draws_the_same_calls() {
    let t = targets();
    let draw_all = |seed| {
        let mut rng = Rng::new(seed);
        (0..500)
            .map(|_| draw::call(&mut rng, &t, 0).regs)
            .collect::<Vec<_>>()
    };
    assert_eq!(draw_all(5), draw_all(5));
    assert_ne!(draw_all(5), draw_all(6));
}

#[test]
fn every_call_but_the_ending_ones_is_drawn() {
    let t = targets();
    let mut rng = Rng::new(1);
    let mut ids = BTreeSet::new();
    let mut unknown = 0;
    for _ in 0..50_000 {
        let d = draw::call(&mut rng, &t, 0);
        let id = d.regs[0] as u32;
        assert!(!draw::never_drawn(id), "{id:#x} drawn");
        if hypercall_abi::CallInfo::find(id).is_none() {
            unknown += 1;
        }
        ids.insert(id);
    }
    for c in CALLS {
        let ends = [
            vm::VM_EXIT,
            PSCI_CPU_OFF,
            PSCI_SYSTEM_OFF,
            PSCI_SYSTEM_RESET,
        ]
        .contains(&c.function_id);
        assert_eq!(ids.contains(&c.function_id), !ends, "{}", c.name);
    }
    assert!(unknown > 2000, "only {unknown} unknown IDs");
}

/// Whether `[ipa, ipa + pages)` of an unmap or protect is certainly refused, or harmless.
fn change_is_safe(t: &Targets, ipa: u64, pages: u64, perms: Option<u64>) -> bool {
    let Some(end) = pages
        .checked_mul(P)
        .and_then(|b| ipa.checked_add(b))
        .filter(|&e| e <= IPA_LIMIT && ipa.is_multiple_of(P) && pages > 0)
    else {
        return true; // BAD_ADDRESS or INVALID_PARAMETERS
    };
    if perms.is_some_and(|p| p & 1 == 0 || p > 7) {
        return true; // no READ or unknown bits
    }
    let in_sandbox = sandbox_index(ipa).is_some() && sandbox_index(end - 1).is_some();
    let void = ipa >= draw::VOID_BASE && end <= draw::VOID_END;
    let pinned = ipa >= t.image_start && ipa < t.shared_end && perms.is_none();
    let shared = ipa >= t.boot_info && ipa < t.shared_end;
    let own_perms = perms.is_some_and(|p| {
        pages == 1
            && t.image_pages
                .iter()
                .any(|&(a, q)| a == ipa && q.bits() == p)
    });
    let channel = ipa == t.channel_ipa;
    in_sandbox || void || pinned || shared || own_perms || channel
}

#[test]
fn changes_are_aimed_only_where_a_success_is_harmless() {
    let t = targets();
    let mut rng = Rng::new(3);
    let (mut changes, mut entries) = (0, 0);
    for _ in 0..100_000 {
        let d = draw::call(&mut rng, &t, 0);
        let Ok(call) = Call::try_from(&d.regs) else {
            continue;
        };
        match call {
            Call::MemUnmap { ipa, pages } => {
                changes += 1;
                assert!(
                    change_is_safe(&t, ipa, pages, None),
                    "unmap {ipa:#x} +{pages}"
                );
            }
            Call::MemProtect { ipa, pages, perms } => {
                changes += 1;
                let ok = change_is_safe(&t, ipa, pages, Some(perms.bits()));
                assert!(ok, "protect {ipa:#x} +{pages} {perms:?}");
            }
            Call::MemMap { ipa, pages, .. } => {
                // A map outside the sandbox must overlap something mapped (or be refused).
                let end = pages.checked_mul(P).and_then(|b| ipa.checked_add(b));
                if let Some(end) = end.filter(|_| pages > 0) {
                    let in_sandbox =
                        sandbox_index(ipa).is_some() && sandbox_index(end - 1).is_some();
                    let overlaps = t.mapped_outside().iter().any(|&(a, b)| ipa < b && a < end);
                    let refused = !ipa.is_multiple_of(P) || end > IPA_LIMIT || pages == 0;
                    assert!(in_sandbox || overlaps || refused, "map {ipa:#x} +{pages}");
                }
            }
            _ => {}
        }
    }
    for _ in 0..100_000 {
        let raw = draw::batch_entry(&mut rng, &t);
        let Ok((op, ipa, perms)) = (BatchEntry { raw }).decode() else {
            continue;
        };
        entries += 1;
        let zone = sandbox_index(ipa).is_some_and(in_batch_zone);
        let ok = match op {
            BatchOp::Map => {
                zone || t
                    .mapped_outside()
                    .iter()
                    .any(|&(a, b)| (a..b).contains(&ipa))
                    || ipa >= IPA_LIMIT
            }
            BatchOp::Unmap => zone || change_is_safe(&t, ipa, 1, None),
            BatchOp::Protect => {
                zone || (change_is_safe(&t, ipa, 1, Some(perms.bits()))
                    && !(t.image_start..t.image_end).contains(&ipa))
            }
        };
        assert!(ok, "batch entry {raw:#x}");
        if let Some(i) = sandbox_index(ipa) {
            assert!(
                in_batch_zone(i),
                "batch entry outside the batch zone: {raw:#x}"
            );
        }
    }
    assert!(changes > 10_000 && entries > 50_000);
}

#[test]
fn block_buffers_of_valid_lengths_never_reach_the_image() {
    let t = targets();
    let mut rng = Rng::new(4);
    for _ in 0..50_000 {
        let d: BlockDesc = draw::block_desc(&mut rng, &t);
        // A length no transfer may have is refused before the buffer is looked at.
        if d.len > hypercall_abi::block::BLOCK_TRANSFER_MAX {
            continue;
        }
        let end = d.buf_ipa.saturating_add(d.len.into());
        let text = (t.text, t.text + draw::TEXT_BYTES);
        assert!(
            end <= t.image_start
                || d.buf_ipa >= t.image_end
                || (d.buf_ipa >= text.0 && end <= text.1),
            "descriptor {d:x?} overlaps the image outside the text"
        );
        assert!(
            end <= t.boot_info || d.buf_ipa >= t.shared_end,
            "descriptor {d:x?} in the shared pages (or the rings)"
        );
    }
}

#[test]
fn preserved_registers_and_decoding_errors() {
    let (t, m) = (targets(), Model::new());
    let input = regs(vm::VM_YIELD, [0; 3]);
    let out = answer(Ok([0; 3]), &input);
    assert!(oracle::check(&t, &m, &input, &out).is_ok());
    let mut clobbered = out;
    clobbered[9] = 0;
    let why = oracle::check(&t, &m, &input, &clobbered).unwrap_err();
    assert!(why.as_str().starts_with("x9 preserved"), "{why:?}");
    // An unknown ID: exactly NOT_SUPPORTED.
    let input = regs(0xC600_007F, [1, 2, 3]);
    assert!(oracle::check(&t, &m, &input, &answer(Err(Error::NotSupported), &input)).is_ok());
    assert!(
        oracle::check(
            &t,
            &m,
            &input,
            &answer(Err(Error::InvalidParameters), &input)
        )
        .is_err()
    );
    assert!(oracle::check(&t, &m, &input, &answer(Ok([0; 3]), &input)).is_err());
    // A bad perm bit: INVALID_PARAMETERS from decoding, whatever the range.
    let input = regs(mem::MEM_MAP, [1, 0, 1 << 9]);
    assert!(
        oracle::check(
            &t,
            &m,
            &input,
            &answer(Err(Error::InvalidParameters), &input)
        )
        .is_ok()
    );
    assert!(oracle::check(&t, &m, &input, &answer(Err(Error::BadAddress), &input)).is_err());
}

#[test]
fn mem_answers_follow_the_model() {
    let t = targets();
    let mut m = empty_model(&t);
    let map = regs(mem::MEM_MAP, [draw::HI_BASE, 2, MemPerms::RW.bits()]);
    let ok = answer(Ok([0; 3]), &map);
    assert!(oracle::check(&t, &m, &map, &ok).is_ok());
    assert!(oracle::check(&t, &m, &map, &answer(Err(Error::AlreadyMapped), &map)).is_err());
    // Frames may always run out.
    assert!(oracle::check(&t, &m, &map, &answer(Err(Error::OutOfMemory), &map)).is_ok());
    m.apply(&map, &ok, None);
    assert_eq!(m.quota_left(), Some((t.quota_pages - 2) * P));
    // Mapped now: a second map is ALREADY_MAPPED, a query says RW and the quota left.
    assert!(oracle::check(&t, &m, &map, &ok).is_err());
    let query = regs(mem::MEM_QUERY, [draw::HI_BASE + P + 5, 0, 0]);
    let left = (t.quota_pages - 2) * P;
    assert!(oracle::check(&t, &m, &query, &answer(Ok([3, left, 0]), &query)).is_ok());
    assert!(oracle::check(&t, &m, &query, &answer(Ok([1, left, 0]), &query)).is_err());
    assert!(oracle::check(&t, &m, &query, &answer(Ok([3, left + P, 0]), &query)).is_err());
    // Three pages from there: the third is not mapped.
    let unmap = regs(mem::MEM_UNMAP, [draw::HI_BASE, 3, 0]);
    assert!(oracle::check(&t, &m, &unmap, &answer(Err(Error::NotMapped), &unmap)).is_ok());
    assert!(oracle::check(&t, &m, &unmap, &answer(Ok([0; 3]), &unmap)).is_err());
    // The image may not be unmapped; a range across 2^39 is out of the IPA space.
    let image = regs(mem::MEM_UNMAP, [t.image_start, 1, 0]);
    assert!(oracle::check(&t, &m, &image, &answer(Err(Error::Denied), &image)).is_ok());
    assert!(oracle::check(&t, &m, &image, &answer(Ok([0; 3]), &image)).is_err());
    let across = regs(mem::MEM_MAP, [IPA_LIMIT - P, 2, 1]);
    assert!(oracle::check(&t, &m, &across, &answer(Err(Error::BadAddress), &across)).is_ok());
    assert!(oracle::check(&t, &m, &across, &answer(Err(Error::AlreadyMapped), &across)).is_err());
    // A batch's answer: done and the failing entry's code agree.
    let batch = regs(mem::MEM_BATCH, [t.batch_list, 3, 0]);
    let stopped = Error::NotMapped.code() as u64;
    assert!(oracle::check(&t, &m, &batch, &answer(Ok([1, stopped, 0]), &batch)).is_ok());
    assert!(oracle::check(&t, &m, &batch, &answer(Ok([3, stopped, 0]), &batch)).is_err());
    assert!(oracle::check(&t, &m, &batch, &answer(Ok([2, 0, 0]), &batch)).is_err());
}

#[test]
fn standard_block_and_event_answers() {
    let t = targets();
    let mut m = empty_model(&t);
    let check = |m: &Model, input: Regs, out: Result<[u64; 3], Error>| {
        oracle::check(&t, m, &input, &answer(out, &input)).is_ok()
    };
    let newer = Version::new(1, 9).to_u64();
    assert!(check(
        &m,
        regs(hypercall_abi::abi::ABI_VERSION, [newer, 0, 0]),
        Ok([Version::CURRENT.to_u64(), 0, 0])
    ));
    let other = Version::new(2, 0).to_u64();
    assert!(check(
        &m,
        regs(hypercall_abi::abi::ABI_VERSION, [other, 0, 0]),
        Err(Error::VersionMismatch)
    ));
    assert!(!check(
        &m,
        regs(hypercall_abi::abi::ABI_VERSION, [other, 0, 0]),
        Ok([0; 3])
    ));
    // SYSTEM_RESET does not return (it is never drawn): any answer is wrong.
    let reset = regs(PSCI_SYSTEM_RESET, [0; 3]);
    let mut out = reset;
    for answer in [psci_error::DENIED, 0] {
        out[0] = answer as i64 as u64;
        assert!(oracle::check(&t, &m, &reset, &out).is_err());
    }
    // BLOCK_SUBMIT takes at most what lies between the consumer and the producer (fewer, or
    // none, while a device's requests are in flight).
    m.block_consumer = u32::MAX - 1;
    let submit = regs(hypercall_abi::block::BLOCK_SUBMIT, [2, 0, 0]);
    assert!(check(&m, submit, Ok([4, 0, 0])));
    assert!(check(&m, submit, Ok([3, 0, 0])));
    assert!(check(&m, submit, Err(Error::InvalidParameters)));
    assert!(!check(&m, submit, Ok([5, 0, 0])));
    assert!(!check(&m, submit, Ok([4, 1, 0])));
    assert!(!check(&m, submit, Err(Error::Denied)));
    m.apply(&submit, &answer(Ok([4, 0, 0]), &submit), None);
    assert_eq!(m.block_consumer, 2);
    let behind = regs(hypercall_abi::block::BLOCK_SUBMIT, [1, 0, 0]);
    assert!(check(&m, behind, Err(Error::InvalidParameters)));
    // EVENT_SEND to a vCPU the VM lacks; the channel event is 8 + n.
    let send = regs(hypercall_abi::event::EVENT_SEND, [2, 5, 0]);
    assert!(check(&m, send, Err(Error::InvalidParameters)));
    assert!(!check(&m, send, Ok([0; 3])));
    let bind = regs(hypercall_abi::event::EVENT_BIND, [3, 0, 0]);
    assert!(check(&m, bind, Ok([8, 0, 0])));
    assert!(!check(&m, bind, Ok([9, 0, 0])));
}

#[test]
fn block_statuses_follow_the_descriptor() {
    let t = targets();
    let d = |op, sector, len| BlockDesc {
        op,
        status: 0,
        sector,
        buf_ipa: draw::HI_BASE,
        len,
        reserved: 0,
    };
    let inv = Error::InvalidParameters.code() as i32;
    let denied = Error::Denied.code() as i32;
    assert!(oracle::block_status(&t, &d(BlockDesc::READ, 0, 512), 0).is_ok());
    assert!(oracle::block_status(&t, &d(BlockDesc::READ, 0, 513), inv).is_ok());
    assert!(oracle::block_status(&t, &d(BlockDesc::READ, 0, 513), 0).is_err());
    assert!(oracle::block_status(&t, &d(BlockDesc::WRITE, 2047, 1024), denied).is_ok());
    assert!(oracle::block_status(&t, &d(BlockDesc::WRITE, 2047, 1024), 0).is_err());
    assert!(oracle::block_status(&t, &d(9, 0, 512), inv).is_ok());
    assert!(oracle::block_status(&t, &d(BlockDesc::READ, 0, 512), -77).is_err());
}

#[test]
fn block_and_batch_preparations_are_drawn() {
    let t = targets();
    let mut rng = Rng::new(9);
    let (mut lists, mut rings, mut suspends) = (0, 0, 0);
    for _ in 0..20_000 {
        match draw::call(&mut rng, &t, 7).prep {
            Prep::BatchList(n) => {
                assert!((1..=512).contains(&n) || n == 0);
                lists += 1;
            }
            Prep::BlockRing(n) => {
                assert!(n <= 64);
                rings += 1;
            }
            Prep::Deliverable => suspends += 1,
            Prep::None => {}
        }
    }
    assert!(lists > 100 && rings > 500 && suspends > 100);
}

#[test]
fn console_reads_into_read_only_pages_must_move_nothing() {
    let (t, m) = (targets(), Model::new());
    let read = regs(hypercall_abi::console::CONSOLE_READ, [t.text + 10, 64, 0]);
    let check = |out| oracle::check(&t, &m, &read, &answer(out, &read)).is_ok();
    assert!(check(Err(Error::BadAddress)));
    assert!(check(Ok([0, 0, 0])), "no input waiting");
    assert!(!check(Ok([5, 0, 0])), "5 bytes written into the text");
    let sandbox = regs(hypercall_abi::console::CONSOLE_READ, [draw::HI_BASE, 64, 0]);
    let mut mapped = empty_model(&t);
    mapped.set(sandbox_index(draw::HI_BASE).unwrap(), Some(MemPerms::RW));
    assert!(oracle::check(&t, &mapped, &sandbox, &answer(Ok([5, 0, 0]), &sandbox)).is_ok());
}
