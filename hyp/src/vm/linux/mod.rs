//! A VM of kind `linux`: an unmodified kernel on a small virtual platform (`vdev`), the same
//! on every board. What the hyp emulates of its CPU is here (`sysreg`), and its platform's
//! state and hooks (`platform`: the vGIC, the timer, the UART's line); its RAM, Image, initrd
//! and device tree are placed by `vm::build`.

#[cfg(target_os = "none")]
mod platform;
pub mod sysreg;

#[cfg(target_os = "none")]
pub use platform::Platform;
