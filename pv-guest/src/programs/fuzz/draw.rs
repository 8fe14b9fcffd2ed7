//! What the fuzzer aims at and how it draws one call: the addresses it knows (from the boot info
//! and its image), the sandbox it may change, and edge values for every argument.
//!
//! The fuzzer must survive its own calls, so calls that change memory are aimed only where a
//! change cannot hurt it, or where the documented answer is a refusal:
//!
//! - map, unmap and protect succeed only in the **sandbox**: [`LO_PAGES`] pages at IPA 0 and
//!   [`HI_PAGES`] pages ending at the top of the IPA space (2^39), so both ends of the IPA space
//!   are edges the calls reach; nothing of the fuzzer lives there;
//! - elsewhere they are aimed at pages whose answer is a refusal: the pages the hyp shares and
//!   the image (`DENIED` to unmap, `ALREADY_MAPPED` to map), an IPA window where nothing is ever
//!   mapped ([`VOID_BASE`], `NOT_MAPPED`), unaligned or out-of-space IPAs (`BAD_ADDRESS`); only
//!   a page of the image with the permissions it already has is protected (a no-op);
//! - buffers the hyp may write (console reads, block reads) are never in the fuzzer's own data:
//!   the sandbox, the read-only pages (refused), the rings, or refused addresses.
//!
//! A second vCPU rewrites the batch list and the rings with values from the same pools
//! ([`batch_entry`], [`block_desc`]), so a list or descriptor the hyp reads mid-change is as
//! safe as one the fuzzer wrote.

use super::rng::{Rng, pick};
use crate::mm::layout::IPA_LIMIT;
use hypercall_abi::abi::vendor_id;
use hypercall_abi::layout::BlockDesc;
use hypercall_abi::mem::{MEM_BATCH_MAX, PAGE_SIZE};
use hypercall_abi::psci::*;
use hypercall_abi::standard::{
    SMCCC_ARCH_FEATURES, SMCCC_VERSION, VENDOR_HYP_CALL_UID, VENDOR_HYP_REVISION,
};
use hypercall_abi::{
    MemPerms, Regs, Version, abi::*, block::*, channel::*, console::*, event::*, mem::*, vm::*,
};

pub const P: u64 = PAGE_SIZE;
/// Sandbox pages at IPA 0.
pub const LO_PAGES: u64 = 16;
/// Sandbox pages ending at the IPA space's end: more than the fuzz VM's quota (8M), so a map
/// of the whole quota fits and one page more runs out of quota.
pub const HI_PAGES: u64 = 2048;
/// The first IPA of the upper sandbox.
pub const HI_BASE: u64 = IPA_LIMIT - HI_PAGES * P;
/// Sandbox pages in all: index `i < LO_PAGES` is IPA `i * P`, the rest count from `HI_BASE`.
pub const SANDBOX_PAGES: usize = (LO_PAGES + HI_PAGES) as usize;
/// The top sandbox pages batch entries may touch (besides the lower sandbox): the second vCPU
/// rewrites lists in flight, so after a batch only this zone needs to be looked at again.
pub const BATCH_HI_PAGES: u64 = 48;
/// An IPA window nothing is ever mapped in (above the image, heap and frames windows, below the
/// IPA space's other users).
pub const VOID_BASE: u64 = 0x50_0000_0000;
pub const VOID_END: u64 = 0x60_0000_0000;
/// Bytes of the printable text console writes and block buffers are taken from (in
/// `.rodata`): a run from its first 8 KiB as long as one transfer (64 KiB) stays inside it.
pub const TEXT_BYTES: u64 = 72 * 1024;
/// The highest page-aligned u64.
pub const TOP_PAGE: u64 = !(P - 1);

/// The sandbox index of the page holding `ipa`.
pub fn sandbox_index(ipa: u64) -> Option<usize> {
    if ipa < LO_PAGES * P {
        Some((ipa / P) as usize)
    } else if (HI_BASE..IPA_LIMIT).contains(&ipa) {
        Some((LO_PAGES + (ipa - HI_BASE) / P) as usize)
    } else {
        None
    }
}

