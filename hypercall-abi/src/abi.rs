//! The `abi` family (`0xC600_000n`): version handshake and feature discovery. Live since 1.0.

use crate::{Version, catalog::CALLS};

/// Base of our calls: SMC64 fast calls in the Vendor Specific Hypervisor Service range
/// (owning entity 6). Call `n` has function ID `VENDOR_HYP_BASE | n`.
pub const VENDOR_HYP_BASE: u32 = 0xC600_0000;

/// The function ID of vendor call `n`.
pub const fn vendor_id(n: u32) -> u32 {
    VENDOR_HYP_BASE | n
}

/// `ABI_VERSION` (`0xC600_0000`): x1 = the guest's [`crate::Version`] (`to_u64`).
/// Result: x1 = the hypervisor's version. Errors: `VERSION_MISMATCH` (other major),
/// `INVALID_PARAMETERS` (bits 63:32 of x1 set). Live since 1.0.
pub const ABI_VERSION: u32 = vendor_id(0x00);
/// `ABI_FEATURES` (`0xC600_0001`): no arguments. Result: x1 = the feature bitmap of live calls
/// (see [`feature_bit`]), x2 = x3 = 0 (reserved). Live since 1.0.
pub const ABI_FEATURES: u32 = vendor_id(0x01);

/// The feature bit of a vendor call in the `ABI_FEATURES` bitmap:
/// `8 * family + index` for call `n = (family << 4) | index` with `family < 8` and `index < 8`
/// (abi bits 0..7, vm 8..15, console 16..23, mem 24..31, event 32..39, block 40..47,
/// channel 48..55). `None` for IDs outside that space (standard calls have no bit: use
/// `SMCCC_ARCH_FEATURES` / `PSCI_FEATURES` for those).
pub const fn feature_bit(function_id: u32) -> Option<u32> {
    if function_id & 0xFFFF_FF00 != VENDOR_HYP_BASE {
        return None;
    }
    let n = function_id & 0xFF;
    let (family, index) = (n >> 4, n & 0xF);
    if family < 8 && index < 8 {
        Some(family * 8 + index)
    } else {
        None
    }
}

/// The `ABI_FEATURES` bitmap of this crate's version ([`Version::CURRENT`]): one bit per live
/// vendor call. A hypervisor built from this crate returns exactly this.
pub const fn live_features() -> u64 {
    live_features_in(Version::CURRENT)
}

/// The feature bits of every vendor call this crate defines, live or provisional.
pub(crate) const fn defined_features() -> u64 {
    let mut bits = 0u64;
    let mut i = 0;
    while i < CALLS.len() {
        if let Some(bit) = feature_bit(CALLS[i].function_id) {
            bits |= 1 << bit;
        }
        i += 1;
    }
    bits
}

/// The `ABI_FEATURES` bitmap a hypervisor of `version` returns: the bits of the vendor calls
/// live in it (live, and made live at or before `version`'s minor of the same major).
pub const fn live_features_in(version: Version) -> u64 {
    let mut bits = 0u64;
    let mut i = 0;
    while i < CALLS.len() {
        let c = &CALLS[i];
        let live_in = c.live && c.since.major == version.major && c.since.minor <= version.minor;
        if let (true, Some(bit)) = (live_in, feature_bit(c.function_id)) {
            bits |= 1 << bit;
        }
        i += 1;
    }
    bits
}
