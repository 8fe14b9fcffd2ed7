//! Front-ends: how pv-guest reaches the hypervisor's paravirtual devices (and, for the
//! trap-and-emulate baseline, the emulated UART); and a PCI device the VM owns (virtio-pci).

pub mod block;
pub mod channel;
pub mod console_ring;
pub mod pl011;
pub mod virtio_pci;
