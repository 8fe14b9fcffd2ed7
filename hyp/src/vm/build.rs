//! Building a VM: a VMID, a stage-2 table, its image loaded into fresh zeroed frames, and a
//! boot-info page; vCPU 0 enters at the image's entry point at EL1h, x0 = boot info, and the
//! others (the manifest's `vcpus`) start Off until the guest starts them with PSCI CPU_ON.

use super::channel::ChannelEnd;
use super::console::ConsoleIo;
use super::console::LineBuffer;
use super::elf;
use super::event::{self, Events};
use super::ids::{VcpuIndex, VmIndex, Vmid};
use super::mem::{GuestMemory, IPA_LIMIT, Pin};
use super::sched::{self, Then};
use crate::arch::Cpu;
use crate::arch::aarch64::context::{El1State, FpSimd, GuestRegs};
use crate::arch::aarch64::cpu;
use crate::dev::gic;
use crate::mm::PAGE_SIZE;
use crate::vdev::pl011::{PL011_IPA, Pl011Emu};
use crate::vdev::vgic;
use alloc::string::String;
use alloc::vec::Vec;
use hypercall_abi::console::CONSOLE_RING_ENTRIES;
use hypercall_abi::layout::{EventPage, RingHeader};
use hypercall_abi::{BootInfo, MemPerms, Version};
use manifest::ConsoleKind;
use manifest::{VmKind, VmSpec};

/// A vCPU's full state while it is not running.
pub struct Vcpu {
    pub regs: GuestRegs,
    /// This vCPU's HCR_EL2 (DC and TVM clear once its MMU is on).
    pub hcr: u64,
    pub el1: El1State,
    pub fp: FpSimd,
    pub run: RunState,
}

impl Vcpu {
    /// vCPU `index` as it is powered on: at `entry` in EL1h with x0 = `x0`, x1 = `x1`, MMU off
    /// (HCR_EL2.DC and TVM set), timer off.
    pub fn fresh(index: usize, entry: u64, x0: u64, x1: u64, run: RunState) -> Self {
        let mut regs = GuestRegs::default();
        regs.x[0] = x0;
        regs.x[1] = x1;
        regs.elr = entry;
        regs.spsr = SPSR_EL1H_MASKED;
        Self {
            regs,
            hcr: (cpu::hcr() | cpu::HCR_DC | cpu::HCR_TVM) & !cpu::HCR_VI,
            el1: El1State::at_reset(index as u64),
            fp: FpSimd::default(),
            run,
        }
    }
}

/// Where a vCPU is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Powered off (not yet started by PSCI CPU_ON, or after CPU_OFF).
    Off,
    Runnable,
    /// Waiting for an event (WFI, PSCI CPU_SUSPEND): not scheduled until one is raised.
    Waiting,
}

/// Where a VM is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    /// Some vCPU is on (or waits).
    Alive,
    /// Ended by itself with this status.
    Exited(u64),
    /// Ended by the hyp (a fault it was not allowed to survive).
    Killed,
    /// Stopping on every CPU (`sched::begin_stop`), to become this once all have left it.
    Stopping(Then),
}

/// A virtual machine.
pub struct Vm {
    pub name: String,
    pub index: VmIndex,
    pub vmid: Vmid,
    pub spec: VmSpec,
    pub image: &'static [u8],
    pub memory: GuestMemory<Cpu>,
    /// Its vCPUs (the manifest's count, fixed for the VM's life: a CPU's PerCpu points at
    /// their register blocks, so the Vec never grows). Which CPU runs each, and its requests:
    /// `sched::vcpu`.
    pub vcpus: Vec<Vcpu>,
    pub state: VmState,
    pub console: LineBuffer,
    /// How many times the guest restarted itself (PSCI SYSTEM_RESET).
    pub restarts: u64,
    /// Its events, mirrored into the read-only event page at `event_page_ipa`.
    pub events: Events,
    pub event_page_ipa: u64,
    /// Its console ring and input queue.
    pub console_io: ConsoleIo,
    /// The emulated UART of an `emulated-pl011` VM, and of a Linux VM.
    pub pl011: Option<Pl011Emu>,
    /// The virtual platform of a Linux VM (`kind = "linux"`); None for a PV VM.
    pub linux: Option<super::linux::Platform>,
    /// A Linux VM's initramfs (empty without one), written into its RAM at every start.
    pub initrd: &'static [u8],
    /// Its block ring and disk region, if the manifest gives it one.
    pub block_io: Option<super::block::BlockIo>,
    /// Its ends of the channels it takes part in, numbered as the guest sees them.
    pub channels: Vec<ChannelEnd>,
    pub boot_info_ipa: u64,
    /// Whether one of its vCPUs has been loaded on a CPU yet (for the log line of a pinned VM).
    pub has_run: bool,
    /// The ABI version its first ABI_VERSION of this life stated (VENDOR_HYP_REVISION's).
    pub stated_version: Option<Version>,
    /// What it made the hyp do, over all its lives (a restart keeps them).
    pub stats: super::stats::VmStats,
    /// When its current life began (the counter; the console's `vms` shows its uptime).
    pub started: u64,
}

