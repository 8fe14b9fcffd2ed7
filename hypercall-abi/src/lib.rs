//! The contract between the hypervisor and its guests: hypercall function IDs, their register
//! encodings, the error enum, ABI versions and the memory layouts both sides share.
//!
//! Conventions (Arm SMCCC 1.2): the conduit is `HVC #0`; w0 holds the function ID (the upper
//! half of x0 is ignored), x1..x17 the arguments, and on return x0 the status and x1.. the
//! results. Our own calls are SMC64 fast calls in the Vendor Specific Hypervisor Service range,
//! `0xC600_0000 | n`, grouped by family: `abi` 0x0n, `vm` 0x1n, `console` 0x2n, `mem` 0x3n,
//! `event` 0x4n, `block` 0x5n, `channel` 0x6n. They return x0 = 0 or a negative [`Error`] code
//! and values in x1..x3 ([`encode_return`], [`decode_return`]). Standard calls (SMCCC, PSCI)
//! return what their specifications say.
//!
//! Each call is a [`Call`] value: `Call::try_from(&regs)` decodes (never panics) and
//! [`Call::to_regs`] encodes. A hypervisor's hot path decodes a vendor call with
//! [`Call::decode_vendor_into`] instead: the same decode, handing the call to its
//! [`ServeVendor`] right after the jump that decoded it. Guests call through
//! [`Hypervisor`] over a [`Conduit`].
//! `docs/ABI.md` is the reference; `tests/golden/v1.txt` freezes every live encoding and layout.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod abi;
pub mod block;
mod call;
pub mod catalog;
pub mod channel;
mod conduit;
pub mod console;
mod error;
pub mod event;
pub mod layout;
pub mod mem;
pub mod psci;
pub mod standard;
mod version;
pub mod vm;

pub use abi::{feature_bit, live_features, live_features_in};
pub use block::BlockInfo;
pub use call::{Call, ServeVendor};
pub use catalog::{CALLS, CallInfo, Family};
pub use channel::ChannelInfo;
#[cfg(target_arch = "aarch64")]
pub use conduit::Hvc;
pub use conduit::{Conduit, Hypervisor};
pub use error::{Error, decode_return, encode_return};
pub use event::EventSource;
pub use layout::{BOOT_INFO_MAGIC, BootInfo, DeviceInfo};
pub use mem::{BatchResult, MemPerms};
pub use psci::PsciCall;
pub use version::{Version, negotiate};
pub use vm::VmInfo;

/// The register image of a call or its result: x0..x17.
pub type Regs = [u64; 18];
