//! The rules every manifest obeys, whichever front end it came through.
//!
//! The checks are split per field so a front end can report the exact place (the TOML parser
//! a line and column span, the compact decoder a line); [`validate`] runs them all plus the
//! rules between items (unique names, channel ends that exist).

use alloc::string::String;
use core::fmt;

use crate::model::*;

/// One broken rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A name is empty.
    NameEmpty,
    /// A name is longer than [`MAX_NAME_LEN`].
    NameTooLong,
    /// A name holds a character outside `[A-Za-z0-9_-]`.
    NameBadChar(char),
    /// A VM is called `hyp`.
    NameReserved,
    /// The image name is empty.
    ImageEmpty,
    /// The image name is longer than [`MAX_IMAGE_LEN`].
    ImageTooLong,
    /// The image name holds a space, a control character or non-ASCII.
    ImageBadChar,
    /// The memory quota is zero.
    MemoryZero,
    /// The memory quota is not a multiple of [`PAGE_SIZE`].
    MemoryNotPageMultiple(u64),
    /// The memory quota is above [`MAX_MEMORY_BYTES`].
    MemoryTooLarge(u64),
    /// vCPUs outside `1..=MAX_VCPUS`.
    VcpusOutOfRange(i64),
    /// The command line is longer than [`MAX_CMDLINE_LEN`].
    CmdlineTooLong(usize),
    /// The command line holds a character that is not printable ASCII.
    CmdlineBadChar,
    /// A Linux VM's `bootargs` are longer than [`MAX_CMDLINE_LEN`].
    BootargsTooLong(usize),
    /// A Linux VM's `bootargs` hold a character that is not printable ASCII.
    BootargsBadChar,
    /// Channel pages outside `1..=MAX_CHANNEL_PAGES`.
    PagesOutOfRange(i64),
    /// A disk region's size is zero.
    DiskSizeZero,
    /// A disk region's offset or size is not a multiple of [`DISK_SECTOR_SIZE`].
    DiskNotSectorMultiple(u64),
    /// A disk region ends beyond [`MAX_DISK_BYTES`].
    DiskTooLarge(u64),
    /// Two VMs' disk regions overlap: the other VM's name.
    DiskOverlap(String),
    /// A key (its TOML name) that VMs of this kind do not take.
    KeyNotForKind {
        /// The key, as the TOML spells it (`cmdline`, `console`, `disk`, `bootargs`, `initrd`).
        key: &'static str,
        /// The kind of the VM that gave it.
        kind: VmKind,
    },
    /// A Linux VM without an `image` (there is no default kernel).
    LinuxWithoutImage,
    /// A Linux VM's console is not the emulated UART (compact form only).
    LinuxConsoleNotEmulated,
    /// A channel names a Linux VM: the VM's name.
    ChannelToLinux(String),
    /// A `cpus` pin with no CPU.
    CpusEmpty,
    /// A `cpus` index outside `0..MAX_CPUS`.
    CpuOutOfRange(i64),
    /// A `cpus` index given twice.
    CpuDuplicate(i64),
    /// More than [`MAX_DEVICES`] devices on one VM.
    TooManyDevices(usize),
    /// A device is assigned twice: its address, and the VM that has it already.
    DuplicateDevice(crate::Bdf, String),
    /// Two VMs share a name.
    DuplicateVm(String),
    /// Two channels share a name.
    DuplicateChannel(String),
    /// A channel names a VM the manifest does not have.
    UnknownEndpoint(String),
    /// A channel's two ends are the same VM.
    SameEndpoints(String),
    /// No VM at all.
    NoVms,
    /// More than [`MAX_VMS`] VMs.
    TooManyVms(usize),
    /// More than [`MAX_CHANNELS`] channels.
    TooManyChannels(usize),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NameEmpty => f.write_str("name is empty"),
            Self::NameTooLong => write!(f, "name is longer than {MAX_NAME_LEN} bytes"),
            Self::NameBadChar(c @ ' '..='~') => {
                write!(f, "name contains '{c}'; only A-Z a-z 0-9 _ - are allowed")
            }
            Self::NameBadChar(c) => {
                let code = u32::from(*c);
                write!(
                    f,
                    "name contains \\u{{{code:x}}}; only A-Z a-z 0-9 _ - are allowed"
                )
            }
            Self::NameReserved => {
                write!(f, "name \"{RESERVED_NAME}\" is reserved for the hypervisor")
            }
            Self::ImageEmpty => f.write_str("image name is empty"),
            Self::ImageTooLong => write!(f, "image name is longer than {MAX_IMAGE_LEN} bytes"),
            Self::ImageBadChar => f.write_str("image name must be printable ASCII without spaces"),
            Self::MemoryZero => f.write_str("memory must be greater than 0"),
            Self::MemoryNotPageMultiple(b) => write!(
                f,
                "memory {b} bytes is not a multiple of the {PAGE_SIZE}-byte page size"
            ),
            Self::MemoryTooLarge(b) => write!(
                f,
                "memory {b} bytes is more than the limit of {MAX_MEMORY_BYTES} bytes (256G)"
            ),
            Self::VcpusOutOfRange(n) => write!(f, "vcpus {n} is outside 1..={MAX_VCPUS}"),
            Self::CmdlineTooLong(n) => {
                write!(f, "cmdline is {n} bytes, more than {MAX_CMDLINE_LEN}")
            }
            Self::CmdlineBadChar => f.write_str(
                "cmdline must be printable ASCII (no tabs, newlines or control characters)",
            ),
            Self::BootargsTooLong(n) => {
                write!(f, "bootargs is {n} bytes, more than {MAX_CMDLINE_LEN}")
            }
            Self::BootargsBadChar => f.write_str(
                "bootargs must be printable ASCII (no tabs, newlines or control characters)",
            ),
            Self::PagesOutOfRange(n) => {
                write!(f, "pages {n} is outside 1..={MAX_CHANNEL_PAGES}")
            }
            Self::DiskSizeZero => f.write_str("disk size must be greater than 0"),
            Self::DiskNotSectorMultiple(b) => write!(
                f,
                "disk offset or size {b} bytes is not a multiple of the {DISK_SECTOR_SIZE}-byte sector"
            ),
            Self::DiskTooLarge(end) => write!(
                f,
                "disk region ends at byte {end}, beyond the limit of {MAX_DISK_BYTES} bytes (1T)"
            ),
            Self::DiskOverlap(other) => {
                write!(f, "disk region overlaps the disk region of VM \"{other}\"")
            }
            Self::KeyNotForKind { key, kind } => {
                write!(f, "{key} is not a key of a kind = \"{}\" VM", kind.as_str())?;
                match (key, kind) {
                    (&"cmdline", VmKind::Linux) => {
                        f.write_str(": a Linux kernel's command line is `bootargs`")
                    }
                    (&"console", VmKind::Linux) => {
                        f.write_str(": a Linux VM's console is always its emulated UART (ttyAMA0)")
                    }
                    (&"disk", VmKind::Linux) => {
                        f.write_str(": disk regions are for PV guests only")
                    }
                    (&"devices", VmKind::Linux) => f.write_str(
                        ": devices are assigned to PV guests only (a Linux VM would need a virtual configuration space)",
                    ),
                    (&"bootargs", VmKind::Pv) => {
                        f.write_str(": a PV guest's command line is `cmdline`")
                    }
                    (&"initrd", VmKind::Pv) => f.write_str(": only Linux VMs take an initramfs"),
                    _ => Ok(()),
                }
            }
            Self::LinuxWithoutImage => f.write_str(
                "a kind = \"linux\" VM needs an image key: a raw arm64 Image (there is no default)",
            ),
            Self::LinuxConsoleNotEmulated => {
                f.write_str("a Linux VM's console must be emulated-pl011")
            }
            Self::ChannelToLinux(vm) => write!(
                f,
                "channel end \"{vm}\" is a kind = \"linux\" VM: channels join PV guests only"
            ),
            Self::CpusEmpty => f.write_str("cpus is empty; leave the key out to run anywhere"),
            Self::CpuOutOfRange(n) => {
                write!(f, "cpus: CPU {n} is outside 0..{MAX_CPUS}")
            }
            Self::CpuDuplicate(n) => write!(f, "cpus: CPU {n} is given twice"),
            Self::TooManyDevices(n) => {
                write!(f, "devices lists {n} functions, more than {MAX_DEVICES}")
            }
            Self::DuplicateDevice(bdf, vm) => {
                write!(f, "device {bdf} is already assigned to VM {vm}")
            }
            Self::DuplicateVm(n) => write!(f, "duplicate VM name \"{n}\""),
            Self::DuplicateChannel(n) => write!(f, "duplicate channel name \"{n}\""),
            Self::UnknownEndpoint(n) => {
                write!(f, "channel end \"{n}\" is not a VM in this manifest")
            }
            Self::SameEndpoints(n) => write!(f, "channel connects VM \"{n}\" to itself"),
            Self::NoVms => f.write_str("the manifest has no VM"),
            Self::TooManyVms(n) => write!(f, "{n} VMs, more than the limit of {MAX_VMS}"),
            Self::TooManyChannels(n) => {
                write!(f, "{n} channels, more than the limit of {MAX_CHANNELS}")
            }
        }
    }
}

