//! The invariants the fuzzer checks after each call: the registers SMCCC 1.2 says are preserved
//! (x4..x17: no v1 call returns results there) and the answer, which must be one of the call's
//! documented results. Decoding is `hypercall-abi`'s (`Call::try_from`: a register image it
//! refuses must be answered with exactly its error), standard answers come from the crate
//! (`arch_features`, `psci::features`, `negotiate`, `live_features`, the UID); the rest follows
//! `docs/ABI.md` call by call, sharpened by what the fuzzer knows of its own memory ([`Model`]):
//! which sandbox pages are mapped with which permissions and how much quota is left.
//!
//! Where several documented errors apply (a range both unaligned and too long), any of them is
//! right; where the fuzzer cannot know (a page the second vCPU's batch lists may have changed),
//! every documented answer is.

use super::draw::{
    HI_BASE, LO_PAGES, P, SANDBOX_PAGES, TEXT_BYTES, Targets, VOID_BASE, VOID_END, in_batch_zone,
    sandbox_index,
};
use crate::mm::layout::{HEAP_BASE, IPA_LIMIT};
use core::fmt::{self, Write};
use hypercall_abi::block::{BLOCK_RING_ENTRIES, BLOCK_SECTOR_SIZE, BLOCK_TRANSFER_MAX};
use hypercall_abi::console::{CONSOLE_CHUNK_MAX, CONSOLE_RING_ENTRIES};
use hypercall_abi::layout::{BatchEntry, BatchOp, BlockDesc};
use hypercall_abi::psci::{PSCI_VERSION_1_1, PsciCall, psci_error};
use hypercall_abi::standard::{SMCCC_VERSION_1_2, VENDOR_HYP_UID, arch_features, revision_regs};
use hypercall_abi::{Call, Error, EventSource, MemPerms, Regs, Version, live_features, negotiate};

/// A sandbox page's state in the model.
const UNMAPPED: u8 = 0;
const MAPPED: u8 = 0x80;
const UNKNOWN: u8 = 0xFF;

/// What the fuzzer knows of its own memory and rings.
pub struct Model {
    pages: [u8; SANDBOX_PAGES],
    mapped: u64,
    unknown: u64,
    /// Quota left, in bytes, with the sandbox empty.
    pub quota_base: u64,
    /// The block ring's consumer index (the hyp's: it advances by what each submit takes).
    pub block_consumer: u32,
}

impl Model {
    /// Everything unknown until [`Model::set`] says otherwise.
    pub const fn new() -> Model {
        Model {
            pages: [UNKNOWN; SANDBOX_PAGES],
            mapped: 0,
            unknown: SANDBOX_PAGES as u64,
            quota_base: 0,
            block_consumer: 0,
        }
    }

    /// Sets sandbox page `index`: `Some(perms)` mapped, `None` not mapped.
    pub fn set(&mut self, index: usize, perms: Option<MemPerms>) {
        let new = perms.map_or(UNMAPPED, |p| MAPPED | p.bits() as u8);
        self.replace(index, new);
    }

    fn replace(&mut self, index: usize, new: u8) {
        let old = core::mem::replace(&mut self.pages[index], new);
        let count = |s: u8, mapped: &mut u64, unknown: &mut u64, add: bool| {
            let n = match s {
                UNKNOWN => unknown,
                UNMAPPED => return,
                _ => mapped,
            };
            if add { *n += 1 } else { *n -= 1 }
        };
        count(old, &mut self.mapped, &mut self.unknown, false);
        count(new, &mut self.mapped, &mut self.unknown, true);
    }

    /// Forgets the pages batch entries may touch (after a batch whose list the second vCPU was
    /// rewriting).
    pub fn forget_batch_zone(&mut self) {
        for i in (0..SANDBOX_PAGES).filter(|&i| in_batch_zone(i)) {
            self.replace(i, UNKNOWN);
        }
    }

