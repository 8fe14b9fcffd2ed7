//! Virtual machines: what a VM is, how it is built from its image, and how its vCPU is
//! scheduled and its exits handled.

pub mod block;
#[cfg(target_os = "none")]
pub mod build;
pub mod channel;
pub mod console;
pub mod crash;
pub mod device;
pub mod elf;
pub mod event;
#[cfg(target_os = "none")]
pub mod exit;
pub mod idregs;
pub mod ids;
pub mod linux;
pub mod lock;
pub mod mem;
#[cfg(target_os = "none")]
pub mod monitor;
pub mod run;
#[cfg(target_os = "none")]
pub mod sched;
pub mod stats;

#[cfg(target_os = "none")]
pub use build::{Vm, VmState};
