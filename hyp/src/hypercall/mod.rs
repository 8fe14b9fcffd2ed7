//! Hypercall dispatch: decode the guest's registers with `hypercall-abi`, check every argument,
//! act, and write the answer back. One module per call family, mirroring the ABI crate.
//!
//! Everything here is generic over [`GuestVm`] so the dispatcher's decoding and validation run
//! in host tests against a fake VM.

#![forbid(unsafe_code)]

mod abi;
pub(crate) mod block;
mod channel;
#[cfg(test)]
mod compat;
mod console;
mod event;
mod guest_buffer;
mod mem;
mod psci;
mod standard;

use crate::arch::Cpu;
use crate::arch::aarch64::esr::Syndrome;
use crate::vm::mem::{GuestMemory, PageCall};
use core::fmt;
use hypercall_abi::{Call, Error, Regs};

/// What the hyp needs from the calling VM to serve its calls.
pub trait GuestVm {
    /// The calling vCPU's x0..x17, in place: the call's arguments, then its answer.
    fn regs(&mut self) -> &mut Regs;
    /// The VM's memory.
    fn memory(&self) -> &GuestMemory<Cpu>;
    /// The VM's memory, to change.
    fn memory_mut(&mut self) -> &mut GuestMemory<Cpu>;
    /// Queues console bytes as this VM's lines; returns how many it took (fewer when the
    /// hyp's console queue has no room for more lines now; 0 only when it had none for the
    /// first).
    fn console_output(&mut self, bytes: &[u8]) -> usize;
    /// The VM's console ring and input queue.
    fn console_io(&mut self) -> &mut crate::vm::console::ConsoleIo;
    /// The VM looks for typed input (CONSOLE_READ): with the focus, its partial line shows.
    fn console_reading(&mut self) {}
    /// The calling vCPU's index (its MPIDR's Aff0).
    fn vcpu_index(&self) -> usize;
    /// The version the VM's first ABI_VERSION of this life stated, if it made one.
    fn stated_version(&mut self) -> &mut Option<hypercall_abi::Version>;
    /// How many vCPUs the VM has.
    fn vcpu_count(&self) -> usize;
    /// Whether vCPU `vcpu` is on (None: the VM has no such vCPU).
    fn vcpu_power(&self, vcpu: usize) -> Option<Power>;
    /// Powers on vCPU `vcpu`, which is off: at `entry` in EL1h, MMU off, x0 = `context`.
    fn vcpu_start(&mut self, vcpu: usize, entry: u64, context: u64);
    /// The VM's index, vCPU count and free quota.
    fn info(&self) -> hypercall_abi::VmInfo;
    /// The VM's events.
    fn events(&mut self) -> &mut crate::vm::event::Events;
    /// The VM's end of its channel `n`.
    fn channel(&self, n: u32) -> Option<&crate::vm::channel::ChannelEnd>;
    /// The events changed by a call (`acked`: the event the guest acknowledged, if any).
    fn events_changed(&mut self, acked: Option<u32>);
    /// The VM's block device (None: the manifest gave it no disk region).
    fn block_io(&mut self) -> Option<&mut crate::vm::block::BlockIo>;
    /// The machine's disk (absolute sectors; the caller checks the region).
    fn disk(&self) -> &'static spin::Mutex<Option<crate::disk::Disk>>;
    /// Whether the VM runs an unmodified kernel (`kind = "linux"`): it gets the standard
    /// SMCCC and PSCI calls only.
    fn is_linux(&self) -> bool {
        false
    }
}

/// A vCPU's power state as PSCI AFFINITY_INFO reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    On,
    Off,
}

