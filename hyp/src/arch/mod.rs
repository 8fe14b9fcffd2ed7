//! Architecture support. Only AArch64 exists; generic code names it through this module.

pub mod aarch64;
