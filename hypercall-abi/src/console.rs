//! The `console` family (`0xC600_002n`). `CONSOLE_WRITE` is live since 1.0; `CONSOLE_READ` is
//! provisional.

use crate::abi::vendor_id;

/// `CONSOLE_WRITE` (`0xC600_0020`): x1 = IPA of the bytes, x2 = length. Writes them to the VM's
/// console (the hypervisor prefixes lines with `<vm-name>: `). Result: x1 = bytes consumed; the
/// hypervisor may take fewer than asked (at most [`CONSOLE_CHUNK_MAX`] per call, at least one
/// if the length is non-zero), so loop. Errors: `BAD_ADDRESS` (range not in the VM's RAM).
/// Live since 1.0.
pub const CONSOLE_WRITE: u32 = vendor_id(0x20);
/// `CONSOLE_READ` (`0xC600_0021`): x1 = IPA of a buffer, x2 = its length. Result: x1 = bytes
/// read (0 if none is waiting; bind `EventSource::ConsoleRx` to hear of input). Errors:
/// `BAD_ADDRESS`. Provisional.
pub const CONSOLE_READ: u32 = vendor_id(0x21);

/// The most bytes one `CONSOLE_WRITE` or `CONSOLE_READ` moves.
pub const CONSOLE_CHUNK_MAX: u64 = 4096;
