//! The user-facing TOML manifest (feature `host`). `docs/MANIFEST.md` is its reference.
//!
//! Parsing goes through serde with `deny_unknown_fields` (unknown keys and tables refused by
//! toml itself, with a span), then every value is checked with the rules of
//! [`validate`](crate::validate), each error placed on the line of the value that breaks it.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::fits::{self, ManifestError, Overflow};
use crate::model::*;
use crate::size::parse_size;
use crate::validate::{self, Item, Problem};

/// Where each item of a parsed manifest came from (1-based lines), for errors found later
/// (a quota that does not fit, an image that cannot be read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceLines {
    /// One per VM, in order.
    pub vms: Vec<VmLines>,
    /// The line of each channel's `name`, in order.
    pub channels: Vec<usize>,
}

/// The lines of one `[[vm]]` table's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmLines {
    /// The `name` key.
    pub name: usize,
    /// The `memory` key.
    pub memory: usize,
    /// The `image` key, when given.
    pub image: Option<usize>,
    /// The `initrd` key, when given (Linux VMs).
    pub initrd: Option<usize>,
    /// The `disk` key, when given.
    pub disk: Option<usize>,
}

impl SourceLines {
    /// [`check_fits`](crate::check_fits), with the error placed on the `memory` line of the VM
    /// that does not fit (or the `name` line of the channel).
    pub fn check_fits(&self, m: &Manifest, free_bytes: u64) -> Result<(), ManifestError> {
        let Some(o) = fits::overflow(m, free_bytes) else {
            return Ok(());
        };
        let line = match o {
            Overflow::Vm(i, _) => self.vms.get(i).map_or(0, |l| l.memory),
            Overflow::Channel(i, _) => self.channels.get(i).copied().unwrap_or(0),
        };
        Err(ManifestError {
            line,
            message: fits::overflow_message(m, o, free_bytes),
        })
    }
}

/// Parses and checks a TOML manifest. `image` is kept as written (a path relative to the
/// manifest's directory), or left empty when absent, meaning the default pv-guest.
pub fn parse_toml(text: &str) -> Result<Manifest, ManifestError> {
    parse_toml_with_lines(text).map(|(m, _)| m)
}

