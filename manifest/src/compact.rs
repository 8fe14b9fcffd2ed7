//! The compact manifest: a line-oriented text the hyp parses bare-metal, without serde.
//!
//! ```text
//! pvhyp-manifest 1
//! vm name=alpha memory=16777216 vcpus=1 console=pv on_fault=kill image=images/pv-guest cmdline=selftest
//! channel name=ping a=alpha b=beta pages=1
//! ```
//!
//! - The first line is exactly `pvhyp-manifest 1` ([`HEADER`]).
//! - Then one record per line, `vm` or `channel`, then `key=value` fields separated by spaces.
//!   Every key is required, once, except a `vm`'s `disk=OFFSET+SIZE` (bytes), given only for a
//!   VM with a disk region, its `cpus=0,2` (CPU indices), given only for a pinned VM, its
//!   `kind=linux` (absent: `pv`), given only for a Linux VM, and its `initrd=MEMBER`, given
//!   only for a Linux VM with an initramfs, and its `devices=00:01.0,00:02.0` (PCI functions),
//!   given only for a VM that owns some. In a `vm` record `cmdline=` comes last and takes
//!   the rest of the line, spaces included (a Linux VM's `bootargs`). Numbers are decimal;
//!   `memory` is in bytes.
//! - Empty lines and lines starting with `#` are ignored. Lines end with `\n`.
//!
//! [`decode`] checks every rule of [`validate`](crate::validate) and the image names again:
//! its input comes from outside the hypervisor, so garbage yields an error, never a panic.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::model::*;
use crate::validate::{self, Item, Problem};
use crate::{Bdf, Quoted};

/// The first line of every compact manifest: format name and version.
pub const HEADER: &str = "pvhyp-manifest 1";

/// The format name on the first line, before the version.
const MAGIC: &str = "pvhyp-manifest";

/// Why [`decode`] refused its input: what and on which line (1-based; 0 for the whole text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// 1-based line number, or 0 when the error is about the text as a whole.
    pub line: usize,
    /// What is wrong.
    pub kind: DecodeErrorKind,
}

/// What [`decode`] found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The first line is not `pvhyp-manifest <version>`.
    MissingHeader,
    /// The version on the first line is not 1.
    UnsupportedVersion(String),
    /// A line starts with neither `vm` nor `channel`.
    UnknownRecord(String),
    /// A field is not `key=value`.
    NotKeyValue(String),
    /// A key this record does not have.
    UnknownKey(String),
    /// A key given twice.
    DuplicateKey(&'static str),
    /// A required key is absent.
    MissingKey(&'static str),
    /// A number that is not decimal digits or does not fit.
    BadNumber(&'static str),
    /// A `console`, `on_fault` or `kind` value not in the list.
    BadValue(&'static str),
    /// A value breaks a manifest rule.
    Invalid(Problem),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader => write!(f, "first line is not \"{HEADER}\""),
            Self::UnsupportedVersion(v) => {
                write!(
                    f,
                    "manifest version {} is not supported (this hyp reads 1)",
                    Quoted(v)
                )
            }
            Self::UnknownRecord(r) => {
                write!(f, "unknown record {}; expected vm or channel", Quoted(r))
            }
            Self::NotKeyValue(t) => write!(f, "{} is not key=value", Quoted(t)),
            Self::UnknownKey(k) => write!(f, "unknown key {}", Quoted(k)),
            Self::DuplicateKey(k) => write!(f, "key {k} given twice"),
            Self::MissingKey(k) => write!(f, "missing key {k}"),
            Self::BadNumber(k) => write!(f, "{k} is not a decimal number that fits"),
            Self::BadValue(k) => write!(f, "{k} has a value that is not allowed"),
            Self::Invalid(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "manifest: {}", self.kind)
        } else {
            write!(f, "manifest line {}: {}", self.line, self.kind)
        }
    }
}

impl core::error::Error for DecodeError {}

/// Writes the compact form of `m`.
///
/// `m` should already obey the rules ([`validate`](crate::validate) plus
/// [`check_image_name`](crate::check_image_name)); otherwise [`decode`] will refuse the result.
pub fn encode(m: &Manifest) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{HEADER}");
    for vm in &m.vms {
        if vm.kind != VmKind::Pv {
            let _ = write!(out, "vm kind={} ", vm.kind.as_str());
        } else {
            out.push_str("vm ");
        }
        let _ = write!(
            out,
            "name={} memory={} vcpus={} console={} on_fault={} image={} ",
            vm.name,
            vm.memory_bytes,
            vm.vcpus,
            vm.console.as_str(),
            vm.on_fault.as_str(),
            vm.image,
        );
        if let Some(initrd) = &vm.initrd {
            let _ = write!(out, "initrd={initrd} ");
        }
        if let Some(disk) = vm.disk {
            let _ = write!(out, "disk={}+{} ", disk.offset, disk.size);
        }
        let mut sep = "devices=";
        for bdf in &vm.devices {
            let _ = write!(out, "{sep}{bdf}");
            sep = ",";
        }
        if !vm.devices.is_empty() {
            out.push(' ');
        }
        if let Some(cpus) = vm.cpus {
            let mut sep = "cpus=";
            for c in cpus.iter() {
                let _ = write!(out, "{sep}{c}");
                sep = ",";
            }
            out.push(' ');
        }
        let _ = writeln!(out, "cmdline={}", vm.cmdline);
    }
    for ch in &m.channels {
        let _ = writeln!(
            out,
            "channel name={} a={} b={} pages={}",
            ch.name, ch.a, ch.b, ch.pages
        );
    }
    out
}

