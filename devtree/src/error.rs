//! What can go wrong when reading a device tree.

use core::fmt;

/// Why a device tree could not be summarised.
///
/// Every variant is a plain value: nothing in this crate panics on a hostile
/// blob, it returns one of these instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not a device tree this crate can read: the buffer is shorter than the
    /// header, the magic is not `0xd00dfeed`, the version is older than 17, or
    /// the total size does not fit the buffer.
    BadHeader,
    /// No `/memory` node has a non-empty `reg` entry. On a Raspberry Pi this
    /// means the firmware (or QEMU) did not fill in the memory size.
    NoMemory,
    /// More entries of the named kind than the fixed-size tables of
    /// [`Board`](crate::Board) hold.
    TooMany(&'static str),
    /// The tree is structurally broken or a property the hypervisor needs
    /// cannot be decoded; the text says which.
    Malformed(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadHeader => f.write_str(
                "not a usable device tree: bad header (magic, version >= 17, or total size larger than the blob)",
            ),
            Error::NoMemory => f.write_str(
                "device tree has no memory: every /memory node is missing or empty (the firmware or bootloader must fill in its reg)",
            ),
            Error::TooMany(what) => {
                write!(f, "device tree lists too many {what} for this build's fixed tables")
            }
            Error::Malformed(what) => write!(f, "malformed device tree: {what}"),
        }
    }
}

impl core::error::Error for Error {}