/// Why a VM could not be built.
#[derive(Debug)]
pub enum BuildError {
    Image(elf::ElfError),
    /// A Linux VM's Image, initrd or device tree does not fit (the archive is user input).
    Linux(alloc::string::String),
    Memory(&'static str, hypercall_abi::Error),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(e) => write!(f, "bad image: {e}"),
            Self::Linux(why) => f.write_str(why),
            Self::Memory(what, e) => write!(f, "cannot map its {what}: {e}"),
        }
    }
}

/// CNTV_CTL_EL0.IMASK: the virtual timer's interrupt is masked.
pub const CNTV_CTL_IMASK: u64 = 1 << 1;

/// SPSR for entering EL1h with all of DAIF masked.
const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// What loading a VM's image into its memory gives, beside the memory.
struct Loaded {
    /// The image's entry point.
    entry: u64,
    /// vCPU 0's x0 at entry: the boot info (PV) or the device tree (Linux).
    x0: u64,
    linux: Option<super::linux::Platform>,
    events: Events,
    event_page_ipa: u64,
    console_io: ConsoleIo,
    pl011: Option<Pl011Emu>,
    block_io: Option<super::block::BlockIo>,
    boot_info_ipa: u64,
}

/// Maps and fills what VM `index` starts with into `memory` (empty), by its kind.
fn load_any(
    memory: &mut GuestMemory<Cpu>,
    index: VmIndex,
    spec: &VmSpec,
    image: &[u8],
    initrd: &[u8],
    restarts: u64,
) -> Result<Loaded, BuildError> {
    match spec.kind {
        VmKind::Pv => load(memory, index, spec, image),
        VmKind::Linux => load_linux(memory, spec, image, initrd, restarts),
    }
}

/// The most bytes of device tree the hyp writes for a Linux VM.
const DTB_MAX_BYTES: usize = 64 * 1024;