impl core::error::Error for Problem {}

/// Which item of a manifest a [`Invalid`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// The manifest as a whole (for example: no VM at all).
    Manifest,
    /// `vms[i]`.
    Vm(usize),
    /// `channels[i]`.
    Channel(usize),
}

/// A broken rule and where: what [`validate`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The VM or channel that breaks it.
    pub item: Item,
    /// The rule.
    pub problem: Problem,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Item::Manifest => write!(f, "{}", self.problem),
            Item::Vm(i) => write!(f, "VM #{}: {}", i + 1, self.problem),
            Item::Channel(i) => write!(f, "channel #{}: {}", i + 1, self.problem),
        }
    }
}

impl core::error::Error for Invalid {}

/// A VM or channel name: `[A-Za-z0-9_-]{1,31}`. (`hyp` is refused for VMs by [`check_vm_name`].)
pub fn check_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        return Err(Problem::NameEmpty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Problem::NameBadChar(c));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Problem::NameTooLong);
    }
    Ok(())
}

/// A VM name: [`check_name`] and not [`RESERVED_NAME`].
pub fn check_vm_name(name: &str) -> Result<(), Problem> {
    check_name(name)?;
    if name == RESERVED_NAME {
        return Err(Problem::NameReserved);
    }
    Ok(())
}

