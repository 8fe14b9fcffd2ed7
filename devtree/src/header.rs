//! The 40-byte FDT header (Devicetree Specification v0.4, section 5.2).

use crate::Error;
use crate::cells::be32;

/// Size in bytes of the version-17 FDT header.
pub const HEADER_SIZE: usize = 40;

/// The largest blob [`total_size`] accepts. Real trees are tens of KiB; QEMU
/// pads its own to 1 MiB.
pub const MAX_TOTAL_SIZE: usize = 2 << 20;

/// `magic`: the first word of every flattened device tree.
const FDT_MAGIC: u32 = 0xd00d_feed;

/// The version whose header carries `size_dt_struct`, which the validator needs.
const FDT_VERSION: u32 = 17;

/// The header fields this crate uses, as byte offsets and lengths checked to lie
/// inside `totalsize`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub total_size: usize,
    pub struct_offset: usize,
    pub struct_size: usize,
    pub strings_offset: usize,
    pub strings_size: usize,
    pub rsvmap_offset: usize,
}

impl Header {
    /// Reads and checks the header of `dtb`: magic, version, and that every
    /// block lies inside `totalsize`, which itself fits in `dtb`.
    pub(crate) fn parse(dtb: &[u8]) -> Result<Self, Error> {
        let field = |i: usize| be32(dtb, i * 4).map(|v| v as usize).ok_or(Error::BadHeader);
        if dtb.len() < HEADER_SIZE || field(0)? != FDT_MAGIC as usize {
            return Err(Error::BadHeader);
        }
        let total_size = field(1)?;
        let version = field(5)?;
        let last_compatible = field(6)?;
        if total_size < HEADER_SIZE
            || total_size > dtb.len()
            || version < FDT_VERSION as usize
            || last_compatible > FDT_VERSION as usize
        {
            return Err(Error::BadHeader);
        }
        let header = Header {
            total_size,
            struct_offset: field(2)?,
            strings_offset: field(3)?,
            rsvmap_offset: field(4)?,
            strings_size: field(8)?,
            struct_size: field(9)?,
        };
        let inside = |offset: usize, size: usize| {
            offset >= HEADER_SIZE
                && offset
                    .checked_add(size)
                    .is_some_and(|end| end <= total_size)
        };
        if !inside(header.struct_offset, header.struct_size) {
            return Err(Error::Malformed("structure block lies outside the blob"));
        }
        if !inside(header.strings_offset, header.strings_size) {
            return Err(Error::Malformed("strings block lies outside the blob"));
        }
        if !inside(header.rsvmap_offset, 0) {
            return Err(Error::Malformed(
                "memory reservation block lies outside the blob",
            ));
        }
        Ok(header)
    }
}

/// The `totalsize` of the device tree whose header starts `header`, so a caller
/// holding only a pointer can slice the whole blob.
///
/// `header` must hold at least the 40-byte header. Returns `None` if the magic
/// is wrong or the size is smaller than the header or larger than
/// [`MAX_TOTAL_SIZE`] (2 MiB).
pub fn total_size(header: &[u8]) -> Option<usize> {
    if header.len() < HEADER_SIZE || be32(header, 0)? != FDT_MAGIC {
        return None;
    }
    let size = usize::try_from(be32(header, 4)?).ok()?;
    (HEADER_SIZE..=MAX_TOTAL_SIZE)
        .contains(&size)
        .then_some(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(total: u32) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        h[..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&total.to_be_bytes());
        h
    }

    #[test]
    fn total_size_reads_a_sane_header() {
        assert_eq!(total_size(&header(0x6b1a)), Some(0x6b1a));
        assert_eq!(total_size(&header(2 << 20)), Some(2 << 20));
    }

    #[test]
    fn total_size_rejects_bad_magic_short_input_and_silly_sizes() {
        let mut bad = header(0x1000);
        bad[0] = 0;
        assert_eq!(total_size(&bad), None);
        assert_eq!(total_size(&header(0x1000)[..39]), None);
        assert_eq!(total_size(&header(39)), None);
        assert_eq!(total_size(&header((2 << 20) + 1)), None);
        assert_eq!(total_size(&header(u32::MAX)), None);
    }

    #[test]
    fn parse_rejects_a_header_claiming_more_than_the_buffer() {
        let h = header(0x1000);
        assert_eq!(Header::parse(&h).unwrap_err(), Error::BadHeader);
    }
}