/// The IPA of sandbox page `index`.
pub fn sandbox_ipa(index: usize) -> u64 {
    let i = index as u64;
    if i < LO_PAGES {
        i * P
    } else {
        HI_BASE + (i - LO_PAGES) * P
    }
}

/// Whether batch entries may touch sandbox page `index`.
pub fn in_batch_zone(index: usize) -> bool {
    (index as u64) < LO_PAGES || index >= SANDBOX_PAGES - BATCH_HI_PAGES as usize
}

/// The addresses the fuzzer knows (IPAs; the stage-1 map is the identity).
#[derive(Clone, Debug)]
pub struct Targets {
    pub vm_index: u32,
    pub vcpus: u32,
    pub boot_info: u64,
    pub event_page: u64,
    /// 0: none (an emulated-PL011 VM).
    pub console_ring: u64,
    /// 0: no disk.
    pub block_ring: u64,
    /// The end of the pages the hyp shares after the image (boot info, event page, rings).
    pub shared_end: u64,
    pub image_start: u64,
    pub image_end: u64,
    /// A page of code (RX), of read-only data (R), of data (RW): one-page protects with these
    /// permissions are no-ops.
    pub image_pages: [(u64, MemPerms); 3],
    /// The printable text ([`TEXT_BYTES`], page-aligned, read-only).
    pub text: u64,
    /// The checksummed region no call may write (a page of it: only its address is drawn).
    pub guarded: u64,
    /// The batch list page (RW, in the frames window).
    pub batch_list: u64,
    /// Channel 0's region, if the VM has channels.
    pub channel_ipa: u64,
    pub channel_pages: u64,
    pub channel_count: u32,
    pub timer_event: u32,
    pub console_event: u32,
    pub block_event: u32,
    /// Sectors of the disk region (0: no disk).
    pub disk_sectors: u64,
    /// Pages of quota the VM has with the sandbox empty.
    pub quota_pages: u64,
    /// Where a secondary vCPU may start (executable).
    pub entry: u64,
}

impl Targets {
    /// The pages mapped outside the sandbox that the fuzzer knows of: a map over any of them is
    /// `ALREADY_MAPPED`.
    pub fn mapped_outside(&self) -> [(u64, u64); 4] {
        [
            (self.image_start, self.image_end),
            (self.boot_info, self.shared_end),
            (self.channel_ipa, self.channel_ipa + self.channel_pages * P),
            (self.batch_list, self.batch_list + P),
        ]
    }

    /// The pages an unmap must be refused with `DENIED`: the image, the shared pages, channels.
    pub fn pinned(&self) -> [(u64, u64); 3] {
        [
            (self.image_start, self.image_end),
            (self.boot_info, self.shared_end),
            (self.channel_ipa, self.channel_ipa + self.channel_pages * P),
        ]
    }

    /// The shared pages a protect must be refused with `DENIED` (the image may be protected).
    pub fn shared(&self) -> [(u64, u64); 2] {
        [
            (self.boot_info, self.shared_end),
            (self.channel_ipa, self.channel_ipa + self.channel_pages * P),
        ]
    }

    fn shared_pages(&self) -> [u64; 5] {
        let or = |ipa: u64| if ipa == 0 { self.boot_info } else { ipa };
        [
            self.boot_info,
            self.event_page,
            or(self.console_ring),
            or(self.block_ring),
            if self.channel_pages == 0 {
                self.boot_info
            } else {
                self.channel_ipa
            },
        ]
    }
}

/// Which family a drawn call belongs to (for the counts the summary prints).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Family {
    Smccc,
    Psci,
    Abi,
    Vm,
    Console,
    Mem,
    Event,
    Block,
    Channel,
    /// Function IDs the ABI does not have (unknown, wrong owner, SMC32 forms of ours).
    Raw,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Smccc,
        Family::Psci,
        Family::Abi,
        Family::Vm,
        Family::Console,
        Family::Mem,
        Family::Event,
        Family::Block,
        Family::Channel,
        Family::Raw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Smccc => "smccc",
            Family::Psci => "psci",
            Family::Abi => "abi",
            Family::Vm => "vm",
            Family::Console => "console",
            Family::Mem => "mem",
            Family::Event => "event",
            Family::Block => "block",
            Family::Channel => "channel",
            Family::Raw => "raw",
        }
    }
}

