//! `fill [wait] [seed=N]`: maps the whole quota it has left (2 MiB a `mem.map`, so that no
//! call holds the CPU for long), writes a pattern over every word, verifies it, unmaps it and
//! exits 0 if every word matched. With
//! `wait`, it first waits for a message on channel 0 (the `exhaust` VM's "go": the innocent
//! VM maps only once the attack is done) and answers it when finished.

use super::args;
use super::pattern;
use crate::drivers::channel::{Channel, Volatile};
use crate::mm::frames::IpaWindow;
use crate::{events, hv, println};
use hypercall_abi::event::EventSource;
use hypercall_abi::mem::PAGE_SIZE;
use hypercall_abi::{Error, MemPerms};

/// Words in a page.
const WORDS: usize = (PAGE_SIZE / 8) as usize;
/// Pages one `mem.map` or `mem.unmap` covers.
const CHUNK: u64 = 512;

/// `op` over `[window, + pages)`, a chunk a call: the pages done before the first error, and
/// that error.
fn in_chunks(
    window: &IpaWindow,
    pages: u64,
    mut op: impl FnMut(u64, u64) -> Result<(), Error>,
) -> Result<(), (u64, Error)> {
    (0..pages)
        .step_by(CHUNK as usize)
        .try_for_each(|at| op(window.page(at), CHUNK.min(pages - at)).map_err(|e| (at, e)))
}

/// Channel 0 and its event, once the peer said go.
fn wait_for_go() -> Result<(Channel, u32), Error> {
    let mut hv = hv();
    let ch = Channel::new(&hv.channel_info(0)?);
    let event = hv.event_bind(EventSource::Channel { channel: 0 })?;
    hv.event_unmask(event)?;
    let mut message = None;
    events::wait(event, || {
        message = ch.receive(&mut Volatile);
        message.is_some()
    });
    Ok((ch, event))
}

/// Maps, fills, verifies and unmaps the quota left: the result line and whether it held.
fn fill_quota(seed: u64) -> (bool, &'static str) {
    let left = match hv().vm_info() {
        Ok(info) => info.mem_available_bytes,
        Err(e) => {
            println!("fill: VM_INFO refused: {e}");
            return (false, "no quota");
        }
    };
    let pages = left / PAGE_SIZE;
    let Some(window) = IpaWindow::reserve(pages) else {
        println!("fill: FAILED: no IPA space for {pages} pages");
        return (false, "no IPA space");
    };
    if let Err((done, e)) = in_chunks(&window, pages, |ipa, n| hv().mem_map(ipa, n, MemPerms::RW)) {
        println!("fill: FAILED: mapping its whole quota ({pages} pages): {e} after {done}");
        let _ = in_chunks(&window, done, |ipa, n| hv().mem_unmap(ipa, n));
        return (false, "map refused");
    }
    let all_used = hv().vm_info().map(|i| i.mem_available_bytes) == Ok(0);
    // SAFETY: the window's pages are mapped read-write (VA = IPA) until the unmap below, and
    // no Rust object lives there.
    let words =
        unsafe { core::slice::from_raw_parts_mut(window.ipa as *mut u64, pages as usize * WORDS) };
    // One pattern word per page, varied per word: every word differs, at a few instructions a
    // word (hundreds of MiB under QEMU).
    for (page, words) in words.chunks_exact_mut(WORDS).enumerate() {
        let base = pattern::word(seed, page as u64);
        for (i, w) in words.iter_mut().enumerate() {
            *w = base ^ i as u64;
        }
    }
    let mut bad = 0u64;
    for (page, words) in words.chunks_exact(WORDS).enumerate() {
        let base = pattern::word(seed, page as u64);
        bad += words
            .iter()
            .enumerate()
            .filter(|&(i, &w)| w != base ^ i as u64)
            .count() as u64;
    }
    let unmapped = in_chunks(&window, pages, |ipa, n| hv().mem_unmap(ipa, n));
    if let Err((done, e)) = unmapped {
        println!("fill: FAILED: unmapping: {e} after {done} pages");
    }
    let back = hv().vm_info().map(|i| i.mem_available_bytes) == Ok(left);
    println!(
        "fill: mapped {pages} pages ({} MiB, its whole quota: {all_used}), wrote and verified \
         them: {bad} words differ; unmapped, quota back: {back}",
        (pages * PAGE_SIZE) >> 20
    );
    if bad == 0 && all_used && back && unmapped.is_ok() {
        println!("fill: all match");
        (true, "ok")
    } else {
        (false, "mismatch")
    }
}

pub fn run(argv: &str) -> u64 {
    let seed = args::number(argv, "seed").unwrap_or(0xF111);
    let wait = argv.split_whitespace().any(|w| w == "wait");
    let peer = if wait {
        match wait_for_go() {
            Ok(p) => Some(p),
            Err(e) => {
                println!("fill: no channel 0 to wait on: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let (ok, answer) = fill_quota(seed);
    if let Some((ch, _)) = peer {
        if !ch.send(&mut Volatile, answer.as_bytes()) {
            println!("fill: the answer ring is full");
        }
        let _ = hv().channel_notify(0);
    }
    if ok { 0 } else { 1 }
}
