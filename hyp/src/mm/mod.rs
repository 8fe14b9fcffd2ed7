//! Physical memory: which RAM is free, the frame allocator over it, and the hyp's heap.

#[cfg(target_os = "none")]
pub mod frames;
pub mod owner;
pub mod pool;
pub mod regions;

pub use crate::addr::PAGE_SIZE;