/// An image name inside the archive: 1..=255 bytes of printable ASCII without spaces.
pub fn check_image_name(image: &str) -> Result<(), Problem> {
    if image.is_empty() {
        return Err(Problem::ImageEmpty);
    }
    if image.len() > MAX_IMAGE_LEN {
        return Err(Problem::ImageTooLong);
    }
    if !image.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::ImageBadChar);
    }
    Ok(())
}

/// A memory quota: positive, a page multiple, at most [`MAX_MEMORY_BYTES`].
pub fn check_memory(bytes: u64) -> Result<(), Problem> {
    if bytes == 0 {
        Err(Problem::MemoryZero)
    } else if !bytes.is_multiple_of(PAGE_SIZE) {
        Err(Problem::MemoryNotPageMultiple(bytes))
    } else if bytes > MAX_MEMORY_BYTES {
        Err(Problem::MemoryTooLarge(bytes))
    } else {
        Ok(())
    }
}

/// A vCPU count: `1..=MAX_VCPUS`. Takes `i64` so front ends can pass what they read unchecked.
pub fn check_vcpus(n: i64) -> Result<u32, Problem> {
    match u32::try_from(n) {
        Ok(v) if (1..=MAX_VCPUS).contains(&v) => Ok(v),
        _ => Err(Problem::VcpusOutOfRange(n)),
    }
}

