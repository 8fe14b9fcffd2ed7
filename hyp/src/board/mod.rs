//! Board knowledge the device tree does not carry. Everything else (RAM, UART, GIC, timer, CPUs,
//! the PM block's address) comes from the tree; what stays here is *how* to use a block the tree
//! only names.

pub mod rpi4;
#[cfg(target_os = "none")]
pub mod spin_table;
