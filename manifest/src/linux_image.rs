//! The rules a Linux VM's kernel must meet and where its pieces go in its RAM, shared by
//! `pvpack` (which refuses a bad manifest before boot) and the hyp (which checks again: the
//! archive comes from outside it).
//!
//! The kernel is a raw arm64 `Image` with the header of Linux's
//! `Documentation/arch/arm64/booting.rst`:
//!
//! ```text
//! 0x00 u32 code0, u32 code1    0x08 u64 text_offset   0x10 u64 image_size   0x18 u64 flags
//! 0x20 u64 res2, res3, res4    0x38 u32 magic "ARM\x64"   0x3c u32 res5 (PE header offset)
//! ```
//!
//! All fields little-endian. [`linux_layout`] places the kernel, the initramfs and the device
//! tree in the VM's RAM (offsets from its first byte, which the hyp maps at a 2 MiB aligned
//! IPA) as booting.rst asks.

use core::fmt;

use crate::model::PAGE_SIZE;
use crate::size::Size;

/// The magic at [`MAGIC_OFFSET`]: `ARM\x64` read as a little-endian u32.
pub const MAGIC: u32 = 0x644d_5241;
/// Where the magic is in the header.
pub const MAGIC_OFFSET: usize = 0x38;
/// The header's length: the smallest file that can be an Image.
pub const HEADER_LEN: usize = 64;
/// The alignment of the base the kernel's `text_offset` counts from, and of the device tree's
/// slot (booting.rst: the kernel maps the device tree with blocks of up to 2 MiB).
pub const LINUX_ALIGN: u64 = 2 << 20;
/// The largest device tree booting.rst allows (2 MiB). `pvpack` checks a layout with a slot
/// this big, so that whatever smaller slot the hyp's device tree writer needs fits too.
pub const DTB_MAX_BYTES: u64 = 2 << 20;

/// The header flag bits (`flags`, at 0x18).
const FLAG_BIG_ENDIAN: u64 = 1 << 0;
const FLAG_PAGE_SIZE_SHIFT: u64 = 1;
const FLAG_PAGE_SIZE_MASK: u64 = 0b11 << FLAG_PAGE_SIZE_SHIFT;
const FLAG_PHYS_ANYWHERE: u64 = 1 << 3;

/// The kernel's page size, as its header states it (flags bits 1-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPageSize {
    /// 0: not stated.
    Unspecified,
    /// 1: 4 KiB.
    K4,
    /// 2: 16 KiB.
    K16,
    /// 3: 64 KiB.
    K64,
}

/// What an arm64 Image header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arm64Image {
    /// Where the kernel goes: this many bytes above a 2 MiB aligned base.
    pub text_offset: u64,
    /// The bytes the kernel occupies from there once running, its BSS included (> 0; the
    /// file itself is usually shorter).
    pub image_size: u64,
    /// The kernel's page size.
    pub page_size: KernelPageSize,
    /// Flags bit 3: the 2 MiB aligned base may be anywhere in physical memory (else it should
    /// be as close to the start of RAM as possible; [`linux_layout`] puts it at the start, so
    /// both hold).
    pub anywhere_in_memory: bool,
}

/// Why bytes are not a kernel a Linux VM can boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Shorter than the 64-byte header: the length.
    Truncated(usize),
    /// No `ARM\x64` at 0x38.
    NoMagic,
    /// Flags bit 0: a big-endian kernel.
    BigEndian,
    /// `image_size` is 0: a kernel older than Linux 3.17, whose placement the header does not
    /// state.
    ImageSizeZero,
    /// `text_offset + image_size` overflows 64 bits.
    SizeOverflow {
        /// The header's `text_offset`.
        text_offset: u64,
        /// The header's `image_size`.
        image_size: u64,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(len) => write!(
                f,
                "not an arm64 Image: {len} bytes, shorter than the {HEADER_LEN}-byte header"
            ),
            Self::NoMagic => f.write_str("not an arm64 Image: no ARM\\x64 magic at 0x38"),
            Self::BigEndian => f.write_str(
                "a big-endian kernel (header flags bit 0): Linux VMs run little-endian kernels only",
            ),
            Self::ImageSizeZero => f.write_str(
                "image_size 0 in the arm64 Image header: a kernel older than Linux 3.17, which \
                 does not say where it may be placed; use a newer one",
            ),
            Self::SizeOverflow {
                text_offset,
                image_size,
            } => write!(
                f,
                "arm64 Image header: text_offset {text_offset:#x} + image_size {image_size:#x} \
                 overflows 64 bits"
            ),
        }
    }
}