/// A Linux VM's start (booting.rst): all of its memory mapped at `layout::RAM_IPA` (zeroed
/// frames, its whole quota), the Image at its header's offset, the initrd, the device tree;
/// a fresh vGIC; on GICv2 the board's GICV frames where the guest's GICC is. The Image is
/// parsed again here: the archive is user input. A restarted VM's bootargs end with
/// `pvhyp.restart=N` (its Nth restart): the only way its fresh memory can tell it, as a PV
/// guest's x1 does.
fn load_linux(
    memory: &mut GuestMemory<Cpu>,
    spec: &VmSpec,
    image: &[u8],
    initrd: &[u8],
    restarts: u64,
) -> Result<Loaded, BuildError> {
    use crate::vdev::{dt, layout};
    use manifest::linux_image;
    let bad = |what: alloc::string::String| BuildError::Linux(what);
    let header = linux_image::parse(image).map_err(|e| bad(alloc::format!("its image: {e}")))?;
    let initrd_len = (!initrd.is_empty()).then_some(initrd.len() as u64);
    let place = linux_image::linux_layout(
        spec.memory_bytes,
        &header,
        image.len() as u64,
        initrd_len,
        DTB_MAX_BYTES as u64,
    )
    .map_err(|e| bad(alloc::format!("its kernel, initrd and device tree: {e}")))?;
    let ram_err = |e| BuildError::Memory("RAM", e);
    let pages = spec.memory_bytes / PAGE_SIZE;
    // All of it at once (zeroed, RWX, pinned); the Image made coherent for instruction fetch.
    memory
        .map_ram_at_boot(crate::addr::Ipa::new(layout::RAM_IPA), pages)
        .map_err(ram_err)?;
    memory
        .write_executable(
            crate::addr::Ipa::new(layout::RAM_IPA + place.kernel_offset),
            image,
        )
        .map_err(ram_err)?;
    let initrd_range = match place.initrd {
        Some((at, len)) => {
            memory
                .write(layout::RAM_IPA + at, initrd)
                .map_err(ram_err)?;
            let start = layout::RAM_IPA + at;
            Some((start, start + len))
        }
        None => None,
    };
    let model = vgic::hw::model()
        .ok_or_else(|| bad("the board's GIC has no virtualization extensions".into()))?;
    let v3 = model == vgic::GicModel::V3;
    let vcpus = spec.vcpus.clamp(1, MAX_VCPUS as u32) as usize;
    let bootargs = match restarts {
        0 => spec.cmdline.clone(),
        n => alloc::format!("{} pvhyp.restart={n}", spec.cmdline),
    };
    let platform = dt::Platform {
        ram_ipa: layout::RAM_IPA,
        ram_bytes: spec.memory_bytes,
        vcpus,
        gic: if v3 { dt::GicDt::V3 } else { dt::GicDt::V2 },
        bootargs: &bootargs,
        initrd: initrd_range,
    };
    let mut tree = alloc::vec![0u8; DTB_MAX_BYTES];
    let len =
        dt::write(&platform, &mut tree).map_err(|e| bad(alloc::format!("its device tree: {e}")))?;
    let dtb_ipa = layout::RAM_IPA + place.dtb_offset;
    memory.write(dtb_ipa, &tree[..len]).map_err(ram_err)?;
    drop(tree);
    if !v3 {
        // The guest's GICC is the board's GICV, two pages (GICC_DIR is in the second).
        let gicv = gic::gicv_base().ok_or_else(|| bad("the board's GIC has no GICV".into()))?;
        memory
            .map_device(
                crate::addr::Ipa::new(layout::GICC_IPA),
                gicv,
                layout::GICC_SIZE / PAGE_SIZE,
            )
            .map_err(|e| BuildError::Memory("GICV frames", e))?;
    }
    Ok(Loaded {
        entry: layout::RAM_IPA + place.kernel_offset,
        x0: dtb_ipa,
        linux: Some(super::linux::Platform::new(model, vcpus)),
        events: Events::new(0),
        event_page_ipa: 0,
        console_io: ConsoleIo::default(),
        pl011: Some(Pl011Emu::default()),
        block_io: None,
        boot_info_ipa: 0,
    })
}