/// A command line: printable ASCII (space included), at most [`MAX_CMDLINE_LEN`] bytes.
pub fn check_cmdline(cmdline: &str) -> Result<(), Problem> {
    if !cmdline.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(Problem::CmdlineBadChar);
    }
    if cmdline.len() > MAX_CMDLINE_LEN {
        return Err(Problem::CmdlineTooLong(cmdline.len()));
    }
    Ok(())
}

/// A Linux VM's kernel command line: the rules of [`check_cmdline`], named `bootargs`.
pub fn check_bootargs(bootargs: &str) -> Result<(), Problem> {
    check_cmdline(bootargs).map_err(|p| match p {
        Problem::CmdlineTooLong(n) => Problem::BootargsTooLong(n),
        _ => Problem::BootargsBadChar,
    })
}

/// A channel's page count: `1..=MAX_CHANNEL_PAGES`.
pub fn check_pages(n: i64) -> Result<u32, Problem> {
    match u32::try_from(n) {
        Ok(v) if (1..=MAX_CHANNEL_PAGES).contains(&v) => Ok(v),
        _ => Err(Problem::PagesOutOfRange(n)),
    }
}

/// A disk region: offset and size multiples of [`DISK_SECTOR_SIZE`], size > 0, ending at or
/// before [`MAX_DISK_BYTES`].
pub fn check_disk(region: &DiskRegion) -> Result<(), Problem> {
    for v in [region.offset, region.size] {
        if !v.is_multiple_of(DISK_SECTOR_SIZE) {
            return Err(Problem::DiskNotSectorMultiple(v));
        }
    }
    if region.size == 0 {
        return Err(Problem::DiskSizeZero);
    }
    match region.offset.checked_add(region.size) {
        Some(end) if end <= MAX_DISK_BYTES => Ok(()),
        _ => Err(Problem::DiskTooLarge(region.end())),
    }
}

/// Checks one VM's fields except the form of `image` and `initrd` (which depends on the front
/// end), and that it has only what its kind takes: a Linux VM an image, the emulated UART, no
/// disk; a PV VM no initrd.
pub fn check_vm(vm: &VmSpec) -> Result<(), Problem> {
    check_vm_name(&vm.name)?;
    check_memory(vm.memory_bytes)?;
    check_vcpus(i64::from(vm.vcpus))?;
    match vm.kind {
        VmKind::Pv => check_cmdline(&vm.cmdline)?,
        VmKind::Linux => check_bootargs(&vm.cmdline)?,
    }
    vm.disk.as_ref().map_or(Ok(()), check_disk)?;
    check_kind(vm)
}

/// What [`check_vm`] checks of a VM's kind.
pub fn check_kind(vm: &VmSpec) -> Result<(), Problem> {
    let kind = vm.kind;
    match kind {
        VmKind::Pv if vm.initrd.is_some() => Err(Problem::KeyNotForKind {
            key: "initrd",
            kind,
        }),
        VmKind::Linux if vm.disk.is_some() => Err(Problem::KeyNotForKind { key: "disk", kind }),
        VmKind::Linux if !vm.devices.is_empty() => Err(Problem::KeyNotForKind {
            key: "devices",
            kind,
        }),
        _ if vm.devices.len() > MAX_DEVICES => Err(Problem::TooManyDevices(vm.devices.len())),
        VmKind::Linux if vm.image.is_empty() => Err(Problem::LinuxWithoutImage),
        VmKind::Linux if vm.console != ConsoleKind::EmulatedPl011 => {
            Err(Problem::LinuxConsoleNotEmulated)
        }
        _ => Ok(()),
    }
}

/// Checks one channel's own fields (not whether its ends exist).
pub fn check_channel(ch: &ChannelSpec) -> Result<(), Problem> {
    check_name(&ch.name)?;
    check_pages(i64::from(ch.pages))?;
    Ok(())
}

