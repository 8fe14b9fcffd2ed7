//! Devices the hypervisor itself drives.

pub mod console;
pub mod pl011;
