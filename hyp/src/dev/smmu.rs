//! The Arm SMMUv3 in front of the PCIe root bus (QEMU `virt,iommu=smmuv3`), driven by the hyp
//! alone: a linear stream table, a command queue and an event queue, all in frames the hyp
//! owns. Before the SMMU is enabled its global bypass is set to abort, and every stream table
//! entry aborts: a device no VM owns reaches nothing. The formats are `vm::device::smmuv3`'s.
//!
//! Everything is polled: commands complete by `CMD_SYNC` and a bounded wait on CMDQ_CONS; the
//! event queue is read when the hyp looks (`drain_events`), not on its SPI.
//!
//! One lock (`SMMU`), a leaf (vm/sched.rs's lock order, rank 3): nothing else is taken under
//! it, and it is never held across a guest entry.

use crate::arch::{Cpu, Machine, TlbOp};
use crate::mm::owner::Owner;
use crate::vm::device::smmuv3::{
    self, CR1_WB_INNER_SHAREABLE, CR2_RECINVSID_PTM, Command, Event, Features, GBPA_ABORT,
    GBPA_UPDATE, GERROR_CMDQ_ERR, GERROR_EVENTQ_ABT_ERR, QueueIndex, cr0, reg,
};
use alloc::string::String;
use core::ptr::{read_volatile, write_volatile};
use spin::{Mutex, Once};

/// Stream table entries: 2^6 = 64 STEs in one 4 KiB frame, stream IDs 0..64 = bus 0's
/// devices 0..7 (QEMU `--iommu` puts its disk at 00:01.0, stream 8). A stream ID beyond the
/// table is aborted by the SMMU itself (C_BAD_STREAMID, recorded: CR2.RECINVSID).
pub const STREAM_TABLE_LOG2: u32 = 6;
/// Command queue: at most 256 commands (one frame); event queue: at most 128 records.
const CMDQ_LOG2_MAX: u32 = 8;
const EVENTQ_LOG2_MAX: u32 = 7;
/// How many polls of an acknowledgement or of CMDQ_CONS before the SMMU is declared stuck.
const POLLS: u32 = 1_000_000;

pub struct Smmu {
    base: usize,
    pub features: Features,
    stream_table: u64,
    cmdq: u64,
    cmdq_prod: QueueIndex,
    eventq: u64,
    eventq_log2: u32,
    /// When the last lost-events line was logged, and how many overflows since went unlogged:
    /// at most one such line a second, whoever fills the queue.
    lost_logged_at: Option<u64>,
    lost_unlogged: u64,
}

static SMMU: Once<Mutex<Smmu>> = Once::new();

/// Why the SMMU could not be brought up.
#[derive(Debug)]
pub enum Error {
    NoStage2,
    No4kGranule,
    NoFrames,
    /// A register acknowledgement or a command did not complete: which.
    Stuck(&'static str),
    /// The command queue stopped on an error (CMDQ_CONS.ERR).
    CommandQueue(u32),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoStage2 => f.write_str("it has no stage-2 translation"),
            Self::No4kGranule => f.write_str("it has no 4 KiB granule"),
            Self::NoFrames => f.write_str("no frames for its tables and queues"),
            Self::Stuck(what) => write!(f, "{what} did not complete"),
            Self::CommandQueue(e) => write!(f, "the command queue stopped (error {e:#x})"),
        }
    }
}

impl Smmu {
    fn read32(&self, offset: usize) -> u32 {
        // SAFETY: take_over_mmu mapped the SMMU's 128 KiB as Device memory for the hyp alone;
        // every offset is a 4-byte aligned register of pages 0 and 1 (smmuv3::reg).
        unsafe { read_volatile((self.base + offset) as *const u32) }
    }

    fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as in `read32`; the 64-bit registers are 8-byte aligned.
        unsafe { write_volatile((self.base + offset) as *mut u64, value) }
    }

    fn wait(&self, offset: usize, mask: u32, want: u32, what: &'static str) -> Result<(), Error> {
        for _ in 0..POLLS {
            if self.read32(offset) & mask == want {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(Error::Stuck(what))
    }

    fn set_cr0(&self, value: u32) -> Result<(), Error> {
        self.write32(reg::CR0, value);
        self.wait(reg::CR0ACK, u32::MAX, value, "a CR0 update")
    }

    /// Writes STE `sid` (word 0, which holds V, last, after a barrier: the SMMU never sees a
    /// half-written valid entry), then has the SMMU forget its cached copy.
    pub fn write_ste(&mut self, sid: u32, ste: [u64; 8]) -> Result<(), Error> {
        let at = self.stream_table + u64::from(sid) * smmuv3::STE_BYTES as u64;
        // Invalidate first, so that the words change under an entry the SMMU will refetch.
        write_words(at, &[0]);
        self.submit(&[Command::CfgiSte { sid }, Command::Sync])?;
        write_words(at + 8, &ste[1..]);
        Cpu::tlb(TlbOp::DsbIsh);
        write_words(at, &ste[..1]);
        self.submit(&[Command::CfgiSte { sid }, Command::Sync])
    }

    /// Queues `commands` (the last one a `Sync`) and waits until the SMMU has consumed them
    /// all. The queue holds at most 2^CMDQ_LOG2_MAX; callers give a few.
    pub fn submit(&mut self, commands: &[Command]) -> Result<(), Error> {
        let log2 = self.cmdq_prod.log2;
        for &command in commands {
            let cons = QueueIndex::new(self.read32(reg::CMDQ_CONS), log2);
            if self.cmdq_prod.is_full_with(cons) {
                return Err(Error::Stuck("the command queue"));
            }
            let at = self.cmdq + (self.cmdq_prod.slot() * smmuv3::COMMAND_BYTES) as u64;
            write_words(at, &command.encode());
            self.cmdq_prod = self.cmdq_prod.next();
        }
        // The commands are in memory before the SMMU is told of them.
        Cpu::tlb(TlbOp::DsbIsh);
        self.write32(reg::CMDQ_PROD, self.cmdq_prod.raw);
        let mut refused = None;
        for _ in 0..POLLS {
            let raw = self.read32(reg::CMDQ_CONS);
            if let Some(code) = self.skip_refused_command(raw) {
                // The queue goes on with the commands after it; the caller hears of the error.
                refused = Some(code);
                continue;
            }
            if QueueIndex::new(raw, log2).is_empty_with(self.cmdq_prod) {
                return refused.map_or(Ok(()), |code| Err(Error::CommandQueue(code)));
            }
            core::hint::spin_loop();
        }
        Err(Error::Stuck("CMD_SYNC"))
    }

    /// If the command queue stopped on a command (GERROR.CMDQ_ERR active), overwrites that
    /// command, the one at CMDQ_CONS (`cons`), with a CMD_SYNC, which does nothing, then
    /// acknowledges the error, so that the SMMU goes on after it (SMMUv3 7.1: software fixes
    /// the command, then toggles GERRORN.CMDQ_ERR); its CMDQ_CONS.ERR.
    fn skip_refused_command(&mut self, cons: u32) -> Option<u32> {
        let gerrorn = self.read32(reg::GERRORN);
        let active = smmuv3::gerror_active(self.read32(reg::GERROR), gerrorn);
        if active & GERROR_CMDQ_ERR == 0 {
            return None;
        }
        let code = cons >> smmuv3::CMDQ_CONS_ERR_SHIFT & 0x7f;
        let index = QueueIndex::new(cons, self.cmdq_prod.log2);
        let at = self.cmdq + (index.slot() * smmuv3::COMMAND_BYTES) as u64;
        warn!(
            "SMMU: command queue error {code} ({}) at slot {}: skipped",
            smmuv3::cmdq_error_name(code),
            index.slot()
        );
        write_words(at, &Command::Sync.encode());
        Cpu::tlb(TlbOp::DsbIsh);
        self.write32(
            reg::GERRORN,
            smmuv3::gerror_acknowledge(gerrorn, GERROR_CMDQ_ERR),
        );
        Some(code)
    }

    /// The global errors other than CMDQ_ERR (which `submit` handles) active now, each
    /// acknowledged: the SMMU goes on (an event queue abort, for one, means lost events).
    fn take_global_errors(&mut self) -> u32 {
        let gerrorn = self.read32(reg::GERRORN);
        let active = smmuv3::gerror_active(self.read32(reg::GERROR), gerrorn) & !GERROR_CMDQ_ERR;
        if active != 0 {
            self.write32(reg::GERRORN, smmuv3::gerror_acknowledge(gerrorn, active));
        }
        active
    }

    /// An overflow seen (`flag`): whether to log it now (at most once a second), with the
    /// overflows left unlogged since the last line.
    fn admit_lost_line(&mut self, flag: &'static str) -> Option<(&'static str, u64)> {
        use aarch64_cpu::registers::{CNTFRQ_EL0, Readable};
        let now = crate::arch::aarch64::timer::counter();
        if self
            .lost_logged_at
            .is_some_and(|at| now.wrapping_sub(at) < CNTFRQ_EL0.get())
        {
            self.lost_unlogged += 1;
            return None;
        }
        self.lost_logged_at = Some(now);
        Some((flag, core::mem::take(&mut self.lost_unlogged)))
    }

    /// Whether the event queue overflowed (events were lost) since the last look; the
    /// overflow is acknowledged.
    fn take_overflow(&mut self) -> bool {
        let prod = self.read32(reg::EVENTQ_PROD);
        let cons = self.read32(reg::EVENTQ_CONS);
        if !smmuv3::eventq_overflowed(prod, cons) {
            return false;
        }
        let index = QueueIndex::new(cons, self.eventq_log2);
        self.write32(reg::EVENTQ_CONS, smmuv3::eventq_cons(index, prod));
        true
    }

    /// Takes the next event record, if the SMMU has written one.
    pub fn next_event(&mut self) -> Option<Event> {
        let prod = QueueIndex::new(self.read32(reg::EVENTQ_PROD), self.eventq_log2);
        let cons = QueueIndex::new(self.read32(reg::EVENTQ_CONS), self.eventq_log2);
        if prod.is_empty_with(cons) {
            return None;
        }
        let at = self.eventq + (cons.slot() * smmuv3::EVENT_BYTES) as u64;
        let event = Event::decode(read_words(at));
        // The overflow flag as last acknowledged (`take_overflow` acknowledges the new ones).
        let acked = self.read32(reg::EVENTQ_CONS);
        self.write32(reg::EVENTQ_CONS, smmuv3::eventq_cons(cons.next(), acked));
        Some(event)
    }
}

/// The SMMU, once `init` has brought it up.
pub fn get() -> Option<&'static Mutex<Smmu>> {
    SMMU.get()
}