/// What the scheduler does after the call.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Return to the same vCPU.
    Resume,
    /// Return to the vCPU later; run others first.
    Yield,
    /// The call has done a chunk and has more (its arguments in the registers, or the VM's
    /// state, say what is left): the vCPU issues it again at once, its `HVC` re-executed (a
    /// hypercall continuation), in its own slice. An interrupt pending meanwhile (its slice's
    /// end) is taken first, so a long call is preemptible between its chunks, and its caller
    /// keeps the CPU time it is due.
    Continue,
    /// The call cannot start yet (another vCPU's page call is under way): the vCPU issues it
    /// again after the vCPUs waiting for this CPU have run.
    Retry,
    /// Return to the vCPU when one of its events is raised (WFI, CPU_SUSPEND).
    Wait,
    /// The call is not done and cannot go on until the console queue has room for the
    /// caller's line: the vCPU is descheduled, and issues it again (its `HVC` re-executed) once
    /// a drain has made room (`vm::console::block_writer`).
    WaitConsoleRoom,
    /// The calling vCPU powers itself off (PSCI CPU_OFF); the VM ends with status 0 when it
    /// was the last one on.
    CpuOff,
    /// The VM ended itself with this status.
    Exit(u64),
    /// The VM is ended for this reason.
    Kill(KillReason),
    /// Restart the VM from its image with fresh memory.
    Reset,
    /// Return to the vCPU, and raise `event` in VM `vm`, a manifest index (a channel notify).
    Notify { vm: usize, event: u32 },
}

/// Why the hyp ends a VM: plain data, formatted only as it is logged, so that ending a VM
/// allocates nothing (a guest may be killed while the heap is exhausted, and a failed heap
/// allocation aborts the hyp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillReason {
    /// An exception the vectors do not expect (`kind`: its vector).
    Unexpected { kind: u64, esr: u64 },
    /// A hypercall from a vCPU the VM does not have.
    NoVcpu(usize),
    /// A trap the hyp does not emulate, at `pc`.
    Trap { pc: u64, syndrome: Syndrome },
    /// A stage-2 fault the VM's fault policy does not inject, at `pc`.
    Stage2Fault { pc: u64, syndrome: Syndrome },
}

impl fmt::Display for KillReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unexpected { kind, esr } => {
                write!(f, "unexpected exception kind {kind}, ESR {esr:#x}")
            }
            Self::NoVcpu(v) => write!(f, "vCPU {v} does not exist"),
            Self::Trap { pc, syndrome } => write!(f, "PC {pc:#x}: {syndrome}"),
            Self::Stage2Fault { pc, syndrome } => write!(
                f,
                "stage-2 fault at IPA {:#x}, PC {pc:#x}: {syndrome}",
                syndrome.ipa
            ),
        }
    }
}

/// Answers in place, from `regs` (x0..x17) alone, the calls that read no state of the VM or
/// the hyp: the SMCCC and vendor-service queries and the ABI handshake. The run loop answers
/// these with no lock and no atomic (vm::run); true when `regs[0]` was one of them. Every
/// other call is left untouched, for [`dispatch`].
#[inline(always)]
pub fn answer_stateless(regs: &mut Regs) -> bool {
    let function_id = regs[0] as u32;
    // The standard queries are SMC32 calls, every other call of ours SMC64: one bit spares
    // those the standard queries' compares.
    abi::handle(function_id, regs)
        || (function_id & SMC64 == 0 && standard::handle(function_id, regs))
}

/// SMCCC's calling-convention bit of a function ID: set for SMC64 calls.
const SMC64: u32 = 1 << 30;
const _: () = {
    use hypercall_abi::standard::{SMCCC_ARCH_FEATURES, SMCCC_VERSION, VENDOR_HYP_CALL_UID};
    assert!((SMCCC_VERSION | SMCCC_ARCH_FEATURES | VENDOR_HYP_CALL_UID) & SMC64 == 0);
};

/// The version an `ABI_VERSION` call stated, given its function ID and x1 as called and the
/// x0 [`answer_stateless`] answered it with: its x1 (the version's register encoding) when
/// the hyp accepted it, which is when it answered success (`abi::stated`, without decoding the
/// version a second time).
#[inline(always)]
pub fn stated_by_answer(function_id: u32, x1: u64, answered_x0: u64) -> Option<u64> {
    (function_id == hypercall_abi::abi::ABI_VERSION && answered_x0 == 0).then_some(x1)
}

