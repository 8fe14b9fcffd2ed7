//! PSCI 1.1 for guests: every function PSCI 1.x makes mandatory. Live since 1.0.
//!
//! Results are the raw x0 PSCI defines (0 or a negative PSCI error such as
//! [`smccc::psci::error::INVALID_PARAMETERS`]), not [`crate::Error`].
//! Decoding accepts the SMC32 and the SMC64 form where PSCI defines both (for an SMC32 form only
//! the low 32 bits of each argument count, as SMCCC requires); encoding uses the SMC64 form.

pub use smccc::psci::error as psci_error;
pub use smccc::psci::{
    PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_32, PSCI_CPU_ON_64,
    PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET,
    PSCI_VERSION,
};

/// The PSCI version the hypervisor implements, as `PSCI_VERSION` returns it: 1.1 (`0x10001`).
pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;

/// A PSCI call with typed arguments.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PsciCall {
    /// `PSCI_VERSION` (`0x8400_0000`). Result: x0 = [`PSCI_VERSION_1_1`].
    Version,
    /// `PSCI_FEATURES` (`0x8400_000A`): w1 = a PSCI function ID. Result: x0 = 0 (or feature
    /// flags) if implemented, else `NOT_SUPPORTED`; see [`features`].
    Features {
        /// The PSCI function ID asked about.
        function_id: u32,
    },
    /// `CPU_SUSPEND` (`0xC400_0001`, SMC32 `0x8400_0001`): x1 = power_state, x2 = entry point,
    /// x3 = context ID. The hypervisor treats every power state as standby: the vCPU waits for its
    /// VM's next event and the call returns 0.
    CpuSuspend {
        /// The PSCI power_state parameter (32 bits meaningful).
        power_state: u64,
        /// Resume entry point for powerdown states (unused: only standby is implemented).
        entry: u64,
        /// Context ID handed to the entry point (unused likewise).
        context_id: u64,
    },
    /// `CPU_OFF` (`0x8400_0002`). Does not return on success; `DENIED` otherwise.
    CpuOff,
    /// `CPU_ON` (`0xC400_0003`, SMC32 `0x8400_0003`): x1 = target MPIDR, x2 = entry point IPA,
    /// x3 = context ID (in the new vCPU's x0). `ALREADY_ON` if the target is on,
    /// `INVALID_PARAMETERS` for an MPIDR that names no vCPU of the VM, `INVALID_ADDRESS` for an
    /// entry that is not executable memory of the VM.
    CpuOn {
        /// MPIDR (affinity fields) of the vCPU to start.
        target_mpidr: u64,
        /// Entry point IPA.
        entry: u64,
        /// Value for the new vCPU's x0.
        context_id: u64,
    },
    /// `AFFINITY_INFO` (`0xC400_0004`, SMC32 `0x8400_0004`): x1 = target affinity, x2 = lowest
    /// affinity level. Result: 0 ON, 1 OFF, 2 ON_PENDING, or `INVALID_PARAMETERS`.
    AffinityInfo {
        /// MPIDR affinity fields.
        target_mpidr: u64,
        /// Lowest valid affinity level (0..=3).
        lowest_level: u64,
    },
    /// `SYSTEM_OFF` (`0x8400_0008`): ends the VM with exit status 0. Does not return.
    SystemOff,
    /// `SYSTEM_RESET` (`0x8400_0009`): restarts the VM from its image with fresh memory. Does not
    /// return.
    SystemReset,
}

impl PsciCall {
    /// The function ID this call encodes to (the SMC64 form where PSCI has one).
    pub const fn function_id(&self) -> u32 {
        match self {
            PsciCall::Version => PSCI_VERSION,
            PsciCall::Features { .. } => PSCI_FEATURES,
            PsciCall::CpuSuspend { .. } => PSCI_CPU_SUSPEND_64,
            PsciCall::CpuOff => PSCI_CPU_OFF,
            PsciCall::CpuOn { .. } => PSCI_CPU_ON_64,
            PsciCall::AffinityInfo { .. } => PSCI_AFFINITY_INFO_64,
            PsciCall::SystemOff => PSCI_SYSTEM_OFF,
            PsciCall::SystemReset => PSCI_SYSTEM_RESET,
        }
    }