/// A run of faults of one kind from one stream at nearby addresses (QEMU records one per
/// 4-byte access): its first event, and how many records it took.
#[derive(Clone, Copy, Debug)]
pub struct FaultRun {
    pub first: Event,
    pub records: usize,
}

/// Reads the event records the SMMU has written (at most one queue's worth a call), and hands
/// each run of faults to `fault`, which names the VM its stream belongs to (and logs it, or
/// not: `log_fault`). A lost event (the queue overflowed) and a global error are logged here,
/// once each time, and acknowledged, so the SMMU goes on. How many records.
pub fn drain_events(mut fault: impl FnMut(&FaultRun)) -> usize {
    match SMMU.get() {
        Some(smmu) => drain_events_of(smmu, &mut fault),
        None => 0,
    }
}

/// [`drain_events`]' work, not generic: one copy for its two callers (1.5 KiB of the Image).
fn drain_events_of(smmu: &Mutex<Smmu>, fault: &mut dyn FnMut(&FaultRun)) -> usize {
    let (lost, errors) = {
        let mut smmu = smmu.lock();
        let overflowed = smmu.take_overflow();
        let errors = smmu.take_global_errors();
        let lost = if overflowed {
            Some("EVENTQ_PROD.OVFLG")
        } else if errors & GERROR_EVENTQ_ABT_ERR != 0 {
            Some("GERROR.EVENTQ_ABT_ERR")
        } else {
            None
        };
        (lost.and_then(|flag| smmu.admit_lost_line(flag)), errors)
    };
    if let Some((flag, unlogged)) = lost {
        warn!(
            "SMMU: event queue overflowed ({flag}): 1 or more events lost; the queue holds {}{}",
            1usize << EVENTQ_LOG2_MAX,
            if unlogged > 0 {
                alloc::format!(" (and {unlogged} more overflows since the last line)")
            } else {
                String::new()
            }
        );
    }
    let others = errors & !GERROR_EVENTQ_ABT_ERR;
    if others != 0 {
        let mut names = String::new();
        for name in smmuv3::gerror_names(others) {
            if !names.is_empty() {
                names.push_str(", ");
            }
            names.push_str(name);
        }
        warn!("SMMU: global error {names}: acknowledged");
    }
    let mut n = 0;
    let mut run: Option<(FaultRun, u64)> = None;
    loop {
        // At most one queue's worth a call: a device its guest keeps faulting cannot hold this
        // exit; what is left waits for the next one.
        let next = if n < 1usize << EVENTQ_LOG2_MAX {
            // The lock is not held while logging.
            smmu.lock().next_event()
        } else {
            None
        };
        let same_run = |(r, last): &(FaultRun, u64), e: &Event| {
            r.first.kind == e.kind
                && r.first.sid == e.sid
                && r.first.read == e.read
                && e.address.wrapping_sub(*last) <= 64
        };
        match (run.as_mut(), next) {
            (Some(r), Some(e)) if same_run(r, &e) => {
                r.1 = e.address;
                r.0.records += 1;
            }
            (_, next) => {
                if let Some((r, _)) = run.take() {
                    fault(&r);
                }
                match next {
                    Some(e) => {
                        run = Some((
                            FaultRun {
                                first: e,
                                records: 1,
                            },
                            e.address,
                        ))
                    }
                    None => break,
                }
            }
        }
        n += 1;
    }
    n
}

