//! The boot-info page. Live, frozen since 1.0.

use crate::{Version, event::EVENT_NONE};

use super::assert_layout;

/// [`BootInfo::magic`]: `"PVHYPBI1"` read as a little-endian u64.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"PVHYPBI1");

/// What the hypervisor tells a VM at entry. It fills one 4 KiB page (this struct at its start,
/// the rest zero), maps it read-only into the VM, and enters the VM with x0 = the page's IPA.
///
/// Fields marked *since 1.x* belong to calls live since that minor: an older hypervisor leaves
/// them 0 (IPAs, counts) or [`EVENT_NONE`] (events). Later minors only use `reserved`, which a
/// hypervisor always zeroes. Since 1.0.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// The hypervisor's ABI version, [`Version::to_u64`].
    pub abi_version: u64,
    /// This VM's index in the manifest (0-based).
    pub vm_index: u32,
    /// How many vCPUs this VM has.
    pub vcpu_count: u32,
    /// The VM's memory quota in bytes (image included).
    pub mem_quota_bytes: u64,
    /// IPA of the first byte of the loaded image.
    pub image_start: u64,
    /// IPA one past the image's last byte (page-aligned up).
    pub image_end: u64,
    /// Size of the VM's IPA space in bits (39).
    pub ipa_bits: u32,
    /// [`BootInfo::FLAG_PL011`] and reserved bits (0).
    pub flags: u32,
    /// Bytes of `name` in use (at most 32).
    pub name_len: u32,
    /// Bytes of `cmdline` in use (at most 256).
    pub cmdline_len: u32,
    /// The VM's manifest name, UTF-8, not NUL-terminated.
    pub name: [u8; 32],
    /// The VM's command line (`shell`, `selftest`, `fuzz seed=1 count=9`...), UTF-8.
    pub cmdline: [u8; 256],
    /// IPA of the [`super::EventPage`] (since 1.2).
    pub event_page_ipa: u64,
    /// IPA of the console output ring (since 1.2; 0 for an emulated-PL011 VM).
    pub console_ring_ipa: u64,
    /// IPA of the block request ring ([`super::BlockDesc`] slots; since 1.3; 0 for a VM without
    /// a disk region).
    pub block_ring_ipa: u64,
    /// IPA of the emulated PL011 when [`BootInfo::FLAG_PL011`] is set, else 0.
    pub pl011_ipa: u64,
    /// Event the virtual timer is bound to (since 1.2).
    pub timer_event: u32,
    /// Event console input is bound to (since 1.2).
    pub console_event: u32,
    /// Event block completion is bound to (since 1.2).
    pub block_event: u32,
    /// How many channels this VM has, numbered from 0 (since 1.4).
    pub channel_count: u32,
    /// Zero; room for later minors.
    pub reserved: [u64; 72],
    /// The PCI device the VM owns (manifest `devices`, its first), or all zero (since 1.6; in
    /// the page's last 48 bytes, which older hypervisors zero and older guests never read).
    pub device: DeviceInfo,
}

/// A PCI device assigned to the VM: where its BAR with the virtio structures is in the VM's
/// IPA space (Device memory), and where those structures are in it. The VM sees no
/// configuration space. Its DMA goes through the SMMU with the VM's stage 2: buffer addresses
/// are IPAs. Since 1.6.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// PCI vendor ID (low half) and device ID (high half); 0: no device.
    pub pci_id: u32,
    /// Its requester ID (bus << 8 | device << 3 | function), its SMMU stream ID.
    pub requester_id: u32,
    /// IPA of the BAR holding the virtio structures.
    pub bar_ipa: u64,
    /// That BAR's size in bytes.
    pub bar_size: u64,
    /// Offset in that BAR of the virtio-pci common configuration (virtio 1.1 §4.1.4.3).
    pub virtio_common: u32,
    /// Offset of the notification area (§4.1.4.4).
    pub virtio_notify: u32,
    /// The notification area's `notify_off_multiplier`.
    pub virtio_notify_multiplier: u32,
    /// Offset of the ISR status byte (§4.1.4.5).
    pub virtio_isr: u32,
    /// Offset of the device-specific configuration (§4.1.4.6).
    pub virtio_device: u32,
    /// The event its interrupt is raised on ([`crate::EventSource::DeviceInterrupt`]); the
    /// hypervisor masks the interrupt when it takes it until `EVENT_DEVICE_ACK`.
    pub event: u32,
}

