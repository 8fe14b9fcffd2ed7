//! The cpio "newc" archive format (magic `070701`), as the Linux initramfs uses it.
//!
//! Each member is a 110-byte ASCII header (the magic, then 13 fields of 8 hex digits), the
//! NUL-terminated name, padding to a multiple of 4, the data, and padding to a multiple of 4.
//! A member named `TRAILER!!!` ends the archive. The reader also takes `070702` (newc with a
//! checksum), and checks the checksum. It is written for hostile input: every malformed archive
//! yields a [`CpioError`], never a panic or a read out of bounds.

use alloc::vec::Vec;
use core::fmt;

/// Magic of a newc member header.
pub const MAGIC_NEWC: &[u8; 6] = b"070701";
/// Magic of a newc member header with a checksum.
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// Name of the member that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Mode of the regular files [`write_newc`] writes: `S_IFREG | 0644`.
pub const MODE_FILE: u32 = 0o100_644;
/// Mask of the file-type bits in a mode.
pub const MODE_TYPE_MASK: u32 = 0o170_000;
/// File-type bits of a regular file.
pub const MODE_TYPE_FILE: u32 = 0o100_000;

/// Length of a member header: 6 bytes of magic and 13 fields of 8 hex digits.
const HEADER_LEN: usize = 6 + 13 * 8;

/// The header fields, in the order they appear.
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const F_MODE: usize = 1;
const F_MTIME: usize = 5;
const F_FILESIZE: usize = 6;
const F_NAMESIZE: usize = 11;
const F_CHECK: usize = 12;

/// Why an archive could not be read. Offsets are byte offsets of the member's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The member does not start with `070701` or `070702`.
    BadMagic {
        /// Where the header should be.
        offset: usize,
    },
    /// A header field is not 8 hex digits.
    BadField {
        /// Where the header is.
        offset: usize,
        /// The field's name, as in `cpio(5)`.
        field: &'static str,
    },
    /// The header, name or data runs past the end of the archive.
    Truncated {
        /// Where the header is.
        offset: usize,
    },
    /// The name is empty, not NUL-terminated, or not UTF-8.
    BadName {
        /// Where the header is.
        offset: usize,
    },
    /// A `070702` member's data does not match its checksum.
    BadChecksum {
        /// Where the header is.
        offset: usize,
    },
    /// The archive ends without a `TRAILER!!!` member.
    MissingTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic { offset } => {
                write!(f, "cpio: no newc magic \"070701\" at offset {offset:#x}")
            }
            Self::BadField { offset, field } => {
                write!(
                    f,
                    "cpio: field {field} of the header at {offset:#x} is not hex"
                )
            }
            Self::Truncated { offset } => {
                write!(
                    f,
                    "cpio: the member at {offset:#x} runs past the end of the archive"
                )
            }
            Self::BadName { offset } => write!(f, "cpio: bad name in the member at {offset:#x}"),
            Self::BadChecksum { offset } => {
                write!(f, "cpio: checksum mismatch in the member at {offset:#x}")
            }
            Self::MissingTrailer => f.write_str("cpio: the archive has no TRAILER!!! member"),
        }
    }
}

impl core::error::Error for CpioError {}

/// One member of an archive, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The member's name as stored (for example `images/pv-guest` or `./manifest`).
    pub name: &'a str,
    /// The mode: file type and permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// The contents.
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Whether the member is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & MODE_TYPE_MASK == MODE_TYPE_FILE
    }
}

/// Rounds `n` up to a multiple of 4, or `None` on overflow.
fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// Writes an archive of regular files (mode 0644, owner 0, mtime 0, so the output depends only
/// on the input), ending with `TRAILER!!!`.
///
/// # Panics
///
/// If a name is empty or contains NUL, or a name or file is 4 GiB or more: the format cannot
/// hold them, and the callers are host tools that pass their own names.
pub fn write_newc(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ino, (name, data)) in (1u32..).zip(entries) {
        assert!(
            !name.is_empty() && !name.contains('\0'),
            "cpio: bad member name {name:?}"
        );
        write_member(&mut out, ino, MODE_FILE, name, data);
    }
    write_member(&mut out, 0, 0, TRAILER, &[]);
    out
}