/// One line for a run of faults, naming the stream's VM (`owner`) when known.
pub fn log_fault(r: &FaultRun, owner: Option<&str>) {
    let e = &r.first;
    let more = r.records - 1;
    warn!(
        "SMMU: {} (event {:#04x}) from stream {}{}: {} at {:#x} stopped{}",
        e.name(),
        u32::from(e.kind),
        e.sid,
        owner.map_or(String::new(), |vm| alloc::format!(" of VM {vm}")),
        if e.read { "read" } else { "write" },
        e.address,
        if more > 0 {
            alloc::format!(" (and {more} more at the addresses after it)")
        } else {
            String::new()
        }
    );
}

fn write_words(pa: u64, words: &[u64]) {
    for (i, &w) in words.iter().enumerate() {
        // SAFETY: `pa` is inside a frame this driver allocated (Owner::Hyp) for its stream
        // table or a queue, identity-mapped, 8-byte aligned; only this driver (under SMMU's
        // lock) and the SMMU itself touch it.
        unsafe { write_volatile((pa + 8 * i as u64) as *mut u64, w) }
    }
}

fn read_words(pa: u64) -> [u64; 4] {
    let mut words = [0; 4];
    for (i, w) in words.iter_mut().enumerate() {
        // SAFETY: as in `write_words`: an event record in the event queue's frame.
        *w = unsafe { read_volatile((pa + 8 * i as u64) as *const u64) };
    }
    words
}

/// Brings up the SMMU the board has, if any: global abort, every stream aborted, queues on,
/// caches invalidated, then enabled. On failure it is left disabled with GBPA.ABORT set (if
/// the write got that far), so devices behind it still reach nothing; no device is assigned.
pub fn init(board: &devtree::Board) {
    let Some(smmu) = board.smmu else { return };
    let base = smmu.region.base;
    // Its tables and queues are the hyp's for the whole run, not a leak at the end.
    match crate::power::held_for_the_run(|| bring_up(base as usize)) {
        Ok(s) => {
            let f = s.features;
            info!(
                "SMMUv3 at {base:#x}: stage 2{}, OAS {} bits, {}-bit stream IDs, BTM {}; {} streams, every one aborts; enabled",
                if f.stage1 { " and 1" } else { "" },
                f.oas_bits,
                f.sid_bits,
                if f.broadcast_tlb {
                    "yes (unused: CR2.PTM)"
                } else {
                    "no"
                },
                1u32 << STREAM_TABLE_LOG2
            );
            SMMU.call_once(|| Mutex::new(s));
        }
        Err(e) => error!("SMMUv3 at {base:#x} unusable: {e}; no device is assigned"),
    }
}

