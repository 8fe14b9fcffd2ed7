//! Shared by the integration tests: one example of every call, with its documented answer.

#![allow(dead_code)]

use hypercall_abi::{
    BatchResult, BlockInfo, CALLS, Call, ChannelInfo, Error, EventSource, MemPerms, PsciCall, Regs,
    Version, VmInfo, encode_return, live_features_in, psci, standard,
};

/// One example per function ID: the typed call, the register image it is sent as, and the
/// answer a v1.0 hypervisor gives (`None`: the call does not return when it succeeds).
pub struct Sample {
    pub name: &'static str,
    pub call: Call,
    pub regs: Regs,
    pub ret: Option<Vec<u64>>,
}

fn ok(v: [u64; 3]) -> Option<Vec<u64>> {
    Some(encode_return(Ok(v)).to_vec())
}

fn err(e: Error) -> Option<Vec<u64>> {
    Some(encode_return(Err(e)).to_vec())
}

fn raw(x0: i32) -> Option<Vec<u64>> {
    Some(vec![i64::from(x0) as u64])
}

/// A compile-time guard: adding a `Call` variant breaks this match until the variant gets a
/// sample below (and so a fixture line and an ABI.md row).
fn has_sample(call: &Call) -> bool {
    match call {
        Call::SmcccVersion
        | Call::SmcccArchFeatures { .. }
        | Call::VendorHypCallUid
        | Call::VendorHypRevision
        | Call::Psci(
            PsciCall::Version
            | PsciCall::Features { .. }
            | PsciCall::CpuSuspend { .. }
            | PsciCall::CpuOff
            | PsciCall::CpuOn { .. }
            | PsciCall::AffinityInfo { .. }
            | PsciCall::SystemOff
            | PsciCall::SystemReset,
        )
        | Call::AbiVersion { .. }
        | Call::AbiFeatures
        | Call::VmExit { .. }
        | Call::VmYield
        | Call::VmInfo
        | Call::ConsoleWrite { .. }
        | Call::ConsoleRead { .. }
        | Call::ConsoleNotify
        | Call::MemMap { .. }
        | Call::MemUnmap { .. }
        | Call::MemProtect { .. }
        | Call::MemQuery { .. }
        | Call::MemBatch { .. }
        | Call::EventBind { .. }
        | Call::EventMask { .. }
        | Call::EventUnmask { .. }
        | Call::EventAck { .. }
        | Call::EventSend { .. }
        | Call::EventSharedAck
        | Call::EventDeviceAck
        | Call::EventDeviceFaults
        | Call::BlockInfo
        | Call::BlockSubmit { .. }
        | Call::ChannelInfo { .. }
        | Call::ChannelNotify { .. } => true,
    }
}

/// The fixture records what a 1.0 guest sees from a 1.0 hypervisor, whatever this crate's
/// current version.
pub const V1_0: Version = Version::new(1, 0);