fn write_member(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
    let namesize = u32::try_from(name.len() + 1).expect("cpio: name too long");
    let filesize = u32::try_from(data.len()).expect("cpio: file of 4 GiB or more");
    let nlink = u32::from(mode != 0);
    let fields = [ino, mode, 0, 0, nlink, 0, filesize, 0, 0, 0, 0, namesize, 0];
    out.extend_from_slice(MAGIC_NEWC);
    for value in fields {
        out.extend_from_slice(&hex8(value));
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn hex8(value: u32) -> [u8; 8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 8];
    for (i, byte) in out.iter_mut().enumerate() {
        let nibble = (value >> (28 - 4 * i)) & 0xf;
        *byte = DIGITS[nibble as usize];
    }
    out
}

/// Parses 8 hex digits (either case); `None` if any is not a hex digit.
fn parse_hex8(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        Some(acc << 4 | v)
    })
}

/// Iterates over the members of an archive, up to (not including) `TRAILER!!!`.
///
/// After the first error the iterator ends. An archive that ends without a trailer yields
/// [`CpioError::MissingTrailer`] last.
pub fn entries(archive: &[u8]) -> impl Iterator<Item = Result<Entry<'_>, CpioError>> {
    Entries {
        archive,
        offset: 0,
        done: false,
    }
}

/// Finds the regular file `name` in an archive. A stored leading `./` is ignored, so archives
/// made by `find . | cpio -o -H newc` work too. Errors in members before it are reported.
pub fn find<'a>(archive: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, CpioError> {
    for entry in entries(archive) {
        let entry = entry?;
        let stored = entry.name.strip_prefix("./").unwrap_or(entry.name);
        if stored == name && entry.is_file() {
            return Ok(Some(entry.data));
        }
    }
    Ok(None)
}

struct Entries<'a> {
    archive: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match read_member(self.archive, self.offset) {
            Ok((entry, _)) if entry.name == TRAILER => {
                self.done = true;
                None
            }
            Ok((entry, next)) => {
                self.offset = next;
                Some(Ok(entry))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads the member at `offset`; returns it and the offset of the next one.
fn read_member(archive: &[u8], offset: usize) -> Result<(Entry<'_>, usize), CpioError> {
    if offset >= archive.len() {
        return Err(CpioError::MissingTrailer);
    }
    let truncated = CpioError::Truncated { offset };
    let header = archive
        .get(offset..offset.checked_add(HEADER_LEN).ok_or(truncated)?)
        .ok_or(truncated)?;
    let magic = &header[..6];
    let with_check = if magic == MAGIC_NEWC {
        false
    } else if magic == MAGIC_CRC {
        true
    } else {
        return Err(CpioError::BadMagic { offset });
    };
    let mut fields = [0u32; 13];
    for (i, (value, chunk)) in fields
        .iter_mut()
        .zip(header[6..].chunks_exact(8))
        .enumerate()
    {
        *value = parse_hex8(chunk).ok_or(CpioError::BadField {
            offset,
            field: FIELDS[i],
        })?;
    }
    let size = |i: usize| usize::try_from(fields[i]).map_err(|_| truncated);

    let name_start = offset + HEADER_LEN;
    let name_end = name_start.checked_add(size(F_NAMESIZE)?).ok_or(truncated)?;
    let name_bytes = archive.get(name_start..name_end).ok_or(truncated)?;
    let bad_name = CpioError::BadName { offset };
    let (nul, name) = name_bytes.split_last().ok_or(bad_name)?;
    if *nul != 0 || name.is_empty() || name.contains(&0) {
        return Err(bad_name);
    }
    let name = core::str::from_utf8(name).map_err(|_| bad_name)?;

    let data_start = align4(name_end).ok_or(truncated)?;
    let data_end = data_start.checked_add(size(F_FILESIZE)?).ok_or(truncated)?;
    let data = archive.get(data_start..data_end).ok_or(truncated)?;
    if with_check {
        let sum = data
            .iter()
            .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)));
        if sum != fields[F_CHECK] {
            return Err(CpioError::BadChecksum { offset });
        }
    }
    // The padding after the last member may be missing; the next read reports what follows.
    let next = align4(data_end).ok_or(truncated)?;
    let entry = Entry {
        name,
        mode: fields[F_MODE],
        mtime: fields[F_MTIME],
        data,
    };
    Ok((entry, next))
}
