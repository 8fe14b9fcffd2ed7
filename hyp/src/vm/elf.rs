//! The guest image rules live in `manifest::elf`, shared with `pvpack`, so that an image the
//! loader would refuse at boot is refused at pack time already; the loader uses them from here.

// Only the bare-metal loader (vm/build.rs) uses them; host builds compile this file too.
#[cfg_attr(not(target_os = "none"), allow(unused_imports))]
pub use manifest::elf::{ElfError, parse};

// The IPA space `pvpack` checks images against is the one the hyp's stage 2 gives a guest.
const _: () = assert!(manifest::elf::GUEST_IPA_LIMIT == super::mem::IPA_LIMIT);
