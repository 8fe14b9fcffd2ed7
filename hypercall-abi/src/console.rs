//! The `console` family (`0xC600_002n`). `CONSOLE_WRITE` is live since 1.0; `CONSOLE_READ` and
//! `CONSOLE_NOTIFY` (the output ring's doorbell) since 1.2.

use crate::abi::vendor_id;

/// `CONSOLE_WRITE` (`0xC600_0020`): x1 = IPA of the bytes, x2 = length. Writes them to the VM's
/// console (the hypervisor prefixes lines with `<vm-name>: `). Result: x1 = bytes consumed; the
/// hypervisor may take fewer than asked (at most [`CONSOLE_CHUNK_MAX`] per call, at least one
/// if the length is non-zero), so loop. Errors: `BAD_ADDRESS` (range not in the VM's RAM).
/// Live since 1.0.
pub const CONSOLE_WRITE: u32 = vendor_id(0x20);
/// `CONSOLE_READ` (`0xC600_0021`): x1 = IPA of a buffer, x2 = its length. Result: x1 = bytes
/// read (0 if none is waiting; bind `EventSource::ConsoleRx` to hear of input). Errors:
/// `BAD_ADDRESS`. Live since 1.2.
pub const CONSOLE_READ: u32 = vendor_id(0x21);
/// `CONSOLE_NOTIFY` (`0xC600_0022`): the doorbell of the VM's console output ring (a
/// [`crate::layout::RingHeader`] with 1-byte slots at `BootInfo::console_ring_ipa`): the
/// hypervisor takes every byte between its consumer index and the guest's producer index,
/// writes them to the VM's console and advances the consumer. Result: x1 = bytes taken.
/// Errors: `NOT_SUPPORTED` (no ring). Live since 1.2.
pub const CONSOLE_NOTIFY: u32 = vendor_id(0x22);
/// Slots of the console output ring: the ring fills its page after the header.
pub const CONSOLE_RING_ENTRIES: u32 = 2048;

/// The most bytes one `CONSOLE_WRITE` or `CONSOLE_READ` moves.
pub const CONSOLE_CHUNK_MAX: u64 = 4096;