pub fn samples() -> Vec<Sample> {
    use psci::psci_error::{ALREADY_ON, INVALID_PARAMETERS};
    let guest_ipa = 0x4008_0000;
    let list: Vec<(&'static str, Call, Option<Vec<u64>>)> = vec![
        (
            "SMCCC_VERSION",
            Call::SmcccVersion,
            raw(standard::SMCCC_VERSION_1_2 as i32),
        ),
        (
            "SMCCC_ARCH_FEATURES",
            Call::SmcccArchFeatures {
                function_id: standard::SMCCC_VERSION,
            },
            raw(standard::arch_features(standard::SMCCC_VERSION)),
        ),
        (
            "VENDOR_HYP_CALL_UID",
            Call::VendorHypCallUid,
            Some(standard::VENDOR_HYP_UID.map(u64::from).to_vec()),
        ),
        (
            "VENDOR_HYP_REVISION",
            Call::VendorHypRevision,
            Some(standard::revision_regs(V1_0).to_vec()),
        ),
        (
            "PSCI_VERSION",
            Call::Psci(PsciCall::Version),
            raw(psci::PSCI_VERSION_1_1 as i32),
        ),
        (
            "PSCI_CPU_SUSPEND_32",
            Call::Psci(PsciCall::CpuSuspend {
                power_state: 0,
                entry: 0,
                context_id: 0,
            }),
            raw(0),
        ),
        (
            "PSCI_CPU_SUSPEND_64",
            Call::Psci(PsciCall::CpuSuspend {
                power_state: 0,
                entry: 0,
                context_id: 0,
            }),
            raw(0),
        ),
        ("PSCI_CPU_OFF", Call::Psci(PsciCall::CpuOff), None),
        (
            "PSCI_CPU_ON_32",
            Call::Psci(PsciCall::CpuOn {
                target_mpidr: 0,
                entry: 0x4008_0000,
                context_id: 7,
            }),
            raw(ALREADY_ON),
        ),
        (
            "PSCI_CPU_ON_64",
            Call::Psci(PsciCall::CpuOn {
                target_mpidr: 1,
                entry: 0x4008_0000,
                context_id: 7,
            }),
            raw(INVALID_PARAMETERS),
        ),
        (
            "PSCI_AFFINITY_INFO_32",
            Call::Psci(PsciCall::AffinityInfo {
                target_mpidr: 0,
                lowest_level: 0,
            }),
            raw(0),
        ),
        (
            "PSCI_AFFINITY_INFO_64",
            Call::Psci(PsciCall::AffinityInfo {
                target_mpidr: 0,
                lowest_level: 0,
            }),
            raw(0),
        ),
        ("PSCI_SYSTEM_OFF", Call::Psci(PsciCall::SystemOff), None),
        ("PSCI_SYSTEM_RESET", Call::Psci(PsciCall::SystemReset), None),
        (
            "PSCI_FEATURES",
            Call::Psci(PsciCall::Features {
                function_id: psci::PSCI_CPU_ON_64,
            }),
            raw(psci::features(psci::PSCI_CPU_ON_64)),
        ),
        (
            "ABI_VERSION",
            Call::AbiVersion { guest: V1_0 },
            ok([V1_0.to_u64(), 0, 0]),
        ),
        (
            "ABI_FEATURES",
            Call::AbiFeatures,
            ok([live_features_in(V1_0), 0, 0]),
        ),
        ("VM_EXIT", Call::VmExit { status: 0 }, None),
        ("VM_YIELD", Call::VmYield, ok([0; 3])),
        (
            "VM_INFO",
            Call::VmInfo,
            ok(VmInfo {
                vm_index: 1,
                vcpu_count: 1,
                mem_available_bytes: 0x10_0000,
            }
            .to_values()),
        ),
        (
            "CONSOLE_WRITE",
            Call::ConsoleWrite {
                ipa: guest_ipa,
                len: 12,
            },
            ok([12, 0, 0]),
        ),
        ("CONSOLE_NOTIFY", Call::ConsoleNotify, ok([0x20, 0, 0])),
        (
            "CONSOLE_READ",
            Call::ConsoleRead {
                ipa: guest_ipa,
                len: 64,
            },
            ok([0, 0, 0]),
        ),
        (
            "MEM_MAP",
            Call::MemMap {
                ipa: 0x5000_0000,
                pages: 16,
                perms: MemPerms::RW,
            },
            ok([0; 3]),
        ),
        (
            "MEM_UNMAP",
            Call::MemUnmap {
                ipa: 0x5000_0000,
                pages: 16,
            },
            err(Error::NotMapped),
        ),
        (
            "MEM_PROTECT",
            Call::MemProtect {
                ipa: 0x5000_0000,
                pages: 1,
                perms: MemPerms::READ,
            },
            ok([0; 3]),
        ),
        (
            "MEM_QUERY",
            Call::MemQuery { ipa: 0x5000_0000 },
            ok([MemPerms::RW.bits(), 0xf_0000, 0]),
        ),
        (
            "MEM_BATCH",
            Call::MemBatch {
                list_ipa: 0x5100_0000,
                count: 512,
            },
            ok(BatchResult {
                done: 3,
                first_error: Some(Error::OutOfMemory),
            }
            .to_values()),
        ),
        (
            "EVENT_BIND",
            Call::EventBind {
                source: EventSource::ConsoleRx,
            },
            ok([1, 0, 0]),
        ),
        ("EVENT_MASK", Call::EventMask { event: 5 }, ok([0; 3])),
        ("EVENT_UNMASK", Call::EventUnmask { event: 5 }, ok([0; 3])),
        ("EVENT_ACK", Call::EventAck { event: 5 }, ok([0; 3])),
        (
            "EVENT_SEND",
            Call::EventSend { vcpu: 0, event: 6 },
            ok([0; 3]),
        ),
        ("EVENT_SHARED_ACK", Call::EventSharedAck, ok([0; 3])),
        // A VM that owns a device, whose DMA the SMMU stopped once, at 0x50000000.
        ("EVENT_DEVICE_ACK", Call::EventDeviceAck, ok([0; 3])),
        (
            "EVENT_DEVICE_FAULTS",
            Call::EventDeviceFaults,
            ok([1, 0x5000_0000, 0]),
        ),
        (
            "BLOCK_INFO",
            Call::BlockInfo,
            ok(BlockInfo {
                sectors: 0x8000,
                sector_size: 512,
                flags: 0,
            }
            .to_values()),
        ),
        (
            "BLOCK_SUBMIT",
            Call::BlockSubmit { producer: 4 },
            ok([4, 0, 0]),
        ),
        (
            "CHANNEL_INFO",
            Call::ChannelInfo { channel: 0 },
            ok(ChannelInfo {
                ipa: 0x40_0000_0000,
                pages: 1,
                peer_vm: 1,
                flags: ChannelInfo::SENDS_ON_FIRST,
            }
            .to_values()),
        ),
        (
            "CHANNEL_NOTIFY",
            Call::ChannelNotify { channel: 0 },
            ok([0; 3]),
        ),
    ];
    list.into_iter()
        .map(|(name, call, ret)| {
            assert!(has_sample(&call));
            let info = CALLS
                .iter()
                .find(|c| c.name == name)
                .expect("sample not in CALLS");
            let mut regs = call.to_regs();
            // SMC32 forms: the same typed call sent under the 32-bit ID.
            regs[0] = info.function_id.into();
            Sample {
                name,
                call,
                regs,
                ret,
            }
        })
        .collect()
}

/// `0x..` lists as the fixture writes them.
pub fn hex_list(v: &[u64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:#x}")).collect();
    format!("[{}]", items.join(","))
}