impl core::error::Error for ImageError {}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Reads and checks the header of an arm64 Image.
pub fn parse(bytes: &[u8]) -> Result<Arm64Image, ImageError> {
    if bytes.len() < HEADER_LEN {
        return Err(ImageError::Truncated(bytes.len()));
    }
    let mut magic = [0; 4];
    magic.copy_from_slice(&bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4]);
    if u32::from_le_bytes(magic) != MAGIC {
        return Err(ImageError::NoMagic);
    }
    let (text_offset, image_size, flags) = (le_u64(bytes, 8), le_u64(bytes, 16), le_u64(bytes, 24));
    if flags & FLAG_BIG_ENDIAN != 0 {
        return Err(ImageError::BigEndian);
    }
    if image_size == 0 {
        return Err(ImageError::ImageSizeZero);
    }
    if text_offset.checked_add(image_size).is_none() {
        return Err(ImageError::SizeOverflow {
            text_offset,
            image_size,
        });
    }
    let page_size = match (flags & FLAG_PAGE_SIZE_MASK) >> FLAG_PAGE_SIZE_SHIFT {
        0 => KernelPageSize::Unspecified,
        1 => KernelPageSize::K4,
        2 => KernelPageSize::K16,
        _ => KernelPageSize::K64,
    };
    Ok(Arm64Image {
        text_offset,
        image_size,
        page_size,
        anywhere_in_memory: flags & FLAG_PHYS_ANYWHERE != 0,
    })
}

/// Where a Linux VM's pieces go: byte offsets from the first byte of its RAM.
///
/// From the bottom: the kernel at `text_offset` (the RAM's start is the 2 MiB aligned base),
/// with `max(image_size, file length)` bytes reserved from there; free RAM; the initramfs,
/// page-aligned, just below the device tree's slot; the slot, 2 MiB aligned, as high as it
/// fits; what is left above it up to the end of RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxLayout {
    /// Where the kernel's file is copied and entered: `text_offset`.
    pub kernel_offset: u64,
    /// The end of what the kernel occupies once running (`kernel_offset` + the larger of
    /// `image_size` and the file's length).
    pub kernel_end: u64,
    /// The initramfs, if any: its offset (a multiple of [`PAGE_SIZE`]) and length in bytes.
    pub initrd: Option<(u64, u64)>,
    /// Where the device tree goes (a multiple of [`LINUX_ALIGN`]); it may take up to
    /// `dtb_max` bytes from there, never crossing a 2 MiB boundary.
    pub dtb_offset: u64,
}

