//! Spin-table secondaries (the Raspberry Pi 4's firmware stub, Linux's booting.rst): each
//! secondary CPU polls its `cpu-release-addr` with WFE and jumps to the address written there.
//! Until the hyp runs guests on them, it moves them off the firmware's stub into its own
//! WFI loop (`secondary_park` in entry.S), so they neither run whatever lands in the first
//! page nor burn instructions polling.

use devtree::{Cpu, EnableMethod, Region};

unsafe extern "C" {
    /// The parking loop; runs at its physical address with the MMU off.
    static secondary_park: u8;
    /// Stores `entry_pa` at `release_addr`, cleans it to the point of coherency and SEVs.
    fn spin_table_release(release_addr: u64, entry_pa: u64);
}

/// Why a spin-table CPU was left where the firmware holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotParked {
    /// Its release address is not in RAM the hyp has identity-mapped.
    ReleaseAddrOutsideRam(u64),
    /// Its release address is not 8-byte aligned.
    ReleaseAddrUnaligned(u64),
}

/// Parks one spin-table CPU in the hyp's WFI loop. `image_offset` is the hyp's link address
/// minus its load address, so the loop's physical address is its link address minus it.
pub fn park(cpu: &Cpu, ram: &[Region], image_offset: usize) -> Result<bool, NotParked> {
    let EnableMethod::SpinTable { release_addr } = cpu.enable else {
        return Ok(false);
    };
    if release_addr % 8 != 0 {
        return Err(NotParked::ReleaseAddrUnaligned(release_addr));
    }
    if !ram
        .iter()
        .any(|r| r.base <= release_addr && release_addr + 8 <= r.end())
    {
        return Err(NotParked::ReleaseAddrOutsideRam(release_addr));
    }
    // SAFETY: only the symbol's address is taken.
    let park_va = unsafe { &secondary_park as *const u8 as usize };
    let park_pa = (park_va - image_offset) as u64;
    // SAFETY: release_addr is an aligned word of RAM that take_over_mmu identity-mapped, and the
    // tree reserves it for this CPU's spin table (the Pi's /memreserve/ 0..0x1000), so nothing
    // else lives there; the CPU then runs secondary_park, which needs no memory at all.
    unsafe { spin_table_release(release_addr, park_pa) };
    Ok(true)
}