/// Maps and fills what PV VM `index` starts with into `memory` (empty): its image, boot info,
/// event page and rings.
fn load(
    memory: &mut GuestMemory<Cpu>,
    index: VmIndex,
    spec: &VmSpec,
    image: &[u8],
) -> Result<Loaded, BuildError> {
    let parsed = elf::parse(image, IPA_LIMIT).map_err(BuildError::Image)?;
    let mut image_start = u64::MAX;
    let mut image_end = 0;
    for seg in parsed.segments() {
        let first = seg.vaddr & !(PAGE_SIZE - 1);
        let end = (seg.vaddr + seg.mem_size).next_multiple_of(PAGE_SIZE);
        let pages = (end - first) / PAGE_SIZE;
        let mut perms = MemPerms::READ;
        perms.set(MemPerms::WRITE, seg.write);
        let image_err = |e| BuildError::Memory("image", e);
        memory
            .map_pinned(first, pages, perms, Pin::Image)
            .map_err(image_err)?;
        memory.write(seg.vaddr, seg.data).map_err(image_err)?;
        if seg.exec {
            // Executable once written: protect makes the pages coherent for fetch.
            memory
                .protect(first, pages, perms | MemPerms::EXEC)
                .map_err(image_err)?;
        }
        image_start = image_start.min(first);
        image_end = image_end.max(end);
    }

    let boot_info_ipa = image_end;
    memory
        .map_pinned(boot_info_ipa, 1, MemPerms::READ, Pin::Hyp)
        .map_err(|e| BuildError::Memory("boot-info page", e))?;
    let event_page_ipa = boot_info_ipa + PAGE_SIZE;
    memory
        .map_pinned(event_page_ipa, 1, MemPerms::READ, Pin::Hyp)
        .map_err(|e| BuildError::Memory("event page", e))?;
    let events = Events::new(0).at_page(event_page_ipa);
    memory
        .write(event_page_ipa, as_bytes(&events.page()))
        .map_err(|e| BuildError::Memory("event page", e))?;
    let vcpu_count = spec.vcpus.clamp(1, MAX_VCPUS as u32) as usize;
    let mut info = boot_info(index, spec, image_start, image_end, vcpu_count);
    let mut console_io = ConsoleIo::default();
    let mut pl011 = None;
    match spec.console {
        ConsoleKind::Pv => {
            let ring = event_page_ipa + PAGE_SIZE;
            memory
                .map_pinned(ring, 1, MemPerms::RW, Pin::Hyp)
                .map_err(|e| BuildError::Memory("console ring", e))?;
            memory
                .write(ring, as_bytes(&RingHeader::new(CONSOLE_RING_ENTRIES, 1)))
                .map_err(|e| BuildError::Memory("console ring", e))?;
            info.console_ring_ipa = ring;
            console_io.ring_ipa = Some(ring);
        }
        ConsoleKind::EmulatedPl011 => {
            info.flags |= BootInfo::FLAG_PL011;
            info.pl011_ipa = PL011_IPA;
            pl011 = Some(Pl011Emu::default());
        }
    }
    // The block ring: the page after the console ring's (unused by an emulated-PL011 VM).
    let block_io = match &spec.disk {
        Some(disk) => {
            let ring = event_page_ipa + 2 * PAGE_SIZE;
            let io = super::block::map_ring(memory, index.get(), ring, disk)
                .map_err(|e| BuildError::Memory("block ring", e))?;
            info.block_ring_ipa = ring;
            Some(io)
        }
        None => None,
    };
    info.event_page_ipa = event_page_ipa;
    info.timer_event = event::TIMER_EVENT;
    info.console_event = event::CONSOLE_EVENT;
    info.block_event = event::BLOCK_EVENT;
    memory
        .write(boot_info_ipa, as_bytes(&info))
        .map_err(|e| BuildError::Memory("boot-info page", e))?;
    Ok(Loaded {
        entry: parsed.entry,
        x0: boot_info_ipa,
        linux: None,
        events,
        event_page_ipa,
        console_io,
        pl011,
        block_io,
        boot_info_ipa,
    })
}

impl Loaded {
    /// vCPU `index` as the VM starts: vCPU 0 at the entry point with x0 = boot info and
    /// x1 = `restarts` (a Linux VM: x0 = its device tree, x1..x3 = 0, as booting.rst says),
    /// the others off.
    fn vcpu(&self, index: usize, restarts: u64) -> Vcpu {
        let x1 = if self.linux.is_some() { 0 } else { restarts };
        let (x0, x1, run) = match index {
            0 => (self.x0, x1, RunState::Runnable),
            _ => (0, 0, RunState::Off),
        };
        Vcpu::fresh(index, self.entry, x0, x1, run)
    }
}

impl Vm {
    /// Builds VM `index` from its manifest entry and image; `restarts` counts earlier lives
    /// (the guest finds it in x1 at entry).
    pub fn build(
        index: VmIndex,
        vmid: Vmid,
        spec: VmSpec,
        image: &'static [u8],
        initrd: &'static [u8],
        restarts: u64,
    ) -> Result<Self, BuildError> {
        let mut memory = GuestMemory::new(index.owner(), vmid.get(), spec.memory_bytes)
            .map_err(|e| BuildError::Memory("stage-2 root table", e))?;
        let loaded = load_any(&mut memory, index, &spec, image, initrd, restarts)?;
        let vcpu_count = spec.vcpus.clamp(1, MAX_VCPUS as u32) as usize;
        let vcpus = (0..vcpu_count).map(|i| loaded.vcpu(i, restarts)).collect();
        Ok(Self {
            name: spec.name.clone(),
            index,
            vmid,
            spec,
            image,
            memory,
            vcpus,
            state: VmState::Alive,
            console: LineBuffer::default(),
            restarts,
            events: loaded.events,
            event_page_ipa: loaded.event_page_ipa,
            console_io: loaded.console_io,
            pl011: loaded.pl011,
            linux: loaded.linux,
            initrd,
            block_io: loaded.block_io,
            channels: Vec::new(),
            boot_info_ipa: loaded.boot_info_ipa,
            has_run: false,
            stated_version: None,
            stats: super::stats::VmStats::default(),
            started: crate::arch::aarch64::timer::counter(),
        })
    }

