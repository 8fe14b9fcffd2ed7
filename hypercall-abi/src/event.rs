//! The `event` family (`0xC600_004n`): virtual interrupts as numbered events. Live since 1.2.
//!
//! Each VM has [`EVENT_COUNT`] events. Pending and mask bits live in the event page
//! ([`crate::layout::EventPage`], IPA in the boot info); a pending unmasked event raises the
//! vCPU's virtual IRQ until the guest acknowledges it: with `EVENT_ACK`, or (since 1.5, after
//! [`EVENT_SHARED_ACK`]) by clearing the event's pending bit in the page itself. Since 1.6 a
//! VM that owns a PCI device (boot info `device`) hears its interrupt and the DMAs the SMMU
//! stopped as events too ([`EventSource::DeviceInterrupt`], [`EventSource::DeviceFault`]).

use crate::{Error, abi::vendor_id};

/// `EVENT_BIND` (`0xC600_0040`): x1 = [`EventSource`] kind, x2 = source index. Result: x1 = the
/// event number now delivering that source. Errors: `INVALID_PARAMETERS` (unknown kind, index
/// out of range), `BUSY` (no free event), `DENIED` (not this VM's channel). Live since 1.2.
pub const EVENT_BIND: u32 = vendor_id(0x40);
/// `EVENT_MASK` (`0xC600_0041`): x1 = event. Errors: `INVALID_PARAMETERS`. Live since 1.2.
pub const EVENT_MASK: u32 = vendor_id(0x41);
/// `EVENT_UNMASK` (`0xC600_0042`): x1 = event. Errors: `INVALID_PARAMETERS`. Live since 1.2.
pub const EVENT_UNMASK: u32 = vendor_id(0x42);
/// `EVENT_ACK` (`0xC600_0043`): x1 = event. Clears its pending bit and, when nothing unmasked is
/// pending, the virtual IRQ. Errors: `INVALID_PARAMETERS`. Live since 1.2.
pub const EVENT_ACK: u32 = vendor_id(0x43);
/// `EVENT_SEND` (`0xC600_0044`): x1 = target vCPU index, x2 = event. Makes the event pending on
/// a vCPU of the caller's own VM (an IPI). Errors: `INVALID_PARAMETERS`. Live since 1.2.
pub const EVENT_SEND: u32 = vendor_id(0x44);
/// `EVENT_SHARED_ACK` (`0xC600_0045`): no arguments. From this call until the VM resets, the
/// event page is writable and the guest may acknowledge event `e` by atomically clearing bit
/// `e % 64` of `pending[e / 64]` in it (e.g. `LDCLR`), without a call; `EVENT_ACK` still works
/// (and is what unmasks the virtual timer's interrupt after its event).
/// The hypervisor only ever reads a cleared bit of an event it had raised as "the guest saw
/// it": bits the guest sets are dropped, and `masked` stays what `EVENT_MASK`/`EVENT_UNMASK`
/// made it whatever the guest writes there. The virtual IRQ follows the page at the exits that
/// recompute it: every `event` call, `CHANNEL_NOTIFY` and a WFI that traps. While it is raised
/// a WFI does not wait (nor trap) and unmasked IRQs are taken again: after acknowledging in the
/// page, a guest makes one of those calls before it waits or unmasks IRQs (`EVENT_ACK` of the
/// event does). Errors: none. Live since 1.5.
pub const EVENT_SHARED_ACK: u32 = vendor_id(0x45);
/// `EVENT_DEVICE_ACK` (`0xC600_0046`): no arguments. The VM has handled its device's interrupt
/// (for virtio-pci: it read the ISR status, which lowers the line): the device event's pending
/// bit is cleared, as by `EVENT_ACK`, and the interrupt, which the hypervisor masked when it
/// took it, is enabled again. A level interrupt still asserted then raises the event again;
/// until this call it raises nothing more. Errors: `DENIED` (the VM owns no device). Live since
/// 1.6.
pub const EVENT_DEVICE_ACK: u32 = vendor_id(0x46);
/// `EVENT_DEVICE_FAULTS` (`0xC600_0047`): no arguments. Result: x1 = how many of the device's
/// DMAs the SMMU stopped in this life of the VM (one for each run of faults at nearby addresses
/// from one request), x2 = the input address (IPA) of the last one (0: none). The device itself
/// may still report such a request as done: this is how the VM learns it failed. Errors:
/// `DENIED` (the VM owns no device). Live since 1.6.
pub const EVENT_DEVICE_FAULTS: u32 = vendor_id(0x47);

/// Events per VM; event numbers are `0..EVENT_COUNT`.
pub const EVENT_COUNT: u32 = 256;
/// "No event": the value of an unbound event field in the boot info.
pub const EVENT_NONE: u32 = u32::MAX;

/// What an event is bound to. On the wire: x1 = kind (0 timer, 1 console input, 2 block
/// completion, 3 channel; since 1.6: 4 device interrupt, 5 device fault), x2 = index (the
/// channel number; 0 for the others).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventSource {
    /// The EL1 virtual timer (`CNTV`) firing.
    VirtualTimer,
    /// Console input waiting.
    ConsoleRx,
    /// Block requests completed.
    BlockCompletion,
    /// The peer notified a channel.
    Channel {
        /// The channel number.
        channel: u32,
    },
    /// The VM's PCI device raised its interrupt (since 1.6; `DENIED` without a device). The
    /// event is also in the boot info (`DeviceInfo::event`); [`EVENT_DEVICE_ACK`] ends it.
    DeviceInterrupt,
    /// The SMMU stopped a DMA of the VM's device (since 1.6; `DENIED` without a device):
    /// [`EVENT_DEVICE_FAULTS`] says how many and where.
    DeviceFault,
}

impl EventSource {
    /// The (kind, index) registers.
    pub fn to_regs(self) -> [u64; 2] {
        match self {
            EventSource::VirtualTimer => [0, 0],
            EventSource::ConsoleRx => [1, 0],
            EventSource::BlockCompletion => [2, 0],
            EventSource::Channel { channel } => [3, channel.into()],
            EventSource::DeviceInterrupt => [4, 0],
            EventSource::DeviceFault => [5, 0],
        }
    }

    /// Decodes (kind, index); `INVALID_PARAMETERS` for an unknown kind, a non-zero index where
    /// none is taken, or an index above 32 bits.
    pub fn from_regs(kind: u64, index: u64) -> Result<EventSource, Error> {
        match (kind, index) {
            (0, 0) => Ok(EventSource::VirtualTimer),
            (1, 0) => Ok(EventSource::ConsoleRx),
            (2, 0) => Ok(EventSource::BlockCompletion),
            (3, i) => Ok(EventSource::Channel {
                channel: u32::try_from(i).map_err(|_| Error::InvalidParameters)?,
            }),
            (4, 0) => Ok(EventSource::DeviceInterrupt),
            (5, 0) => Ok(EventSource::DeviceFault),
            _ => Err(Error::InvalidParameters),
        }
    }
}

/// Decodes an event-number register: `INVALID_PARAMETERS` unless below [`EVENT_COUNT`].
pub fn decode_event(x: u64) -> Result<u32, Error> {
    match u32::try_from(x) {
        Ok(e) if e < EVENT_COUNT => Ok(e),
        _ => Err(Error::InvalidParameters),
    }
}