/// Serves the call in the calling vCPU's registers (x0..x17, [`GuestVm::regs`]: decoded and
/// answered in place, never copied) and leaves the answer there.
pub fn dispatch(vm: &mut impl GuestVm) -> Action {
    if vm.is_linux() {
        return dispatch_standard(vm);
    }
    let regs = vm.regs();
    let x = [regs[0], regs[1], regs[2], regs[3]];
    // A vendor call live in this version (all but the rare standard ones): one jump on its
    // feature bit, threaded into its own case of `serve_live` (`Call::decode_vendor_into`). The
    // stateless queries are answered by `answer_stateless` whatever their arguments, but
    // rarely come here (vm::run answers them before), so every other call is spared the look.
    // With every call of this version live (as now), no look at the live bits: a vendor ID
    // no call has is refused by the jump's default, as the look would have sent it below.
    let vendor = if Call::ALL_VENDOR_CALLS_LIVE {
        hypercall_abi::abi::feature_bit(x[0] as u32).is_some()
    } else {
        Call::vendor_is_live(x[0] as u32) == Some(true)
    };
    if vendor {
        return Call::decode_vendor_into(x, Live(vm));
    }
    let call = match Call::try_from(&*regs) {
        Ok(call) if call.is_live() => call,
        _ if answer_stateless(regs) => return Action::Resume,
        Ok(_) => return answer(vm, Err(Error::NotSupported)),
        // An unknown function ID is NOT_SUPPORTED; a known one with bad arguments says so.
        Err(e) => return answer(vm, Err(e)),
    };
    serve_standard(vm, call)
}

/// The calling VM, whose live vendor calls `Call::decode_vendor_into` hands to [`serve_live`].
struct Live<'a, V>(&'a mut V);

impl<V: GuestVm> hypercall_abi::ServeVendor for Live<'_, V> {
    type Out = Action;

    #[inline(always)]
    fn serve(self, call: Call) -> Action {
        serve_live(self.0, call)
    }

    /// A known call with bad arguments says so (but a stateless query, answered whatever its
    /// arguments: `ABI_VERSION` of a version that does not decode is answered its own way).
    fn refuse(self, error: Error) -> Action {
        if answer_stateless(self.0.regs()) {
            return Action::Resume;
        }
        answer(self.0, Err(error))
    }
}

/// Serves a live call `dispatch` does not jump to: a standard one (PSCI, the SMCCC queries).
/// A vendor call never comes here (a live one is jumped to, any other refused before), and
/// would be NOT_SUPPORTED.
#[inline(never)]
fn serve_standard(vm: &mut impl GuestVm, call: Call) -> Action {
    match call {
        Call::SmcccVersion | Call::SmcccArchFeatures { .. } | Call::VendorHypCallUid => {
            answer_stateless(vm.regs());
            Action::Resume
        }
        Call::VendorHypRevision => {
            let revision = abi::revision(*vm.stated_version());
            standard::revision(vm.regs(), revision);
            Action::Resume
        }
        Call::Psci(p) => psci::handle(vm, p),
        _ => answer(vm, Err(Error::NotSupported)),
    }
}

/// Serves a live call. Inlined after the vendor decode's jump, which the compiler threads into
/// the case of each arm's call: the page calls first, the hot path of a PV guest's memory.
#[inline(always)]
fn serve_live(vm: &mut impl GuestVm, call: Call) -> Action {
    let (page_call, ipa, pages) = match call {
        Call::MemMap { ipa, pages, perms } => (PageCall::Map(perms), ipa, pages),
        Call::MemUnmap { ipa, pages } => (PageCall::Unmap, ipa, pages),
        Call::MemProtect { ipa, pages, perms } => (PageCall::Protect(perms), ipa, pages),
        call => return serve(vm, call),
    };
    mem::page_call(vm, page_call, ipa, pages)
}

