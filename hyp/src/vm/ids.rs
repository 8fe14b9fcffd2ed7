//! The ids of the run, each its own type so that one can never be passed for another: a VM's
//! place in the manifest ([`VmIndex`]), a vCPU's place in its VM ([`VcpuIndex`]) and a VM's
//! stage-2 tag ([`Vmid`]).

#![forbid(unsafe_code)]

use core::fmt;

/// A VM's place in the manifest: its slot in the scheduler's table, the owner of its frames
/// and what the guest reads as `vm_index`. A VM refused at boot keeps its number (its slot
/// stays empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmIndex(u16);

impl VmIndex {
    /// The VM at place `index` of the manifest (at most `manifest::MAX_VMS`, which fits).
    pub const fn new(index: usize) -> Self {
        Self(index as u16)
    }

    /// As an index into a table of VMs.
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// As the owner number of its frames (`mm::owner::Owner::Vm`).
    pub const fn owner(self) -> u16 {
        self.0
    }
}

impl fmt::Display for VmIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A vCPU's place in its VM: its MPIDR's Aff0, its slot in the VM's vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VcpuIndex(u8);

impl VcpuIndex {
    /// vCPU `index` (below `MAX_VCPUS`, which fits).
    pub const fn new(index: usize) -> Self {
        Self(index as u8)
    }

    /// As an index into the VM's vCPUs.
    pub const fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for VcpuIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A VM's stage-2 VMID (VTTBR_EL2.VMID); 0 is never a VM's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vmid(u16);

impl Vmid {
    /// The VMID of the VM at `index`: one more than its index, so that no VM has VMID 0 and
    /// stale translations of "no VM" cannot match a guest.
    pub const fn of(index: VmIndex) -> Self {
        Self(index.0 + 1)
    }

    /// The VMID as VTTBR_EL2 holds it.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As u32, as most numbers the hyp prints: u16's Display is code of its own.
        u32::from(self.0).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_keeps_its_number_and_no_vm_has_vmid_0() {
        assert_eq!(VmIndex::new(63).get(), 63);
        assert_eq!(VmIndex::new(5).owner(), 5);
        assert_eq!(VcpuIndex::new(7).get(), 7);
        assert_eq!(Vmid::of(VmIndex::new(0)).get(), 1);
        assert_eq!(Vmid::of(VmIndex::new(63)).get(), 64);
        assert_eq!(alloc::format!("{}", Vmid::of(VmIndex::new(2))), "3");
    }
}