/// What has to be in place before the call is made.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Prep {
    None,
    /// Fill the first `n` entries of the batch list (with [`batch_entry`]).
    BatchList(u64),
    /// Fill `n` block descriptors from the consumer index (with [`block_desc`]).
    BlockRing(u32),
    /// Make an event deliverable to vCPU 0 first (CPU_SUSPEND then returns at once).
    Deliverable,
}

/// One drawn call: its register image (x0..x17; x4.. are filled by the caller) and what to
/// prepare.
#[derive(Copy, Clone, Debug)]
pub struct Drawn {
    pub regs: Regs,
    pub family: Family,
    pub prep: Prep,
}

/// Function IDs never drawn: they end (or restart) the VM or this vCPU whatever the arguments.
pub fn never_drawn(id: u32) -> bool {
    matches!(
        id,
        VM_EXIT | PSCI_CPU_OFF | PSCI_SYSTEM_OFF | PSCI_SYSTEM_RESET
    )
}

/// Values that hit boundaries more often than random ones.
const EDGES: [u64; 16] = [
    0,
    1,
    2,
    u64::MAX,
    u64::MAX - 1,
    0xFFFF_FFFF,
    0x1_0000_0000,
    0x7FFF_FFFF_FFFF_FFFF,
    0x8000_0000_0000_0000,
    P - 1,
    P,
    P + 1,
    IPA_LIMIT - 1,
    IPA_LIMIT,
    IPA_LIMIT + 1,
    512,
];

/// A value for a register the call does not read, or one it reads as anything.
pub fn any_value(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.pick(&EDGES),
        1 => rng.below(256),
        _ => rng.next_u64(),
    }
}

/// A u32-typed argument: in range, at the edges of 32 bits, or with bits 63:32 set.
fn u32_arg(rng: &mut Rng, in_range: u64) -> u64 {
    match rng.below(8) {
        0 => u64::from(u32::MAX),
        1 => 1 << 32 | in_range,
        2 => rng.next_u64(),
        3 => in_range + 1,
        _ => in_range,
    }
}

/// An address outside the IPA space, unaligned, or wrapping: always refused.
fn bad_ipa(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0 => IPA_LIMIT,
        1 => IPA_LIMIT + P,
        2 => 1 << 40,
        3 => 1 << 63,
        4 => TOP_PAGE,
        5 => u64::MAX,
        6 => rng.next_u64() | IPA_LIMIT,
        _ => {
            sandbox_ipa(rng.below(SANDBOX_PAGES as u64) as usize) + pick!(rng, [1, 8, 0x800, P - 1])
        }
    }
}

/// A page of the void window.
fn void_ipa(rng: &mut Rng) -> u64 {
    VOID_BASE + rng.below((VOID_END - VOID_BASE) / P - 64) * P
}

/// A sandbox page and the most pages a range from it may cover without leaving the sandbox
/// (the upper sandbox ends at 2^39: ranges beyond are out of the IPA space, always refused).
fn sandbox_page(rng: &mut Rng, batch_zone: bool) -> (u64, u64) {
    let index = if batch_zone {
        if rng.one_in(2) {
            rng.below(LO_PAGES) as usize
        } else {
            SANDBOX_PAGES - 1 - rng.below(BATCH_HI_PAGES) as usize
        }
    } else {
        match rng.below(6) {
            0 => 0,
            1 => SANDBOX_PAGES - 1,
            2 => LO_PAGES as usize,
            3 => rng.below(LO_PAGES) as usize,
            _ => LO_PAGES as usize + rng.below(HI_PAGES) as usize,
        }
    };
    let room = if (index as u64) < LO_PAGES {
        LO_PAGES - index as u64
    } else {
        SANDBOX_PAGES as u64 - index as u64
    };
    (sandbox_ipa(index), room)
}