/// Serves a live vendor call in the calling vCPU's registers, every one but the page calls.
#[inline(always)]
fn serve(vm: &mut impl GuestVm, call: Call) -> Action {
    let result = match call {
        // The only call that states a version (one that does not decode states none).
        Call::AbiVersion { .. } => {
            if let Some(guest) = abi::stated(vm.regs()) {
                vm.stated_version().get_or_insert(guest);
            }
            answer_stateless(vm.regs());
            return Action::Resume;
        }
        Call::AbiFeatures => {
            answer_stateless(vm.regs());
            return Action::Resume;
        }
        Call::SmcccVersion
        | Call::SmcccArchFeatures { .. }
        | Call::VendorHypCallUid
        | Call::VendorHypRevision
        | Call::Psci(_) => return serve_standard(vm, call),
        Call::VmExit { status } => return Action::Exit(status),
        Call::VmYield => {
            set_return(vm.regs(), Ok([0; 3]));
            return Action::Yield;
        }
        Call::VmInfo => Ok(vm.info().to_values()),
        Call::ConsoleWrite { ipa, len } => match console::write(vm, ipa, len) {
            Ok(None) => return Action::WaitConsoleRoom,
            done => done.map(|r| r.unwrap_or_default()),
        },
        Call::ConsoleNotify => match console::notify(vm) {
            Ok(None) => return Action::WaitConsoleRoom,
            done => done.map(|r| r.unwrap_or_default()),
        },
        Call::ConsoleRead { ipa, len } => console::read(vm, ipa, len),
        // Served by `dispatch` before.
        Call::MemMap { .. } | Call::MemUnmap { .. } | Call::MemProtect { .. } => {
            return answer(vm, Err(Error::NotSupported));
        }
        Call::MemQuery { ipa } => mem::query(vm, ipa),
        Call::MemBatch { list_ipa, count } => return mem::batch_call(vm, list_ipa, count),
        Call::EventBind { source } => event::bind(vm, source),
        Call::EventMask { event } => event::set_masked(vm, event, true),
        Call::EventUnmask { event } => event::set_masked(vm, event, false),
        Call::EventAck { event } => event::ack(vm, event),
        Call::EventSend { vcpu, event } => event::send(vm, vcpu, event),
        Call::EventSharedAck => event::share_acks(vm),
        Call::EventDeviceAck => event::device_ack(vm),
        Call::EventDeviceFaults => event::device_faults(vm),
        Call::BlockInfo => block::info(vm),
        Call::BlockSubmit { producer } => match block::submit(vm, producer) {
            Ok(None) => return Action::Continue,
            done => done.map(|r| r.unwrap_or_default()),
        },
        Call::ChannelInfo { channel } => channel::info(vm, channel),
        Call::ChannelNotify { channel } => return channel::notify(vm, channel),
    };
    answer(vm, result)
}

/// The calls of a Linux VM: SMCCC's and PSCI's; the hyp's vendor calls (the PV ABI) are
/// NOT_SUPPORTED for it, as for any client that does not know them.
fn dispatch_standard(vm: &mut impl GuestVm) -> Action {
    let regs = vm.regs();
    if standard::handle(regs[0] as u32, regs) {
        return Action::Resume;
    }
    match Call::try_from(&*regs) {
        Ok(Call::Psci(p)) => psci::handle(vm, p),
        _ => {
            regs[0] = Error::NotSupported.code() as u64;
            Action::Resume
        }
    }
}

#[inline(always)]
fn set_return(regs: &mut Regs, result: Result<[u64; 3], Error>) {
    regs[..4].copy_from_slice(&hypercall_abi::encode_return(result));
}

fn answer(vm: &mut impl GuestVm, result: Result<[u64; 3], Error>) -> Action {
    set_return(vm.regs(), result);
    Action::Resume
}

#[cfg(test)]
pub(crate) mod fake {
    use super::GuestVm;
    use crate::arch::Cpu;
    use crate::vm::mem::GuestMemory;
    use hypercall_abi::{MemPerms, Regs, VmInfo};
    use std::vec::Vec;

    /// Dispatches the call in `regs` as the vCPU's registers, and gives them back answered.
    pub fn dispatch(vm: &mut FakeVm, regs: &mut Regs) -> super::Action {
        vm.regs = *regs;
        let action = super::dispatch(vm);
        *regs = vm.regs;
        action
    }