    /// Sandbox pages whose state is unknown.
    pub fn unknown(&self) -> impl Iterator<Item = usize> + '_ {
        (0..SANDBOX_PAGES).filter(|&i| self.pages[i] == UNKNOWN)
    }

    /// Sandbox pages mapped.
    pub fn mapped(&self) -> impl Iterator<Item = usize> + '_ {
        (0..SANDBOX_PAGES).filter(|&i| self.pages[i] & MAPPED != 0 && self.pages[i] != UNKNOWN)
    }

    pub fn mapped_count(&self) -> u64 {
        self.mapped
    }

    /// Quota left in bytes, if every sandbox page is known.
    pub fn quota_left(&self) -> Option<u64> {
        (self.unknown == 0).then(|| self.quota_base.saturating_sub(self.mapped * P))
    }

    /// The state of sandbox pages `first..first + n`.
    fn range(&self, first: usize, n: usize) -> RangeState {
        let mut s = RangeState::default();
        for &p in &self.pages[first..first + n] {
            match p {
                UNKNOWN => s.unknown = true,
                UNMAPPED => s.unmapped = true,
                _ => s.mapped = true,
            }
        }
        s
    }

    /// Records what a call that succeeded did (after [`check`] accepted it). `batch` is the
    /// list the hyp ran, if the fuzzer knows it (nobody rewrote it meanwhile).
    pub fn apply(&mut self, input: &Regs, out: &Regs, batch: Option<&[u64]>) {
        let Ok(call) = Call::try_from(input) else {
            return;
        };
        if out[0] != 0 && !matches!(call, Call::MemBatch { .. }) {
            return;
        }
        match call {
            Call::MemMap { ipa, pages, perms } | Call::MemProtect { ipa, pages, perms } => {
                self.set_range(ipa, pages, Some(perms))
            }
            Call::MemUnmap { ipa, pages } => self.set_range(ipa, pages, None),
            Call::MemBatch { .. } => match batch {
                Some(list) if out[0] == 0 => {
                    for &raw in list.iter().take(out[1] as usize) {
                        if let Ok((op, ipa, perms)) = (BatchEntry { raw }).decode() {
                            let perms = (op != BatchOp::Unmap).then_some(perms);
                            self.set_range(ipa, 1, perms);
                        }
                    }
                }
                Some(_) => {}
                None => self.forget_batch_zone(),
            },
            Call::BlockSubmit { .. } => {
                self.block_consumer = self.block_consumer.wrapping_add(out[1] as u32)
            }
            _ => {}
        }
    }

    fn set_range(&mut self, ipa: u64, pages: u64, perms: Option<MemPerms>) {
        if let Some((first, n)) = sandbox_range(ipa, pages) {
            for i in first..first + n {
                self.set(i, perms);
            }
        }
    }
}

#[derive(Default)]
struct RangeState {
    mapped: bool,
    unmapped: bool,
    unknown: bool,
}

/// The sandbox indices of `[ipa, ipa + pages * P)` if the range is page-aligned and lies
/// inside one part of the sandbox.
fn sandbox_range(ipa: u64, pages: u64) -> Option<(usize, usize)> {
    let end = span(ipa, pages)?;
    let first = sandbox_index(ipa)?;
    let last = sandbox_index(end - 1)?;
    let same_part = (ipa < HI_BASE) == (end - 1 < HI_BASE);
    (same_part && last + 1 - first == pages as usize).then_some((first, pages as usize))
}

/// The end of `[ipa, ipa + pages * P)` if it is a valid range of the IPA space.
fn span(ipa: u64, pages: u64) -> Option<u64> {
    if !ipa.is_multiple_of(P) || pages == 0 {
        return None;
    }
    let end = ipa.checked_add(pages.checked_mul(P)?)?;
    (end <= IPA_LIMIT).then_some(end)
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1 && b.0 < b.1
}

/// IPA ranges nothing is ever mapped in: between the lower sandbox and the image, between the
/// shared pages and the heap, after channel 0's pages (channels are 16 MiB apart), the void
/// window.
fn never_mapped(t: &Targets) -> [(u64, u64); 4] {
    let channel_end = t.channel_ipa + t.channel_pages * P;
    [
        (LO_PAGES * P, t.image_start),
        (t.shared_end, HEAP_BASE),
        (channel_end, channel_end.next_multiple_of(CHANNEL_STRIDE)),
        (VOID_BASE, VOID_END),
    ]
}

/// IPA distance between a VM's channels (`docs/ABI.md`, channel).
const CHANNEL_STRIDE: u64 = 0x100_0000;

