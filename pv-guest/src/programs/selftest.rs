//! `selftest`: checks that the hypervisor answers every live call of the ABI as documented,
//! from inside a real guest. Prints each failed check and a closing count; status 0 only if
//! every check passed.
//!
//! In a VM of several vCPUs, vCPU 0 starts the others with PSCI CPU_ON and every vCPU runs the
//! same checks ([`checks`]: nothing in them is program-wide; the PSCI checks use the caller's
//! own MPIDR, the event checks an event of the caller's own), each printing its own count
//! (`selftest: vCPU i: ...`); status 0 only if every vCPU passed.

use super::Command;
use super::checks::Checks;
use crate::arch::{mmu, sensitive};
use crate::fault::{self, ec::UNKNOWN as EC_UNKNOWN};
use crate::mm::stage1;
use crate::{hv, println};
use core::sync::atomic::{AtomicU32, Ordering};
use hypercall_abi::psci::{PSCI_FUNCTION_IDS, PSCI_VERSION_1_1, psci_error};
use hypercall_abi::standard::{
    SMCCC_ARCH_FEATURES, SMCCC_VERSION, SMCCC_VERSION_1_2, VENDOR_HYP_UID,
};
use hypercall_abi::{BootInfo, Conduit, Error, Version};

/// Each secondary vCPU's result: 0 not run, [`PASSED`], or [`FAILED`].
static RESULTS: [AtomicU32; crate::arch::MAX_VCPUS] =
    [const { AtomicU32::new(0) }; crate::arch::MAX_VCPUS];
const PASSED: u32 = 1;
const FAILED: u32 = 2;

/// The name each vCPU's checks print under (one VM of one vCPU: plain `selftest`).
const NAMES: [&str; crate::arch::MAX_VCPUS] = [
    "selftest: vCPU 0",
    "selftest: vCPU 1",
    "selftest: vCPU 2",
    "selftest: vCPU 3",
    "selftest: vCPU 4",
    "selftest: vCPU 5",
    "selftest: vCPU 6",
    "selftest: vCPU 7",
];

pub fn run(info: &BootInfo, cmd: &Command) -> u64 {
    let n = (info.vcpu_count as usize).min(crate::arch::MAX_VCPUS);
    if n <= 1 {
        let mut c = Checks::new("selftest");
        checks(info, cmd, 0, &mut c);
        return c.finish();
    }
    let mut failed = super::smp::start_others(info, "selftest");
    let mut c = Checks::new(NAMES[0]);
    checks(info, cmd, 0, &mut c);
    if c.finish() != 0 {
        failed += 1;
    }
    failed += super::smp::wait_others_off(info, "selftest");
    for (i, result) in RESULTS.iter().enumerate().take(n).skip(1) {
        match result.load(Ordering::SeqCst) {
            PASSED => {}
            0 => {
                println!("selftest: vCPU {i} never reported");
                failed += 1;
            }
            _ => failed += 1,
        }
    }
    if failed != 0 {
        println!("selftest: {failed} vCPU(s) FAILED");
        return 1;
    }
    println!("selftest: all {n} vCPUs passed every check");
    0
}

/// A secondary vCPU's part: the same checks, reported in RESULTS.
pub fn secondary(info: &BootInfo, cmd: &Command, index: usize) {
    let Some(slot) = RESULTS.get(index) else {
        return;
    };
    let mut c = Checks::new(NAMES[index]);
    checks(info, cmd, index, &mut c);
    let result = if c.finish() == 0 { PASSED } else { FAILED };
    slot.store(result, Ordering::SeqCst);
}