    /// Dispatches a vendor call that returns to the guest; its decoded result.
    pub fn call(vm: &mut FakeVm, c: hypercall_abi::Call) -> Result<[u64; 3], hypercall_abi::Error> {
        let mut regs = c.to_regs();
        assert_eq!(dispatch(vm, &mut regs), super::Action::Resume);
        hypercall_abi::decode_return([regs[0], regs[1], regs[2], regs[3]])
    }

    /// Dispatches `c` as the guest's vCPU would, re-entering the `HVC` while the call is
    /// continued (its registers untouched in between: the work left is the hyp's record); the
    /// answer and how many entries it took.
    pub fn call_continued(
        vm: &mut FakeVm,
        c: hypercall_abi::Call,
    ) -> (Result<[u64; 3], hypercall_abi::Error>, usize) {
        let call = c.to_regs();
        let mut regs = call;
        for entries in 1..10_000 {
            match dispatch(vm, &mut regs) {
                super::Action::Continue => {
                    assert_eq!(regs, call, "a continued call leaves its registers")
                }
                super::Action::Resume => {
                    let answer = hypercall_abi::decode_return([regs[0], regs[1], regs[2], regs[3]]);
                    return (answer, entries);
                }
                other => panic!("{other:?}"),
            }
        }
        panic!("the call never ended")
    }

    /// The IPA of the one page a fresh FakeVm has mapped.
    pub const PAGE_IPA: u64 = 0x1000;

    /// A VM on the fake machine with a console that records.
    pub struct FakeVm {
        pub index: u32,
        pub events: crate::vm::event::Events,
        pub acked: Vec<u32>,
        pub console_io: crate::vm::console::ConsoleIo,
        pub channels: Vec<crate::vm::channel::ChannelEnd>,
        pub memory: GuestMemory<Cpu>,
        /// The console bytes the hyp took.
        pub console: Vec<u8>,
        /// The lines they made, and the partial one.
        pub lines: Vec<Vec<u8>>,
        /// Lines the console queue still has room for (`None`: no limit).
        pub queue_room: Option<usize>,
        pub line_buffer: crate::vm::console::LineBuffer,
        pub block_io: Option<crate::vm::block::BlockIo>,
        /// The machine's disk as this VM's calls reach it (its own: a RAM disk unless a test
        /// puts a device there), given back when the VM is dropped.
        pub disk: &'static spin::Mutex<Option<crate::disk::Disk>>,
        /// Its vCPUs: whether each is on, and where the last CPU_ON started it.
        pub vcpus: Vec<(super::Power, u64, u64)>,
        /// The calling vCPU.
        pub caller: usize,
        pub stated_version: Option<hypercall_abi::Version>,
        /// Whether it stands for a Linux VM.
        pub linux: bool,
        /// The calling vCPU's x0..x17.
        pub regs: Regs,
    }

    impl FakeVm {
        /// VM `index` with `quota_pages` of quota and nothing mapped.
        pub fn empty(index: u16, quota_pages: u64) -> Self {
            let memory = GuestMemory::new(index, index + 1, quota_pages * 4096)
                .expect("the fake machine has frames");
            let mut disk = crate::disk::ramdisk::RamDisk::<Cpu>::new();
            disk.reserve(crate::vm::block::Region {
                first_sector: 0,
                sectors: 1024,
            })
            .expect("the fake machine holds a small disk");
            let disk = std::boxed::Box::leak(std::boxed::Box::new(spin::Mutex::new(Some(
                crate::disk::Disk::Immediate(std::boxed::Box::new(disk)),
            ))));
            Self {
                index: index.into(),
                events: crate::vm::event::Events::new(1),
                acked: Vec::new(),
                console_io: Default::default(),
                channels: Vec::new(),
                memory,
                console: Vec::new(),
                lines: Vec::new(),
                queue_room: None,
                line_buffer: Default::default(),
                block_io: None,
                disk,
                vcpus: std::vec![(super::Power::On, 0, 0)],
                caller: 0,
                stated_version: None,
                linux: false,
                regs: [0; 18],
            }
        }
    }

