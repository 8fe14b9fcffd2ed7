//! Where pv-guest puts what in its IPA space. The image and the boot-info page are where the
//! hypervisor loaded them; everything else is asked for with `mem.map`, in these windows (all
//! above the image and below 2^39, the IPA size).

/// 1 GiB: the granule of the stage-1 map's big blocks.
pub const GIB: u64 = 1 << 30;

/// Below this, stage 1 maps Device memory (where a board has its MMIO); above, Normal memory.
pub const DEVICE_END: u64 = GIB;

/// The heap grows upward from here, a chunk per `mem.map`.
pub const HEAP_BASE: u64 = 0x1_0000_0000;
/// The heap's limit.
pub const HEAP_END: u64 = 0x2_0000_0000;

/// Frames (page tables, program buffers) come from here.
pub const FRAMES_BASE: u64 = 0x2_0000_0000;
/// The frame window's limit.
pub const FRAMES_END: u64 = 0x3_0000_0000;

/// 2 MiB that stage 1 maps page by page, for programs that change one page's stage-1
/// attributes while the MMU is on (without breaking up a live block mapping). Nothing is
/// mapped here at stage 2 unless a program asks.
pub const SCRATCH_BASE: u64 = 0x3_0000_0000;
/// Pages in the scratch window.
pub const SCRATCH_PAGES: u64 = 512;

/// The IPA (and VA) space's size: 39 bits, one level-1 root table.
pub const IPA_LIMIT: u64 = 1 << 39;