/// A set of errors.
#[derive(Copy, Clone, Default, PartialEq, Eq)]
struct Errors(u16);

impl Errors {
    fn of(errors: &[Error]) -> Errors {
        let mut s = Errors(0);
        for &e in errors {
            s.add(e);
        }
        s
    }
    fn bit(e: Error) -> u16 {
        1 << Error::ALL.iter().position(|&x| x == e).unwrap_or(15)
    }
    fn add(&mut self, e: Error) {
        self.0 |= Errors::bit(e);
    }
    fn has(self, e: Error) -> bool {
        self.0 & Errors::bit(e) != 0
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for e in Error::ALL.iter().filter(|&&e| self.has(e)) {
            write!(f, "{}{}", if first { "" } else { " or " }, e.name())?;
            first = false;
        }
        Ok(())
    }
}

/// What was expected, when an invariant fails: one line.
pub struct Why {
    buf: [u8; 112],
    len: usize,
}

impl Why {
    fn new(args: fmt::Arguments) -> Why {
        let mut w = Why {
            buf: [0; 112],
            len: 0,
        };
        let _ = w.write_fmt(args);
        w
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl Write for Why {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl fmt::Debug for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! why {
    ($($arg:tt)*) => { Err(Why::new(format_args!($($arg)*))) };
}

pub type Verdict = Result<(), Why>;

/// What a vendor call must answer.
enum Expect {
    /// Exactly these x0..x3.
    Exactly([u64; 4]),
    /// One of these errors (x1..x3 = 0).
    OneOf(Errors),
    /// Success (x0 = 0) checked by `ok`, or one of `errors`.
    Either(Errors, fn(&Regs, &Targets, &Model, &Regs) -> Verdict),
}

fn exactly(result: Result<[u64; 3], Error>) -> Expect {
    Expect::Exactly(hypercall_abi::encode_return(result))
}

const fn ok_any(_: &Regs, _: &Targets, _: &Model, _: &Regs) -> Verdict {
    Ok(())
}

/// Checks one call's answer. `input` is what was sent (x0..x17), `out` what came back.
pub fn check(t: &Targets, m: &Model, input: &Regs, out: &Regs) -> Verdict {
    if let Some(i) = (4..18).find(|&i| out[i] != input[i]) {
        return why!("x{i} preserved ({:#x}), got {:#x}", input[i], out[i]);
    }
    let call = match Call::try_from(input) {
        Ok(call) => call,
        // Refused by decoding: exactly that error (x1..x3 0 for IDs of our range).
        Err(e) => {
            let ours = input[0] as u32 & 0xFF00_0000 == 0xC600_0000;
            return if out[0] as i64 != e.code() || (ours && out[1..4] != [0; 3]) {
                why!("{} (decoding), x1..x3 0", e.name())
            } else {
                Ok(())
            };
        }
    };
    let expect = match call {
        Call::SmcccVersion => return raw_x0(out, SMCCC_VERSION_1_2 as i64),
        Call::SmcccArchFeatures { function_id } => {
            return raw_x0(out, arch_features(function_id).into());
        }
        Call::VendorHypCallUid => {
            let got = [out[0] as u32, out[1] as u32, out[2] as u32, out[3] as u32];
            return if got == VENDOR_HYP_UID {
                Ok(())
            } else {
                why!("w0..w3 = the UID {VENDOR_HYP_UID:#x?}")
            };
        }
        Call::VendorHypRevision => {
            let want = revision_regs(Version::CURRENT);
            return if out[..2] == want {
                Ok(())
            } else {
                why!("x0, x1 = {want:?}")
            };
        }
        Call::Psci(p) => return psci(t, p, out),
        Call::AbiVersion { guest } => {
            exactly(negotiate(Version::CURRENT, guest).map(|v| [v.to_u64(), 0, 0]))
        }
        Call::AbiFeatures => exactly(Ok([live_features(), 0, 0])),
        Call::VmExit { .. } => return why!("never drawn: VM_EXIT returned"),
        Call::VmYield => exactly(Ok([0; 3])),
        Call::VmInfo => Expect::Either(Errors(0), |_, t, m, out| {
            let quota = m.quota_left().unwrap_or(out[3]);
            let want = [0, u64::from(t.vm_index), u64::from(t.vcpus), quota];
            if out[..4] == want {
                Ok(())
            } else {
                why!("x0..x3 = {want:#x?} (index, vCPUs, quota left)")
            }
        }),
        Call::ConsoleWrite { ipa, len } => console_write(t, ipa, len),
        Call::ConsoleRead { ipa, len } => console_read(t, m, ipa, len),
        Call::ConsoleNotify if t.console_ring == 0 => exactly(Err(Error::NotSupported)),
        Call::ConsoleNotify => Expect::Either(Errors(0), |_, _, _, out| {
            if out[1] <= u64::from(CONSOLE_RING_ENTRIES) && out[2..4] == [0; 2] {
                Ok(())
            } else {
                why!("x1 <= {CONSOLE_RING_ENTRIES} bytes taken, x2 = x3 = 0")
            }
        }),
        Call::MemMap { ipa, pages, perms } => mem_map(t, m, ipa, pages, perms),
        Call::MemUnmap { ipa, pages } => mem_change(t, m, ipa, pages, None),
        Call::MemProtect { ipa, pages, perms } => mem_change(t, m, ipa, pages, Some(perms)),
        Call::MemQuery { ipa } => mem_query(t, m, ipa),
        Call::MemBatch { list_ipa, count } => mem_batch(t, m, list_ipa, count),
        Call::EventBind { source } => {
            let fixed = match source {
                EventSource::VirtualTimer => Some(t.timer_event),
                EventSource::ConsoleRx => Some(t.console_event),
                EventSource::BlockCompletion => Some(t.block_event),
                EventSource::Channel { channel } if channel < t.channel_count => Some(8 + channel),
                // The fuzzer's VM owns no device.
                EventSource::Channel { .. }
                | EventSource::DeviceInterrupt
                | EventSource::DeviceFault => None,
            };
            match fixed {
                Some(e) => exactly(Ok([e.into(), 0, 0])),
                None => Expect::OneOf(Errors::of(&[Error::Denied, Error::InvalidParameters])),
            }
        }
        Call::EventMask { .. }
        | Call::EventUnmask { .. }
        | Call::EventAck { .. }
        | Call::EventSharedAck => exactly(Ok([0; 3])),
        Call::EventSend { vcpu, .. } if vcpu < t.vcpus => exactly(Ok([0; 3])),
        Call::EventSend { .. } => exactly(Err(Error::InvalidParameters)),
        Call::EventDeviceAck | Call::EventDeviceFaults => exactly(Err(Error::Denied)),
        Call::BlockInfo if t.disk_sectors == 0 => exactly(Err(Error::NotSupported)),
        Call::BlockInfo => exactly(Ok([t.disk_sectors, BLOCK_SECTOR_SIZE.into(), 0])),
        Call::BlockSubmit { .. } if t.disk_sectors == 0 => exactly(Err(Error::NotSupported)),
        Call::BlockSubmit { producer } => {
            let ahead = producer.wrapping_sub(m.block_consumer);
            if ahead > BLOCK_RING_ENTRIES {
                exactly(Err(Error::InvalidParameters))
            } else {
                // On a device (virtio-blk) the hyp takes no more than the VM's request slots
                // hold, and counts a ring from the last request not yet done: while some are
                // in flight, fewer are taken, or a producer a ring ahead is refused.
                Expect::Either(
                    Errors::of(&[Error::InvalidParameters]),
                    |input, _, m, out| {
                        let ahead = (input[1] as u32).wrapping_sub(m.block_consumer);
                        if out[1] <= ahead.into() && out[2] == 0 && out[3] == 0 {
                            Ok(())
                        } else {
                            why!("x1 = at most the {ahead} descriptors offered, x2 = x3 = 0")
                        }
                    },
                )
            }
        }
        Call::ChannelInfo { channel } if channel < t.channel_count => {
            Expect::Either(Errors(0), |input, t, _, out| {
                let ch = input[1];
                let ipa = 0x40_0000_0000 + ch * CHANNEL_STRIDE;
                if out[1] == ipa && (ch != 0 || out[2] == t.channel_pages) && out[3] >> 33 == 0 {
                    Ok(())
                } else {
                    why!("x1 = {ipa:#x}, x2 = its pages, x3 = peer | flags (bit 0) << 32")
                }
            })
        }
        Call::ChannelNotify { channel } if channel < t.channel_count => exactly(Ok([0; 3])),
        Call::ChannelInfo { .. } | Call::ChannelNotify { .. } => {
            exactly(Err(Error::InvalidParameters))
        }
    };
    match expect {
        Expect::Exactly(want) => {
            if out[..4] == want {
                Ok(())
            } else if want[0] == 0 {
                why!("success, x1..x3 = {:#x?}", &want[1..])
            } else {
                why!("{}", Error::from_code(want[0] as i64).name())
            }
        }
        Expect::OneOf(errors) => match out[0] {
            0 => why!("{errors}, not success"),
            code if errors.has(Error::from_code(code as i64)) && out[1..4] == [0; 3] => Ok(()),
            _ => why!("{errors}, x1..x3 0"),
        },
        Expect::Either(errors, ok) => match out[0] {
            0 => ok(input, t, m, out),
            code if errors.has(Error::from_code(code as i64)) && out[1..4] == [0; 3] => Ok(()),
            _ if errors.is_empty() => why!("success"),
            _ => why!("success or {errors}"),
        },
    }
}

fn raw_x0(out: &Regs, want: i64) -> Verdict {
    if out[0] as i64 == want {
        Ok(())
    } else {
        why!("x0 = {want:#x}")
    }
}

/// PSCI: both vCPUs are on for the whole run (vCPU 1 corrupts), so CPU_ON never succeeds,
/// AFFINITY_INFO says ON for both, and CPU_SUSPEND (drawn only with an event deliverable)
/// returns at once. SYSTEM_RESET, SYSTEM_OFF and CPU_OFF are never drawn (they do not return).
fn psci(t: &Targets, p: PsciCall, out: &Regs) -> Verdict {
    // Aff3 (39:32) and Aff2..Aff0 (23:0): the fields an MPIDR names a vCPU with.
    const AFFINITY: u64 = 0xff_00ff_ffff;
    let ours = |mpidr: u64| mpidr & AFFINITY < u64::from(t.vcpus);
    let x0 = out[0] as i64;
    let (ok, want): (bool, &str) = match p {
        PsciCall::Version => (x0 == PSCI_VERSION_1_1.into(), "PSCI 1.1"),
        PsciCall::Features { function_id } => (
            x0 == hypercall_abi::psci::features(function_id).into(),
            "psci::features",
        ),
        PsciCall::CpuSuspend { .. } => (x0 == 0, "0 (an event is deliverable)"),
        PsciCall::CpuOn {
            target_mpidr,
            entry,
            ..
        } => {
            let on = i64::from(psci_error::ALREADY_ON);
            let bad = i64::from(psci_error::INVALID_ADDRESS);
            let none = i64::from(psci_error::INVALID_PARAMETERS);
            let aligned_code =
                entry.is_multiple_of(4) && (t.image_start..t.rodata_start()).contains(&entry);
            if ours(target_mpidr) {
                (
                    x0 == on || (!aligned_code && x0 == bad),
                    "ALREADY_ON (every vCPU is on)",
                )
            } else {
                (
                    x0 == none || (!aligned_code && x0 == bad),
                    "INVALID_PARAMETERS",
                )
            }
        }
        PsciCall::AffinityInfo {
            target_mpidr,
            lowest_level,
        } => {
            if lowest_level == 0 && ours(target_mpidr) {
                (x0 == 0, "0 ON")
            } else {
                (
                    x0 == i64::from(psci_error::INVALID_PARAMETERS),
                    "INVALID_PARAMETERS",
                )
            }
        }
        PsciCall::CpuOff | PsciCall::SystemOff | PsciCall::SystemReset => (false, "never drawn"),
    };
    if ok { Ok(()) } else { why!("x0 = {want}") }
}

impl Targets {
    /// The end of the image's code (the text buffer is the first read-only data).
    fn rodata_start(&self) -> u64 {
        self.image_pages[1].0.min(self.text)
    }
}

/// Whether `[ipa, ipa + len)` is certainly all readable memory of the fuzzer (the text, the
/// shared pages), and whether it certainly is not (never-mapped windows, beyond the IPA
/// space, wrapping).
fn buffer(t: &Targets, m: &Model, ipa: u64, len: u64) -> (bool, bool) {
    let Some(end) = ipa.checked_add(len) else {
        return (false, true);
    };
    if end > IPA_LIMIT {
        return (false, true);
    }
    let inside = |(a, b): (u64, u64)| ipa >= a && end <= b;
    let good = inside((t.text, t.text + TEXT_BYTES))
        || inside((t.boot_info, t.shared_end))
        || inside((t.image_start, t.image_end));
    let bad = never_mapped(t).iter().any(|&r| overlaps((ipa, end), r))
        || match sandbox_index(ipa) {
            Some(i) if len > 0 => {
                let last = sandbox_index(end - 1).unwrap_or(i);
                (i..=last).any(|j| m.pages.get(j) == Some(&UNMAPPED))
            }
            _ => false,
        };
    (good, bad)
}

fn console_write(t: &Targets, ipa: u64, len: u64) -> Expect {
    let (good, bad) = buffer(t, &Model::new(), ipa, len.min(CONSOLE_CHUNK_MAX));
    if bad && len > 0 {
        return Expect::OneOf(Errors::of(&[Error::BadAddress]));
    }
    let errors = if good {
        Errors(0)
    } else {
        Errors::of(&[Error::BadAddress])
    };
    Expect::Either(errors, |input, _, _, out| {
        let len = input[2];
        let most = len.min(CONSOLE_CHUNK_MAX);
        let least = most.min(1);
        if (least..=most).contains(&out[1]) && out[2..4] == [0; 2] {
            Ok(())
        } else {
            why!("x1 = bytes consumed in {least}..={most}, x2 = x3 = 0")
        }
    })
}

fn console_read(t: &Targets, m: &Model, ipa: u64, len: u64) -> Expect {
    let n = len.min(CONSOLE_CHUNK_MAX);
    let (_, unmapped) = buffer(t, m, ipa, n);
    // Read-only for the guest: the image's code and read-only data up to the text's end, the
    // boot-info and event pages.
    let read_only = [
        (t.image_start, t.text + TEXT_BYTES),
        (t.boot_info, t.event_page + P),
    ];
    let end = ipa.saturating_add(n);
    let bad = unmapped || (n > 0 && read_only.iter().any(|&r| overlaps((ipa, end), r)));
    // With no input waiting a read moves nothing, and may answer 0 even for a bad buffer;
    // it must never say it wrote a bad one.
    let ok = if bad {
        (|_: &Regs, _: &Targets, _: &Model, out: &Regs| {
            if out[1] == 0 && out[2..4] == [0; 2] {
                Ok(())
            } else {
                why!("BAD_ADDRESS or 0 bytes read (the buffer is not writable memory)")
            }
        }) as fn(&Regs, &Targets, &Model, &Regs) -> Verdict
    } else {
        |input: &Regs, _: &Targets, _: &Model, out: &Regs| {
            let most = input[2].min(CONSOLE_CHUNK_MAX);
            if out[1] <= most && out[2..4] == [0; 2] {
                Ok(())
            } else {
                why!("x1 = bytes read <= {most}, x2 = x3 = 0")
            }
        }
    };
    Expect::Either(Errors::of(&[Error::BadAddress]), ok)
}

/// The errors certain for a range `[ipa, ipa + pages)` of a map, and whether its success is
/// certain (if no error is).
fn mem_map(t: &Targets, m: &Model, ipa: u64, pages: u64, perms: MemPerms) -> Expect {
    let mut certain = Errors(0);
    if pages == 0 || !perms.contains(MemPerms::READ) {
        certain.add(Error::InvalidParameters);
    }
    let end = span(ipa, pages.max(1));
    match end {
        None => certain.add(Error::BadAddress),
        Some(end) => {
            if t.mapped_outside().iter().any(|&r| overlaps((ipa, end), r)) {
                certain.add(Error::AlreadyMapped);
            }
            if let Some((first, n)) = sandbox_range(ipa, pages.max(1))
                && m.range(first, n).mapped
            {
                certain.add(Error::AlreadyMapped);
            }
            if m.quota_left().is_some_and(|q| q / P < pages) {
                certain.add(Error::OutOfMemory);
            }
        }
    }
    // The host's frames may run out too: OUT_OF_MEMORY is always a documented answer.
    let mut errors = certain;
    errors.add(Error::OutOfMemory);
    if !certain.is_empty() {
        return Expect::OneOf(errors);
    }
    match sandbox_range(ipa, pages) {
        Some((first, n)) => {
            if m.range(first, n).unknown {
                errors.add(Error::AlreadyMapped);
            }
            Expect::Either(errors, ok_nothing)
        }
        None => Expect::OneOf(Errors::of(&[
            Error::BadAddress,
            Error::InvalidParameters,
            Error::AlreadyMapped,
            Error::OutOfMemory,
        ])),
    }
}

fn ok_nothing(_: &Regs, _: &Targets, _: &Model, out: &Regs) -> Verdict {
    if out[1..4] == [0; 3] {
        Ok(())
    } else {
        why!("success with x1..x3 = 0")
    }
}

/// MEM_UNMAP (`perms` None) and MEM_PROTECT.
fn mem_change(t: &Targets, m: &Model, ipa: u64, pages: u64, perms: Option<MemPerms>) -> Expect {
    let mut certain = Errors(0);
    if pages == 0 {
        certain.add(Error::InvalidParameters);
        certain.add(Error::BadAddress);
    }
    if perms.is_some_and(|p| !p.contains(MemPerms::READ)) {
        certain.add(Error::InvalidParameters);
    }
    let denied: &[(u64, u64)] = if perms.is_some() {
        &t.shared()
    } else {
        &t.pinned()
    };
    match span(ipa, pages.max(1)) {
        None => certain.add(Error::BadAddress),
        Some(end) => {
            if denied.iter().any(|&r| overlaps((ipa, end), r)) {
                certain.add(Error::Denied);
            }
            if never_mapped(t).iter().any(|&r| overlaps((ipa, end), r)) {
                certain.add(Error::NotMapped);
            }
            if let Some((first, n)) = sandbox_range(ipa, pages.max(1))
                && m.range(first, n).unmapped
            {
                certain.add(Error::NotMapped);
            }
        }
    }
    if !certain.is_empty() {
        return Expect::OneOf(certain);
    }
    if let Some((first, n)) = sandbox_range(ipa, pages) {
        let errors = if m.range(first, n).unknown {
            Errors::of(&[Error::NotMapped])
        } else {
            Errors(0)
        };
        return Expect::Either(errors, ok_nothing);
    }
    // A protect of one image page with the permissions it has.
    if let Some(p) = perms
        && pages == 1
        && t.image_pages.contains(&(ipa, p))
    {
        return Expect::Either(Errors(0), ok_nothing);
    }
    Expect::OneOf(Errors::of(&[
        Error::BadAddress,
        Error::NotMapped,
        Error::Denied,
        Error::InvalidParameters,
    ]))
}

/// MEM_QUERY's x2 (the quota left, when the model knows it) and x3 (0).
fn quota(m: &Model, out: &Regs) -> bool {
    m.quota_left().is_none_or(|q| out[2] == q) && out[3] == 0
}

fn mem_query(t: &Targets, m: &Model, ipa: u64) -> Expect {
    if ipa >= IPA_LIMIT {
        return exactly(Err(Error::BadAddress));
    }
    if let Some(i) = sandbox_index(ipa) {
        return match m.pages[i] {
            UNMAPPED => exactly(Err(Error::NotMapped)),
            UNKNOWN => Expect::Either(Errors::of(&[Error::NotMapped]), |_, _, m, out| {
                if quota(m, out) && MemPerms::from_bits(out[1]).is_some() {
                    Ok(())
                } else {
                    why!("success with valid perms and the quota left, or NOT_MAPPED")
                }
            }),
            _ => Expect::Either(Errors(0), |input, _, m, out| {
                let want = m.pages[sandbox_index(input[1]).unwrap_or(0)] & !MAPPED;
                if out[1] == u64::from(want) && quota(m, out) {
                    Ok(())
                } else {
                    why!(
                        "success, x1 = perms {want:#x}, x2 = quota left {:?}",
                        m.quota_left()
                    )
                }
            }),
        };
    }
    if never_mapped(t).iter().any(|&(a, b)| (a..b).contains(&ipa)) {
        return exactly(Err(Error::NotMapped));
    }
    if t.image_pages.iter().any(|(p, _)| *p == ipa & !(P - 1)) {
        return Expect::Either(Errors(0), |input, t, m, out| {
            let page = input[1] & !(P - 1);
            let want = t.image_pages.iter().find(|(p, _)| *p == page).map(|x| x.1);
            if want.is_some_and(|w| out[1] == w.bits()) && quota(m, out) {
                Ok(())
            } else {
                why!("success with the image page's perms {want:?} and the quota left")
            }
        });
    }
    if t.mapped_outside()
        .iter()
        .any(|&(a, b)| (a..b).contains(&ipa))
    {
        return Expect::Either(Errors(0), |_, _, m, out| {
            if MemPerms::from_bits(out[1]).is_some_and(|p| p.contains(MemPerms::READ))
                && quota(m, out)
            {
                Ok(())
            } else {
                why!("success (a mapped page) with READ and the quota left")
            }
        });
    }
    Expect::Either(Errors::of(&[Error::NotMapped]), ok_any)
}

fn mem_batch(t: &Targets, m: &Model, list: u64, count: u64) -> Expect {
    let mut certain = Errors(0);
    if count == 0 || count > hypercall_abi::mem::MEM_BATCH_MAX {
        certain.add(Error::InvalidParameters);
    }
    let (good, bad) = buffer(t, m, list, 8 * count.min(512));
    if !list.is_multiple_of(P) || bad {
        certain.add(Error::BadAddress);
    }
    if !certain.is_empty() {
        return Expect::OneOf(certain);
    }
    let readable = good || list == t.batch_list || list == t.guarded;
    let errors = if readable {
        Errors(0)
    } else {
        Errors::of(&[Error::BadAddress])
    };
    Expect::Either(errors, |input, _, _, out| {
        let count = input[2];
        let stopped = out[2] != 0;
        let code = Error::from_code(out[2] as i64);
        let documented = [
            Error::BadAddress,
            Error::InvalidParameters,
            Error::AlreadyMapped,
            Error::NotMapped,
            Error::Denied,
            Error::OutOfMemory,
        ];
        let consistent = if stopped {
            out[1] < count && documented.contains(&code)
        } else {
            out[1] == count
        };
        if consistent && out[3] == 0 {
            Ok(())
        } else {
            why!("x1 = entries done <= {count}, x2 = 0 or the failing entry's documented error")
        }
    })
}

/// A block descriptor's status after the hyp took it: documented, and the refusal its own
/// fields make certain (the buffer's mapping aside, which the second vCPU may change).
pub fn block_status(t: &Targets, d: &BlockDesc, status: i32) -> Verdict {
    let documented = [
        0,
        Error::InvalidParameters.code(),
        Error::Denied.code(),
        Error::BadAddress.code(),
        Error::OutOfMemory.code(),
        Error::Busy.code(),
    ];
    let status = i64::from(status);
    if !documented.contains(&status) {
        return why!("a documented block status, got {status}");
    }
    let malformed = match d.op {
        BlockDesc::READ | BlockDesc::WRITE => {
            d.reserved != 0
                || d.len == 0
                || !d.len.is_multiple_of(BLOCK_SECTOR_SIZE)
                || d.len > BLOCK_TRANSFER_MAX
        }
        BlockDesc::FLUSH => d.reserved != 0 || d.sector != 0 || d.buf_ipa != 0 || d.len != 0,
        _ => true,
    };
    if malformed {
        return if status == Error::InvalidParameters.code() {
            Ok(())
        } else {
            why!(
                "INVALID_PARAMETERS (malformed: op {} len {:#x}), got {status}",
                d.op,
                d.len
            )
        };
    }
    if d.op != BlockDesc::FLUSH {
        let outside = d
            .sector
            .checked_add(u64::from(d.len / BLOCK_SECTOR_SIZE))
            .is_none_or(|end| end > t.disk_sectors);
        if outside && status != Error::Denied.code() {
            return why!(
                "DENIED (sectors {:#x} +{:#x} bytes outside), got {status}",
                d.sector,
                d.len
            );
        }
        if !outside && status == Error::Denied.code() {
            return why!(
                "no DENIED (sectors {:#x} +{:#x} bytes inside)",
                d.sector,
                d.len
            );
        }
    }
    Ok(())
}
