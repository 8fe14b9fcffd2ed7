//! Devices the hypervisor itself drives.

pub mod bcm2835_aux;
pub mod console;
pub mod dma_probe;
pub mod gic;
pub mod pci;
pub mod pl011;
pub mod smmu;
