//! Just enough ELF64 to load a guest kernel: the loadable segments of a little-endian AArch64
//! executable. One set of rules for both sides: the hyp's loader (`hyp/src/vm/build.rs`) maps
//! what [`parse`] returns, and `pvpack` runs the same [`parse`] so that an image the hyp would
//! refuse at boot is refused at pack time, on its manifest line. Images come from outside, so
//! every field is checked and nothing panics.

use crate::model::PAGE_SIZE;

/// The size of every guest's IPA space in bits: 39, the stage-2 input size the hyp configures
/// (a level-1 start, valid on every CPU it supports). Guests read it in their boot info.
pub const GUEST_IPA_BITS: u32 = 39;
/// The first IPA beyond a guest's space: every loadable segment must end at or below it.
pub const GUEST_IPA_LIMIT: u64 = 1 << GUEST_IPA_BITS;

/// A PT_LOAD segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Where it goes in the guest's IPA space.
    pub vaddr: u64,
    /// Its size in memory (the part beyond `data` is zero).
    pub mem_size: u64,
    /// Its bytes in the file.
    pub data: &'a [u8],
    /// PF_R.
    pub read: bool,
    /// PF_W.
    pub write: bool,
    /// PF_X.
    pub exec: bool,
}

impl Segment<'_> {
    /// The pages the segment touches, `[first, end)` as page-aligned IPAs.
    pub fn page_span(&self) -> (u64, u64) {
        let first = self.vaddr & !(PAGE_SIZE - 1);
        // `parse` checked that vaddr + mem_size stays below the IPA limit.
        let end = (self.vaddr + self.mem_size).next_multiple_of(PAGE_SIZE);
        (first, end)
    }
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// It does not start with the ELF magic.
    NotElf,
    /// An ELF file, but 32-bit or big-endian.
    NotElf64LittleEndian,
    /// An ELF64 file for another machine than AArch64 (`e_machine`).
    WrongMachine(u16),
    /// An AArch64 ELF64 file that is not an executable (`e_type`: a relocatable object, a
    /// shared object, ...).
    NotExecutable(u16),
    /// A header or a segment's bytes lie beyond the end of the file.
    Truncated,
    /// A loadable segment is malformed (empty, or more bytes in the file than in memory).
    BadSegment,
    /// A loadable segment, `[start, end)`, does not fit in the guest's IPA space.
    OutsideIpaSpace {
        /// The segment's first address.
        start: u64,
        /// Where it ends (saturated at `u64::MAX` when it wraps).
        end: u64,
    },
    /// Two loadable segments touch the same page (the loader maps each segment's pages on
    /// their own, with that segment's permissions).
    SharedPage(u64),
    /// More loadable segments than [`MAX_SEGMENTS`].
    TooManySegments,
    /// No loadable segment at all.
    NoSegments,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::NotElf => f.write_str("not an ELF file (no \\x7fELF magic)"),
            Self::NotElf64LittleEndian => {
                f.write_str("an ELF file, but not ELF64 little-endian (32-bit or big-endian)")
            }
            // The u16 fields as u32, as the hyp prints most numbers (no u16 Display in it).
            Self::WrongMachine(m) => write!(
                f,
                "an ELF64 file for machine {}, not AArch64 (e_machine {})",
                u32::from(m),
                u32::from(EM_AARCH64)
            ),
            Self::NotExecutable(t) => write!(
                f,
                "an AArch64 ELF64 file of type {}, not an executable (e_type {})",
                u32::from(t),
                u32::from(ET_EXEC)
            ),
            Self::Truncated => f.write_str("truncated image"),
            Self::BadSegment => f.write_str("a loadable segment is malformed"),
            Self::OutsideIpaSpace { start, end } => write!(
                f,
                "a loadable segment ({start:#x}..{end:#x}) lies outside the guest's \
                 {GUEST_IPA_BITS}-bit IPA space (0..{GUEST_IPA_LIMIT:#x})"
            ),
            Self::SharedPage(page) => write!(
                f,
                "two loadable segments share the page at {page:#x} (align segments to 4 KiB)"
            ),
            Self::TooManySegments => write!(f, "more than {MAX_SEGMENTS} loadable segments"),
            Self::NoSegments => f.write_str("no loadable segment"),
        }
    }
}

impl core::error::Error for ElfError {}

/// Loadable segments the loader accepts at most.
pub const MAX_SEGMENTS: usize = 8;