/// Page counts for a range from a sandbox page with `room` pages to its end.
fn sandbox_count(rng: &mut Rng, t: &Targets, room: u64, upper: bool) -> u64 {
    if !upper {
        // The lower sandbox is followed by the void: stay inside.
        return match rng.below(8) {
            0 => 0,
            1 => room,
            _ => 1 + rng.below(room.min(4)),
        };
    }
    match rng.below(24) {
        0 => 0,
        1 => room,
        2 => room + 1,
        3 => t.quota_pages,
        4 => t.quota_pages + 1,
        5 => MEM_BATCH_MAX,
        6 => 1 << 27,
        7 => 1 << 52,
        8 => u64::MAX,
        9 => u64::MAX / P + 1,
        10 => rng.next_u64(),
        11 | 12 => 2 + rng.below(16),
        _ => 1,
    }
}

/// Page counts for a range that starts at a page whose answer is a refusal.
fn refused_count(rng: &mut Rng, t: &Targets) -> u64 {
    match rng.below(10) {
        0 => 0,
        1 => 2,
        2 => (t.shared_end - t.boot_info) / P,
        3 => 1 << 20,
        4 => u64::MAX,
        5 => rng.next_u64(),
        _ => 1,
    }
}

/// Permissions: every combination of the three bits (no READ is refused), sometimes unknown bits.
fn perms(rng: &mut Rng) -> u64 {
    if rng.one_in(16) {
        rng.next_u64() | 1 << (3 + rng.below(61))
    } else {
        rng.below(8)
    }
}

/// MEM_MAP's (ipa, pages).
fn map_range(rng: &mut Rng, t: &Targets) -> (u64, u64) {
    match rng.below(10) {
        0..=5 => {
            let (ipa, room) = sandbox_page(rng, false);
            (ipa, sandbox_count(rng, t, room, ipa >= HI_BASE))
        }
        6 => {
            let mapped = [
                t.image_start,
                t.image_end - P,
                t.text,
                t.guarded,
                t.batch_list,
                rng.pick(&t.shared_pages()),
            ];
            (rng.pick(&mapped), refused_count(rng, t))
        }
        // A range that starts in the void and ends in the image.
        7 => (t.image_start - P, 2 + rng.below(3)),
        _ => (bad_ipa(rng), refused_count(rng, t)),
    }
}

/// MEM_UNMAP's and MEM_PROTECT's (ipa, pages).
fn change_range(rng: &mut Rng, t: &Targets) -> (u64, u64) {
    match rng.below(10) {
        0..=5 => {
            let (ipa, room) = sandbox_page(rng, false);
            (ipa, sandbox_count(rng, t, room, ipa >= HI_BASE))
        }
        6 => {
            let pinned = [t.image_start, t.image_end - P, rng.pick(&t.shared_pages())];
            (rng.pick(&pinned), refused_count(rng, t))
        }
        7 => (void_ipa(rng), 1 + rng.below(16)),
        _ => (bad_ipa(rng), refused_count(rng, t)),
    }
}

/// One batch entry: a map, unmap or protect of one page of the batch zone, or of a page whose
/// answer is a refusal, or a malformed entry.
pub fn batch_entry(rng: &mut Rng, t: &Targets) -> u64 {
    let op = rng.below(3);
    let ipa = match rng.below(8) {
        0..=3 => sandbox_page(rng, true).0,
        // Pages that refuse a map (mapped) and an unmap (pinned); protects of the image are
        // not refused, so only the shared pages take one.
        4 if op == 2 => rng.pick(&t.shared_pages()),
        4 => pick!(
            rng,
            [t.image_start, t.boot_info, rng.pick(&t.shared_pages())]
        ),
        5 if op == 0 => pick!(rng, [t.guarded, t.batch_list, t.image_end - P]),
        5 => void_ipa(rng),
        6 => pick!(
            rng,
            [
                IPA_LIMIT,
                TOP_PAGE,
                1 << 40,
                rng.next_u64() & !(P - 1) | IPA_LIMIT
            ]
        ),
        _ => return rng.next_u64() | 1 << (5 + rng.below(7)),
    };
    let perms = if op == 1 && !rng.one_in(8) {
        0
    } else {
        rng.below(8)
    };
    ipa | op << 3 | perms
}

