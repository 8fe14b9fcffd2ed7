//! `blk [inflight [kill]] [write] [verify] [attack] [seed=N]`: the paravirtual block device, through the ring
//! front-end. `write` fills the VM's whole disk region with the pattern for `seed` and
//! flushes; `verify` reads the region back and checks it (a later boot with the same disk
//! image proves it persisted); `attack` sends requests past the region and malformed ring
//! entries and checks each gets its documented error while good requests still work.
//! `inflight` (first life) fills the ring with largest reads and, without waiting for them,
//! restarts the VM (`inflight kill`: touches an unmapped page, and is killed); the next life
//! finds a fresh ring whose consumer no stale completion moves, and writes and verifies its
//! region.

use super::args;
use super::checks::Checks;
use super::pattern;
use crate::drivers::block::{Block, PENDING};
use crate::mm::frames::Frames;
use crate::println;
use hypercall_abi::layout::BlockDesc;
use hypercall_abi::{BootInfo, Error, MemPerms};

/// Sectors per transfer: 64 KiB, the most one descriptor moves.
const CHUNK_SECTORS: u64 = 128;
const SECTOR: usize = 512;

/// A 64 KiB buffer of mapped pages, as words and as bytes.
struct Buffer(Frames);

impl Buffer {
    fn new() -> Result<Buffer, Error> {
        Frames::alloc(CHUNK_SECTORS * SECTOR as u64 / 4096, MemPerms::RW).map(Buffer)
    }

    fn ipa(&self) -> u64 {
        self.0.ipa()
    }

    fn words(&mut self) -> &mut [u64] {
        self.0.words()
    }

    fn bytes(&mut self) -> &mut [u8] {
        let words = self.0.words();
        // SAFETY: the same mapped, exclusively borrowed memory, viewed as bytes.
        unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
    }
}

/// One of the program's actions: its exit status.
type Verb = fn(&mut Block, &mut Buffer, u64, &BootInfo) -> u64;

pub fn run(argv: &str) -> u64 {
    let info = crate::boot_info();
    let mut block = match Block::open(info) {
        Ok(b) => b,
        Err(e) => {
            println!("blk: no block device: {e}");
            return 1;
        }
    };
    let mut buf = match Buffer::new() {
        Ok(b) => b,
        Err(e) => {
            println!("blk: no memory for a buffer: {e}");
            return 1;
        }
    };
    let seed = args::number(argv, "seed").unwrap_or(1);
    let verbs: [(&str, Verb); 4] = [
        ("inflight", inflight),
        ("write", write),
        ("verify", verify),
        ("attack", attack),
    ];
    let mut status = 0;
    let mut ran = false;
    for (name, verb) in verbs {
        if argv.split_whitespace().any(|w| w == name) {
            ran = true;
            status |= verb(&mut block, &mut buf, seed, info);
        }
    }
    if !ran {
        println!("blk: usage: blk [inflight [kill]] [write] [verify] [attack] [seed=N]");
        return 2;
    }
    status
}

/// The region in chunks: (first sector, sectors).
fn chunks(sectors: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..sectors)
        .step_by(CHUNK_SECTORS as usize)
        .map(move |s| (s, CHUNK_SECTORS.min(sectors - s)))
}

/// The pattern's words for the sectors from `first` on.
fn fill(words: &mut [u64], seed: u64, first: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = pattern::word(seed, first * (SECTOR as u64 / 8) + i as u64);
    }
}

fn write(block: &mut Block, buf: &mut Buffer, seed: u64, _: &BootInfo) -> u64 {
    for (first, n) in chunks(block.sectors) {
        let bytes = n as usize * SECTOR;
        fill(&mut buf.words()[..bytes / 8], seed, first);
        if let Err(e) = block.write(first, &buf.bytes()[..bytes]) {
            println!("blk: write of sectors {first}..{}: {e}", first + n);
            return 1;
        }
    }
    match block.flush() {
        Ok(()) => {
            println!(
                "blk: wrote {} KiB with seed {seed} and flushed",
                block.sectors / 2
            );
            0
        }
        Err(e) => {
            println!("blk: flush: {e}");
            1
        }
    }
}

fn verify(block: &mut Block, buf: &mut Buffer, seed: u64, _: &BootInfo) -> u64 {
    let mut bad = 0;
    let mut first_bad = None;
    for (first, n) in chunks(block.sectors) {
        let bytes = n as usize * SECTOR;
        buf.bytes()[..bytes].fill(0);
        if let Err(e) = block.read(first, &mut buf.bytes()[..bytes]) {
            println!("blk: read of sectors {first}..{}: {e}", first + n);
            return 1;
        }
        let mut want = [0u64; SECTOR / 8];
        for (s, sector) in buf.words()[..bytes / 8].chunks(SECTOR / 8).enumerate() {
            fill(&mut want, seed, first + s as u64);
            let differ = sector.iter().zip(&want).filter(|(a, b)| a != b).count();
            if differ > 0 {
                bad += differ;
                first_bad.get_or_insert(first + s as u64);
            }
        }
    }
    if bad == 0 {
        println!(
            "blk: verified {} KiB with seed {seed}: all match",
            block.sectors / 2
        );
        0
    } else {
        println!(
            "blk: verify FAILED: {bad} words differ from seed {seed}, the first in sector {}",
            first_bad.unwrap_or(0)
        );
        1
    }
}