    /// Restarts the VM from its image (PSCI SYSTEM_RESET): its memory is torn down first
    /// (every frame back, the VMID's translations forgotten), then loaded afresh in the same
    /// root table; its channels outlive it. On failure the memory is left empty.
    pub fn restart(&mut self) -> Result<(), BuildError> {
        self.memory.clear();
        let restarts = self.restarts + 1;
        let loaded = match load_any(
            &mut self.memory,
            self.index,
            &self.spec,
            self.image,
            self.initrd,
            restarts,
        ) {
            Ok(loaded) => loaded,
            Err(e) => {
                self.memory.clear();
                return Err(e);
            }
        };
        // In place: the same count (the same manifest entry), and nothing allocated.
        for (i, vcpu) in self.vcpus.iter_mut().enumerate() {
            *vcpu = loaded.vcpu(i, restarts);
        }
        self.state = VmState::Alive;
        self.console = LineBuffer::default();
        self.restarts = restarts;
        self.events = loaded.events;
        self.event_page_ipa = loaded.event_page_ipa;
        self.console_io = loaded.console_io;
        self.pl011 = loaded.pl011;
        self.linux = loaded.linux;
        self.block_io = loaded.block_io;
        self.boot_info_ipa = loaded.boot_info_ipa;
        self.has_run = false;
        self.stated_version = None;
        self.started = crate::arch::aarch64::timer::counter();
        if self.is_linux() {
            // No channels, no boot info: nothing more to restore.
            return Ok(());
        }
        // The fresh VM sees the same channel regions.
        let (memory, name) = (&mut self.memory, &self.name);
        self.channels
            .retain(|end| match memory.map_shared(end.ipa, &end.frames) {
                Ok(()) => true,
                Err(e) => {
                    error!("VM {name}: channel lost on restart: {e}");
                    false
                }
            });
        self.publish_channel_count()
            .map_err(|e| BuildError::Memory("boot-info page", e))
    }

    /// This VM's VTTBR_EL2 value.
    pub fn vttbr(&self) -> u64 {
        self.memory.vttbr()
    }

    /// Maps a channel's region into this VM as its next channel, and tells the guest (the
    /// boot info's channel count; the channel's event becomes bindable).
    pub fn attach_channel(&mut self, end: ChannelEnd) -> Result<(), hypercall_abi::Error> {
        self.memory.map_shared(end.ipa, &end.frames)?;
        self.channels.push(end);
        self.publish_channel_count()
    }

    /// Tells the guest how many channels it has (boot info; the events it may bind).
    fn publish_channel_count(&mut self) -> Result<(), hypercall_abi::Error> {
        let count = self.channels.len() as u32;
        self.events.set_channels(count);
        let at = self.boot_info_ipa + core::mem::offset_of!(BootInfo, channel_count) as u64;
        self.memory.write(at, &count.to_le_bytes())
    }

    /// Whether its vCPU `vcpu` is loaded on the CPU running this code.
    pub fn on_this_cpu(&self, vcpu: usize) -> bool {
        sched::vcpu(self.index, VcpuIndex::new(vcpu)).on_cpu() == Some(crate::percpu::index())
    }

    /// Whether the VM still runs (or waits to): not ended, nor stopping.
    pub fn is_alive(&self) -> bool {
        self.state == VmState::Alive
    }

    /// Raises `event` (from the hyp: a device, a timer, a peer) on vCPU 0; true when it is
    /// delivered there (not masked: the vCPU's virtual IRQ is up for it).
    pub fn raise_event(&mut self, event: u32) -> bool {
        self.raise_event_on(event, 0)
    }

    /// Raises `event` on vCPU `vcpu` (its virtual IRQ); true when it is delivered there.
    pub fn raise_event_on(&mut self, event: u32, vcpu: usize) -> bool {
        let Ok(delivered) = self.events.raise_published(event, vcpu as u8, &self.memory) else {
            return false;
        };
        self.stats.count_event();
        let stale = self.events.take_stale();
        if stale != 0 {
            self.deliver_events_to(stale);
        }
        delivered
    }

