//! Memory layouts shared between the hypervisor and guests: `#[repr(C)]`, fixed-width,
//! little-endian, with compile-time size and offset assertions.
//!
//! [`BootInfo`] is live (frozen since 1.0), the batch list since 1.1, the event page and ring
//! header since 1.2, the block slot since 1.3, the channel slot since 1.4 (each live with the
//! calls that use it); since 1.5 the guest may clear the event page's pending bits itself.

mod batch;
mod boot_info;
mod event_page;
mod ring;

pub use batch::{BatchEntry, BatchList, BatchOp};
pub use boot_info::{BOOT_INFO_MAGIC, BootInfo, DeviceInfo};
pub use event_page::EventPage;
pub use ring::{BlockDesc, ChannelDesc, RING_MAGIC, RingHeader};

/// Asserts at compile time that a `#[repr(C)]` type has the given size and field offsets.
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr, { $($field:ident = $off:expr),* $(,)? }) => {
        const _: () = {
            assert!(core::mem::size_of::<$ty>() == $size);
            $(assert!(core::mem::offset_of!($ty, $field) == $off);)*
        };
    };
}
pub(crate) use assert_layout;