/// Sector numbers for a region of `sectors`.
fn sector(rng: &mut Rng, sectors: u64) -> u64 {
    match rng.below(10) {
        0 => sectors.saturating_sub(1),
        1 => sectors,
        2 => sectors.saturating_sub(8),
        3 => u64::MAX,
        4 => 1 << 40,
        5 => rng.next_u64(),
        _ => rng.below(sectors.max(1)),
    }
}

/// A buffer address the hyp may write without harm (a read's destination): never the
/// fuzzer's own data, nor the rings: a read into the block ring (or the console ring, which
/// precedes it) would replace the slots the hyp takes next with disk data, descriptors nobody
/// drew that may name the fuzzer's own pages. The read-only target is the text (a write copies
/// only printable bytes to the disk).
fn writable_buffer(rng: &mut Rng, t: &Targets) -> u64 {
    match rng.below(12) {
        0..=4 => sandbox_page(rng, false).0 + pick!(rng, [0, 0, 1, 512, P - 512, P - 1]),
        5..=7 => t.text + rng.below(2 * P),
        8 => void_ipa(rng),
        9 => u64::MAX - 511,
        _ => bad_ipa(rng),
    }
}

/// One block descriptor.
pub fn block_desc(rng: &mut Rng, t: &Targets) -> BlockDesc {
    let op = match rng.below(10) {
        0..=3 => BlockDesc::READ,
        4..=6 => BlockDesc::WRITE,
        7 => BlockDesc::FLUSH,
        8 => 3,
        _ => rng.next_u64() as u32,
    };
    if op == BlockDesc::FLUSH && !rng.one_in(4) {
        return BlockDesc {
            op,
            status: rng.next_u64() as i32,
            sector: 0,
            buf_ipa: 0,
            len: 0,
            reserved: 0,
        };
    }
    let len = match rng.below(16) {
        0 => 0,
        1 => 513,
        2 => BLOCK_TRANSFER_MAX,
        3 => BLOCK_TRANSFER_MAX + BLOCK_SECTOR_SIZE,
        4 => u32::MAX,
        5 => rng.next_u64() as u32,
        6 => 8192,
        7 => BLOCK_TRANSFER_MAX - BLOCK_SECTOR_SIZE,
        _ => BLOCK_SECTOR_SIZE * (1 + rng.below(8) as u32),
    };
    BlockDesc {
        op,
        status: rng.next_u64() as i32,
        sector: sector(rng, t.disk_sectors),
        buf_ipa: writable_buffer(rng, t),
        len,
        reserved: if rng.one_in(12) {
            rng.next_u64() as u32 | 1
        } else {
            0
        },
    }
}

/// A function ID the ABI does not have (or, rarely, one it has, by chance): unknown IDs next to
/// ours, other owners, the SMC32 forms of our calls, yielding calls, PSCI and SMCCC IDs we do
/// not implement.
fn raw_id(rng: &mut Rng) -> u32 {
    let low = rng.next_u64() as u32;
    let id = match rng.below(10) {
        0 | 1 => vendor_id(low & 0x7F),
        2 => vendor_id(low & 0xFFFF),
        3 => 0x8600_0000 | (low & 0x7F),
        4 => {
            pick!(
                rng,
                [
                    0xC500_0000,
                    0xC700_0000,
                    0x4600_0000,
                    0x0600_0000,
                    0xF600_0000
                ]
            ) | (low & 0x7F)
        }
        5 => 0x8400_0000 | (low & 0x1F),
        6 => 0xC400_0000 | (low & 0x1F),
        7 => 0x8000_0000 | (low & 0xFFFF),
        8 => 0x8600_FF00 | (low & 0xFF),
        _ => low,
    };
    if never_drawn(id) || matches!(id, PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64) {
        vendor_id(0x7F)
    } else {
        id
    }
}

