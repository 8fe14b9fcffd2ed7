//! What a manifest says: the VMs to start and the channels between them.

use alloc::string::String;
use alloc::vec::Vec;

/// Size of a stage-2 page (4 KiB granule); memory quotas are multiples of it.
pub const PAGE_SIZE: u64 = 4096;
/// Longest VM or channel name, in bytes.
pub const MAX_NAME_LEN: usize = 31;
/// The name no VM may take: console lines of the hypervisor itself carry it.
pub const RESERVED_NAME: &str = "hyp";
/// Most vCPUs one VM may have.
pub const MAX_VCPUS: u32 = 8;
/// Longest command line, in bytes (it must fit the boot-info page's field).
pub const MAX_CMDLINE_LEN: usize = 255;
/// Largest memory quota of one VM: half of the 39-bit IPA space.
pub const MAX_MEMORY_BYTES: u64 = 1 << 38;
/// Most VMs one manifest may start.
pub const MAX_VMS: usize = 64;
/// Most channels one manifest may declare.
pub const MAX_CHANNELS: usize = 64;
/// Most pages one channel may share.
pub const MAX_CHANNEL_PAGES: u32 = 256;
/// Longest image name inside the archive, in bytes.
pub const MAX_IMAGE_LEN: usize = 255;
/// The unit of disk regions: a sector.
pub const DISK_SECTOR_SIZE: u64 = 512;
/// The end of the last disk region a manifest may give (1 TiB): offset + size at most this.
pub const MAX_DISK_BYTES: u64 = 1 << 40;
/// Physical CPUs a `cpus` pin may name: indices `0..MAX_CPUS`.
pub const MAX_CPUS: u32 = 8;
/// The command line a PV VM gets when the TOML gives none.
pub const DEFAULT_CMDLINE: &str = "selftest";

/// A whole manifest: every VM to start, in order, and the channels between them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The VMs, in the order the manifest lists them (the hyp starts them in this order).
    pub vms: Vec<VmSpec>,
    /// Shared-memory channels, each between two of the VMs.
    pub channels: Vec<ChannelSpec>,
}

/// One VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    /// Unique name, `[A-Za-z0-9_-]{1,31}`, not `hyp`; prefixes the VM's console lines.
    pub name: String,
    /// What the VM runs: a paravirtual guest or an unmodified Linux kernel.
    pub kind: VmKind,
    /// The guest image: an ELF (PV) or a raw arm64 Image (Linux, [`crate::linux_image`]). In
    /// the archive's compact manifest: the member's name (for example `images/pv-guest.elf`).
    /// From `parse_toml` (feature `host`): the path the TOML gave, relative to the manifest's
    /// directory, or empty for the default (the built pv-guest; PV VMs only).
    pub image: String,
    /// A Linux VM's initramfs, if it has one, named as `image` is; always `None` for PV.
    pub initrd: Option<String>,
    /// Memory quota in bytes: a positive multiple of [`PAGE_SIZE`].
    pub memory_bytes: u64,
    /// Number of vCPUs, `1..=MAX_VCPUS`.
    pub vcpus: u32,
    /// PV: what the guest runs, program name and arguments (TOML key `cmdline`). Linux: the
    /// kernel command line, `/chosen/bootargs` (TOML key `bootargs`). Printable ASCII, at most
    /// 255 bytes.
    pub cmdline: String,
    /// The VM's console. A Linux VM's is always [`ConsoleKind::EmulatedPl011`].
    pub console: ConsoleKind,
    /// What a stage-2 fault outside the VM's mappings does.
    pub on_fault: FaultPolicy,
    /// The VM's part of the machine's disk, if it has one (PV VMs only).
    pub disk: Option<DiskRegion>,
    /// The physical CPUs this VM's vCPUs may run on; `None`: any.
    pub cpus: Option<CpuSet>,
}

/// A non-empty set of physical CPUs, `0..MAX_CPUS` (bit i = CPU i).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuSet(u8);

impl CpuSet {
    /// The set of these CPUs, or the rule they break (empty, an index of [`MAX_CPUS`] or more,
    /// an index given twice).
    pub fn from_indices(
        indices: impl IntoIterator<Item = i64>,
    ) -> Result<Self, crate::validate::Problem> {
        use crate::validate::Problem;
        let mut bits = 0u8;
        for i in indices {
            let bit = match u32::try_from(i) {
                Ok(i) if i < MAX_CPUS => 1u8 << i,
                _ => return Err(Problem::CpuOutOfRange(i)),
            };
            if bits & bit != 0 {
                return Err(Problem::CpuDuplicate(i));
            }
            bits |= bit;
        }
        if bits == 0 {
            return Err(Problem::CpusEmpty);
        }
        Ok(Self(bits))
    }

