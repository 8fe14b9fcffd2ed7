//! `fill [wait] [seed=N]`: maps the whole quota it has left in one `mem.map`, writes a
//! pattern over every word, verifies it, unmaps it and exits 0 if every word matched. With
//! `wait`, it first waits for a message on channel 0 (the `exhaust` VM's "go": the innocent
//! VM maps only once the attack is done) and answers it when finished.

use super::args;
use super::pattern;
use crate::drivers::channel::{Channel, Volatile};
use crate::mm::frames::Frames;
use crate::{events, hv, println};
use hypercall_abi::event::EventSource;
use hypercall_abi::mem::PAGE_SIZE;
use hypercall_abi::{Error, MemPerms};

/// Words in a page.
const WORDS: usize = (PAGE_SIZE / 8) as usize;

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
    let mut region = match Frames::alloc(pages, MemPerms::RW) {
        Ok(r) => r,
        Err(e) => {
            println!("fill: FAILED: mapping its whole quota ({pages} pages): {e}");
            return (false, "map refused");
        }
    };
    let all_used = hv().vm_info().map(|i| i.mem_available_bytes) == Ok(0);
    // One pattern word per page, varied per word: every word differs, at a few instructions a
    // word (hundreds of MiB under QEMU).
    for (page, words) in region.words().chunks_exact_mut(WORDS).enumerate() {
        let base = pattern::word(seed, page as u64);
        for (i, w) in words.iter_mut().enumerate() {
            *w = base ^ i as u64;
        }
    }
    let mut bad = 0u64;
    for (page, words) in region.words().chunks_exact(WORDS).enumerate() {
        let base = pattern::word(seed, page as u64);
        bad += words
            .iter()
            .enumerate()
            .filter(|&(i, &w)| w != base ^ i as u64)
            .count() as u64;
    }
    drop(region);
    let back = hv().vm_info().map(|i| i.mem_available_bytes) == Ok(left);
    println!(
        "fill: mapped {pages} pages ({} MiB, its whole quota: {all_used}), wrote and verified \
         them: {bad} words differ; unmapped, quota back: {back}",
        (pages * PAGE_SIZE) >> 20
    );
    if bad == 0 && all_used && back {
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