/// Every check, run by vCPU `me` (any of the VM's vCPUs, several at once).
fn checks(info: &BootInfo, cmd: &Command, me: usize, c: &mut Checks) {
    let mut hv = hv();

    // Memory: the stage-1 MMU is on unless the command line said nommu.
    c.check(
        "the stage-1 MMU is on as the command line asks",
        mmu::is_enabled() == cmd.mmu && stage1::is_on() == cmd.mmu,
    );

    // Boot info and version handshake.
    let hyp_version = Version::from_u64(info.abi_version);
    c.check(
        "boot info states a v1 ABI",
        hyp_version.is_some_and(|v| v.major == Version::CURRENT.major),
    );
    c.check("boot info names this VM", !info.name().is_empty());
    c.check(
        "version handshake accepted",
        hv.abi_version()
            .is_ok_and(|v| v.major == Version::CURRENT.major),
    );
    let other_major = Version {
        major: Version::CURRENT.major + 1,
        minor: 0,
    };
    c.check(
        "another major is refused",
        hv.abi_version_for(other_major) == Err(Error::VersionMismatch),
    );
    let newer_minor = Version {
        major: Version::CURRENT.major,
        minor: Version::CURRENT.minor + 1,
    };
    c.check(
        "a newer minor is accepted",
        hv.abi_version_for(newer_minor).is_ok(),
    );
    let features = hv.abi_features();
    c.check(
        "features bitmap says console write is live",
        features
            .is_ok_and(|f| f & hypercall_abi::live_features() == hypercall_abi::live_features()),
    );

    // SMCCC standard queries.
    c.check(
        "SMCCC_VERSION is 1.2",
        hv.smccc_version() == SMCCC_VERSION_1_2,
    );
    c.check(
        "SMCCC_ARCH_FEATURES(SMCCC_VERSION)",
        hv.smccc_arch_features(SMCCC_VERSION) == 0,
    );
    c.check(
        "SMCCC_ARCH_FEATURES(ARCH_FEATURES)",
        hv.smccc_arch_features(SMCCC_ARCH_FEATURES) == 0,
    );
    c.check(
        "SMCCC_ARCH_FEATURES(unknown) is NOT_SUPPORTED",
        hv.smccc_arch_features(0x8000_7FFF) == -1,
    );
    c.check("vendor hyp UID", hv.vendor_uid() == VENDOR_HYP_UID);
    let current = (
        u32::from(Version::CURRENT.major),
        u32::from(Version::CURRENT.minor),
    );
    c.check(
        "vendor hyp revision is the ABI version",
        hv.vendor_revision() == current,
    );

    // PSCI 1.1.
    c.check("PSCI_VERSION is 1.1", hv.psci_version() == PSCI_VERSION_1_1);
    for id in PSCI_FUNCTION_IDS {
        c.check(
            "PSCI_FEATURES of a mandatory function",
            hv.psci_features(id) == psci_error::SUCCESS,
        );
    }
    c.check(
        "PSCI_FEATURES(unknown) is NOT_SUPPORTED",
        hv.psci_features(0x8400_00EE) == psci_error::NOT_SUPPORTED,
    );
    let own = super::smp::mpidr(me); // this vCPU's MPIDR
    // An MPIDR naming no vCPU of this VM: the index past its last vCPU, or Aff1 = 1.
    let none = match info.vcpu_count {
        n if (n as usize) < crate::arch::MAX_VCPUS => super::smp::mpidr(n as usize),
        _ => 1 << 8,
    };
    c.check(
        "CPU_ON of itself is ALREADY_ON",
        hv.psci_cpu_on(own, 0x4000_0000, 0) == psci_error::ALREADY_ON,
    );
    c.check(
        "CPU_ON of another MPIDR is INVALID_PARAMETERS",
        hv.psci_cpu_on(none, 0x4000_0000, 0) == psci_error::INVALID_PARAMETERS,
    );
    c.check(
        "AFFINITY_INFO of itself is ON",
        hv.psci_affinity_info(own, 0) == 0,
    );
    c.check(
        "AFFINITY_INFO of another is INVALID_PARAMETERS",
        hv.psci_affinity_info(none, 0) == psci_error::INVALID_PARAMETERS,
    );
    // CPU_SUSPEND waits for the vCPU's next event: make one deliverable first, so it returns.
    // Each vCPU its own event, claimed, raised on itself.
    let spare = 100 + me as u32;
    crate::events::claim(spare);
    c.check(
        "event.send to itself",
        hv.event_send(me as u32, spare).is_ok(),
    );
    c.check("event.unmask", hv.event_unmask(spare).is_ok());
    c.check(
        "the event is pending in the event page",
        crate::events::is_pending(info, spare),
    );
    c.check(
        "CPU_SUSPEND returns SUCCESS with an event deliverable",
        hv.psci_cpu_suspend(0, 0, 0) == psci_error::SUCCESS,
    );
    c.check("event.ack", hv.event_ack(spare).is_ok());
    c.check(
        "an acked event is no longer pending",
        !crate::events::is_pending(info, spare),
    );
    c.check("event.mask", hv.event_mask(spare).is_ok());
    if crate::events::acks_shared() {
        shared_acks(info, spare, c);
    }
    c.check(
        "the timer's event is the boot info's",
        hv.event_bind(hypercall_abi::event::EventSource::VirtualTimer) == Ok(info.timer_event),
    );
    c.check(
        "events past 255 are refused",
        hv.event_ack(256) == Err(Error::InvalidParameters),
    );
    c.check(
        "a channel this VM does not have is refused",
        hv.event_bind(hypercall_abi::event::EventSource::Channel { channel: 0 })
            == Err(Error::Denied),
    );

    // Unknown IDs, bad arguments.
    let mut regs = [0u64; 18];
    regs[0] = 0xC600_00FF;
    c.check(
        "unknown vendor ID is NOT_SUPPORTED",
        hv.conduit_mut().call(&regs)[0] as i64 == -1,
    );
    let mut garbage = [0xDEAD_BEEF_0BAD_F00Du64; 18];
    garbage[0] = 0xFFFF_FFFF_0000_0000 | 0xC600_0020; // console write with garbage arguments
    c.check(
        "garbage arguments are refused",
        (hv.conduit_mut().call(&garbage)[0] as i64) < 0,
    );
    c.check(
        "console write of an unmapped IPA is BAD_ADDRESS",
        hv.console_write(0x7F_0000_0000, 8) == Err(Error::BadAddress),
    );
    c.check(
        "block.info of a VM without a disk region is NOT_SUPPORTED",
        info.block_ring_ipa != 0 || hv.block_info() == Err(Error::NotSupported),
    );
    c.check(
        "mem.query of the image's first page says read+exec",
        hv.mem_query(info.image_start)
            .is_ok_and(|(perms, _)| perms == hypercall_abi::MemPerms::RX),
    );

    // VM calls.
    let vm_info = hv.vm_info();
    c.check(
        "vm.info names this VM's index",
        vm_info.is_ok_and(|i| i.vm_index == info.vm_index),
    );
    c.check(
        "vm.info quota left is within the quota",
        vm_info.is_ok_and(|i| i.mem_available_bytes < info.mem_quota_bytes),
    );
    c.check("vm.yield returns", hv.vm_yield().is_ok());

    // Sensitive instructions trap; the hypervisor answers with an UNDEF we can handle, or
    // (SMC) NOT_SUPPORTED.
    let undef = |esr: Option<u64>| esr.is_some_and(|e| fault::class(e) == EC_UNKNOWN);
    c.check(
        "IMPDEF register access is UNDEFINED",
        undef(fault::probe(sensitive::read_impdef_register)),
    );
    c.check(
        "set/way cache maintenance is UNDEFINED",
        undef(fault::probe(sensitive::clean_by_set_way)),
    );
    c.check(
        "auxiliary control register is UNDEFINED",
        undef(fault::probe(sensitive::read_actlr)),
    );
    c.check(
        "PMU is UNDEFINED",
        undef(fault::probe(sensitive::read_pmcr)),
    );
    c.check(
        "SMC from a guest is refused",
        sensitive::smc(SMCCC_VERSION.into()) as i64 == -1,
    );
    // Pointer authentication is hidden, so its instructions are UNDEFINED even where the CPU
    // has them (they trap to the hypervisor, which does not switch the keys).
    c.check(
        "a pointer-authentication instruction is UNDEFINED",
        undef(fault::probe(sensitive::pointer_auth_enabled)),
    );

    disr_is_this_vcpus(info, me, c);
    id_registers(c);
    registers_preserved(info, c);
}