/// First life: a ring of reads left in flight, then a restart (or a kill). Later lives: the
/// ring is fresh and stays so while nothing is asked (what the earlier life asked is
/// forgotten), then the verbs after it run.
fn inflight(block: &mut Block, buf: &mut Buffer, _: u64, info: &BootInfo) -> u64 {
    let life = crate::restarts();
    if life == 0 {
        // Every read into the same buffer, the largest the region takes.
        let len = (CHUNK_SECTORS.min(block.sectors) as usize * SECTOR) as u32;
        let reads = [desc(BlockDesc::READ, 0, buf.ipa(), len); 64];
        let taken = block.post(&reads);
        println!("blk: inflight: {taken:?} of 64 reads taken; leaving them in flight");
        if info.cmdline().split_whitespace().any(|w| w == "kill") {
            println!("blk: inflight: touching IPA {:#x}", super::UNMAPPED_IPA);
            // SAFETY: a read the hypervisor faults: the VM is killed here.
            let v = unsafe { crate::arch::access::read_u64(super::UNMAPPED_IPA) };
            println!("blk: inflight: read {v:#x} from an unmapped page");
            return 1;
        }
        let refused = crate::hv().psci_system_reset();
        println!("blk: inflight: SYSTEM_RESET returned {refused}");
        return 1;
    }
    // The completions of the earlier life's reads would move this ring's consumer (and the
    // verbs after this one would then fail).
    let mut c = Checks::new("blk inflight");
    c.expect("a fresh ring's consumer", block.consumer_index(), 0);
    c.finish()
}

fn desc(op: u32, sector: u64, buf_ipa: u64, len: u32) -> BlockDesc {
    BlockDesc {
        op,
        status: PENDING,
        sector,
        buf_ipa,
        len,
        reserved: 0,
    }
}

fn attack(block: &mut Block, buf: &mut Buffer, _: u64, info: &BootInfo) -> u64 {
    use BlockDesc as D;
    use Error::{BadAddress, Denied, InvalidParameters as Invalid};
    let mut c = Checks::new("blk attack");
    let s = block.sectors;
    let ipa = buf.ipa();
    let cases: [(&str, BlockDesc, Option<Error>); 19] = [
        ("unknown op", desc(7, 0, ipa, 512), Some(Invalid)),
        ("op u32::MAX", desc(u32::MAX, 0, ipa, 512), Some(Invalid)),
        (
            "reserved bits",
            BlockDesc {
                reserved: 5,
                ..desc(D::READ, 0, ipa, 512)
            },
            Some(Invalid),
        ),
        ("zero length", desc(D::READ, 0, ipa, 0), Some(Invalid)),
        (
            "unaligned length",
            desc(D::WRITE, 0, ipa, 100),
            Some(Invalid),
        ),
        (
            "length over 64 KiB",
            desc(D::READ, 0, ipa, 65536 + 512),
            Some(Invalid),
        ),
        (
            "huge length",
            desc(D::WRITE, 0, ipa, u32::MAX),
            Some(Invalid),
        ),
        (
            "flush with data",
            desc(D::FLUSH, 0, ipa, 512),
            Some(Invalid),
        ),
        (
            "write just past the region",
            desc(D::WRITE, s, ipa, 512),
            Some(Denied),
        ),
        (
            "read just past the region",
            desc(D::READ, s, ipa, 512),
            Some(Denied),
        ),
        (
            "write straddling the region's end",
            desc(D::WRITE, s - 1, ipa, 1024),
            Some(Denied),
        ),
        (
            "write at sector 2^64-1",
            desc(D::WRITE, u64::MAX, ipa, 512),
            Some(Denied),
        ),
        (
            "buffer at an unmapped IPA",
            desc(D::WRITE, 0, super::UNMAPPED_IPA, 512),
            Some(BadAddress),
        ),
        (
            "buffer beyond the IPA space",
            desc(D::WRITE, 0, 1 << 45, 512),
            Some(BadAddress),
        ),
        (
            "buffer wrapping the address space",
            desc(D::READ, 0, u64::MAX - 255, 512),
            Some(BadAddress),
        ),
        (
            "buffer in another VM's RAM (its PA)",
            desc(D::READ, 0, 0x4800_0000, 512),
            Some(BadAddress),
        ),
        (
            "read into our read-only code",
            desc(D::READ, 0, info.image_start, 512),
            Some(BadAddress),
        ),
        (
            "read into the boot-info page",
            desc(D::READ, 0, info.image_end, 512),
            Some(BadAddress),
        ),
        (
            "a good write after them all",
            desc(D::WRITE, 0, ipa, 512),
            None,
        ),
    ];
    let descs = cases.map(|(_, d, _)| d);
    let mut status = cases.map(|_| PENDING);
    c.expect(
        "the doorbell takes every entry",
        block.submit_raw(&descs, descs.len() as u32, &mut status),
        Ok(descs.len() as u32),
    );
    for ((what, _, want), got) in cases.iter().zip(status) {
        let want = want.map_or(0, |e| e.code() as i32);
        c.expect(what, got, want);
    }
    c.expect(
        "a producer more than a ring ahead",
        block.submit_raw(&[], 65, &mut []),
        Err(Invalid),
    );
    c.expect(
        "a producer behind the consumer",
        block.submit_raw(&[], u32::MAX, &mut []),
        Err(Invalid),
    );
    c.expect(
        "write past the region through the driver",
        block.write(s, &buf.bytes()[..SECTOR]),
        Err(Denied),
    );
    // The device still works: a round trip at the region's last sectors.
    let last = s.saturating_sub(8);
    fill(&mut buf.words()[..512], 0xB10C, last);
    c.expect(
        "a good write",
        block.write(last, &buf.bytes()[..4096]),
        Ok(()),
    );
    buf.bytes()[..4096].fill(0);
    c.expect(
        "a good read",
        block.read(last, &mut buf.bytes()[..4096]),
        Ok(()),
    );
    let mut want = [0u64; 512];
    fill(&mut want, 0xB10C, last);
    c.check("what was written reads back", buf.words()[..512] == want);
    c.expect("a flush", block.flush(), Ok(()));
    c.finish()
}