/// MPIDR values: ours (vCPUs 0 and 1, with and without bit 31), others, garbage.
fn mpidr(rng: &mut Rng, vcpus: u32) -> u64 {
    match rng.below(10) {
        0 => 0x8000_0000,
        1 => 0x8000_0001,
        2 => 0,
        3 => 1,
        4 => u64::from(vcpus),
        5 => 0x8000_0000 | u64::from(vcpus),
        6 => 0x100,
        7 => 1 << 32,
        8 => u64::MAX,
        _ => rng.next_u64(),
    }
}

/// Draws one call. `block_consumer` is the block ring's consumer index as the fuzzer knows it.
pub fn call(rng: &mut Rng, t: &Targets, block_consumer: u32) -> Drawn {
    let mut regs: Regs = [0; 18];
    let mut prep = Prep::None;
    // Weights per family: mem first, the others enough that every call is drawn thousands of
    // times in a long run.
    let family = Family::ALL[rng.weighted(&[4, 8, 3, 3, 6, 22, 9, 6, 3, 6])];
    let (id, args): (u32, [u64; 3]) = match family {
        Family::Smccc => match rng.below(4) {
            0 => (SMCCC_VERSION, [0; 3]),
            1 => {
                let f = pick!(
                    rng,
                    [
                        SMCCC_VERSION,
                        SMCCC_ARCH_FEATURES,
                        0x8000_0002, // SOC_ID
                        0x8000_8000, // ARCH_WORKAROUND_1
                        0x8000_7FFF, // ARCH_WORKAROUND_2
                        0x8000_3FFF, // ARCH_WORKAROUND_3
                        rng.next_u64() as u32,
                    ]
                );
                let upper = if rng.one_in(4) {
                    rng.next_u64() << 32
                } else {
                    0
                };
                (SMCCC_ARCH_FEATURES, [u64::from(f) | upper, 0, 0])
            }
            2 => (VENDOR_HYP_CALL_UID, [0; 3]),
            _ => (VENDOR_HYP_REVISION, [0; 3]),
        },
        Family::Psci => match rng.below(9) {
            0 => (PSCI_VERSION, [0; 3]),
            1 => {
                let f = if rng.one_in(3) {
                    rng.next_u64() as u32 & 0xC400_00FF
                } else {
                    rng.pick(&PSCI_FUNCTION_IDS)
                };
                (PSCI_FEATURES, [u64::from(f), 0, 0])
            }
            2 | 3 => {
                let entry = pick!(
                    rng,
                    [
                        t.entry,
                        t.entry + 2,
                        t.image_start,
                        t.text,
                        0,
                        sandbox_page(rng, false).0,
                        u64::MAX,
                        rng.next_u64(),
                    ]
                );
                let id = pick!(rng, [PSCI_CPU_ON_32, PSCI_CPU_ON_64]);
                (id, [mpidr(rng, t.vcpus), entry, rng.next_u64()])
            }
            4..=6 => {
                let level = pick!(rng, [0, 0, 0, 1, 2, 3, 4, u64::MAX]);
                let id = pick!(rng, [PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64]);
                (id, [mpidr(rng, t.vcpus), level, 0])
            }
            _ => {
                prep = Prep::Deliverable;
                let id = pick!(rng, [PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64]);
                (id, [any_value(rng), any_value(rng), any_value(rng)])
            }
        },
        Family::Abi => {
            if rng.one_in(3) {
                (ABI_FEATURES, [0; 3])
            } else {
                let v = pick!(
                    rng,
                    [
                        Version::CURRENT.to_u64(),
                        Version::new(1, 0).to_u64(),
                        Version::new(1, u16::MAX).to_u64(),
                        Version::new(2, 0).to_u64(),
                        Version::new(0, 9).to_u64(),
                        Version::new(u16::MAX, u16::MAX).to_u64(),
                        1 << 32 | Version::CURRENT.to_u64(),
                        u64::MAX,
                        rng.next_u64(),
                    ]
                );
                (ABI_VERSION, [v, 0, 0])
            }
        }
        Family::Vm => (pick!(rng, [VM_YIELD, VM_INFO, VM_INFO]), [0; 3]),
        Family::Console => match rng.below(10) {
            0..=4 => {
                let (ipa, len) = console_source(rng, t);
                (CONSOLE_WRITE, [ipa, len, 0])
            }
            5..=7 => {
                let len = pick!(
                    rng,
                    [0, 1, 64, CONSOLE_CHUNK_MAX, CONSOLE_CHUNK_MAX + 1, u64::MAX]
                );
                (CONSOLE_READ, [writable_buffer(rng, t), len, 0])
            }
            _ => (CONSOLE_NOTIFY, [0; 3]),
        },
        Family::Mem => match rng.below(12) {
            0..=2 => {
                let (ipa, pages) = map_range(rng, t);
                (MEM_MAP, [ipa, pages, perms(rng)])
            }
            3 | 4 => {
                let (ipa, pages) = change_range(rng, t);
                (MEM_UNMAP, [ipa, pages, 0])
            }
            5 | 6 => protect(rng, t),
            7..=9 => {
                let ipa = match rng.below(6) {
                    0..=2 => sandbox_page(rng, false).0 + rng.below(P),
                    3 => rng.pick(&t.shared_pages()),
                    4 => rng.pick(&t.image_pages).0,
                    _ => pick!(rng, [void_ipa(rng), bad_ipa(rng)]),
                };
                (MEM_QUERY, [ipa, 0, 0])
            }
            _ => {
                let count = pick!(
                    rng,
                    [
                        1,
                        2,
                        3,
                        1 + rng.below(16),
                        MEM_BATCH_MAX,
                        MEM_BATCH_MAX - 1,
                        MEM_BATCH_MAX + 1,
                        0,
                        u64::MAX,
                        rng.next_u64(),
                    ]
                );
                let list = match rng.below(12) {
                    0 => t.batch_list + pick!(rng, [8, P - 8, 1]),
                    1 => t.guarded,
                    2 => t.text,
                    3 => pick!(rng, [t.boot_info, t.console_ring, t.block_ring]),
                    4 => void_ipa(rng),
                    5 => bad_ipa(rng),
                    _ => t.batch_list,
                };
                if list == t.batch_list {
                    prep = Prep::BatchList(count.min(MEM_BATCH_MAX));
                }
                (MEM_BATCH, [list, count, 0])
            }
        },
        Family::Event => {
            let e = |rng: &mut Rng| {
                pick!(
                    rng,
                    [
                        0,
                        1,
                        2,
                        8,
                        9,
                        63,
                        64,
                        128 + rng.below(128),
                        u64::from(EVENT_COUNT - 1),
                        u64::from(EVENT_COUNT),
                        u64::from(u32::MAX),
                        1 << 32,
                        u64::MAX,
                        rng.below(u64::from(EVENT_COUNT)),
                    ]
                )
            };
            match rng.below(5) {
                0 => {
                    let kind = pick!(rng, [0, 1, 2, 3, 3, 4, u64::MAX, rng.next_u64()]);
                    let index = pick!(
                        rng,
                        [
                            0,
                            0,
                            1,
                            u64::from(t.channel_count),
                            247,
                            248,
                            u64::from(u32::MAX),
                            1 << 32,
                        ]
                    );
                    (EVENT_BIND, [kind, index, 0])
                }
                1 => (EVENT_MASK, [e(rng), 0, 0]),
                2 => (EVENT_UNMASK, [e(rng), 0, 0]),
                3 => (EVENT_ACK, [e(rng), 0, 0]),
                _ => {
                    let vcpu = pick!(
                        rng,
                        [0, 1, u64::from(t.vcpus), 7, 8, u64::from(u32::MAX), 1 << 32]
                    );
                    (EVENT_SEND, [vcpu, e(rng), 0])
                }
            }
        }
        Family::Block => {
            if rng.one_in(4) {
                (BLOCK_INFO, [0; 3])
            } else {
                let ahead = pick!(
                    rng,
                    [
                        0,
                        1,
                        1,
                        2,
                        3,
                        4,
                        BLOCK_RING_ENTRIES - 1,
                        BLOCK_RING_ENTRIES,
                        BLOCK_RING_ENTRIES + 1,
                        u32::MAX,
                        u32::MAX / 2,
                        rng.next_u64() as u32,
                    ]
                );
                let producer = u32_arg(rng, block_consumer.wrapping_add(ahead).into());
                // Fill every slot the hyp will take (the producer may have moved one on).
                if let Ok(p) = u32::try_from(producer) {
                    let ahead = p.wrapping_sub(block_consumer);
                    if ahead <= BLOCK_RING_ENTRIES {
                        prep = Prep::BlockRing(ahead);
                    }
                }
                (BLOCK_SUBMIT, [producer, 0, 0])
            }
        }
        Family::Channel => {
            let id = pick!(rng, [CHANNEL_INFO, CHANNEL_NOTIFY]);
            let ch = pick!(rng, [0, 0, 1, u64::from(t.channel_count)]);
            (id, [u32_arg(rng, ch), 0, 0])
        }
        Family::Raw => {
            let id = raw_id(rng);
            (id, [any_value(rng), any_value(rng), any_value(rng)])
        }
    };
    regs[0] = u64::from(id);
    // Only w0 is the function ID: sometimes put garbage in x0's upper half.
    if rng.one_in(8) {
        regs[0] |= rng.next_u64() << 32;
    }
    regs[1..4].copy_from_slice(&args);
    Drawn { regs, family, prep }
}