    /// The argument registers x1..x3.
    pub(crate) fn args(&self) -> [u64; 3] {
        match *self {
            PsciCall::Features { function_id } => [function_id.into(), 0, 0],
            PsciCall::CpuSuspend {
                power_state,
                entry,
                context_id,
            } => [power_state, entry, context_id],
            PsciCall::CpuOn {
                target_mpidr,
                entry,
                context_id,
            } => [target_mpidr, entry, context_id],
            PsciCall::AffinityInfo {
                target_mpidr,
                lowest_level,
            } => [target_mpidr, lowest_level, 0],
            PsciCall::Version | PsciCall::CpuOff | PsciCall::SystemOff | PsciCall::SystemReset => {
                [0; 3]
            }
        }
    }

    /// Decodes a PSCI function ID and its arguments; `None` if `id` is not one of ours.
    pub(crate) fn decode(id: u32, x: &[u64]) -> Option<PsciCall> {
        let w = |i: usize| u64::from(x[i] as u32);
        Some(match id {
            PSCI_VERSION => PsciCall::Version,
            PSCI_FEATURES => PsciCall::Features {
                function_id: x[1] as u32,
            },
            PSCI_CPU_SUSPEND_64 => PsciCall::CpuSuspend {
                power_state: x[1],
                entry: x[2],
                context_id: x[3],
            },
            PSCI_CPU_SUSPEND_32 => PsciCall::CpuSuspend {
                power_state: w(1),
                entry: w(2),
                context_id: w(3),
            },
            PSCI_CPU_OFF => PsciCall::CpuOff,
            PSCI_CPU_ON_64 => PsciCall::CpuOn {
                target_mpidr: x[1],
                entry: x[2],
                context_id: x[3],
            },
            PSCI_CPU_ON_32 => PsciCall::CpuOn {
                target_mpidr: w(1),
                entry: w(2),
                context_id: w(3),
            },
            PSCI_AFFINITY_INFO_64 => PsciCall::AffinityInfo {
                target_mpidr: x[1],
                lowest_level: x[2],
            },
            PSCI_AFFINITY_INFO_32 => PsciCall::AffinityInfo {
                target_mpidr: w(1),
                lowest_level: w(2),
            },
            PSCI_SYSTEM_OFF => PsciCall::SystemOff,
            PSCI_SYSTEM_RESET => PsciCall::SystemReset,
            _ => return None,
        })
    }
}

/// Every PSCI function ID the hypervisor implements, both forms.
pub const PSCI_FUNCTION_IDS: [u32; 11] = [
    PSCI_VERSION,
    PSCI_FEATURES,
    PSCI_CPU_SUSPEND_32,
    PSCI_CPU_SUSPEND_64,
    PSCI_CPU_OFF,
    PSCI_CPU_ON_32,
    PSCI_CPU_ON_64,
    PSCI_AFFINITY_INFO_32,
    PSCI_AFFINITY_INFO_64,
    PSCI_SYSTEM_OFF,
    PSCI_SYSTEM_RESET,
];

/// The hypervisor's answer to `PSCI_FEATURES(function_id)`: 0 for every implemented function
/// (for `CPU_SUSPEND` this means: platform-coordinated mode, original power_state format) and
/// for `SMCCC_VERSION`, `NOT_SUPPORTED` for anything else.
///
/// `SMCCC_VERSION` is here because SMCCC (1.1 on, DEN0028 "SMCCC_VERSION") says a caller finds
/// it with `PSCI_FEATURES`, which Linux does before it will call it (`psci_init_smccc`): without
/// it Linux assumes SMCCC 1.0, never asks `SMCCC_ARCH_FEATURES` and logs "SMC Calling
/// Convention v1.0". (Answered `NOT_SUPPORTED` before the hypervisor ran Linux: a spec bug.)
/// Not implemented, so `NOT_SUPPORTED`, among what Linux asks: `SYSTEM_SUSPEND` (no
/// suspend-to-RAM), `SYSTEM_RESET2` (plain reset), `MIGRATE_INFO_TYPE` (optional in PSCI 1.x;
/// Linux logs "psci: MIGRATE_INFO_TYPE not supported." and needs no migration).
pub fn features(function_id: u32) -> i32 {
    if PSCI_FUNCTION_IDS.contains(&function_id) || function_id == crate::standard::SMCCC_VERSION {
        smccc::error::SUCCESS
    } else {
        psci_error::NOT_SUPPORTED
    }
}
