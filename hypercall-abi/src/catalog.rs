//! The table of every function ID of the v1 ABI: the one list the golden fixture, `docs/ABI.md`
//! and the hypervisor's feature answers are checked against.

use crate::{
    Version, abi::*, block::*, channel::*, console::*, event::*, mem::*, psci::*, standard::*,
    vm::*,
};

/// The family a call belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// Standard Arm SMCCC and vendor-service queries.
    Smccc,
    /// PSCI.
    Psci,
    /// `abi`: version and features.
    Abi,
    /// `vm`: exit, yield, info.
    Vm,
    /// `console`.
    Console,
    /// `mem`.
    Mem,
    /// `event`.
    Event,
    /// `block`.
    Block,
    /// `channel`.
    Channel,
}

/// One function ID of the ABI.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    /// The name `docs/ABI.md` and the fixture use, e.g. `CONSOLE_WRITE`, `PSCI_CPU_ON_64`.
    pub name: &'static str,
    /// The SMCCC function ID (w0).
    pub function_id: u32,
    /// The family.
    pub family: Family,
    /// Implemented by the hypervisor now (frozen) rather than provisional.
    pub live: bool,
    /// For a live call, the ABI version that made it live; for a provisional one, the version
    /// that reserved its ID (it gets a new `since` when it goes live).
    pub since: Version,
    /// How many argument registers (x1..) the call reads.
    pub args: u8,
}

impl CallInfo {
    /// The entry for a function ID, if the ABI has one.
    pub fn find(function_id: u32) -> Option<&'static CallInfo> {
        CALLS.iter().find(|c| c.function_id == function_id)
    }

    /// The call's bit in the `ABI_FEATURES` bitmap (vendor calls only).
    pub const fn feature_bit(&self) -> Option<u32> {
        feature_bit(self.function_id)
    }
}

const V1_0: Version = Version::new(1, 0);
const V1_1: Version = Version::new(1, 1);
const V1_2: Version = Version::new(1, 2);
const V1_3: Version = Version::new(1, 3);
const V1_4: Version = Version::new(1, 4);
const V1_5: Version = Version::new(1, 5);
const V1_6: Version = Version::new(1, 6);

const fn live(name: &'static str, function_id: u32, family: Family, args: u8) -> CallInfo {
    CallInfo {
        name,
        function_id,
        family,
        live: true,
        since: V1_0,
        args,
    }
}

/// A call made live in `since` (a minor after 1.0).
const fn live_since(
    name: &'static str,
    function_id: u32,
    family: Family,
    args: u8,
    since: Version,
) -> CallInfo {
    CallInfo {
        since,
        ..live(name, function_id, family, args)
    }
}

/// Every function ID of the v1 ABI, live and provisional, in ID order within each family.
pub const CALLS: &[CallInfo] = &[
    live("SMCCC_VERSION", SMCCC_VERSION, Family::Smccc, 0),
    live("SMCCC_ARCH_FEATURES", SMCCC_ARCH_FEATURES, Family::Smccc, 1),
    live("VENDOR_HYP_CALL_UID", VENDOR_HYP_CALL_UID, Family::Smccc, 0),
    live("VENDOR_HYP_REVISION", VENDOR_HYP_REVISION, Family::Smccc, 0),
    live("PSCI_VERSION", PSCI_VERSION, Family::Psci, 0),
    live("PSCI_CPU_SUSPEND_32", PSCI_CPU_SUSPEND_32, Family::Psci, 3),
    live("PSCI_CPU_SUSPEND_64", PSCI_CPU_SUSPEND_64, Family::Psci, 3),
    live("PSCI_CPU_OFF", PSCI_CPU_OFF, Family::Psci, 0),
    live("PSCI_CPU_ON_32", PSCI_CPU_ON_32, Family::Psci, 3),
    live("PSCI_CPU_ON_64", PSCI_CPU_ON_64, Family::Psci, 3),
    live(
        "PSCI_AFFINITY_INFO_32",
        PSCI_AFFINITY_INFO_32,
        Family::Psci,
        2,
    ),
    live(
        "PSCI_AFFINITY_INFO_64",
        PSCI_AFFINITY_INFO_64,
        Family::Psci,
        2,
    ),
    live("PSCI_SYSTEM_OFF", PSCI_SYSTEM_OFF, Family::Psci, 0),
    live("PSCI_SYSTEM_RESET", PSCI_SYSTEM_RESET, Family::Psci, 0),
    live("PSCI_FEATURES", PSCI_FEATURES, Family::Psci, 1),
    live("ABI_VERSION", ABI_VERSION, Family::Abi, 1),
    live("ABI_FEATURES", ABI_FEATURES, Family::Abi, 0),
    live("VM_EXIT", VM_EXIT, Family::Vm, 1),
    live("VM_YIELD", VM_YIELD, Family::Vm, 0),
    live("VM_INFO", VM_INFO, Family::Vm, 0),
    live("CONSOLE_WRITE", CONSOLE_WRITE, Family::Console, 2),
    live_since("CONSOLE_READ", CONSOLE_READ, Family::Console, 2, V1_2),
    live_since("CONSOLE_NOTIFY", CONSOLE_NOTIFY, Family::Console, 0, V1_2),
    live_since("MEM_MAP", MEM_MAP, Family::Mem, 3, V1_1),
    live_since("MEM_UNMAP", MEM_UNMAP, Family::Mem, 2, V1_1),
    live_since("MEM_PROTECT", MEM_PROTECT, Family::Mem, 3, V1_1),
    live_since("MEM_QUERY", MEM_QUERY, Family::Mem, 1, V1_1),
    live_since("MEM_BATCH", MEM_BATCH, Family::Mem, 2, V1_1),
    live_since("EVENT_BIND", EVENT_BIND, Family::Event, 2, V1_2),
    live_since("EVENT_MASK", EVENT_MASK, Family::Event, 1, V1_2),
    live_since("EVENT_UNMASK", EVENT_UNMASK, Family::Event, 1, V1_2),
    live_since("EVENT_ACK", EVENT_ACK, Family::Event, 1, V1_2),
    live_since("EVENT_SEND", EVENT_SEND, Family::Event, 2, V1_2),
    live_since("EVENT_SHARED_ACK", EVENT_SHARED_ACK, Family::Event, 0, V1_5),
    live_since("EVENT_DEVICE_ACK", EVENT_DEVICE_ACK, Family::Event, 0, V1_6),
    live_since(
        "EVENT_DEVICE_FAULTS",
        EVENT_DEVICE_FAULTS,
        Family::Event,
        0,
        V1_6,
    ),
    live_since("BLOCK_INFO", BLOCK_INFO, Family::Block, 0, V1_3),
    live_since("BLOCK_SUBMIT", BLOCK_SUBMIT, Family::Block, 1, V1_3),
    live_since("CHANNEL_INFO", CHANNEL_INFO, Family::Channel, 1, V1_4),
    live_since("CHANNEL_NOTIFY", CHANNEL_NOTIFY, Family::Channel, 1, V1_4),
];