/// A parsed image: entry point and loadable segments.
#[derive(Debug)]
pub struct Image<'a> {
    /// Where vCPU 0 starts.
    pub entry: u64,
    segments: [Option<Segment<'a>>; MAX_SEGMENTS],
}

impl<'a> Image<'a> {
    /// The loadable segments, in file order.
    pub fn segments(&self) -> impl Iterator<Item = &Segment<'a>> {
        self.segments.iter().flatten()
    }

    /// The guest pages the loader maps for the image (each segment's pages; no two segments
    /// share one), all charged to the VM's quota.
    pub fn pages(&self) -> u64 {
        self.segments()
            .map(|s| {
                let (first, end) = s.page_span();
                (end - first) / PAGE_SIZE
            })
            .sum()
    }
}

/// The `N` bytes at `at`; a header offset from the file (up to `u64::MAX`) must not wrap.
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    at.checked_add(N)
        .and_then(|end| b.get(at..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError::Truncated)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    bytes_at(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    bytes_at(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    bytes_at(b, at).map(u64::from_le_bytes)
}

/// The ELF magic, `\x7fELF`.
const MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
/// EI_CLASS ELFCLASS64 and EI_DATA ELFDATA2LSB.
const CLASS64_LSB: [u8; 2] = [2, 1];
/// Program header type of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `e_machine` of AArch64.
pub const EM_AARCH64: u16 = 183;
/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;
/// Segment flags: executable, writable, readable.
pub const PF_X: u32 = 1;
/// See [`PF_X`].
pub const PF_W: u32 = 2;
/// See [`PF_X`].
pub const PF_R: u32 = 4;
/// The smallest program header entry ELF64 defines.
const PHDR_SIZE: usize = 56;

/// Parses `bytes` as an AArch64 ELF64 executable whose segments lie below `ipa_limit`.
pub fn parse(bytes: &[u8], ipa_limit: u64) -> Result<Image<'_>, ElfError> {
    // Segments are mapped by whole pages: the last page of the space must end in it too.
    let ipa_limit = ipa_limit.min(!(PAGE_SIZE - 1));
    if bytes.get(0..4) != Some(&MAGIC[..]) {
        return Err(ElfError::NotElf);
    }
    if bytes.get(4..6) != Some(&CLASS64_LSB[..]) {
        return Err(ElfError::NotElf64LittleEndian);
    }
    let machine = u16_at(bytes, 18)?;
    if machine != EM_AARCH64 {
        return Err(ElfError::WrongMachine(machine));
    }
    let kind = u16_at(bytes, 16)?;
    if kind != ET_EXEC {
        return Err(ElfError::NotExecutable(kind));
    }
    let entry = u64_at(bytes, 24)?;
    let phoff = usize::try_from(u64_at(bytes, 32)?).map_err(|_| ElfError::Truncated)?;
    let phentsize = usize::from(u16_at(bytes, 54)?);
    let phnum = usize::from(u16_at(bytes, 56)?);
    if phentsize < PHDR_SIZE {
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
        if file_size > mem_size || mem_size == 0 {
            return Err(ElfError::BadSegment);
        }
        if vaddr
            .checked_add(mem_size)
            .is_none_or(|end| end > ipa_limit)
        {
            return Err(ElfError::OutsideIpaSpace {
                start: vaddr,
                end: vaddr.saturating_add(mem_size),
            });
        }
        let from = usize::try_from(offset).map_err(|_| ElfError::Truncated)?;
        let to = from.checked_add(usize::try_from(file_size).map_err(|_| ElfError::Truncated)?);
        let data = to
            .and_then(|to| bytes.get(from..to))
            .ok_or(ElfError::Truncated)?;
        let segment = Segment {
            vaddr,
            mem_size,
            data,
            read: flags & PF_R != 0,
            write: flags & PF_W != 0,
            exec: flags & PF_X != 0,
        };
        let (first, last) = segment.page_span();
        if let Some(other) = image.segments().find(|s| {
            let (a, b) = s.page_span();
            first < b && a < last
        }) {
            let (a, _) = other.page_span();
            return Err(ElfError::SharedPage(a.max(first)));
        }
        let slot = image
            .segments
            .get_mut(count)
            .ok_or(ElfError::TooManySegments)?;
        *slot = Some(segment);
        count += 1;
    }
    if count == 0 {
        return Err(ElfError::NoSegments);
    }
    Ok(image)
}
