//! Front-ends: how pv-guest reaches the hypervisor's paravirtual devices (and, for the
//! trap-and-emulate baseline, the emulated UART).

pub mod block;
pub mod channel;
pub mod console_ring;
pub mod pl011;
