//! Decoding property values: big-endian cells and NUL-separated strings.
//!
//! Every reader checks its bounds and returns `None` rather than panic.

/// The widest address or size this crate decodes, in 32-bit cells. Real trees
/// use 1 to 3 (PCI); 4 cells is 128 bits, what a `u128` holds.
pub(crate) const MAX_CELLS: usize = 4;

/// The big-endian `u32` at byte `offset` of `bytes`.
pub(crate) fn be32(bytes: &[u8], offset: usize) -> Option<u32> {
    let word = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

/// A number spread over `cells` big-endian 32-bit cells at the start of
/// `bytes`, or `None` if `bytes` is too short or `cells` exceeds [`MAX_CELLS`].
pub(crate) fn read_cells(bytes: &[u8], cells: usize) -> Option<u128> {
    if cells > MAX_CELLS {
        return None;
    }
    (0..cells).try_fold(0u128, |acc, i| {
        Some(acc << 32 | u128::from(be32(bytes, i * 4)?))
    })
}

/// A property holding exactly one `u32` cell.
pub(crate) fn u32_value(value: &[u8]) -> Option<u32> {
    if value.len() == 4 {
        be32(value, 0)
    } else {
        None
    }
}

/// A property holding one `u32` or one `u64` (one or two cells), as the
/// `linux,initrd-*` and `cpu-release-addr` properties may.
pub(crate) fn u32_or_u64_value(value: &[u8]) -> Option<u64> {
    match value.len() {
        4 | 8 => read_cells(value, value.len() / 4).and_then(|v| u64::try_from(v).ok()),
        _ => None,
    }
}

/// The strings of a `<stringlist>` property (`compatible`, `enable-method`).
/// A string that is not UTF-8 ends the list.
pub(crate) fn strings(value: &[u8]) -> impl Iterator<Item = &str> {
    value
        .split(|&b| b == 0)
        .map(core::str::from_utf8)
        .map_while(Result::ok)
        .filter(|s| !s.is_empty())
}

/// The first string of a `<string>` or `<stringlist>` property.
pub(crate) fn first_string(value: &[u8]) -> Option<&str> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    core::str::from_utf8(value.get(..end)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cells_of_every_width() {
        let bytes = [0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        assert_eq!(read_cells(&bytes, 0), Some(0));
        assert_eq!(read_cells(&bytes, 1), Some(1));
        assert_eq!(read_cells(&bytes, 2), Some(0x1_0000_0002));
        assert_eq!(read_cells(&bytes, 3), Some(0x1_0000_0002_0000_0003));
        assert_eq!(read_cells(&bytes, 4), None);
        assert_eq!(read_cells(&[0; 32], 5), None);
    }

    #[test]
    fn one_or_two_cell_values() {
        assert_eq!(u32_or_u64_value(&[0, 0, 0, 0xd8]), Some(0xd8));
        assert_eq!(u32_or_u64_value(&[0, 0, 0, 1, 0, 0, 0, 0]), Some(1 << 32));
        assert_eq!(u32_or_u64_value(&[0, 0, 1]), None);
        assert_eq!(u32_value(&[0, 0, 0, 1, 0, 0, 0, 0]), None);
    }

    #[test]
    fn string_lists() {
        let mut it = strings(b"arm,pl011\0arm,primecell\0");
        assert_eq!(it.next(), Some("arm,pl011"));
        assert_eq!(it.next(), Some("arm,primecell"));
        assert_eq!(it.next(), None);
        assert_eq!(strings(b"ok\0\xff\0after\0").count(), 1);
        assert_eq!(
            first_string(b"serial1:115200n8\0"),
            Some("serial1:115200n8")
        );
        assert_eq!(first_string(b"no terminator"), Some("no terminator"));
        assert_eq!(first_string(b"\xff\0"), None);
    }
}