    /// After its events changed: mirror them into the event page, set or drop each vCPU's
    /// virtual IRQ (events routed to it, pending and unmasked), and wake a vCPU that waits and
    /// has something deliverable.
    pub fn events_changed(&mut self) {
        self.events.sync(&self.memory);
        let _ = self.events.take_stale();
        self.deliver_events_to(u8::MAX);
    }

    /// [`Vm::events_changed`] for the vCPUs whose delivery the changes since the last one
    /// can have moved (`Events::take_stale`): what a hypercall or a raise changed names them.
    pub fn deliver_events(&mut self) {
        self.events.sync(&self.memory);
        let stale = self.events.take_stale();
        if stale != 0 {
            self.deliver_events_to(stale);
        }
    }

    /// Sets or drops the virtual IRQ of the vCPUs of `vcpus` (a bit each), waking one that
    /// waits and has something deliverable.
    #[inline]
    fn deliver_events_to(&mut self, vcpus: u8) {
        let mut left = vcpus;
        while left != 0 {
            let i = left.trailing_zeros() as usize;
            left &= left - 1;
            let deliverable = self.events.deliverable_to(i as u8);
            let Some(vcpu) = self.vcpus.get_mut(i) else {
                break;
            };
            let before = vcpu.hcr;
            if deliverable {
                vcpu.hcr |= cpu::HCR_VI;
                if vcpu.run == RunState::Waiting {
                    vcpu.run = RunState::Runnable;
                    sched::make_runnable(self.index, VcpuIndex::new(i));
                }
            } else {
                vcpu.hcr &= !cpu::HCR_VI;
            }
            // Unchanged: a vCPU live on a CPU has it loaded already (or a REQ_VIRQ pending).
            if vcpu.hcr == before {
                continue;
            }
            // Live on this CPU: load it now. Live on another one: kick that CPU to load it.
            let shared = sched::vcpu(self.index, VcpuIndex::new(i));
            match shared.on_cpu() {
                Some(cpu) if cpu == crate::percpu::index() => cpu::set_hcr(vcpu.hcr),
                Some(_) => shared.request(sched::REQ_VIRQ),
                None => {}
            }
        }
    }

    /// Queues the VM's console bytes as whole lines, prefixed with its name, for the UART,
    /// waiting for room as an emulated UART's writer does (`vm::console::output_waiting`).
    /// vCPU `v`: the one place its index is checked, so that every caller's (impossible)
    /// out-of-range panic shares one `Location` in the Image; inlined, no call.
    #[inline(always)]
    pub fn vcpu(&self, v: usize) -> &Vcpu {
        &self.vcpus[v]
    }

    /// vCPU `v`, to change (as [`Vm::vcpu`]).
    #[inline(always)]
    pub fn vcpu_mut(&mut self, v: usize) -> &mut Vcpu {
        &mut self.vcpus[v]
    }

    pub fn console_output(&mut self, bytes: &[u8]) {
        super::console::output_waiting(&mut self.console, self.index.get(), &self.name, bytes)
    }

    /// Queues a partial last line when the VM ends.
    pub fn flush_console(&mut self) {
        super::console::flush(&mut self.console, self.index.get(), &self.name);
    }
}

/// The most vCPUs a VM has (the manifest allows 1..=8).
pub const MAX_VCPUS: usize = 8;

fn boot_info(
    index: VmIndex,
    spec: &VmSpec,
    image_start: u64,
    image_end: u64,
    vcpus: usize,
) -> BootInfo {
    let mut info = BootInfo::new(Version::CURRENT);
    info.vm_index = index.get() as u32;
    info.vcpu_count = vcpus as u32;
    info.mem_quota_bytes = spec.memory_bytes;
    info.image_start = image_start;
    info.image_end = image_end;
    info.ipa_bits = super::mem::IPA_BITS;
    info.set_name(&spec.name);
    info.set_cmdline(&spec.cmdline);
    info
}

/// Shared layouts of the ABI that are plain bytes: `#[repr(C)]`, fixed-width fields, no
/// padding (the ABI crate asserts their sizes and offsets).
trait NoPadding {}
impl NoPadding for BootInfo {}
impl NoPadding for EventPage {}
impl NoPadding for RingHeader {}

