//! Whether a manifest's memory fits the machine, and the error type the host front end shares.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::model::{Manifest, PAGE_SIZE};
use crate::size::Size;

/// Memory `pvpack --mem` sets aside for the hypervisor itself before checking that the VMs fit:
/// its image, stacks, heap, page tables (its own and every VM's stage-2) and boot-info pages.
pub const HYP_ALLOWANCE_BYTES: u64 = 16 << 20;

/// A manifest refused: the line it is about (1-based) and why.
///
/// `line` is 0 when the error is not about one line (for example [`check_fits`] without a
/// source); `Display` then leaves the `line N: ` prefix out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// 1-based line in the TOML, or 0 for none.
    pub line: usize,
    /// The reason, one line, no trailing period.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl core::error::Error for ManifestError {}

/// What does not fit: the item that takes the running total past the free memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// `vms[i]`, with the total up to and including it.
    Vm(usize, u64),
    /// `channels[i]` (channels are counted after all VMs), with the total.
    Channel(usize, u64),
}

/// Finds the first VM (then channel) whose memory takes the total past `free_bytes`.
pub(crate) fn overflow(m: &Manifest, free_bytes: u64) -> Option<Overflow> {
    let mut total: u64 = 0;
    for (i, vm) in m.vms.iter().enumerate() {
        total = total.saturating_add(vm.memory_bytes);
        if total > free_bytes {
            return Some(Overflow::Vm(i, total));
        }
    }
    for (i, ch) in m.channels.iter().enumerate() {
        total = total.saturating_add(u64::from(ch.pages) * PAGE_SIZE);
        if total > free_bytes {
            return Some(Overflow::Channel(i, total));
        }
    }
    None
}

/// The message for an [`Overflow`].
pub(crate) fn overflow_message(m: &Manifest, o: Overflow, free_bytes: u64) -> String {
    let (what, total) = match o {
        Overflow::Vm(i, total) => (format!("VM \"{}\"", m.vms[i].name), total),
        Overflow::Channel(i, total) => (format!("channel \"{}\"", m.channels[i].name), total),
    };
    format!(
        "{what} does not fit in memory: quotas up to it total {} bytes ({}), only {} bytes ({}) are free",
        total,
        Size(total),
        free_bytes,
        Size(free_bytes),
    )
}

/// Refuses a manifest whose VM quotas plus channel pages exceed `free_bytes`, naming the first
/// VM (or channel) that does not fit. The error's `line` is 0: a [`Manifest`] has no source
/// lines (the TOML front end's `SourceLines::check_fits` adds them).
pub fn check_fits(m: &Manifest, free_bytes: u64) -> Result<(), ManifestError> {
    match overflow(m, free_bytes) {
        None => Ok(()),
        Some(o) => Err(ManifestError {
            line: 0,
            message: overflow_message(m, o, free_bytes),
        }),
    }
}
