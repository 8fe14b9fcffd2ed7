//! A VM of kind `linux`: an unmodified kernel on a small virtual platform (`vdev`), the same
//! on every board. What the hyp emulates of its CPU is here (`sysreg`); its RAM, Image, initrd
//! and device tree are placed by `vm::build`.

#[cfg_attr(
    target_os = "none",
    expect(
        dead_code,
        reason = "the Linux VM's exits use it (vgic and vdev::dt land next)"
    )
)]
pub mod sysreg;
