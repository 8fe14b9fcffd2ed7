//! `selftest`: checks that the hypervisor answers every live call of the ABI as documented,
//! from inside a real guest. Prints each failed check and a closing count; status 0 only if
//! every check passed.

use super::Command;
use super::checks::Checks;
use crate::arch::{mmu, sensitive};
use crate::fault::{self, ec::UNKNOWN as EC_UNKNOWN};
use crate::hv;
use crate::mm::stage1;
use hypercall_abi::psci::{PSCI_FUNCTION_IDS, PSCI_VERSION_1_1, psci_error};
use hypercall_abi::standard::{
    SMCCC_ARCH_FEATURES, SMCCC_VERSION, SMCCC_VERSION_1_2, VENDOR_HYP_UID,
};
use hypercall_abi::{BootInfo, Conduit, Error, Version};

pub fn run(info: &BootInfo, cmd: &Command) -> u64 {
    let mut c = Checks::new("selftest");
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
    let own = 0; // MPIDR of this VM's vCPU 0
    c.check(
        "CPU_ON of itself is ALREADY_ON",
        hv.psci_cpu_on(own, 0x4000_0000, 0) == psci_error::ALREADY_ON,
    );
    c.check(
        "CPU_ON of another MPIDR is INVALID_PARAMETERS",
        hv.psci_cpu_on(7, 0x4000_0000, 0) == psci_error::INVALID_PARAMETERS,
    );
    c.check(
        "AFFINITY_INFO of itself is ON",
        hv.psci_affinity_info(own, 0) == 0,
    );
    c.check(
        "AFFINITY_INFO of another is INVALID_PARAMETERS",
        hv.psci_affinity_info(5, 0) == psci_error::INVALID_PARAMETERS,
    );
    // CPU_SUSPEND waits for the VM's next event: make one deliverable first, so it returns.
    let spare = 100;
    c.check("event.send to itself", hv.event_send(0, spare).is_ok());
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

    c.finish()
}