/// Checks the rules between items: counts, unique names, channel ends.
///
/// Field rules are [`check_vm`] and [`check_channel`]; [`validate`] runs all three.
pub fn check_relations(m: &Manifest) -> Result<(), Invalid> {
    let whole = |problem| Invalid {
        item: Item::Manifest,
        problem,
    };
    if m.vms.is_empty() {
        return Err(whole(Problem::NoVms));
    }
    if m.vms.len() > MAX_VMS {
        return Err(whole(Problem::TooManyVms(m.vms.len())));
    }
    if m.channels.len() > MAX_CHANNELS {
        return Err(whole(Problem::TooManyChannels(m.channels.len())));
    }
    // Quadratic, but both lists are capped at 64 entries and this needs no hashing in no_std.
    for (i, vm) in m.vms.iter().enumerate() {
        if m.vms[..i].iter().any(|o| o.name == vm.name) {
            let problem = Problem::DuplicateVm(vm.name.clone());
            return Err(Invalid {
                item: Item::Vm(i),
                problem,
            });
        }
        for (d, bdf) in vm.devices.iter().enumerate() {
            let earlier = m.vms[..i].iter().find(|o| o.devices.contains(bdf));
            let owner = match earlier {
                Some(o) => Some(&o.name),
                None => vm.devices[..d].contains(bdf).then_some(&vm.name),
            };
            if let Some(owner) = owner {
                let problem = Problem::DuplicateDevice(*bdf, owner.clone());
                return Err(Invalid {
                    item: Item::Vm(i),
                    problem,
                });
            }
        }
        let overlapping = |o: &VmSpec| o.disk.zip(vm.disk).is_some_and(|(a, b)| a.overlaps(&b));
        if let Some(other) = m.vms[..i].iter().find(|o| overlapping(o)) {
            let problem = Problem::DiskOverlap(other.name.clone());
            return Err(Invalid {
                item: Item::Vm(i),
                problem,
            });
        }
    }
    for (i, ch) in m.channels.iter().enumerate() {
        let item = Item::Channel(i);
        if m.channels[..i].iter().any(|o| o.name == ch.name) {
            let problem = Problem::DuplicateChannel(ch.name.clone());
            return Err(Invalid { item, problem });
        }
        for end in [&ch.a, &ch.b] {
            if m.vm(end).is_none() {
                let problem = Problem::UnknownEndpoint(end.clone());
                return Err(Invalid { item, problem });
            }
        }
        if ch.a == ch.b {
            let problem = Problem::SameEndpoints(ch.a.clone());
            return Err(Invalid { item, problem });
        }
        for end in [&ch.a, &ch.b] {
            if m.vm(end).is_some_and(|vm| vm.kind == VmKind::Linux) {
                let problem = Problem::ChannelToLinux(end.clone());
                return Err(Invalid { item, problem });
            }
        }
    }
    Ok(())
}

/// Checks every rule except the form of `image` (see [`check_image_name`]).
pub fn validate(m: &Manifest) -> Result<(), Invalid> {
    for (i, vm) in m.vms.iter().enumerate() {
        check_vm(vm).map_err(|problem| Invalid {
            item: Item::Vm(i),
            problem,
        })?;
    }
    for (i, ch) in m.channels.iter().enumerate() {
        check_channel(ch).map_err(|problem| Invalid {
            item: Item::Channel(i),
            problem,
        })?;
    }
    check_relations(m)
}

#[cfg(test)]
mod tests {
    use super::Problem;
    use alloc::string::ToString;

    #[test]
    fn a_bad_name_character_is_shown_so_it_cannot_reach_the_terminal() {
        let said = |c| Problem::NameBadChar(c).to_string();
        assert!(said('.').starts_with("name contains '.';"), "{}", said('.'));
        assert!(said('\u{1b}').starts_with("name contains \\u{1b};"));
        assert!(said('é').starts_with("name contains \\u{e9};"));
    }
}