/// MEM_PROTECT: a range as unmap takes, or one page of the image with the permissions it has.
fn protect(rng: &mut Rng, t: &Targets) -> (u32, [u64; 3]) {
    if rng.one_in(6) {
        let (ipa, perms) = rng.pick(&t.image_pages);
        return (MEM_PROTECT, [ipa, 1, perms.bits()]);
    }
    let (ipa, pages) = change_range(rng, t);
    // The image may be protected: a range starting in it is only drawn without READ (refused).
    let p = if (t.image_start..t.image_end).contains(&ipa) {
        pick!(
            rng,
            [MemPerms::WRITE.bits(), MemPerms::EXEC.bits(), 0, 1 << 3]
        )
    } else {
        perms(rng)
    };
    (MEM_PROTECT, [ipa, pages, p])
}

/// CONSOLE_WRITE's (ipa, len): mostly short runs of the printable text (so the log stays
/// readable and small), sometimes as much as a call takes; a few short ones from the shared
/// pages and the sandbox; and refused addresses.
fn console_source(rng: &mut Rng, t: &Targets) -> (u64, u64) {
    let len = |rng: &mut Rng| match rng.below(200) {
        0 => CONSOLE_CHUNK_MAX,
        1 => CONSOLE_CHUNK_MAX + 1,
        2 => u64::MAX,
        3..=10 => 0,
        11 => CONSOLE_CHUNK_MAX - 1,
        _ => 1 + rng.below(24),
    };
    match rng.below(10) {
        // From at most a page into the text: whatever a call takes (4096 at most) stays in it.
        0..=5 => {
            let offset = pick!(rng, [0, 1, P - 1, P, rng.below(P)]);
            (t.text + offset, len(rng))
        }
        6 => (
            pick!(
                rng,
                [t.boot_info, t.console_ring, sandbox_page(rng, false).0]
            ),
            rng.below(48),
        ),
        7 => (void_ipa(rng), len(rng)),
        8 => (u64::MAX - 2, len(rng)),
        _ => (bad_ipa(rng), len(rng)),
    }
}
