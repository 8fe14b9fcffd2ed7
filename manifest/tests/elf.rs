//! The guest image rules (`manifest::elf`), which the hyp's loader and pvpack share.

use manifest::elf::{
    EM_AARCH64, ET_EXEC, ElfError, GUEST_IPA_LIMIT, PF_R, PF_W, PF_X, PT_LOAD, parse,
};

/// A minimal ELF with one PT_LOAD segment per `(vaddr, data, mem_size, flags)`.
fn elf(segments: &[(u64, &[u8], u64, u32)]) -> Vec<u8> {
    let phnum = segments.len();
    let data_at = 64 + 56 * phnum;
    let mut b = vec![0u8; data_at];
    b[0..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
    b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
    b[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
    b[24..32].copy_from_slice(&segments.first().map_or(0, |s| s.0).to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    for (i, &(vaddr, data, mem_size, flags)) in segments.iter().enumerate() {
        let ph = 64 + 56 * i;
        let offset = b.len() as u64;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&mem_size.to_le_bytes());
        b.extend_from_slice(data);
    }
    b
}

fn one(vaddr: u64, data: &[u8], mem_size: u64, flags: u32) -> Vec<u8> {
    elf(&[(vaddr, data, mem_size, flags)])
}

#[test]
fn parses_a_loadable_segment() {
    let bytes = one(0x4000_0000, b"code", 0x2000, PF_R | PF_X);
    let image = parse(&bytes, GUEST_IPA_LIMIT).unwrap();
    assert_eq!(image.entry, 0x4000_0000);
    let seg = image.segments().next().unwrap();
    assert_eq!(
        (seg.vaddr, seg.mem_size, seg.data, seg.exec, seg.write),
        (0x4000_0000, 0x2000, &b"code"[..], true, false)
    );
    assert_eq!(image.pages(), 2);
}

#[test]
fn counts_the_pages_each_segment_touches() {
    let bytes = elf(&[
        (0x4000_0800, b"text", 0x1000, PF_R | PF_X), // straddles two pages
        (0x4000_2000, b"", 0x3001, PF_R | PF_W),     // bss: four pages
    ]);
    assert_eq!(parse(&bytes, GUEST_IPA_LIMIT).unwrap().pages(), 6);
}

#[test]
fn the_committed_guest_fixture_is_accepted() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/guests/pv-guest-1.4.elf"
    );
    let bytes = std::fs::read(path).unwrap();
    let image = parse(&bytes, GUEST_IPA_LIMIT).unwrap();
    assert_eq!(image.entry, 0x4000_0000);
    assert!(image.segments().any(|s| s.exec && !s.write));
}

#[test]
fn refuses_what_is_not_an_aarch64_elf64_executable() {
    let good = one(0x4000_0000, b"code", 0x1000, PF_R | PF_X);
    assert_eq!(parse(b"MZ", GUEST_IPA_LIMIT).unwrap_err(), ElfError::NotElf);
    assert_eq!(parse(b"", GUEST_IPA_LIMIT).unwrap_err(), ElfError::NotElf);
    let mut elf32 = good.clone();
    elf32[4] = 1;
    assert_eq!(
        parse(&elf32, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::NotElf64LittleEndian
    );
    let mut big_endian = good.clone();
    big_endian[5] = 2;
    assert_eq!(
        parse(&big_endian, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::NotElf64LittleEndian
    );
    let mut x86 = good.clone();
    x86[18..20].copy_from_slice(&62u16.to_le_bytes());
    assert_eq!(
        parse(&x86, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::WrongMachine(62)
    );
    let mut shared_object = good.clone();
    shared_object[16..18].copy_from_slice(&3u16.to_le_bytes());
    assert_eq!(
        parse(&shared_object, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::NotExecutable(3)
    );
    assert_eq!(
        ElfError::WrongMachine(62).to_string(),
        "an ELF64 file for machine 62, not AArch64 (e_machine 183)"
    );
}

#[test]
fn refuses_segments_outside_the_ipa_space() {
    let beyond = one(GUEST_IPA_LIMIT, b"x", 0x1000, PF_R);
    assert_eq!(
        parse(&beyond, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::OutsideIpaSpace {
            start: GUEST_IPA_LIMIT,
            end: GUEST_IPA_LIMIT + 0x1000
        }
    );
    let straddles = one(GUEST_IPA_LIMIT - 0x1000, b"x", 0x2000, PF_R);
    assert!(matches!(
        parse(&straddles, GUEST_IPA_LIMIT),
        Err(ElfError::OutsideIpaSpace { .. })
    ));
    let wrap = one(u64::MAX - 10, b"x", 0x1000, PF_R);
    assert_eq!(
        parse(&wrap, u64::MAX).unwrap_err(),
        ElfError::OutsideIpaSpace {
            start: u64::MAX - 10,
            end: u64::MAX
        }
    );
    let last_page = one(GUEST_IPA_LIMIT - 0x1000, b"x", 0x1000, PF_R);
    assert!(parse(&last_page, GUEST_IPA_LIMIT).is_ok());
}

#[test]
fn refuses_malformed_segments() {
    let mut short = one(0x1000, b"abcd", 0x1000, PF_R);
    short.truncate(short.len() - 2);
    assert_eq!(
        parse(&short, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::Truncated
    );
    let file_bigger = one(0x1000, b"abcd", 2, PF_R);
    assert_eq!(
        parse(&file_bigger, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::BadSegment
    );
    assert_eq!(
        parse(&elf(&[]), GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::NoSegments
    );
    let shared = elf(&[
        (0x4000_0000, b"text", 0x1800, PF_R | PF_X),
        (0x4000_1800, b"data", 0x100, PF_R | PF_W),
    ]);
    assert_eq!(
        parse(&shared, GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::SharedPage(0x4000_1000)
    );
    let nine: Vec<(u64, &[u8], u64, u32)> = (0..9)
        .map(|i| (0x4000_0000 + i * 0x1000, &b"x"[..], 0x1000, PF_R))
        .collect();
    assert_eq!(
        parse(&elf(&nine), GUEST_IPA_LIMIT).unwrap_err(),
        ElfError::TooManySegments
    );
}

#[test]
fn never_panics_on_corrupted_headers() {
    let good = elf(&[
        (0x4000_0000, b"code", 0x2000, PF_R | PF_X),
        (0x4000_4000, b"data", 0x2000, PF_R | PF_W),
    ]);
    for i in 0..good.len() {
        for v in [0u8, 0xff, 0x80, 1] {
            let mut b = good.clone();
            b[i] = v;
            let _ = parse(&b, GUEST_IPA_LIMIT);
        }
    }
}

#[test]
fn header_offsets_near_the_top_of_the_address_space_are_truncation_not_a_panic() {
    // Found by fuzz/run.sh elf: e_phoff = u64::MAX overflowed the header reads.
    let seed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/seeds/elf/regression-phoff-overflow.elf"
    ))
    .unwrap();
    assert_eq!(
        parse(&seed, GUEST_IPA_LIMIT).err(),
        Some(ElfError::Truncated)
    );
    let mut bytes = one(0x4000_0000, b"code", 0x1000, PF_R | PF_X);
    bytes[32..40].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    assert_eq!(
        parse(&bytes, GUEST_IPA_LIMIT).err(),
        Some(ElfError::Truncated)
    );
}

#[test]
fn a_segment_ending_in_the_last_page_of_an_unlimited_space_does_not_wrap() {
    let bytes = one(u64::MAX - 0xff, b"x", 0xff, PF_R);
    assert!(matches!(
        parse(&bytes, u64::MAX),
        Err(ElfError::OutsideIpaSpace { .. })
    ));
}