/// DISR_EL1 (on a CPU with RAS: VDISR_EL2, one per physical CPU) belongs to this vCPU: it
/// starts at 0 and keeps what this vCPU wrote across yields, while other VMs' selftests on the
/// same CPU write theirs. Where the CPU lacks RAS it is UNDEFINED, and nothing can leak.
/// Acknowledging in the event page (ABI 1.5), and what the hyp makes of bits we forge there:
/// `spare` is ours, masked and not pending on entry, and so on return.
fn shared_acks(info: &BootInfo, spare: u32, c: &mut Checks) {
    use core::sync::atomic::{AtomicU64, Ordering};
    use hypercall_abi::layout::EventPage;
    let mut hv = crate::hv();
    let word = |field: usize| {
        let at = info.event_page_ipa + field as u64 + 8 * u64::from(spare / 64);
        // SAFETY: an aligned word of the event page, writable since EVENT_SHARED_ACK (VA = IPA).
        unsafe { &*(at as *const AtomicU64) }
    };
    let pending = word(core::mem::offset_of!(EventPage, pending));
    let masked = word(core::mem::offset_of!(EventPage, masked));
    let bit = 1u64 << (spare % 64);
    let _ = hv.event_unmask(spare);
    let _ = hv.event_send(crate::arch::vcpu_index() as u32, spare);
    crate::events::ack(info, spare);
    // Any event call takes the page's acknowledgements: a taken one is not raised again.
    let _ = hv.event_mask(spare);
    c.check(
        "an event acknowledged in the page stays acknowledged",
        pending.load(Ordering::SeqCst) & bit == 0,
    );
    pending.fetch_or(bit, Ordering::SeqCst);
    masked.fetch_and(!bit, Ordering::SeqCst);
    let _ = hv.event_mask(spare);
    c.check(
        "a pending bit we set is not an event: the hyp takes it out",
        pending.load(Ordering::SeqCst) & bit == 0,
    );
    c.check(
        "the masked word is the hyp's again after EVENT_MASK",
        masked.load(Ordering::SeqCst) & bit != 0,
    );
}

