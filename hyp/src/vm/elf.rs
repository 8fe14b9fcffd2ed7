//! Just enough ELF64 to load a guest kernel: the loadable segments of a little-endian AArch64
//! executable. Images come from outside the hyp, so every field is checked and nothing panics.

/// A PT_LOAD segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub vaddr: u64,
    pub mem_size: u64,
    pub data: &'a [u8],
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    NotAarch64Executable,
    Truncated,
    BadSegment,
    TooManySegments,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotElf => "not an ELF64 little-endian file",
            Self::NotAarch64Executable => "not an AArch64 executable",
            Self::Truncated => "truncated image",
            Self::BadSegment => "a loadable segment is malformed",
            Self::TooManySegments => "too many loadable segments",
        })
    }
}

/// Loadable segments the loader accepts at most.
pub const MAX_SEGMENTS: usize = 8;

/// A parsed image: entry point and loadable segments.
#[derive(Debug)]
pub struct Image<'a> {
    pub entry: u64,
    segments: [Option<Segment<'a>>; MAX_SEGMENTS],
}

impl<'a> Image<'a> {
    pub fn segments(&self) -> impl Iterator<Item = &Segment<'a>> {
        self.segments.iter().flatten()
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    let s = b
        .get(at..at.checked_add(2).ok_or(ElfError::Truncated)?)
        .ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    let s = b
        .get(at..at.checked_add(4).ok_or(ElfError::Truncated)?)
        .ok_or(ElfError::Truncated)?;
    Ok(u32::from_le_bytes(
        s.try_into().map_err(|_| ElfError::Truncated)?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    let s = b
        .get(at..at.checked_add(8).ok_or(ElfError::Truncated)?)
        .ok_or(ElfError::Truncated)?;
    Ok(u64::from_le_bytes(
        s.try_into().map_err(|_| ElfError::Truncated)?,
    ))
}

const PT_LOAD: u32 = 1;
const EM_AARCH64: u16 = 183;
const ET_EXEC: u16 = 2;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// Parses `bytes` as an AArch64 ELF64 executable whose segments lie below `ipa_limit`.
pub fn parse(bytes: &[u8], ipa_limit: u64) -> Result<Image<'_>, ElfError> {
    if bytes.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(ElfError::NotElf);
    }
    if u16_at(bytes, 16)? != ET_EXEC || u16_at(bytes, 18)? != EM_AARCH64 {
        return Err(ElfError::NotAarch64Executable);
    }
    let entry = u64_at(bytes, 24)?;
    let phoff = usize::try_from(u64_at(bytes, 32)?).map_err(|_| ElfError::Truncated)?;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    if phentsize < 56 {
        return Err(ElfError::Truncated);
    }
    let mut image = Image {
        entry,
        segments: [None; MAX_SEGMENTS],
    };
    let mut count = 0;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i * phentsize)
            .ok_or(ElfError::Truncated)?;
        if u32_at(bytes, ph)? != PT_LOAD {
            continue;
        }
        let flags = u32_at(bytes, ph + 4)?;
        let offset = u64_at(bytes, ph + 8)?;
        let vaddr = u64_at(bytes, ph + 16)?;
        let file_size = u64_at(bytes, ph + 32)?;
        let mem_size = u64_at(bytes, ph + 40)?;
        let end = vaddr.checked_add(mem_size).ok_or(ElfError::BadSegment)?;
        if file_size > mem_size || end > ipa_limit || mem_size == 0 {
            return Err(ElfError::BadSegment);
        }
        let from = usize::try_from(offset).map_err(|_| ElfError::Truncated)?;
        let to = from.checked_add(usize::try_from(file_size).map_err(|_| ElfError::Truncated)?);
        let data = to
            .and_then(|to| bytes.get(from..to))
            .ok_or(ElfError::Truncated)?;
        let slot = image
            .segments
            .get_mut(count)
            .ok_or(ElfError::TooManySegments)?;
        *slot = Some(Segment {
            vaddr,
            mem_size,
            data,
            read: flags & PF_R != 0,
            write: flags & PF_W != 0,
            exec: flags & PF_X != 0,
        });
        count += 1;
    }
    if count == 0 {
        return Err(ElfError::BadSegment);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A minimal ELF with one PT_LOAD segment of `data` at `vaddr`.
    fn elf(vaddr: u64, data: &[u8], mem_size: u64, flags: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[0..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        b[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        b[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        b[24..32].copy_from_slice(&vaddr.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&mem_size.to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_a_loadable_segment() {
        let bytes = elf(0x4000_0000, b"code", 0x2000, PF_R | PF_X);
        let image = parse(&bytes, 1 << 39).unwrap();
        assert_eq!(image.entry, 0x4000_0000);
        let seg = image.segments().next().unwrap();
        assert_eq!(
            (seg.vaddr, seg.mem_size, seg.data, seg.exec, seg.write),
            (0x4000_0000, 0x2000, &b"code"[..], true, false)
        );
    }

    #[test]
    fn refuses_hostile_images() {
        assert_eq!(parse(b"MZ", 1 << 39).unwrap_err(), ElfError::NotElf);
        let beyond = elf(1 << 39, b"x", 0x1000, PF_R);
        assert_eq!(parse(&beyond, 1 << 39).unwrap_err(), ElfError::BadSegment);
        let wrap = elf(u64::MAX - 10, b"x", 0x1000, PF_R);
        assert_eq!(parse(&wrap, 1 << 39).unwrap_err(), ElfError::BadSegment);
        let mut short = elf(0x1000, b"abcd", 0x1000, PF_R);
        short.truncate(short.len() - 2);
        assert_eq!(parse(&short, 1 << 39).unwrap_err(), ElfError::Truncated);
        let file_bigger = elf(0x1000, b"abcd", 2, PF_R);
        assert_eq!(
            parse(&file_bigger, 1 << 39).unwrap_err(),
            ElfError::BadSegment
        );
    }

    #[test]
    fn refuses_program_headers_at_the_top_of_the_address_space() {
        // Found by fuzz/run.sh elf: e_phoff = u64::MAX overflowed `at + 4` (a debug-build panic).
        let mut b = elf(0x4000_0000, b"code", 0x2000, PF_R);
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&b, 1 << 39).unwrap_err(), ElfError::Truncated);
    }

    #[test]
    fn never_panics_on_corrupted_headers() {
        let good = elf(0x4000_0000, b"code", 0x2000, PF_R | PF_X);
        for i in 0..good.len() {
            for v in [0u8, 0xff, 0x80, 1] {
                let mut b = good.clone();
                b[i] = v;
                let _ = parse(&b, 1 << 39);
            }
        }
    }
}
