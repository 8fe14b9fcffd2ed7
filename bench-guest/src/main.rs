//! A bare-metal guest booted as a Linux VM (`kind = "linux"`: the arm64 Image protocol, the
//! vGIC, the vtimer, PSCI) that times what that platform costs a guest, the way the peers'
//! bare guests were timed (../shared/FACTS.md): a trapped GIC distributor read, a virtual IPI
//! from one vCPU's SGI write to the other vCPU's handler, and a virtual timer interrupt from
//! expiry to the handler. Each measure: [`BATCHES`] batches of [`OPS`] operations timed with
//! CNTVCT_EL0, reported as `bench: name=... unit=instructions iterations=N min=M median=D`
//! lines (nanoseconds of the virtual clock: instructions under QEMU `-icount shift=0`), which
//! `tools/benchreport` reads. GICv3 (SGIs through ICC_SGI1R_EL1, acknowledged through
//! ICC_IAR1_EL1 / ICC_EOIR1_EL1) or GICv2 (GICD_SGIR, the GICC frame), as GICD_PIDR2 says.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod guest;

#[cfg(not(target_os = "none"))]
fn main() {}