fn as_bytes<T: NoPadding>(value: &T) -> &[u8] {
    // SAFETY: T has no padding (NoPadding), so all size_of::<T>() bytes are initialised.
    unsafe { core::slice::from_raw_parts((value as *const T).cast(), core::mem::size_of::<T>()) }
}

/// A VM as one of its vCPUs calls it: what hypercalls act on.
pub struct Caller<'a> {
    pub vm: &'a mut Vm,
    pub vcpu: usize,
}

impl crate::hypercall::GuestVm for Caller<'_> {
    fn memory(&self) -> &GuestMemory<Cpu> {
        &self.vm.memory
    }

    fn memory_mut(&mut self) -> &mut GuestMemory<Cpu> {
        &mut self.vm.memory
    }

    #[inline]
    fn regs(&mut self) -> &mut hypercall_abi::Regs {
        let x = &mut self.vm.vcpu_mut(self.vcpu).regs.x;
        x.first_chunk_mut()
            .expect("x0..x17 are in the register file")
    }

    fn console_output(&mut self, bytes: &[u8]) -> usize {
        let vm = &mut *self.vm;
        super::console::output(&mut vm.console, vm.index.get(), &vm.name, bytes)
    }

    fn console_io(&mut self) -> &mut ConsoleIo {
        &mut self.vm.console_io
    }

    fn console_reading(&mut self) {
        super::console::reading(&self.vm.console, self.vm.index.get());
    }

    fn channel(&self, n: u32) -> Option<&ChannelEnd> {
        self.vm.channels.get(n as usize)
    }

    fn events(&mut self) -> &mut Events {
        &mut self.vm.events
    }

    fn events_changed(&mut self, acked: Option<u32>) {
        if acked == Some(event::TIMER_EVENT) {
            // The guest has handled its timer: let the calling vCPU's timer interrupt through
            // again (in the live register while it is on this CPU, else in its saved state).
            if self.vm.on_this_cpu(self.vcpu) {
                cpu::set_cntv_ctl(cpu::cntv_ctl() & !CNTV_CTL_IMASK);
            } else {
                self.vm.vcpu_mut(self.vcpu).el1.cntv_ctl &= !CNTV_CTL_IMASK;
            }
        }
        self.vm.deliver_events();
    }

    fn vcpu_index(&self) -> usize {
        self.vcpu
    }

    fn stated_version(&mut self) -> &mut Option<Version> {
        &mut self.vm.stated_version
    }

    fn vcpu_count(&self) -> usize {
        self.vm.vcpus.len()
    }

    fn vcpu_power(&self, vcpu: usize) -> Option<crate::hypercall::Power> {
        use crate::hypercall::Power;
        Some(match self.vm.vcpus.get(vcpu)?.run {
            RunState::Off => Power::Off,
            RunState::Runnable | RunState::Waiting => Power::On,
        })
    }

    fn vcpu_start(&mut self, vcpu: usize, entry: u64, context: u64) {
        let index = self.vm.index;
        let v = VcpuIndex::new(vcpu);
        let Some(slot) = self.vm.vcpus.get_mut(vcpu) else {
            return;
        };
        if slot.run != RunState::Off || sched::vcpu(index, v).on_cpu().is_some() {
            return;
        }
        // CNTVOFF is the VM's: the new vCPU sees the same virtual count as the others.
        let cntvoff = self.vm.vcpu(0).el1.cntvoff;
        let mut fresh = Vcpu::fresh(vcpu, entry, context, 0, RunState::Runnable);
        fresh.el1.cntvoff = cntvoff;
        *self.vm.vcpu_mut(vcpu) = fresh;
        self.vm.events_changed();
        sched::make_runnable(index, v);
    }

    fn block_io(&mut self) -> Option<&mut super::block::BlockIo> {
        self.vm.block_io.as_mut()
    }

    fn disk(&self) -> &'static spin::Mutex<Option<crate::disk::Disk>> {
        &crate::disk::DISK
    }

    fn is_linux(&self) -> bool {
        self.vm.is_linux()
    }

    fn info(&self) -> hypercall_abi::VmInfo {
        hypercall_abi::VmInfo {
            vm_index: self.vm.index.get() as u32,
            vcpu_count: self.vm.vcpus.len() as u32,
            mem_available_bytes: self.vm.memory.quota_left_bytes(),
        }
    }
}
