//! The guest image rules (`manifest::elf`, which the hyp's loader and pvpack share): images
//! come from the initrd, outside the hyp.
//! Seeds: a minimal image (fuzz/seeds/elf) and the built pv-guest (fuzz/run.sh).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pvhyp_fuzz::elf::{self, ElfError, Image, MAX_SEGMENTS};
use pvhyp_fuzz::is_within;

/// The stage-2 granule the hyp maps segments with.
const PAGE_SIZE: u64 = 4096;

fuzz_target!(|bytes: &[u8]| {
    let unlimited = elf::parse(bytes, u64::MAX);
    if let Ok(image) = &unlimited {
        check(bytes, image, u64::MAX);
    }
    // A 39-bit IPA space (the hyp's today), and the tightest limit the image fits and one
    // below it: a limit only ever refuses segments, as OutsideIpaSpace, and the answer within it
    // is the unlimited one.
    let end = unlimited.as_ref().ok().map(|image| {
        image
            .segments()
            .map(|s| s.vaddr + s.mem_size)
            .max()
            .unwrap()
    });
    for limit in [Some(1 << 39), end, end.map(|e| e - 1)]
        .into_iter()
        .flatten()
    {
        match elf::parse(bytes, limit) {
            Ok(image) => {
                check(bytes, &image, limit);
                let same = unlimited.as_ref().expect("a limit made a bad image good");
                assert!(image.entry == same.entry && image.segments().eq(same.segments()));
            }
            Err(e) => {
                let fits = end.is_some_and(|end| end <= limit);
                assert!(!fits, "an image within {limit:#x} refused: {e:?}");
                if unlimited.is_ok() {
                    assert!(matches!(e, ElfError::OutsideIpaSpace { .. }), "{e:?}");
                }
                drop(e.to_string());
            }
        }
    }
});

/// Every segment of an accepted image lies inside the IPA space `limit` and its data inside
/// the file.
fn check(bytes: &[u8], image: &Image<'_>, limit: u64) {
    let count = image.segments().count();
    assert!((1..=MAX_SEGMENTS).contains(&count));
    for s in image.segments() {
        assert!(
            s.mem_size != 0 && s.data.len() as u64 <= s.mem_size,
            "{s:?}"
        );
        let end = s.vaddr.checked_add(s.mem_size).expect("segment wraps");
        assert!(end <= limit, "{s:?} beyond {limit:#x}");
        assert!(is_within(bytes, s.data));
        if limit <= 1 << 39 {
            // What vm/build.rs maps: whole pages, still inside the space.
            assert!(end.next_multiple_of(PAGE_SIZE) <= limit.next_multiple_of(PAGE_SIZE));
        }
    }
}
