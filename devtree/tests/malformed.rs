//! Hostile and broken blobs give an `Error` (or a best-effort `Board`), never a
//! panic. The tests run unoptimised, so arithmetic overflow would panic too.

mod common;

use common::fdt_writer::{Writer, virt_like_root};
use devtree::Error;

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

#[test]
fn bad_magic_is_a_bad_header() {
    let mut dtb = common::load("qemu-raspi4b.dtb");
    dtb[0] ^= 0xff;
    assert_eq!(devtree::parse(&dtb), Err(Error::BadHeader));
    assert_eq!(devtree::total_size(&dtb), None);
}

#[test]
fn truncated_blobs_never_panic() {
    let dtb = common::load("bcm2711-rpi-4-b.dtb");
    // Cut short with the header unchanged: the total size no longer fits.
    for len in (0..dtb.len()).step_by(97) {
        assert!(
            devtree::parse(&dtb[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    // Cut short with totalsize patched to match: the blocks run off the end.
    for len in (40..dtb.len()).step_by(13) {
        let mut cut = dtb[..len].to_vec();
        cut[4..8].copy_from_slice(&(len as u32).to_be_bytes());
        assert!(
            devtree::parse_allow_no_memory(&cut).is_err(),
            "patched prefix of {len} bytes"
        );
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..2000 {
        let len = rng.below(512);
        let mut blob: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half the time give it a plausible header so the parser gets further.
        if i % 2 == 0 && len >= 40 {
            let words = [
                0xd00d_feed,
                len,
                40,
                40 + rng.below(len),
                40,
                17,
                16,
                0,
                rng.below(len),
                rng.below(len),
            ];
            for (k, w) in words.iter().enumerate() {
                blob[k * 4..k * 4 + 4].copy_from_slice(&(*w as u32).to_be_bytes());
            }
        }
        let _ = devtree::parse(&blob);
        let _ = devtree::total_size(&blob);
    }
}

/// Corrupted copies per tree: 300, or `DEVTREE_FUZZ_ROUNDS` for a longer soak.
fn rounds() -> usize {
    std::env::var("DEVTREE_FUZZ_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300)
}

#[test]
fn corrupted_real_trees_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for name in common::ALL {
        let original = common::load(name);
        let (start, size) = (be32(&original, 8), be32(&original, 36));
        for _ in 0..rounds() {
            let mut dtb = original.clone();
            for _ in 0..1 + rng.below(4) {
                // Mostly the structure block, where the interesting damage is.
                let at = match rng.below(4) {
                    0 => rng.below(be32(&original, 4)),
                    _ => start + rng.below(size),
                };
                dtb[at] = match rng.below(3) {
                    0 => rng.next() as u8,
                    1 => dtb[at] ^ 1 << rng.below(8),
                    _ => [0x00, 0xff, 0x01, 0x04, 0x09][rng.below(5)],
                };
            }
            let _ = devtree::parse(&dtb);
        }
    }
}

#[test]
fn nop_tokens_anywhere_are_skipped() {
    let mut w = virt_like_root();
    w.nop()
        .begin("chosen")
        .nop()
        .string("stdout-path", "/uart@9000000")
        .nop()
        .end()
        .nop();
    w.begin("gone").nop().end();
    w.begin("uart@9000000")
        .string("compatible", "arm,pl011")
        .nop()
        .cells("reg", &[0, 0x0900_0000, 0, 0x1000])
        .end();
    w.nop().end();
    let dtb = w.finish();
    let board = devtree::parse(&dtb).unwrap();
    assert_eq!(board.console.unwrap().region.base, 0x0900_0000);
    assert_eq!(board.memory().len(), 1);
}

#[test]
fn absurd_cell_counts_are_errors() {
    let mut w = Writer::new();
    w.begin("")
        .cells("#address-cells", &[0xffff_ffff])
        .cells("#size-cells", &[2]);
    w.begin("memory@0")
        .string("device_type", "memory")
        .cells("reg", &[0, 0, 0, 0x1000])
        .end();
    w.end();
    assert_eq!(
        devtree::parse(&w.finish()),
        Err(Error::Malformed(
            "#address-cells or #size-cells is out of range"
        ))
    );
}

#[test]
fn deep_nesting_is_refused() {
    let mut w = virt_like_root();
    for _ in 0..40 {
        w.begin("n");
    }
    for _ in 0..41 {
        w.end();
    }
    assert_eq!(
        devtree::parse(&w.finish()),
        Err(Error::Malformed("nodes nested deeper than 16 levels"))
    );
}

#[test]
fn too_many_memory_regions() {
    let mut w = virt_like_root();
    let reg: Vec<u32> = (0..17u32).flat_map(|i| [0, i << 20, 0, 0x1000]).collect();
    w.begin("memory@0")
        .string("device_type", "memory")
        .cells("reg", &reg)
        .end();
    w.end();
    assert_eq!(
        devtree::parse(&w.finish()),
        Err(Error::TooMany("memory regions"))
    );
}

#[test]
fn errors_read_clearly() {
    assert!(Error::BadHeader.to_string().contains("magic"));
    assert_eq!(
        Error::TooMany("cpus").to_string(),
        "device tree lists too many cpus for this build's fixed tables"
    );
    assert_eq!(
        Error::Malformed("x").to_string(),
        "malformed device tree: x"
    );
}
