//! Who may own a frame of RAM. A leaf type: `arch` (whose `Machine` trait hands frames out
//! by owner) and `mm` (which keeps the owner of every frame) both name it, and neither imports
//! the other for it.

#![forbid(unsafe_code)]

/// A frame's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Free,
    /// The hypervisor itself: its heap, its tables (including VMs' stage-2 tables).
    Hyp,
    /// A VM, by manifest index.
    Vm(u16),
    /// A shared object (a channel), by index.
    Shared(u16),
}

impl Owner {
    const FREE: u16 = 0;
    const HYP: u16 = 1;
    const VM: u16 = 0x4000;
    const SHARED: u16 = 0x8000;
    const INDEX: u16 = 0x3fff;

    pub(crate) fn encode(self) -> u16 {
        match self {
            Owner::Free => Self::FREE,
            Owner::Hyp => Self::HYP,
            Owner::Vm(i) => Self::VM | (i & Self::INDEX),
            Owner::Shared(i) => Self::SHARED | (i & Self::INDEX),
        }
    }

    pub(crate) fn decode(raw: u16) -> Self {
        match raw & !Self::INDEX {
            Self::VM => Owner::Vm(raw & Self::INDEX),
            Self::SHARED => Owner::Shared(raw & Self::INDEX),
            _ if raw == Self::HYP => Owner::Hyp,
            _ => Owner::Free,
        }
    }
}