/// Parses and validates a compact manifest.
pub fn decode(text: &str) -> Result<Manifest, DecodeError> {
    let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    let at = |line| move |kind| DecodeError { line, kind };

    let (n, first) = lines.next().unwrap_or((1, ""));
    let version = first
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| at(n)(DecodeErrorKind::MissingHeader))?;
    if version != "1" {
        return Err(at(n)(DecodeErrorKind::UnsupportedVersion(
            version.to_string(),
        )));
    }

    let mut m = Manifest::default();
    // The line each VM and channel came from, to place errors found between records.
    let mut vm_lines = Vec::new();
    let mut channel_lines = Vec::new();
    for (n, line) in lines {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (record, rest) = line.split_once(' ').unwrap_or((line, ""));
        match record {
            "vm" => {
                if m.vms.len() == MAX_VMS {
                    let kind = DecodeErrorKind::Invalid(Problem::TooManyVms(MAX_VMS + 1));
                    return Err(at(n)(kind));
                }
                m.vms.push(decode_vm(rest).map_err(at(n))?);
                vm_lines.push(n);
            }
            "channel" => {
                if m.channels.len() == MAX_CHANNELS {
                    let problem = Problem::TooManyChannels(MAX_CHANNELS + 1);
                    return Err(at(n)(DecodeErrorKind::Invalid(problem)));
                }
                m.channels.push(decode_channel(rest).map_err(at(n))?);
                channel_lines.push(n);
            }
            other => return Err(at(n)(DecodeErrorKind::UnknownRecord(other.to_string()))),
        }
    }

    validate::check_relations(&m).map_err(|e| {
        let line = match e.item {
            Item::Manifest => 0,
            Item::Vm(i) => vm_lines.get(i).copied().unwrap_or(0),
            Item::Channel(i) => channel_lines.get(i).copied().unwrap_or(0),
        };
        DecodeError {
            line,
            kind: DecodeErrorKind::Invalid(e.problem),
        }
    })?;
    Ok(m)
}

