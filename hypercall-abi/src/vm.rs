//! The `vm` family (`0xC600_001n`): exit, yield, info. Live since 1.0.

use crate::abi::vendor_id;

/// `VM_EXIT` (`0xC600_0010`): x1 = exit status (0 = success). Ends the calling VM; returns only
/// if refused (then x0 = an error). Live since 1.0.
pub const VM_EXIT: u32 = vendor_id(0x10);
/// `VM_YIELD` (`0xC600_0011`): gives the physical CPU to the next runnable vCPU. Result: none.
/// Never fails. Live since 1.0.
pub const VM_YIELD: u32 = vendor_id(0x11);
/// `VM_INFO` (`0xC600_0012`): result [`VmInfo`] in x1..x3. Never fails. Live since 1.0.
pub const VM_INFO: u32 = vendor_id(0x12);

/// The result of `VM_INFO`: x1 = `vm_index`, x2 = `vcpu_count`, x3 = `mem_available_bytes`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct VmInfo {
    /// This VM's index in the manifest (0-based).
    pub vm_index: u32,
    /// How many vCPUs this VM has.
    pub vcpu_count: u32,
    /// Bytes of memory quota not yet used (quota minus what is mapped).
    pub mem_available_bytes: u64,
}

impl VmInfo {
    /// The result registers x1..x3.
    pub fn to_values(self) -> [u64; 3] {
        [
            self.vm_index.into(),
            self.vcpu_count.into(),
            self.mem_available_bytes,
        ]
    }

    /// Reads x1..x3 (the u32 fields from the low 32 bits).
    pub fn from_values(v: [u64; 3]) -> VmInfo {
        VmInfo {
            vm_index: v[0] as u32,
            vcpu_count: v[1] as u32,
            mem_available_bytes: v[2],
        }
    }
}