fn bring_up(base: usize) -> Result<Smmu, Error> {
    let mut s = Smmu {
        base,
        features: Features::decode(0, 0, 0),
        stream_table: 0,
        cmdq: 0,
        cmdq_prod: QueueIndex::new(0, 0),
        eventq: 0,
        eventq_log2: 0,
        lost_logged_at: None,
        lost_unlogged: 0,
    };
    s.features = Features::decode(
        s.read32(reg::IDR0),
        s.read32(reg::IDR1),
        s.read32(reg::IDR5),
    );
    // Off, and aborting while off, before anything is changed.
    s.set_cr0(0)?;
    s.write32(reg::GBPA, GBPA_ABORT | GBPA_UPDATE);
    s.wait(reg::GBPA, GBPA_UPDATE, 0, "the GBPA update")?;
    if !s.features.stage2 {
        return Err(Error::NoStage2);
    }
    if !s.features.granule_4k {
        return Err(Error::No4kGranule);
    }
    let frames = [(); 3].map(|()| Cpu::alloc_frame(Owner::Hyp));
    let [Some(table), Some(cmdq), Some(eventq)] = frames else {
        for pa in frames.into_iter().flatten() {
            Cpu::free_frame(Owner::Hyp, pa);
        }
        return Err(Error::NoFrames);
    };
    s.stream_table = table;
    for sid in 0..1u64 << STREAM_TABLE_LOG2 {
        write_words(table + sid * smmuv3::STE_BYTES as u64, &smmuv3::ste_abort());
    }
    let cmdq_log2 = s.features.cmdq_max_log2.min(CMDQ_LOG2_MAX);
    s.eventq_log2 = s.features.eventq_max_log2.min(EVENTQ_LOG2_MAX);
    (s.cmdq, s.cmdq_prod, s.eventq) = (cmdq, QueueIndex::new(0, cmdq_log2), eventq);
    Cpu::tlb(TlbOp::DsbIsh);
    s.write32(reg::IRQ_CTRL, 0);
    s.write32(reg::CR1, CR1_WB_INNER_SHAREABLE);
    s.write32(reg::CR2, CR2_RECINVSID_PTM);
    s.write64(
        reg::STRTAB_BASE,
        smmuv3::BASE_ALLOCATE | (table & 0x000f_ffff_ffff_ffc0),
    );
    s.write32(
        reg::STRTAB_BASE_CFG,
        smmuv3::strtab_cfg_linear(STREAM_TABLE_LOG2),
    );
    s.write64(reg::CMDQ_BASE, smmuv3::queue_base(cmdq, cmdq_log2));
    s.write32(reg::CMDQ_PROD, 0);
    s.write32(reg::CMDQ_CONS, 0);
    s.write64(reg::EVENTQ_BASE, smmuv3::queue_base(eventq, s.eventq_log2));
    s.write32(reg::EVENTQ_PROD, 0);
    s.write32(reg::EVENTQ_CONS, 0);
    s.set_cr0(cr0::CMDQEN)?;
    s.submit(&[Command::CfgiAll, Command::TlbiNsnhAll, Command::Sync])?;
    s.set_cr0(cr0::CMDQEN | cr0::EVENTQEN)?;
    s.set_cr0(cr0::CMDQEN | cr0::EVENTQEN | cr0::SMMUEN)?;
    Ok(s)
}

/// Forgets the SMMU's stage-2 translations of `pages` pages from `ipa` for VMID `vmid`
/// (per page up to `MAX_TLBI_PAGES`, else the VMID's all), and waits until it has.
pub fn invalidate(vmid: u16, ipa: u64, pages: u64) {
    use crate::vm::device::MAX_TLBI_PAGES;
    let Some(smmu) = SMMU.get() else { return };
    let mut smmu = smmu.lock();
    let result = if pages <= MAX_TLBI_PAGES {
        let mut commands = [Command::Sync; MAX_TLBI_PAGES as usize + 1];
        for (i, c) in commands.iter_mut().take(pages as usize).enumerate() {
            *c = Command::TlbiS2Ipa {
                vmid,
                ipa: ipa + i as u64 * crate::mm::PAGE_SIZE,
            };
        }
        smmu.submit(&commands[..=pages as usize])
    } else {
        smmu.submit(&[Command::TlbiS12Vmall { vmid }, Command::Sync])
    };
    if let Err(e) = result {
        // Nothing safe is left to do with a stuck SMMU but stop: a frame it may still reach
        // would be reused.
        crate::dev::console::emergency_println(format_args!(
            "hyp: SMMU TLB invalidation for VMID {} failed: {e}",
            u32::from(vmid)
        ));
        crate::power::halt_after_failure();
    }
}
