//! Building a VM: a VMID, a stage-2 table, its image loaded into fresh zeroed frames, and a
//! boot-info page; its one vCPU enters at the image's entry point at EL1h, x0 = boot info.

use super::console::LineBuffer;
use super::elf;
use super::memory::{GuestMemory, IPA_LIMIT};
use crate::arch::Cpu;
use crate::arch::aarch64::context::{El1State, FpSimd, GuestRegs};
use crate::mm::PAGE_SIZE;
use alloc::string::String;
use hypercall_abi::{BootInfo, MemPerms, Version};
use manifest::VmSpec;

/// A vCPU's full state while it is not running.
pub struct Vcpu {
    pub regs: GuestRegs,
    /// This vCPU's HCR_EL2 (DC and TVM clear once its MMU is on).
    pub hcr: u64,
    pub el1: El1State,
    pub fp: FpSimd,
}

/// Where a VM is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    Runnable,
    /// Ended by itself with this status.
    Exited(u64),
    /// Ended by the hyp (a fault it was not allowed to survive).
    Killed,
}

/// A virtual machine.
pub struct Vm {
    pub name: String,
    pub index: usize,
    pub vmid: u16,
    pub spec: VmSpec,
    pub image: &'static [u8],
    pub memory: GuestMemory<Cpu>,
    pub vcpu: Vcpu,
    pub state: VmState,
    pub console: LineBuffer,
    /// How many times the guest restarted itself (PSCI SYSTEM_RESET).
    pub restarts: u64,
}

/// Why a VM could not be built.
#[derive(Debug)]
pub enum BuildError {
    Image(elf::ElfError),
    Memory(&'static str, hypercall_abi::Error),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(e) => write!(f, "bad image: {e}"),
            Self::Memory(what, e) => write!(f, "cannot map its {what}: {e}"),
        }
    }
}

/// SPSR for entering EL1h with all of DAIF masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;

impl Vm {
    /// Builds VM `index` from its manifest entry and image; `restarts` counts earlier lives
    /// (the guest finds it in x1 at entry).
    pub fn build(
        index: usize,
        vmid: u16,
        spec: VmSpec,
        image: &'static [u8],
        restarts: u64,
    ) -> Result<Self, BuildError> {
        let parsed = elf::parse(image, IPA_LIMIT).map_err(BuildError::Image)?;
        let mut memory = GuestMemory::new(index as u16, vmid, spec.memory_bytes);
        let mut image_start = u64::MAX;
        let mut image_end = 0;
        for seg in parsed.segments() {
            let first = seg.vaddr & !(PAGE_SIZE - 1);
            let end = (seg.vaddr + seg.mem_size).next_multiple_of(PAGE_SIZE);
            let mut perms = MemPerms::READ;
            perms.set(MemPerms::WRITE, seg.write);
            perms.set(MemPerms::EXEC, seg.exec);
            memory
                .map_pinned(first, (end - first) / PAGE_SIZE, perms)
                .map_err(|e| BuildError::Memory("image", e))?;
            memory
                .write(seg.vaddr, seg.data)
                .map_err(|e| BuildError::Memory("image", e))?;
            image_start = image_start.min(first);
            image_end = image_end.max(end);
        }

        let boot_info_ipa = image_end;
        memory
            .map_pinned(boot_info_ipa, 1, MemPerms::READ)
            .map_err(|e| BuildError::Memory("boot-info page", e))?;
        let info = boot_info(index, &spec, image_start, image_end);
        memory
            .write(boot_info_ipa, boot_info_bytes(&info))
            .map_err(|e| BuildError::Memory("boot-info page", e))?;

        let mut regs = GuestRegs::default();
        regs.x[0] = boot_info_ipa;
        regs.x[1] = restarts;
        regs.elr = parsed.entry;
        regs.spsr = SPSR_EL1H_MASKED;
        Ok(Self {
            name: spec.name.clone(),
            index,
            vmid,
            spec,
            image,
            memory,
            vcpu: Vcpu {
                regs,
                hcr: crate::arch::aarch64::cpu::hcr(),
                el1: El1State::at_reset(0),
                fp: FpSimd::default(),
            },
            state: VmState::Runnable,
            console: LineBuffer::default(),
            restarts,
        })
    }

    /// This VM's VTTBR_EL2 value.
    pub fn vttbr(&self) -> u64 {
        self.memory.vttbr()
    }

    /// Shows the VM's console bytes, line by line, prefixed with its name.
    pub fn console_output(&mut self, bytes: &[u8]) {
        let name = &self.name;
        self.console
            .push(bytes, |line| crate::dev::console::write_vm_line(name, line));
    }

    /// Shows a partial last line when the VM ends.
    pub fn flush_console(&mut self) {
        let name = &self.name;
        self.console
            .flush(|line| crate::dev::console::write_vm_line(name, line));
    }
}

fn boot_info(index: usize, spec: &VmSpec, image_start: u64, image_end: u64) -> BootInfo {
    let mut info = BootInfo::new(Version::CURRENT);
    info.vm_index = index as u32;
    info.vcpu_count = 1;
    info.mem_quota_bytes = spec.memory_bytes;
    info.image_start = image_start;
    info.image_end = image_end;
    info.ipa_bits = super::memory::IPA_BITS;
    info.set_name(&spec.name);
    info.set_cmdline(&spec.cmdline);
    info
}

fn boot_info_bytes(info: &BootInfo) -> &[u8] {
    // SAFETY: BootInfo is #[repr(C)] of fixed-width integers and byte arrays with no padding
    // (the ABI crate asserts its size and offsets), so every byte is initialised.
    unsafe {
        core::slice::from_raw_parts(
            (info as *const BootInfo).cast(),
            core::mem::size_of::<BootInfo>(),
        )
    }
}

impl crate::hypercall::GuestVm for Vm {
    fn memory(&self) -> &GuestMemory<Cpu> {
        &self.memory
    }

    fn memory_mut(&mut self) -> &mut GuestMemory<Cpu> {
        &mut self.memory
    }

    fn console_output(&mut self, bytes: &[u8]) {
        Vm::console_output(self, bytes);
    }

    fn vcpu_mpidr(&self) -> u64 {
        self.vcpu.el1.vmpidr
    }

    fn info(&self) -> hypercall_abi::VmInfo {
        hypercall_abi::VmInfo {
            vm_index: self.index as u32,
            vcpu_count: 1,
            mem_available_bytes: self.memory.quota_left_bytes(),
        }
    }
}
