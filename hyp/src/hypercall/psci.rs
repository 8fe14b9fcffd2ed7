//! PSCI 1.1 for guests. Each VM has one vCPU for now: CPU_ON of another MPIDR is
//! INVALID_PARAMETERS and of its own ALREADY_ON; CPU_SUSPEND waits for the VM's next event;
//! CPU_OFF of the last vCPU ends the VM.

use super::{Action, GuestVm};
use hypercall_abi::Regs;
use hypercall_abi::psci::{PSCI_VERSION_1_1, PsciCall, features, psci_error};

/// AFFINITY_INFO: the target is on.
const AFFINITY_ON: i32 = 0;

pub fn handle(vm: &mut impl GuestVm, call: PsciCall, regs: &mut Regs) -> Action {
    let own = vm.vcpu_mpidr() & MPIDR_AFFINITY_MASK;
    let (result, action) = match call {
        PsciCall::Version => (PSCI_VERSION_1_1 as i32, Action::Resume),
        PsciCall::Features { function_id } => (features(function_id), Action::Resume),
        // A wait for the VM's next event, unless one is already deliverable.
        PsciCall::CpuSuspend { .. } if vm.events().deliverable() => {
            (psci_error::SUCCESS, Action::Resume)
        }
        PsciCall::CpuSuspend { .. } => (psci_error::SUCCESS, Action::Wait),
        PsciCall::CpuOff => return Action::Exit(0),
        PsciCall::CpuOn { target_mpidr, .. } if target_mpidr & MPIDR_AFFINITY_MASK == own => {
            (psci_error::ALREADY_ON, Action::Resume)
        }
        PsciCall::CpuOn { .. } => (psci_error::INVALID_PARAMETERS, Action::Resume),
        PsciCall::AffinityInfo {
            target_mpidr,
            lowest_level: 0,
        } if target_mpidr & MPIDR_AFFINITY_MASK == own => (AFFINITY_ON, Action::Resume),
        PsciCall::AffinityInfo { .. } => (psci_error::INVALID_PARAMETERS, Action::Resume),
        PsciCall::SystemOff => return Action::Exit(0),
        PsciCall::SystemReset => return Action::Reset,
    };
    regs[0] = result as i64 as u64;
    action
}

/// MPIDR affinity fields Aff3..Aff0 (bits 39:32 and 23:0).
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

#[cfg(test)]
mod tests {
    use super::super::{Action, dispatch, fake::FakeVm};
    use hypercall_abi::Call;
    use hypercall_abi::psci::{PsciCall, psci_error};

    fn psci(call: PsciCall) -> (Action, i64) {
        let mut vm = FakeVm::default();
        let mut regs = Call::Psci(call).to_regs();
        let action = dispatch(&mut vm, &mut regs);
        (action, regs[0] as i64)
    }

    #[test]
    fn version_and_features() {
        assert_eq!(psci(PsciCall::Version), (Action::Resume, 0x1_0001));
        assert_eq!(
            psci(PsciCall::Features {
                function_id: 0x8400_0008
            })
            .1,
            0
        );
        assert_eq!(
            psci(PsciCall::Features {
                function_id: 0x8400_00AA
            })
            .1,
            -1
        );
    }

    #[test]
    fn cpu_on_and_affinity_with_one_vcpu() {
        let own = PsciCall::CpuOn {
            target_mpidr: 0x8000_0000,
            entry: 0x4000_0000,
            context_id: 0,
        };
        assert_eq!(psci(own).1, i64::from(psci_error::ALREADY_ON));
        let other = PsciCall::CpuOn {
            target_mpidr: 1,
            entry: 0x4000_0000,
            context_id: 0,
        };
        assert_eq!(psci(other).1, i64::from(psci_error::INVALID_PARAMETERS));
        assert_eq!(
            psci(PsciCall::AffinityInfo {
                target_mpidr: 0,
                lowest_level: 0
            })
            .1,
            0
        );
        assert_eq!(
            psci(PsciCall::AffinityInfo {
                target_mpidr: 3,
                lowest_level: 0
            })
            .1,
            i64::from(psci_error::INVALID_PARAMETERS)
        );
    }

    #[test]
    fn system_calls_end_or_restart_the_vm() {
        assert_eq!(psci(PsciCall::SystemOff).0, Action::Exit(0));
        assert_eq!(psci(PsciCall::SystemReset).0, Action::Reset);
        assert_eq!(
            psci(PsciCall::CpuSuspend {
                power_state: 0,
                entry: 0,
                context_id: 0
            })
            .0,
            Action::Wait
        );
    }
}
