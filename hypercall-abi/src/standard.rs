//! Standard Arm calls a real SMCCC client expects: `SMCCC_VERSION`, `SMCCC_ARCH_FEATURES`, and
//! the Vendor Specific Hypervisor Service's Call UID and Revision queries.
//!
//! All live since 1.0. Results are the raw registers the SMCCC specification defines (no
//! [`crate::Error`] status).

use crate::Version;

/// `SMCCC_VERSION` (SMC32 fast call). Result: x0 = [`SMCCC_VERSION_1_2`].
pub const SMCCC_VERSION: u32 = smccc::arch::SMCCC_VERSION;
/// `SMCCC_ARCH_FEATURES` (SMC32 fast call). Argument: w1 = an Arm Architecture Service function
/// ID. Result: x0 = 0 if implemented, else `NOT_SUPPORTED` (-1); see [`arch_features`].
pub const SMCCC_ARCH_FEATURES: u32 = smccc::arch::SMCCC_ARCH_FEATURES;
/// Vendor Specific Hypervisor Service Call UID query (SMC32 fast call, `0x8600_FF01`).
/// Result: x0..x3 = [`VENDOR_HYP_UID`].
pub const VENDOR_HYP_CALL_UID: u32 = 0x8600_FF01;
/// Vendor Specific Hypervisor Service Revision query (SMC32 fast call, `0x8600_FF03`).
/// Result: x0 = major, x1 = minor of [`Version::CURRENT`] of the hypervisor.
pub const VENDOR_HYP_REVISION: u32 = 0x8600_FF03;

/// The SMCCC version the hypervisor implements, as `SMCCC_VERSION` returns it: 1.2 (`0x10002`).
pub const SMCCC_VERSION_1_2: u32 = 0x0001_0002;

/// Our Vendor Hypervisor Service UUID, `9376a54b-d4a8-4023-bdb9-d2c670da9911`, in byte order.
pub const VENDOR_HYP_UUID: [u8; 16] = [
    0x93, 0x76, 0xa5, 0x4b, 0xd4, 0xa8, 0x40, 0x23, 0xbd, 0xb9, 0xd2, 0xc6, 0x70, 0xda, 0x99, 0x11,
];

/// [`VENDOR_HYP_UUID`] as the Call UID query returns it in w0..w3: word i is bytes 4i..4i+3
/// read little-endian (the SMCCC convention; e.g. w0 = `0x4ba5_7693`).
pub const VENDOR_HYP_UID: [u32; 4] = uuid_words(VENDOR_HYP_UUID);

const fn uuid_words(b: [u8; 16]) -> [u32; 4] {
    [
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

/// `SMCCC_ARCH_SOC_ID` (SMCCC 1.2): not implemented; Linux asks about it when the SMCCC version
/// is 1.2 and logs "SMCCC: SOC_ID: ARCH_SOC_ID not implemented, skipping ....".
pub const SMCCC_ARCH_SOC_ID: u32 = smccc::arch::SMCCC_ARCH_SOC_ID;
/// `SMCCC_ARCH_WORKAROUND_1` (Spectre v2, CVE-2017-5715): not implemented.
pub const SMCCC_ARCH_WORKAROUND_1: u32 = smccc::arch::SMCCC_ARCH_WORKAROUND_1;
/// `SMCCC_ARCH_WORKAROUND_2` (Spectre v4, CVE-2018-3639): not implemented.
pub const SMCCC_ARCH_WORKAROUND_2: u32 = smccc::arch::SMCCC_ARCH_WORKAROUND_2;
/// `SMCCC_ARCH_WORKAROUND_3` (Spectre-BHB, CVE-2022-23960): not implemented.
pub const SMCCC_ARCH_WORKAROUND_3: u32 = smccc::arch::SMCCC_ARCH_WORKAROUND_3;
/// `TRNG_VERSION` (Arm TRNG firmware interface, DEN0098): not implemented, so answered
/// `NOT_SUPPORTED` (-1) like any unknown ID, which is what DEN0098 says a caller then sees;
/// Linux (`smccc_probe_trng`) then registers no `smccc_trng` device.
pub const TRNG_VERSION: u32 = 0x8400_0050;

/// The hypervisor's answer to `SMCCC_ARCH_FEATURES(function_id)`: 0 for `SMCCC_VERSION` and
/// `SMCCC_ARCH_FEATURES`, `NOT_SUPPORTED` (-1) for every other ID: no `SOC_ID`, and none of the
/// workaround calls.
///
/// `NOT_SUPPORTED` for a workaround is, by SMCCC 1.2, "no PE needs firmware mitigation, *or* a
/// PE that needs it has none, *or* firmware does not say": the honest answer from a hypervisor
/// that mitigates nothing on a guest's behalf. 0 would promise a call that mitigates (Linux would
/// believe itself protected and call it on every exception from EL0); 1 ("this PE does not need
/// it") would be a lie on an affected core. So Linux decides from the CPU alone: on a core that
/// is not affected (e.g. Cortex-A53, A55, or `max` with CSV2/SSBS) it reports "Not affected"; on
/// an affected one (Cortex-A57, A72: QEMU `-cpu cortex-a72`, the Pi 4) it logs `CPU features:
/// detected: Spectre-v2`, `Spectre-v4` and `Spectre-BHB` (and `Spectre-v3a`, which it mitigates
/// itself), installs no firmware callback, and `/sys/devices/system/cpu/vulnerabilities/
/// spectre_v2` reads `Vulnerable` (spec_store_bypass likewise), which is the truth; no warning is
/// printed.
pub fn arch_features(function_id: u32) -> i32 {
    match function_id {
        SMCCC_VERSION | SMCCC_ARCH_FEATURES => smccc::error::SUCCESS,
        _ => smccc::arch::error::NOT_SUPPORTED,
    }
}

/// The Revision query's result registers x0, x1 for a hypervisor of `version`.
pub fn revision_regs(version: Version) -> [u64; 2] {
    [u64::from(version.major), u64::from(version.minor)]
}
