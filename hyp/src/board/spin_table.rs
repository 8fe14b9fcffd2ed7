//! Spin-table secondaries (the Raspberry Pi 4's firmware stub, Linux's booting.rst): each
//! secondary CPU polls its `cpu-release-addr` with WFE and jumps to the address written there,
//! at EL2 with its MMU and caches off. The hyp writes the physical address of its secondary
//! entry (entry.S `secondary_entry`) there.

use devtree::{Cpu, EnableMethod, Region};

unsafe extern "C" {
    /// Stores `entry_pa` at `release_addr`, cleans it to the point of coherency and SEVs.
    fn spin_table_release(release_addr: u64, entry_pa: u64);
}

/// Why a spin-table CPU was left where the firmware holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReleased {
    /// Its release address is not in RAM the hyp has identity-mapped.
    ReleaseAddrOutsideRam(u64),
    /// Its release address is not 8-byte aligned.
    ReleaseAddrUnaligned(u64),
}

impl core::fmt::Display for NotReleased {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ReleaseAddrOutsideRam(at) => {
                write!(f, "its release address {at:#x} is outside RAM")
            }
            Self::ReleaseAddrUnaligned(at) => {
                write!(f, "its release address {at:#x} is not 8-byte aligned")
            }
        }
    }
}

/// Releases one spin-table CPU to `entry_pa`; false if the CPU is not a spin-table one.
pub fn release(cpu: &Cpu, ram: &[Region], entry_pa: u64) -> Result<bool, NotReleased> {
    let EnableMethod::SpinTable { release_addr } = cpu.enable else {
        return Ok(false);
    };
    if release_addr % 8 != 0 {
        return Err(NotReleased::ReleaseAddrUnaligned(release_addr));
    }
    if !ram
        .iter()
        .any(|r| r.base <= release_addr && release_addr + 8 <= r.end())
    {
        return Err(NotReleased::ReleaseAddrOutsideRam(release_addr));
    }
    // SAFETY: release_addr is an aligned word of RAM that take_over_mmu identity-mapped, and the
    // tree reserves it for this CPU's spin table (the Pi's /memreserve/ 0..0x1000), so nothing
    // else lives there; the CPU then runs the hyp's secondary entry.
    unsafe { spin_table_release(release_addr, entry_pa) };
    Ok(true)
}
