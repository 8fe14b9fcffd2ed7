//! The closed error enum of the vendor calls, with stable negative codes.

use core::fmt;

/// An error a vendor call (`0xC600_xxxx`) returns in x0.
///
/// Codes are stable for ever: a code is never reused for another meaning. -1 and -2 match the
/// SMCCC/PSCI `NOT_SUPPORTED` and `INVALID_PARAMETERS` values (and -3 matches PSCI `DENIED`), so
/// a client that only knows SMCCC still reads them right. Decoding a code this version does not
/// know gives [`Error::Unknown`], never a panic. Since 1.0.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// -1: the function ID is unknown, or the call is provisional / not live on this hypervisor.
    NotSupported,
    /// -2: an argument is malformed: unknown flag bits, reserved bits set, out-of-range value.
    InvalidParameters,
    /// -3: well-formed, but this VM may not do it (quota policy, someone else's object).
    Denied,
    /// -4: the VM's memory quota or the hypervisor's frames are exhausted.
    OutOfMemory,
    /// -5: some page of the range is already mapped.
    AlreadyMapped,
    /// -6: some page of the range is not mapped.
    NotMapped,
    /// -7: the resource is busy; try again later.
    Busy,
    /// -8: the guest's ABI major differs from the hypervisor's.
    VersionMismatch,
    /// -9: an address is unaligned, outside the IPA space, or not RAM this VM owns.
    BadAddress,
    /// Any code this version does not know (sent as [`Error::UNKNOWN_CODE`]; a hypervisor never
    /// sends that itself).
    Unknown,
}

impl Error {
    /// The code [`Error::Unknown`] encodes to: `i32::MIN`, never assigned to a real error.
    pub const UNKNOWN_CODE: i64 = i32::MIN as i64;

    /// Every error, in code order (`Unknown` last).
    pub const ALL: [Error; 10] = [
        Error::NotSupported,
        Error::InvalidParameters,
        Error::Denied,
        Error::OutOfMemory,
        Error::AlreadyMapped,
        Error::NotMapped,
        Error::Busy,
        Error::VersionMismatch,
        Error::BadAddress,
        Error::Unknown,
    ];

    /// The stable negative code.
    pub const fn code(self) -> i64 {
        match self {
            Error::NotSupported => smccc::arch::error::NOT_SUPPORTED as i64,
            Error::InvalidParameters => smccc::psci::error::INVALID_PARAMETERS as i64,
            Error::Denied => smccc::psci::error::DENIED as i64,
            Error::OutOfMemory => -4,
            Error::AlreadyMapped => -5,
            Error::NotMapped => -6,
            Error::Busy => -7,
            Error::VersionMismatch => -8,
            Error::BadAddress => -9,
            Error::Unknown => Error::UNKNOWN_CODE,
        }
    }

    /// The error for a code; [`Error::Unknown`] for anything unassigned (including 0 and
    /// positive values). Never panics.
    pub fn from_code(code: i64) -> Error {
        Error::ALL
            .into_iter()
            .find(|e| e.code() == code)
            .unwrap_or(Error::Unknown)
    }

    /// The variant name as `docs/ABI.md` spells it, e.g. `NOT_SUPPORTED`.
    pub const fn name(self) -> &'static str {
        match self {
            Error::NotSupported => "NOT_SUPPORTED",
            Error::InvalidParameters => "INVALID_PARAMETERS",
            Error::Denied => "DENIED",
            Error::OutOfMemory => "OUT_OF_MEMORY",
            Error::AlreadyMapped => "ALREADY_MAPPED",
            Error::NotMapped => "NOT_MAPPED",
            Error::Busy => "BUSY",
            Error::VersionMismatch => "VERSION_MISMATCH",
            Error::BadAddress => "BAD_ADDRESS",
            Error::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NotSupported => "call not supported",
            Error::InvalidParameters => "invalid parameters",
            Error::Denied => "denied",
            Error::OutOfMemory => "out of memory",
            Error::AlreadyMapped => "already mapped",
            Error::NotMapped => "not mapped",
            Error::Busy => "busy, try again",
            Error::VersionMismatch => "ABI major version mismatch",
            Error::BadAddress => "bad address",
            Error::Unknown => "unknown error code",
        })
    }
}

impl core::error::Error for Error {}

/// Encodes a vendor call's result as x0..x3: `Ok(v)` is `[0, v[0], v[1], v[2]]`, `Err(e)` is
/// `[e.code(), 0, 0, 0]` (the code sign-extended to 64 bits).
pub fn encode_return(result: Result<[u64; 3], Error>) -> [u64; 4] {
    match result {
        Ok([a, b, c]) => [0, a, b, c],
        Err(e) => [e.code() as u64, 0, 0, 0],
    }
}

/// Decodes x0..x3 of a vendor call's result: x0 = 0 is success with x1..x3 the values; any other
/// x0 is an error (read as a signed 64-bit code; unassigned codes give [`Error::Unknown`]).
pub fn decode_return(x: [u64; 4]) -> Result<[u64; 3], Error> {
    match x[0] {
        0 => Ok([x[1], x[2], x[3]]),
        code => Err(Error::from_code(code as i64)),
    }
}