    impl Drop for FakeVm {
        fn drop(&mut self) {
            // The disk's frames back to the fake machine (its mutex stays leaked: a word).
            self.disk.lock().take();
        }
    }

    impl Default for FakeVm {
        /// VM 2 with 64 pages of quota and one page mapped at PAGE_IPA.
        fn default() -> Self {
            let mut vm = Self::empty(2, 64);
            vm.memory
                .map(PAGE_IPA, 1, MemPerms::RW)
                .expect("fresh memory maps");
            vm
        }
    }

    impl GuestVm for FakeVm {
        fn regs(&mut self) -> &mut Regs {
            &mut self.regs
        }
        fn memory(&self) -> &GuestMemory<Cpu> {
            &self.memory
        }
        fn memory_mut(&mut self) -> &mut GuestMemory<Cpu> {
            &mut self.memory
        }
        fn console_output(&mut self, bytes: &[u8]) -> usize {
            let (shown, room) = (&mut self.lines, &mut self.queue_room);
            let n = self.line_buffer.push(bytes, |l| {
                if *room == Some(0) {
                    return false;
                }
                if let Some(left) = room {
                    *left -= 1;
                }
                shown.push(l.to_vec());
                true
            });
            self.console.extend_from_slice(&bytes[..n]);
            n
        }
        fn vcpu_index(&self) -> usize {
            self.caller
        }
        fn stated_version(&mut self) -> &mut Option<hypercall_abi::Version> {
            &mut self.stated_version
        }
        fn vcpu_count(&self) -> usize {
            self.vcpus.len()
        }
        fn vcpu_power(&self, vcpu: usize) -> Option<super::Power> {
            self.vcpus.get(vcpu).map(|v| v.0)
        }
        fn vcpu_start(&mut self, vcpu: usize, entry: u64, context: u64) {
            self.vcpus[vcpu] = (super::Power::On, entry, context);
        }
        fn console_io(&mut self) -> &mut crate::vm::console::ConsoleIo {
            &mut self.console_io
        }
        fn channel(&self, n: u32) -> Option<&crate::vm::channel::ChannelEnd> {
            self.channels.get(n as usize)
        }
        fn events(&mut self) -> &mut crate::vm::event::Events {
            &mut self.events
        }
        fn events_changed(&mut self, acked: Option<u32>) {
            self.acked.extend(acked);
        }
        fn block_io(&mut self) -> Option<&mut crate::vm::block::BlockIo> {
            self.block_io.as_mut()
        }
        fn disk(&self) -> &'static spin::Mutex<Option<crate::disk::Disk>> {
            self.disk
        }
        fn is_linux(&self) -> bool {
            self.linux
        }