fn disr_is_this_vcpus(info: &BootInfo, me: usize, c: &mut Checks) {
    let mut start = 0;
    match fault::probe(|| start = sensitive::read_disr()) {
        Some(esr) if fault::class(esr) == EC_UNKNOWN => return, // no RAS
        Some(_) => return c.check("DISR_EL1 is UNDEFINED or this vCPU's own", false),
        None => {}
    }
    c.check("DISR_EL1 starts at 0 (no other vCPU's record)", start == 0);
    // Deferred-error syndrome bits (ISS, 23:0) naming this VM and vCPU.
    let mine = 0x5a_0000 | (u64::from(info.vm_index) & 0xff) << 8 | me as u64;
    sensitive::write_disr(mine);
    let mut hv = hv();
    for _ in 0..4 {
        let _ = hv.vm_yield();
    }
    c.check(
        "DISR_EL1 keeps this vCPU's value across yields",
        sensitive::read_disr() == mine,
    );
    sensitive::write_disr(0);
}

/// The ID registers show what the hypervisor virtualizes and nothing else: no SVE, SME, MTE,
/// activity monitors, PMU or pointer authentication, whatever the CPU has; AArch64 only.
fn id_registers(c: &mut Checks) {
    let [pfr0, pfr1, isar1, isar2, dfr0] = crate::arch::id_registers();
    let field = |value: u64, lsb: u32| (value >> lsb) & 0xf;
    c.expect(
        "ID_AA64PFR0_EL1 EL0, EL1: AArch64 only",
        (field(pfr0, 0), field(pfr0, 4)),
        (1, 1),
    );
    c.expect("ID_AA64PFR0_EL1.SVE is absent", field(pfr0, 32), 0);
    c.expect("ID_AA64PFR0_EL1.AMU is absent", field(pfr0, 44), 0);
    c.expect("ID_AA64PFR1_EL1.SME is absent", field(pfr1, 24), 0);
    c.expect("ID_AA64PFR1_EL1.MTE is absent", field(pfr1, 8), 0);
    c.expect(
        "ID_AA64ISAR1_EL1 APA, API, GPA, GPI are absent",
        [4, 8, 24, 28].map(|lsb| field(isar1, lsb)),
        [0; 4],
    );
    c.expect(
        "ID_AA64ISAR2_EL1 GPA3, APA3 are absent",
        [8, 12].map(|lsb| field(isar2, lsb)),
        [0; 2],
    );
    c.expect("ID_AA64DFR0_EL1.PMUVer is absent", field(dfr0, 8), 0);
}

/// SMCCC 1.2: a call keeps every register it does not return a result in (docs/ABI.md,
/// "Registers across a call"): each call below with the first register it must keep; x18..x30
/// the compiler relies on (the conduit declares only x0..x17 clobbered).
fn registers_preserved(info: &BootInfo, c: &mut Checks) {
    use hypercall_abi::{Call, PsciCall};
    let calls = [
        (Call::SmcccVersion, 1),
        (Call::VendorHypCallUid, 4),
        (Call::VendorHypRevision, 2),
        (Call::Psci(PsciCall::Version), 1),
        (Call::AbiFeatures, 4),
        (Call::VmInfo, 4),
        (
            Call::MemQuery {
                ipa: info.image_start,
            },
            4,
        ),
        (Call::EventAck { event: 256 }, 4),
        (
            Call::ConsoleWrite {
                ipa: 0x7F_0000_0000,
                len: 8,
            },
            4,
        ),
    ];
    let mut hv = hv();
    for (call, kept) in calls {
        let mut regs = call.to_regs();
        for (i, r) in regs.iter_mut().enumerate().skip(kept) {
            *r = 0xA5A5_0000_0000_0000 | i as u64;
        }
        let back = hv.conduit_mut().call(&regs);
        c.expect(
            "a call keeps the registers it does not answer in",
            &back[kept..],
            &regs[kept..],
        );
    }
    let mut unknown = [0u64; 18];
    unknown[0] = 0xC600_00FF;
    for (i, r) in unknown.iter_mut().enumerate().skip(1) {
        *r = 0x5A5A_0000_0000_0000 | i as u64;
    }
    let back = hv.conduit_mut().call(&unknown);
    c.expect(
        "an unknown call answers NOT_SUPPORTED, x1..x3 = 0",
        &back[..4],
        &[Error::NotSupported.code() as u64, 0, 0, 0],
    );
    c.expect("an unknown call keeps x4..x17", &back[4..], &unknown[4..]);
}
