//! `fuzz seed=N count=N [trace=1]`: a seeded stream of hypercalls of every family, with edge
//! values for every argument, each answer checked against the ABI (see `oracle`), while the
//! VM's second vCPU rewrites the shared pages the hyp reads (the batch list, the console ring,
//! the block ring) under the calls. Needs exactly 2 vCPUs; a disk region and a channel widen
//! what it reaches.
//!
//! The calls come in windows of [`WINDOW`]; each window the second vCPU corrupts one page (or
//! none). Between windows it is paused, the console ring taken back, the sandbox pages whose
//! state the corruption made unknown queried again, and the invariants of the whole VM
//! checked: the guarded region's and the text's checksums, the boot-info page, the quota left.
//! Ends `fuzz: seed=N calls=N <family>=N ... errors=N corruptions=N ok` (exit 0), or on the
//! first broken invariant one line `fuzz: FAILED seed=N call #I NAME ...: expected ...`
//! (exit 1). `trace=1` prints every call before it is made (and leaves the console ring
//! alone), to find the call a hyp bug ends the VM in.

pub mod draw;
pub mod oracle;
pub mod rng;

#[cfg(target_os = "none")]
mod run;

#[cfg(target_os = "none")]
pub use run::{run, secondary};

#[cfg(test)]
mod tests;