/// Why a Linux VM's pieces do not fit its RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The device tree slot asked for is 0 or above [`DTB_MAX_BYTES`] (a bug of the caller).
    BadDtbMax(u64),
    /// The kernel file is empty or shorter than its header.
    BadImageLen(u64),
    /// The initramfs is empty.
    EmptyInitrd,
    /// The RAM is too small.
    DoesNotFit {
        /// The least RAM that holds it all (saturated at `u64::MAX`).
        needed: u64,
        /// The VM's RAM.
        ram: u64,
        /// What the kernel occupies from the start of RAM (`text_offset` + its size).
        kernel_end: u64,
        /// The initramfs' length, 0 for none.
        initrd_len: u64,
        /// The device tree slot.
        dtb_max: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadDtbMax(n) => write!(
                f,
                "a device tree slot of {n} bytes: it must be 1 byte to {}",
                Size(DTB_MAX_BYTES)
            ),
            Self::BadImageLen(n) => write!(
                f,
                "a kernel file of {n} bytes, shorter than the {HEADER_LEN}-byte header"
            ),
            Self::EmptyInitrd => f.write_str("the initrd is empty"),
            Self::DoesNotFit {
                needed,
                ram,
                kernel_end,
                initrd_len,
                dtb_max,
            } => {
                f.write_str("memory too small: needs ")?;
                if needed == u64::MAX {
                    f.write_str("more than 2^64 bytes")?;
                } else {
                    write!(f, "{needed} bytes ({})", Size(needed))?;
                }
                write!(
                    f,
                    " (the kernel up to {kernel_end:#x}, text_offset + image_size; "
                )?;
                if initrd_len > 0 {
                    write!(f, "the initrd, {initrd_len} bytes; ")?;
                }
                write!(
                    f,
                    "the device tree's 2 MiB aligned slot of {} at the top), the VM has {ram} bytes ({})",
                    Size(dtb_max),
                    Size(ram)
                )
            }
        }
    }
}

impl core::error::Error for LayoutError {}

fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Places a Linux VM's kernel (`image`, parsed from a file of `image_len` bytes), its
/// initramfs (`initrd_len` bytes, if any) and a device tree of at most `dtb_max` bytes in
/// `ram_bytes` of RAM starting at a 2 MiB aligned address; see [`LinuxLayout`].
pub fn linux_layout(
    ram_bytes: u64,
    image: &Arm64Image,
    image_len: u64,
    initrd_len: Option<u64>,
    dtb_max: u64,
) -> Result<LinuxLayout, LayoutError> {
    if dtb_max == 0 || dtb_max > DTB_MAX_BYTES {
        return Err(LayoutError::BadDtbMax(dtb_max));
    }
    if image_len < HEADER_LEN as u64 {
        return Err(LayoutError::BadImageLen(image_len));
    }
    if initrd_len == Some(0) {
        return Err(LayoutError::EmptyInitrd);
    }
    let initrd_bytes = initrd_len.unwrap_or(0);
    let kernel_end = image
        .text_offset
        .checked_add(image.image_size.max(image_len));
    // The least RAM: the kernel, the initrd above it (page-aligned), the device tree's slot
    // at the next 2 MiB boundary, the slot's pages.
    let slot = kernel_end
        .and_then(|end| align_up(end, PAGE_SIZE))
        .and_then(|end| end.checked_add(initrd_bytes))
        .and_then(|end| align_up(end, LINUX_ALIGN));
    let needed = slot
        .and_then(|s| s.checked_add(align_up(dtb_max, PAGE_SIZE)?))
        .unwrap_or(u64::MAX);
    let (Some(kernel_end), true) = (kernel_end, needed <= ram_bytes) else {
        return Err(LayoutError::DoesNotFit {
            needed,
            ram: ram_bytes,
            kernel_end: kernel_end.unwrap_or(u64::MAX),
            initrd_len: initrd_bytes,
            dtb_max,
        });
    };
    // `needed <= ram_bytes` makes every subtraction below stay above `kernel_end`.
    let dtb_offset = align_down(ram_bytes - dtb_max, LINUX_ALIGN);
    let initrd = initrd_len.map(|len| (align_down(dtb_offset - len, PAGE_SIZE), len));
    Ok(LinuxLayout {
        kernel_offset: image.text_offset,
        kernel_end,
        initrd,
        dtb_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A 64-byte header (plus `extra` zero bytes) with these fields and the magic.
    fn header(text_offset: u64, image_size: u64, flags: u64, extra: usize) -> alloc::vec::Vec<u8> {
        let mut h = alloc::vec![0u8; HEADER_LEN + extra];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn reads_a_header() {
        // Debian's 6.1 kernel: text_offset 0, flags 0xa (4K pages, anywhere).
        let image = parse(&header(0, 0x2c5_0000, 0xa, 100)).unwrap();
        assert_eq!(
            image,
            Arm64Image {
                text_offset: 0,
                image_size: 0x2c5_0000,
                page_size: KernelPageSize::K4,
                anywhere_in_memory: true,
            }
        );
        let old = parse(&header(0x8_0000, 0x100_0000, 0b110, 0)).unwrap();
        assert_eq!(old.text_offset, 0x8_0000);
        assert_eq!(old.page_size, KernelPageSize::K64);
        assert!(!old.anywhere_in_memory);
        assert_eq!(
            parse(&header(0, 1, 0b100, 0)).unwrap().page_size,
            KernelPageSize::K16
        );
        assert_eq!(
            parse(&header(0, 1, 0, 0)).unwrap().page_size,
            KernelPageSize::Unspecified
        );
    }

    #[test]
    fn refuses_hostile_headers() {
        let good = header(0, MIB, 0, 0);
        for len in [0, 1, 0x3b, HEADER_LEN - 1] {
            assert_eq!(parse(&good[..len]), Err(ImageError::Truncated(len)));
        }
        let mut elf = good.clone();
        elf[MAGIC_OFFSET] = b'a';
        assert_eq!(parse(&elf), Err(ImageError::NoMagic));
        assert_eq!(parse(&[0x7f; 4096]), Err(ImageError::NoMagic));
        assert_eq!(
            parse(&header(0, MIB, 1 | 0xa, 0)),
            Err(ImageError::BigEndian)
        );
        assert_eq!(parse(&header(0, 0, 0, 0)), Err(ImageError::ImageSizeZero));
        assert_eq!(
            parse(&header(u64::MAX - 10, 11, 0, 0)),
            Err(ImageError::SizeOverflow {
                text_offset: u64::MAX - 10,
                image_size: 11
            })
        );
        assert!(parse(&header(u64::MAX - 10, 10, 0, 0)).is_ok());
    }

    #[test]
    fn messages_say_what_is_wrong() {
        use alloc::string::ToString;
        assert_eq!(
            ImageError::NoMagic.to_string(),
            "not an arm64 Image: no ARM\\x64 magic at 0x38"
        );
        assert!(
            ImageError::BigEndian
                .to_string()
                .contains("big-endian kernel")
        );
        assert!(
            ImageError::ImageSizeZero
                .to_string()
                .starts_with("image_size 0")
        );
        let e = LayoutError::DoesNotFit {
            needed: 6 * MIB,
            ram: 4 * MIB,
            kernel_end: 3 * MIB,
            initrd_len: 5,
            dtb_max: 2 * MIB,
        };
        assert_eq!(
            e.to_string(),
            "memory too small: needs 6291456 bytes (6M) (the kernel up to \
             0x300000, text_offset + image_size; the initrd, 5 bytes; the device tree's 2 MiB \
             aligned slot of 2M at the top), the VM has 4194304 bytes (4M)"
        );
    }

    fn image(text_offset: u64, image_size: u64) -> Arm64Image {
        parse(&header(text_offset, image_size, 0xa, 0)).unwrap()
    }

    #[test]
    fn places_kernel_initrd_and_device_tree() {
        // A Debian-sized kernel in 256M with a 1 MiB initrd and a 64K device tree.
        let k = image(0, 0x2c5_0000);
        let l = linux_layout(256 * MIB, &k, 0x210_0000, Some(MIB + 5), 64 << 10).unwrap();
        assert_eq!(
            l,
            LinuxLayout {
                kernel_offset: 0,
                kernel_end: 0x2c5_0000,
                initrd: Some((254 * MIB - MIB - 4096, MIB + 5)),
                dtb_offset: 254 * MIB,
            }
        );
        // With text_offset, and a file longer than image_size (it all stays reserved).
        let k = image(0x8_0000, 0x1000);
        let l = linux_layout(8 * MIB, &k, 0x2000, None, DTB_MAX_BYTES).unwrap();
        assert_eq!((l.kernel_offset, l.kernel_end), (0x8_0000, 0x8_2000));
        assert_eq!((l.initrd, l.dtb_offset), (None, 6 * MIB));
        // A RAM size that is not a 2 MiB multiple: the slot still starts on a 2 MiB boundary
        // and ends inside RAM.
        let l = linux_layout(7 * MIB + 4096, &k, 0x2000, None, DTB_MAX_BYTES).unwrap();
        assert_eq!(l.dtb_offset, 4 * MIB);
    }

    #[test]
    fn the_least_ram_fits_and_one_page_less_does_not() {
        let cases = [
            (image(0, 0x2c5_0000), 0x210_0000, Some(0x10_0001), 64 << 10),
            (image(0x8_0000, 0x1000), 0x2000, None, DTB_MAX_BYTES),
            (image(0, 2 * MIB), 64, Some(2 * MIB), 1),
            (image(0, 2 * MIB - 4096), 64, Some(4096), 4096),
        ];
        for (k, len, initrd, dtb_max) in cases {
            let Err(LayoutError::DoesNotFit { needed, .. }) =
                linux_layout(PAGE_SIZE, &k, len, initrd, dtb_max)
            else {
                panic!("fits in one page");
            };
            assert_eq!(needed % PAGE_SIZE, 0);
            let l = linux_layout(needed, &k, len, initrd, dtb_max).unwrap();
            // Nothing overlaps, everything is inside RAM and aligned as booting.rst asks.
            let initrd_end = l.initrd.map_or(l.dtb_offset, |(at, len)| {
                assert_eq!(at % PAGE_SIZE, 0);
                at + len
            });
            assert!(l.kernel_end <= l.initrd.map_or(l.dtb_offset, |(at, _)| at));
            assert!(initrd_end <= l.dtb_offset);
            assert_eq!(l.dtb_offset % LINUX_ALIGN, 0);
            assert!(l.dtb_offset + dtb_max <= needed);
            assert!(matches!(
                linux_layout(needed - PAGE_SIZE, &k, len, initrd, dtb_max),
                Err(LayoutError::DoesNotFit { .. })
            ));
        }
    }

    #[test]
    fn refuses_what_cannot_fit() {
        let k = image(0, 0x2c5_0000);
        // An image_size beyond the RAM, a huge text_offset, both near 2^64: never a panic.
        for hostile in [
            image(0, u64::MAX),
            image(u64::MAX - 1, 1),
            image(1 << 62, 1 << 62),
            image(u64::MAX - (3 << 20), 1),
        ] {
            let r = linux_layout(u64::MAX - 4095, &hostile, 64, Some(u64::MAX), DTB_MAX_BYTES);
            assert!(matches!(r, Err(LayoutError::DoesNotFit { .. })), "{r:?}");
        }
        assert!(matches!(
            linux_layout(1 << 38, &image(u64::MAX - 1, 1), 64, None, 4096),
            Err(LayoutError::DoesNotFit {
                needed: u64::MAX,
                ..
            })
        ));
        // A file longer than RAM, whatever its header says.
        assert!(matches!(
            linux_layout(64 * MIB, &image(0, 4096), 64 * MIB, None, 4096),
            Err(LayoutError::DoesNotFit { .. })
        ));
        assert_eq!(
            linux_layout(256 * MIB, &k, 64, Some(0), 4096),
            Err(LayoutError::EmptyInitrd)
        );
        assert_eq!(
            linux_layout(256 * MIB, &k, 63, None, 4096),
            Err(LayoutError::BadImageLen(63))
        );
        for bad in [0, DTB_MAX_BYTES + 1] {
            assert_eq!(
                linux_layout(256 * MIB, &k, 64, None, bad),
                Err(LayoutError::BadDtbMax(bad))
            );
        }
    }
}
