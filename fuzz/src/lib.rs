//! What the fuzz targets share: the hyp's host-testable parsers, and slice checks.
//!
//! The hyp is a bare-metal binary crate with no library target. Its parsers of outside input
//! that this crate fuzzes are self-contained files (they use only `core`), so they are compiled
//! here as they are, by path: the hyp needs no change, and the fuzz build breaks as soon as one
//! of them grows a dependency on the rest of the hyp (then give the hyp a library target).

// The guest image rules the hyp's loader uses live in `manifest`, shared with pvpack.
pub use manifest::elf;
#[path = "../../hyp/src/arch/aarch64/esr.rs"]
pub mod esr;
#[path = "../../hyp/src/disk/virtqueue.rs"]
pub mod virtqueue;

/// Whether `part` lies inside `whole` (the same memory, not merely equal bytes).
pub fn is_within(whole: &[u8], part: &[u8]) -> bool {
    let whole = whole.as_ptr_range();
    let part = part.as_ptr_range();
    whole.start <= part.start && part.end <= whole.end
}

/// Whether the string `part` lies inside `whole`.
pub fn str_within(whole: &[u8], part: &str) -> bool {
    // The empty string may be a literal (`""` for an absent model) rather than a slice of the blob.
    part.is_empty() || is_within(whole, part.as_bytes())
}
