//! Virtual devices: what the hyp emulates for a guest that is not paravirtualized (an
//! unmodified Linux kernel, `kind = "linux"`) and for a PV VM with `console = "emulated-pl011"`.
//! The platform is the same on every board (`layout`): its device tree (`dt`), a virtual GIC
//! (`vgic`), an emulated PL011 (`pl011`). Pure logic, tested on the host; what reads or writes
//! the CPU or the physical GIC is in `arch`.

pub mod dt;
pub mod layout;
pub mod pl011;
pub mod vgic;