/// Collects the `key=value` fields of one record into `slots` (one per known key, in order).
///
/// When `rest_key` is given, that key ends the field list and its value is the rest of the line.
/// Keys in `optional` may be absent (their slot stays `None`).
fn fields<'a>(
    mut rest: &'a str,
    keys: &[&'static str],
    rest_key: Option<&'static str>,
    optional: &[&'static str],
    slots: &mut [Option<&'a str>],
) -> Result<(), DecodeErrorKind> {
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let (token, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let Some((key, value)) = token.split_once('=') else {
            return Err(DecodeErrorKind::NotKeyValue(token.to_string()));
        };
        let Some(index) = keys.iter().position(|k| *k == key) else {
            return Err(DecodeErrorKind::UnknownKey(key.to_string()));
        };
        let is_rest = rest_key == Some(keys[index]);
        let slot = &mut slots[index];
        if slot.is_some() {
            return Err(DecodeErrorKind::DuplicateKey(keys[index]));
        }
        if is_rest {
            // The token's `=` is the line's first: what follows it is the rest of the line.
            *slot = rest.split_once('=').map(|(_, line_rest)| line_rest);
            break;
        }
        *slot = Some(value);
        rest = tail;
    }
    match keys
        .iter()
        .zip(slots.iter())
        .find(|(key, slot)| slot.is_none() && !optional.contains(key))
    {
        Some((key, _)) => Err(DecodeErrorKind::MissingKey(key)),
        None => Ok(()),
    }
}

/// Parses a decimal number of digits only (no sign, no spaces).
fn number(key: &'static str, value: &str) -> Result<u64, DecodeErrorKind> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecodeErrorKind::BadNumber(key));
    }
    value.parse().map_err(|_| DecodeErrorKind::BadNumber(key))
}

/// A number with an `i64` view for the range checks, which take `i64`.
fn small(key: &'static str, value: &str) -> Result<i64, DecodeErrorKind> {
    i64::try_from(number(key, value)?).map_err(|_| DecodeErrorKind::BadNumber(key))
}

const VM_KEYS: [&str; 12] = [
    "name", "memory", "vcpus", "console", "on_fault", "image", "disk", "cpus", "kind", "initrd",
    "devices", "cmdline",
];

/// A `devices` value: PCI addresses `BB:DD.F`, separated by commas.
fn device_list(value: &str) -> Result<Vec<Bdf>, DecodeErrorKind> {
    // A loop, not a `collect` into a `Result`: its adapter is code of its own in the hyp.
    let mut devices = Vec::new();
    for d in value.split(',') {
        devices.push(Bdf::parse(d).ok_or(DecodeErrorKind::BadValue("devices"))?);
    }
    Ok(devices)
}

/// A `cpus` value: CPU indices in decimal, separated by commas.
fn cpu_set(value: &str) -> Result<CpuSet, DecodeErrorKind> {
    let mut indices = Vec::new();
    if !value.is_empty() {
        for part in value.split(',') {
            indices.push(small("cpus", part)?);
        }
    }
    CpuSet::from_indices(indices).map_err(DecodeErrorKind::Invalid)
}

/// A `disk` value: `OFFSET+SIZE`, decimal bytes.
fn disk_region(value: &str) -> Result<DiskRegion, DecodeErrorKind> {
    let (offset, size) = value
        .split_once('+')
        .ok_or(DecodeErrorKind::BadValue("disk"))?;
    let region = DiskRegion {
        offset: number("disk", offset)?,
        size: number("disk", size)?,
    };
    validate::check_disk(&region).map_err(DecodeErrorKind::Invalid)?;
    Ok(region)
}

fn decode_vm(rest: &str) -> Result<VmSpec, DecodeErrorKind> {
    let mut s = [None; VM_KEYS.len()];
    let optional = ["disk", "cpus", "kind", "initrd", "devices"];
    fields(rest, &VM_KEYS, Some("cmdline"), &optional, &mut s)?;
    let disk = s[6].map(disk_region).transpose()?;
    let cpus = s[7].map(cpu_set).transpose()?;
    let kind = s[8].map_or(Some(VmKind::Pv), VmKind::from_name);
    let kind = kind.ok_or(DecodeErrorKind::BadValue("kind"))?;
    let initrd = s[9].map(str::to_string);
    let devices = s[10].map(device_list).transpose()?.unwrap_or_default();
    let [
        name,
        memory,
        vcpus,
        console,
        on_fault,
        image,
        _,
        _,
        _,
        _,
        _,
        cmdline,
    ] = s.map(Option::unwrap_or_default);
    let invalid = DecodeErrorKind::Invalid;

    validate::check_vm_name(name).map_err(invalid)?;
    let memory_bytes = number("memory", memory)?;
    validate::check_memory(memory_bytes).map_err(invalid)?;
    let vcpus = validate::check_vcpus(small("vcpus", vcpus)?).map_err(invalid)?;
    let console = ConsoleKind::from_name(console).ok_or(DecodeErrorKind::BadValue("console"))?;
    let on_fault = FaultPolicy::from_name(on_fault).ok_or(DecodeErrorKind::BadValue("on_fault"))?;
    validate::check_image_name(image).map_err(invalid)?;
    if let Some(initrd) = &initrd {
        validate::check_image_name(initrd).map_err(invalid)?;
    }
    let vm = VmSpec {
        name: name.to_string(),
        kind,
        image: image.to_string(),
        initrd,
        memory_bytes,
        vcpus,
        cmdline: cmdline.to_string(),
        console,
        on_fault,
        disk,
        cpus,
        devices,
    };
    validate::check_vm(&vm).map_err(invalid)?;
    Ok(vm)
}

const CHANNEL_KEYS: [&str; 4] = ["name", "a", "b", "pages"];

fn decode_channel(rest: &str) -> Result<ChannelSpec, DecodeErrorKind> {
    let mut s = [None; CHANNEL_KEYS.len()];
    fields(rest, &CHANNEL_KEYS, None, &[], &mut s)?;
    let [name, a, b, pages] = s.map(Option::unwrap_or_default);
    let invalid = DecodeErrorKind::Invalid;

    validate::check_name(name).map_err(invalid)?;
    validate::check_vm_name(a).map_err(invalid)?;
    validate::check_vm_name(b).map_err(invalid)?;
    let pages = validate::check_pages(small("pages", pages)?).map_err(invalid)?;
    Ok(ChannelSpec {
        name: name.to_string(),
        a: a.to_string(),
        b: b.to_string(),
        pages,
    })
}