    /// Whether CPU `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < MAX_CPUS as usize && self.0 & (1 << cpu) != 0
    }

    /// The CPUs, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_CPUS as usize).filter(|&c| self.contains(c))
    }

    /// The bit mask (bit i = CPU i).
    pub fn bits(&self) -> u8 {
        self.0
    }
}

/// A VM's part of the disk: bytes `offset .. offset + size` of the disk image (QEMU `virt`)
/// or the RAM disk (Raspberry Pi 4). The VM sees it as a whole disk starting at its sector 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DiskRegion {
    /// Where the region starts on the disk, in bytes: a multiple of [`DISK_SECTOR_SIZE`].
    pub offset: u64,
    /// Its length in bytes: a positive multiple of [`DISK_SECTOR_SIZE`].
    pub size: u64,
}

impl DiskRegion {
    /// The first byte after the region (saturating).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.size)
    }

    /// Whether the two regions share a byte.
    pub fn overlaps(&self, other: &DiskRegion) -> bool {
        self.offset < other.end() && other.offset < self.end()
    }
}

/// A shared-memory channel between two VMs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Unique among channels, same rules as a VM name.
    pub name: String,
    /// One end: a VM's name.
    pub a: String,
    /// The other end: a different VM's name.
    pub b: String,
    /// Number of shared pages, `1..=MAX_CHANNEL_PAGES`.
    pub pages: u32,
}

/// What a VM runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "host",
    derive(serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum VmKind {
    /// A paravirtual guest, written for this hypervisor's hypercalls (`"pv"`).
    #[default]
    Pv,
    /// An unmodified Linux kernel booted by the arm64 boot protocol (`"linux"`): all its
    /// memory mapped at boot, a device tree, a virtual GIC and an emulated UART.
    Linux,
}

impl VmKind {
    /// The spelling used in TOML and in the compact form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pv => "pv",
            Self::Linux => "linux",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "pv" => Some(Self::Pv),
            "linux" => Some(Self::Linux),
            _ => None,
        }
    }
}

/// How a VM's console reaches the UART.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "host",
    derive(serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum ConsoleKind {
    /// Paravirtual: a ring plus a doorbell hypercall (`"pv"`).
    #[default]
    Pv,
    /// An emulated PL011 the guest drives by trapped MMIO (`"emulated-pl011"`).
    EmulatedPl011,
}

/// What the hyp does when a VM touches an IPA it has no mapping for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "host",
    derive(serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum FaultPolicy {
    /// End the VM (`"kill"`).
    #[default]
    Kill,
    /// Inject a synchronous abort the guest can handle (`"inject"`).
    Inject,
}

impl ConsoleKind {
    /// The spelling used in TOML and in the compact form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pv => "pv",
            Self::EmulatedPl011 => "emulated-pl011",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "pv" => Some(Self::Pv),
            "emulated-pl011" => Some(Self::EmulatedPl011),
            _ => None,
        }
    }
}

impl FaultPolicy {
    /// The spelling used in TOML and in the compact form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Inject => "inject",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "kill" => Some(Self::Kill),
            "inject" => Some(Self::Inject),
            _ => None,
        }
    }
}

impl VmSpec {
    /// The pages the hyp maps for this PV VM before it runs and charges to its quota, beside
    /// its image: the boot-info page, the event page, the console ring (`pv` console) and the
    /// block ring (with `disk`). The image's own pages are [`crate::elf::Image::pages`].
    /// A Linux VM: none; its kernel, initrd and device tree are in its memory, all of which is
    /// mapped at boot ([`crate::linux_image::linux_layout`]).
    pub fn hyp_pages(&self) -> u64 {
        match self.kind {
            VmKind::Pv => {
                2 + u64::from(self.console == ConsoleKind::Pv) + u64::from(self.disk.is_some())
            }
            VmKind::Linux => 0,
        }
    }
}

impl Manifest {
    /// The VM with this name, if any.
    pub fn vm(&self, name: &str) -> Option<&VmSpec> {
        self.vms.iter().find(|vm| vm.name == name)
    }

    /// Sum of all VM quotas and channel pages, in bytes (saturating).
    pub fn total_bytes(&self) -> u64 {
        let vms = self.vms.iter().map(|vm| vm.memory_bytes);
        let channels = self.channels.iter().map(|c| u64::from(c.pages) * PAGE_SIZE);
        vms.chain(channels).fold(0, u64::saturating_add)
    }
}