/// [`parse_toml`], also returning where each item is in the text.
pub fn parse_toml_with_lines(text: &str) -> Result<(Manifest, SourceLines), ManifestError> {
    let doc: Doc = toml::from_str(text).map_err(|e| ManifestError {
        line: e.span().map_or(0, |s| line_of(text, s.start)),
        message: plain_words(e.message().trim_end()),
    })?;
    let at = |span: Range<usize>| move |p: Problem| err(text, span.clone(), p);

    let mut m = Manifest::default();
    let mut lines = SourceLines::default();
    for vm in doc.vm {
        let vm = vm.into_inner();
        validate::check_vm_name(vm.name.get_ref()).map_err(at(vm.name.span()))?;
        let memory_bytes = *vm.memory.get_ref();
        validate::check_memory(memory_bytes.0).map_err(at(vm.memory.span()))?;
        let vcpus = match &vm.vcpus {
            Some(v) => validate::check_vcpus(*v.get_ref()).map_err(at(v.span()))?,
            None => 1,
        };
        let kind = vm.kind.as_ref().map_or(VmKind::Pv, |k| *k.get_ref());
        refuse_keys_of_other_kind(text, &vm, kind)?;
        let cmdline = match (&vm.cmdline, &vm.bootargs) {
            (Some(c), _) => {
                validate::check_cmdline(c.get_ref()).map_err(at(c.span()))?;
                c.get_ref().clone()
            }
            (None, Some(b)) => {
                validate::check_bootargs(b.get_ref()).map_err(at(b.span()))?;
                b.get_ref().clone()
            }
            (None, None) if kind == VmKind::Linux => String::new(),
            (None, None) => DEFAULT_CMDLINE.to_owned(),
        };
        let disk = match &vm.disk {
            Some(d) => {
                let region = DiskRegion {
                    offset: d.get_ref().offset.0,
                    size: d.get_ref().size.0,
                };
                validate::check_disk(&region).map_err(at(d.span()))?;
                Some(region)
            }
            None => None,
        };
        let cpus = match &vm.cpus {
            Some(c) => {
                Some(CpuSet::from_indices(c.get_ref().iter().copied()).map_err(at(c.span()))?)
            }
            None => None,
        };
        if let Some(image) = &vm.image
            && image.get_ref().is_empty()
        {
            let message = match kind {
                VmKind::Pv => "image is empty; leave the key out for the default pv-guest",
                VmKind::Linux => "image is empty; a kind = \"linux\" VM needs a raw arm64 Image",
            };
            return Err(ManifestError {
                line: line_of(text, image.span().start),
                message: message.into(),
            });
        }
        if let Some(initrd) = &vm.initrd
            && initrd.get_ref().is_empty()
        {
            return Err(ManifestError {
                line: line_of(text, initrd.span().start),
                message: "initrd is empty; leave the key out for no initramfs".into(),
            });
        }
        if kind == VmKind::Linux && vm.image.is_none() {
            let kind_span = vm.kind.as_ref().map_or(vm.name.span(), Spanned::span);
            return Err(err(text, kind_span, Problem::LinuxWithoutImage));
        }
        lines.vms.push(VmLines {
            name: line_of(text, vm.name.span().start),
            memory: line_of(text, vm.memory.span().start),
            image: vm.image.as_ref().map(|i| line_of(text, i.span().start)),
            initrd: vm.initrd.as_ref().map(|i| line_of(text, i.span().start)),
            disk: vm.disk.as_ref().map(|d| line_of(text, d.span().start)),
        });
        let console = match kind {
            VmKind::Pv => vm.console.map(Spanned::into_inner).unwrap_or_default(),
            VmKind::Linux => ConsoleKind::EmulatedPl011,
        };
        m.vms.push(VmSpec {
            name: vm.name.into_inner(),
            kind,
            image: vm.image.map(Spanned::into_inner).unwrap_or_default(),
            initrd: vm.initrd.map(Spanned::into_inner),
            memory_bytes: memory_bytes.0,
            vcpus,
            cmdline,
            console,
            on_fault: vm.on_fault.map(Spanned::into_inner).unwrap_or_default(),
            disk,
            cpus,
        });
    }

    // The line of each channel's `between`, for errors about its ends.
    let mut between_lines = Vec::new();
    for ch in doc.channel {
        let ch = ch.into_inner();
        validate::check_name(ch.name.get_ref()).map_err(at(ch.name.span()))?;
        let ends = ch.between.get_ref();
        let [a, b] = ends.as_slice() else {
            let message = format!("between must list exactly two VM names, not {}", ends.len());
            return Err(ManifestError {
                line: line_of(text, ch.between.span().start),
                message,
            });
        };
        let pages = match &ch.pages {
            Some(p) => validate::check_pages(*p.get_ref()).map_err(at(p.span()))?,
            None => 1,
        };
        lines.channels.push(line_of(text, ch.name.span().start));
        between_lines.push(line_of(text, ch.between.span().start));
        m.channels.push(ChannelSpec {
            name: ch.name.get_ref().clone(),
            a: a.clone(),
            b: b.clone(),
            pages,
        });
    }

    validate::check_relations(&m).map_err(|e| {
        let line = match (&e.item, &e.problem) {
            (Item::Manifest, _) => 0,
            (Item::Vm(i), Problem::DiskOverlap(_)) => lines.vms[*i].disk.unwrap_or(0),
            (Item::Vm(i), _) => lines.vms[*i].name,
            (Item::Channel(i), Problem::DuplicateChannel(_)) => lines.channels[*i],
            (Item::Channel(i), _) => between_lines[*i],
        };
        let mut message = e.problem.to_string();
        if let Problem::DuplicateVm(name) = &e.problem
            && let Some(first) = m.vms.iter().position(|vm| vm.name == *name)
        {
            message = format!("{message} (first used on line {})", lines.vms[first].name);
        }
        if let Problem::DiskOverlap(name) = &e.problem
            && let Some(other) = m.vms.iter().position(|vm| vm.name == *name)
        {
            let other_line = lines.vms[other].disk.unwrap_or(0);
            message = format!("{message} (line {other_line})");
        }
        if let Problem::DuplicateChannel(name) = &e.problem
            && let Some(first) = m.channels.iter().position(|c| c.name == *name)
        {
            message = format!("{message} (first used on line {})", lines.channels[first]);
        }
        ManifestError { line, message }
    })?;
    Ok((m, lines))
}

