//! Architecture support: the interface generic code uses, the AArch64 implementation, and a
//! fake one for host tests.

pub mod aarch64;
#[cfg(not(target_os = "none"))]
pub mod fake;
mod interface;

pub use aarch64::stage2;
pub use interface::{CacheOp, Machine, TlbOp};

/// The machine the hyp runs on.
#[cfg(target_os = "none")]
pub type Cpu = aarch64::machine::Aarch64;
/// On the build machine (host tests): the fake.
#[cfg(not(target_os = "none"))]
pub type Cpu = fake::FakeMachine;