        fn info(&self) -> VmInfo {
            VmInfo {
                vm_index: self.index,
                vcpu_count: self.vcpus.len() as u32,
                mem_available_bytes: self.memory.quota_left_bytes(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeVm;
    use super::fake::dispatch;
    use super::*;
    use hypercall_abi::{Call, Version};

    #[test]
    fn the_version_a_stateless_answer_states_is_the_one_abi_stated_reads() {
        let other_major = Version::new(Version::CURRENT.major + 1, 0).to_u64();
        for (function, x1) in [
            (hypercall_abi::abi::ABI_VERSION, Version::CURRENT.to_u64()),
            (hypercall_abi::abi::ABI_VERSION, Version::new(1, 0).to_u64()),
            (hypercall_abi::abi::ABI_VERSION, other_major),
            (hypercall_abi::abi::ABI_VERSION, 1 << 32 | 0x1_0000),
            (hypercall_abi::abi::ABI_FEATURES, Version::CURRENT.to_u64()),
        ] {
            let mut regs = [0u64; 18];
            (regs[0], regs[1]) = (u64::from(function), x1);
            let stated = abi::stated(&regs).map(Version::to_u64);
            assert!(answer_stateless(&mut regs));
            assert_eq!(stated_by_answer(function, x1, regs[0]), stated, "{x1:#x}");
        }
    }

    #[test]
    fn a_kill_reason_is_plain_data_that_says_what_happened() {
        // A data abort from EL1 (EC 0x24), translation fault level 3, on a write.
        let syndrome = Syndrome::decode(0x9200_0047, 0x1234, 0x4_0000 << 4);
        let reason = KillReason::Stage2Fault {
            pc: 0x4008_0000,
            syndrome,
        };
        let text = std::format!("{reason}");
        assert!(
            text.starts_with("stage-2 fault at IPA 0x40000234, PC 0x40080000: ESR 0x92000047"),
            "{text}"
        );
        assert_eq!(
            std::format!("{}", KillReason::NoVcpu(9)),
            "vCPU 9 does not exist"
        );
        assert_eq!(
            std::format!(
                "{}",
                KillReason::Unexpected {
                    kind: 3,
                    esr: 0xbe00_0000
                }
            ),
            "unexpected exception kind 3, ESR 0xbe000000"
        );
        // No heap behind it: the action that ends a VM is copied, never allocated.
        const _: () = assert!(core::mem::size_of::<KillReason>() <= 64);
    }

    fn call(vm: &mut FakeVm, c: Call) -> (Action, Regs) {
        let mut regs = c.to_regs();
        let action = dispatch(vm, &mut regs);
        (action, regs)
    }

    #[test]
    fn unknown_function_ids_are_not_supported() {
        let mut vm = FakeVm::default();
        for id in [
            0xC600_0FFFu64,
            0x8600_0000,
            0x1234,
            0xFFFF_FFFF,
            0xC400_00FF,
        ] {
            let mut regs: Regs = [0; 18];
            regs[0] = id;
            assert_eq!(dispatch(&mut vm, &mut regs), Action::Resume);
            assert_eq!(regs[0] as i64, -1, "id {id:#x}");
        }
    }

    /// Every vendor ID no call has (a hole among the feature bits, or outside the families'
    /// 8 x 8) is NOT_SUPPORTED: it is not live, so never jumped to, and the standard path's
    /// decode refuses it (`every_vendor_id_without_a_call_is_not_supported` of the ABI's
    /// golden tests checks the decode's own default arm).
    #[test]
    fn every_vendor_id_without_a_call_is_not_supported() {
        let mut vm = FakeVm::default();
        let known: Vec<u32> = hypercall_abi::CALLS.iter().map(|c| c.function_id).collect();
        let mut holes = 0;
        for n in 0..=0xffu32 {
            let id = hypercall_abi::abi::vendor_id(n);
            if known.contains(&id) {
                continue;
            }
            let mut regs: Regs = [0; 18];
            regs[0] = u64::from(id);
            assert_eq!(dispatch(&mut vm, &mut regs), Action::Resume);
            assert_eq!(regs[0] as i64, Error::NotSupported.code(), "id {id:#x}");
            holes += 1;
        }
        assert!(holes > 200, "{holes}");
    }

    #[test]
    fn block_calls_of_a_vm_without_a_disk_are_not_supported() {
        let mut vm = FakeVm::default();
        let (action, regs) = call(&mut vm, Call::BlockInfo);
        assert_eq!(
            (action, regs[0] as i64),
            (Action::Resume, Error::NotSupported.code())
        );
    }

    #[test]
    fn garbage_in_every_register_never_panics() {
        let mut vm = FakeVm::default();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let mut regs: Regs = [0; 18];
            for r in regs.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *r = seed;
            }
            // Keep the ID in our ranges half of the time so decoding goes deep.
            if seed & 1 == 0 {
                regs[0] = 0xC600_0000 | (regs[0] & 0x7f);
            }
            let _ = dispatch(&mut vm, &mut regs);
        }
    }

    #[test]
    fn a_linux_vm_gets_smccc_and_psci_and_none_of_the_vendor_calls() {
        let mut vm = FakeVm::default();
        vm.linux = true;
        let (_, regs) = call(&mut vm, Call::SmcccVersion);
        assert_eq!(regs[0], 0x1_0002, "SMCCC 1.2");
        let (_, regs) = call(&mut vm, Call::Psci(hypercall_abi::psci::PsciCall::Version));
        assert_eq!(regs[0], 0x1_0001, "PSCI 1.1");
        let (action, _) = call(
            &mut vm,
            Call::Psci(hypercall_abi::psci::PsciCall::SystemOff),
        );
        assert_eq!(action, Action::Exit(0));
        for c in [
            Call::AbiVersion {
                guest: Version::CURRENT,
            },
            Call::VmInfo,
            Call::VmExit { status: 3 },
            Call::ConsoleNotify,
        ] {
            let (action, regs) = call(&mut vm, c);
            assert_eq!(action, Action::Resume, "{c:?}");
            assert_eq!(regs[0] as i64, Error::NotSupported.code(), "{c:?}");
        }
    }

    #[test]
    fn version_handshake_accepts_minors_and_refuses_other_majors() {
        let mut vm = FakeVm::default();
        let newer_minor = Version {
            major: Version::CURRENT.major,
            minor: Version::CURRENT.minor + 3,
        };
        let (_, regs) = call(&mut vm, Call::AbiVersion { guest: newer_minor });
        assert_eq!((regs[0], regs[1]), (0, Version::CURRENT.to_u64()));
        let other_major = Version {
            major: Version::CURRENT.major + 1,
            minor: 0,
        };
        let (_, regs) = call(&mut vm, Call::AbiVersion { guest: other_major });
        assert_eq!(regs[0] as i64, Error::VersionMismatch.code());
    }

    /// The calls answer_stateless must answer: those that read nothing but their registers
    /// (not VENDOR_HYP_REVISION: it answers the VM's stated version).
    const STATELESS: [u32; 5] = [
        hypercall_abi::standard::SMCCC_VERSION,
        hypercall_abi::standard::SMCCC_ARCH_FEATURES,
        hypercall_abi::standard::VENDOR_HYP_CALL_UID,
        hypercall_abi::abi::ABI_VERSION,
        hypercall_abi::abi::ABI_FEATURES,
    ];

    #[test]
    fn only_calls_that_read_no_state_are_answered_without_the_vm() {
        for info in hypercall_abi::CALLS {
            let mut regs: Regs = core::array::from_fn(|i| 0x5a5a_0000 + i as u64);
            regs[0] = u64::from(info.function_id);
            let before = regs;
            let stateless = STATELESS.contains(&info.function_id);
            assert_eq!(answer_stateless(&mut regs), stateless, "{}", info.name);
            if stateless {
                // Skipping the liveness check of dispatch is right only for live calls.
                assert!(info.live, "{} answered but not live", info.name);
            } else {
                assert_eq!(regs, before, "{} was touched", info.name);
            }
        }
        // Only the low 32 bits are the function ID; unknown IDs fall through to dispatch.
        let mut regs: Regs = [0; 18];
        regs[0] = 0xFFFF_FFFF_0000_0000 | u64::from(hypercall_abi::abi::ABI_FEATURES);
        assert!(answer_stateless(&mut regs));
        regs[0] = 0xC600_0FFF;
        assert!(!answer_stateless(&mut regs));
    }

    #[test]
    fn exit_and_yield_reach_the_scheduler() {
        let mut vm = FakeVm::default();
        assert_eq!(call(&mut vm, Call::VmExit { status: 7 }).0, Action::Exit(7));
        let (action, regs) = call(&mut vm, Call::VmYield);
        assert_eq!((action, regs[0]), (Action::Yield, 0));
    }

    #[test]
    fn vm_info_reports_the_vm() {
        let mut vm = FakeVm::default();
        let (_, regs) = call(&mut vm, Call::VmInfo);
        assert_eq!(regs[0], 0);
        assert_eq!(
            hypercall_abi::VmInfo::from_values([regs[1], regs[2], regs[3]]).vm_index,
            2
        );
    }
}
