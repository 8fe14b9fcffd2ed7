//! The event page. Live since 1.2.

use crate::event::EVENT_COUNT;

use super::assert_layout;

/// The per-VM page of event state, mapped into the VM at `BootInfo::event_page_ipa`.
/// Event `e` is bit `e % 64` of word `e / 64`. The hypervisor sets `pending` bits (atomically);
/// the guest reads them and clears one with `EVENT_ACK` or, after `EVENT_SHARED_ACK` (since
/// 1.5; the page is then writable), atomically itself. `masked` mirrors `EVENT_MASK` /
/// `EVENT_UNMASK` and is written by the hypervisor only (what a guest writes there is ignored).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EventPage {
    /// Pending events.
    pub pending: [u64; 4],
    /// Masked events.
    pub masked: [u64; 4],
    /// Zero; room for later minors.
    pub reserved: [u64; 8],
}

const _: () = assert!(EVENT_COUNT as usize == 4 * 64);
assert_layout!(EventPage, size = 128, { pending = 0, masked = 32, reserved = 64 });