/// Refuses, on its line, the first key the VM's kind does not take (a PV guest's `cmdline`,
/// `console` and `disk` in a Linux VM; `bootargs` and `initrd` in a PV VM).
fn refuse_keys_of_other_kind(text: &str, vm: &TomlVm, kind: VmKind) -> Result<(), ManifestError> {
    let span = |key: Option<Range<usize>>, name: &'static str| key.map(|s| (s, name));
    let refused = match kind {
        VmKind::Linux => [
            span(vm.cmdline.as_ref().map(Spanned::span), "cmdline"),
            span(vm.console.as_ref().map(Spanned::span), "console"),
            span(vm.disk.as_ref().map(Spanned::span), "disk"),
        ],
        VmKind::Pv => [
            span(vm.bootargs.as_ref().map(Spanned::span), "bootargs"),
            span(vm.initrd.as_ref().map(Spanned::span), "initrd"),
            None,
        ],
    };
    // The first in the text, so that fixing errors top to bottom works.
    match refused.into_iter().flatten().min_by_key(|(s, _)| s.start) {
        Some((s, key)) => Err(err(text, s, Problem::KeyNotForKind { key, kind })),
        None => Ok(()),
    }
}

/// Rewords serde's messages in the manifest's terms (keys and values, not fields and variants).
fn plain_words(message: &str) -> String {
    let mut m = message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing required key")
        .replace("unknown variant", "unknown value")
        .replace("expected i64", "expected an integer");
    if m.contains("expected a sequence") {
        m.push_str(" (write [[vm]] and [[channel]], one table per item)");
    }
    m
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn err(text: &str, span: Range<usize>, problem: Problem) -> ManifestError {
    ManifestError {
        line: line_of(text, span.start),
        message: problem.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    vm: Vec<Spanned<TomlVm>>,
    #[serde(default)]
    channel: Vec<Spanned<TomlChannel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlVm {
    name: Spanned<String>,
    image: Option<Spanned<String>>,
    memory: Spanned<Bytes>,
    vcpus: Option<Spanned<i64>>,
    cmdline: Option<Spanned<String>>,
    console: Option<Spanned<ConsoleKind>>,
    on_fault: Option<Spanned<FaultPolicy>>,
    disk: Option<Spanned<TomlDisk>>,
    cpus: Option<Spanned<Vec<i64>>>,
    kind: Option<Spanned<VmKind>>,
    bootargs: Option<Spanned<String>>,
    initrd: Option<Spanned<String>>,
}

/// `disk = { offset = SIZE, size = SIZE }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlDisk {
    offset: DiskBytes,
    size: DiskBytes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlChannel {
    name: Spanned<String>,
    between: Spanned<Vec<String>>,
    pages: Option<Spanned<i64>>,
}

/// A `memory` value: an integer of bytes or a string with a binary unit.
#[derive(Clone, Copy)]
struct Bytes(u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor("memory")).map(Bytes)
    }
}

/// A disk region's `offset` or `size`: written as a `memory` value is.
#[derive(Clone, Copy)]
struct DiskBytes(u64);

impl<'de> Deserialize<'de> for DiskBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BytesVisitor("disk offset or size"))
            .map(DiskBytes)
    }
}

/// Reads a size; the key's name is for the error messages.
struct BytesVisitor(&'static str);

impl Visitor<'_> for BytesVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size: an integer of bytes or a string such as \"16M\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{} {v} is negative", self.0)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).ok_or_else(|| {
            E::custom(format!(
                "{} {v:?} is not a size: use an integer of bytes or digits with a unit \
                 K, M, G or T (binary), such as \"16M\"",
                self.0
            ))
        })
    }
}