assert_layout!(DeviceInfo, size = 48, {
    pci_id = 0,
    requester_id = 4,
    bar_ipa = 8,
    bar_size = 16,
    virtio_common = 24,
    virtio_notify = 28,
    virtio_notify_multiplier = 32,
    virtio_isr = 36,
    virtio_device = 40,
    event = 44,
});

assert_layout!(BootInfo, size = 1024, {
    magic = 0,
    abi_version = 8,
    vm_index = 16,
    vcpu_count = 20,
    mem_quota_bytes = 24,
    image_start = 32,
    image_end = 40,
    ipa_bits = 48,
    flags = 52,
    name_len = 56,
    cmdline_len = 60,
    name = 64,
    cmdline = 96,
    event_page_ipa = 352,
    console_ring_ipa = 360,
    block_ring_ipa = 368,
    pl011_ipa = 376,
    timer_event = 384,
    console_event = 388,
    block_event = 392,
    channel_count = 396,
    reserved = 400,
    device = 976,
});

impl BootInfo {
    /// Flag: the VM's console is an emulated PL011 at [`BootInfo::pl011_ipa`] (otherwise use
    /// `CONSOLE_WRITE`).
    pub const FLAG_PL011: u32 = 1 << 0;

    /// A boot info with the magic, `version`, no events bound and everything else zero.
    pub const fn new(version: Version) -> BootInfo {
        BootInfo {
            magic: BOOT_INFO_MAGIC,
            abi_version: version.to_u64(),
            vm_index: 0,
            vcpu_count: 0,
            mem_quota_bytes: 0,
            image_start: 0,
            image_end: 0,
            ipa_bits: 0,
            flags: 0,
            name_len: 0,
            cmdline_len: 0,
            name: [0; 32],
            cmdline: [0; 256],
            event_page_ipa: 0,
            console_ring_ipa: 0,
            block_ring_ipa: 0,
            pl011_ipa: 0,
            timer_event: EVENT_NONE,
            console_event: EVENT_NONE,
            block_event: EVENT_NONE,
            channel_count: 0,
            reserved: [0; 72],
            device: DeviceInfo {
                pci_id: 0,
                requester_id: 0,
                bar_ipa: 0,
                bar_size: 0,
                virtio_common: 0,
                virtio_notify: 0,
                virtio_notify_multiplier: 0,
                virtio_isr: 0,
                virtio_device: 0,
                event: 0,
            },
        }
    }

    /// Whether the magic is right and the ABI major matches this crate's.
    pub fn is_valid(&self) -> bool {
        self.magic == BOOT_INFO_MAGIC
            && Version::from_u64(self.abi_version)
                .is_some_and(|v| v.is_compatible_with(Version::CURRENT))
    }

    /// The VM name: the longest valid UTF-8 prefix of `name[..name_len]` (length capped at 32).
    pub fn name(&self) -> &str {
        utf8_prefix(&self.name, self.name_len)
    }

    /// The command line, read like [`BootInfo::name`] (length capped at 256).
    pub fn cmdline(&self) -> &str {
        utf8_prefix(&self.cmdline, self.cmdline_len)
    }

    /// Stores `name`, truncated to 32 bytes at a character boundary.
    pub fn set_name(&mut self, name: &str) {
        self.name_len = store(&mut self.name, name);
    }

    /// Stores `cmdline`, truncated to 256 bytes at a character boundary.
    pub fn set_cmdline(&mut self, cmdline: &str) {
        self.cmdline_len = store(&mut self.cmdline, cmdline);
    }
}

fn utf8_prefix(buf: &[u8], len: u32) -> &str {
    let len = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
    let bytes = &buf[..len];
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

fn store(buf: &mut [u8], s: &str) -> u32 {
    let mut len = s.len().min(buf.len());
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    buf.fill(0);
    buf[..len].copy_from_slice(&s.as_bytes()[..len]);
    len as u32
}
