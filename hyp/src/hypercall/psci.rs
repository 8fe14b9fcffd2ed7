//! PSCI 1.1 for guests. A VM has the manifest's vCPUs, MPIDR = (1 << 31) | index: CPU_ON starts
//! an Off one at an entry in the VM's executable memory (INVALID_ADDRESS otherwise),
//! AFFINITY_INFO reports each, CPU_OFF stops the caller (the VM ends, status 0, when the last one
//! is off); CPU_SUSPEND waits for the caller's next event; SYSTEM_RESET rebuilds the VM and
//! SYSTEM_OFF ends it, whatever its other vCPUs do (neither returns: the hyp stops the VM on
//! every CPU first, `vm::sched`).

use super::{Action, GuestVm, Power};
use hypercall_abi::MemPerms;
use hypercall_abi::psci::{PSCI_VERSION_1_1, PsciCall, features, psci_error};

/// AFFINITY_INFO: the target is on.
const AFFINITY_ON: i32 = 0;
/// AFFINITY_INFO: the target is off.
const AFFINITY_OFF: i32 = 1;

/// The vCPU an MPIDR names: Aff0 = the index, the other affinity fields 0.
fn target(vm: &impl GuestVm, mpidr: u64) -> Option<usize> {
    let affinity = mpidr & MPIDR_AFFINITY_MASK;
    (affinity < vm.vcpu_count() as u64).then_some(affinity as usize)
}

pub fn handle(vm: &mut impl GuestVm, call: PsciCall) -> Action {
    let own = vm.vcpu_index() as u8;
    let (result, action) = match call {
        PsciCall::Version => (PSCI_VERSION_1_1 as i32, Action::Resume),
        PsciCall::Features { function_id } => (features(function_id), Action::Resume),
        // A wait for the caller's next event, unless one is already deliverable.
        PsciCall::CpuSuspend { .. } if vm.events().deliverable_to(own) => {
            (psci_error::SUCCESS, Action::Resume)
        }
        PsciCall::CpuSuspend { .. } => (psci_error::SUCCESS, Action::Wait),
        PsciCall::CpuOff => return Action::CpuOff,
        PsciCall::CpuOn {
            target_mpidr,
            entry,
            context_id,
        } => (cpu_on(vm, target_mpidr, entry, context_id), Action::Resume),
        PsciCall::AffinityInfo {
            target_mpidr,
            lowest_level: 0,
        } => match target(vm, target_mpidr).and_then(|t| vm.vcpu_power(t)) {
            Some(Power::On) => (AFFINITY_ON, Action::Resume),
            Some(Power::Off) => (AFFINITY_OFF, Action::Resume),
            None => (psci_error::INVALID_PARAMETERS, Action::Resume),
        },
        PsciCall::AffinityInfo { .. } => (psci_error::INVALID_PARAMETERS, Action::Resume),
        PsciCall::SystemOff => return Action::Exit(0),
        PsciCall::SystemReset => return Action::Reset,
    };
    vm.regs()[0] = result as i64 as u64;
    action
}

fn cpu_on(vm: &mut impl GuestVm, mpidr: u64, entry: u64, context: u64) -> i32 {
    let Some(t) = target(vm, mpidr) else {
        return psci_error::INVALID_PARAMETERS;
    };
    if vm.vcpu_power(t) != Some(Power::Off) {
        return psci_error::ALREADY_ON;
    }
    // The entry must be an executable, mapped, 4-byte aligned address of the VM's (its MMU is
    // off there: the IPA is the address).
    let executable = entry.is_multiple_of(4)
        && vm
            .memory()
            .query(entry)
            .is_ok_and(|perms| perms.contains(MemPerms::EXEC));
    if !executable {
        return psci_error::INVALID_ADDRESS;
    }
    vm.vcpu_start(t, entry, context);
    psci_error::SUCCESS
}

/// MPIDR affinity fields Aff3..Aff0 (bits 39:32 and 23:0).
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

#[cfg(test)]
mod tests {
    use super::super::Action;
    use super::super::fake::{FakeVm, dispatch};
    use hypercall_abi::Call;
    use hypercall_abi::psci::{PsciCall, psci_error};

    fn psci(call: PsciCall) -> (Action, i64) {
        let mut vm = FakeVm::default();
        psci_on(&mut vm, call)
    }

    fn psci_on(vm: &mut FakeVm, call: PsciCall) -> (Action, i64) {
        let mut regs = Call::Psci(call).to_regs();
        let action = dispatch(vm, &mut regs);
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

    /// What Linux's `psci_probe` and `psci_init_smccc` ask, in order, and need to see to log
    /// "psci: PSCIv1.1 detected in firmware." and "psci: SMC Calling Convention v1.2".
    #[test]
    fn linux_finds_psci_1_1_and_smccc_1_2() {
        use hypercall_abi::standard::SMCCC_VERSION;
        let mut vm = FakeVm::default();
        assert_eq!(psci_on(&mut vm, PsciCall::Version).1, 0x1_0001);
        let smccc_discoverable = psci_on(
            &mut vm,
            PsciCall::Features {
                function_id: SMCCC_VERSION,
            },
        )
        .1;
        assert_eq!(smccc_discoverable, 0, "else Linux assumes SMCCC 1.0");
        let mut regs = Call::SmcccVersion.to_regs();
        dispatch(&mut vm, &mut regs);
        assert_eq!(regs[0], 0x1_0002);
        // psci_init_cpu_suspend asks about the native (SMC64) CPU_SUSPEND: 0 is the original
        // power_state format, platform-coordinated.
        let suspend = PsciCall::Features {
            function_id: 0xC400_0001,
        };
        assert_eq!(psci_on(&mut vm, suspend).1, 0);
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

    fn on(target_mpidr: u64, entry: u64) -> PsciCall {
        PsciCall::CpuOn {
            target_mpidr,
            entry,
            context_id: 0x1234,
        }
    }

    fn affinity(target_mpidr: u64) -> PsciCall {
        PsciCall::AffinityInfo {
            target_mpidr,
            lowest_level: 0,
        }
    }

    #[test]
    fn cpu_on_starts_an_off_vcpu_and_refuses_bad_targets_and_entries() {
        use super::super::Power;
        use hypercall_abi::MemPerms;
        const CODE: u64 = 0x8000;
        let mut vm = FakeVm::default();
        vm.vcpus.resize(4, (Power::Off, 0, 0));
        vm.memory.map(CODE, 1, MemPerms::RX).unwrap();
        assert_eq!(psci_on(&mut vm, affinity(0x8000_0002)).1, 1, "off at first");
        assert_eq!(
            psci_on(&mut vm, on(0x8000_0002, CODE + 0x40)),
            (Action::Resume, 0)
        );
        assert_eq!(vm.vcpus[2], (Power::On, CODE + 0x40, 0x1234));
        assert_eq!(psci_on(&mut vm, affinity(2)).1, 0);
        let already = i64::from(psci_error::ALREADY_ON);
        assert_eq!(psci_on(&mut vm, on(2, CODE)).1, already);
        assert_eq!(psci_on(&mut vm, on(0x8000_0000, CODE)).1, already, "itself");
        let invalid = i64::from(psci_error::INVALID_PARAMETERS);
        for mpidr in [4, 0x100, 1 << 32, u64::MAX] {
            assert_eq!(psci_on(&mut vm, on(mpidr, CODE)).1, invalid, "{mpidr:#x}");
            assert_eq!(psci_on(&mut vm, affinity(mpidr)).1, invalid, "{mpidr:#x}");
        }
        let bad_address = i64::from(psci_error::INVALID_ADDRESS);
        for entry in [
            0,
            CODE + 2,
            0x1000, /* RW, not executable */
            0x10_0000,
            u64::MAX,
        ] {
            assert_eq!(psci_on(&mut vm, on(3, entry)).1, bad_address, "{entry:#x}");
        }
        assert_eq!(vm.vcpus[3].0, Power::Off);
        assert_eq!(
            psci_on(&mut vm, PsciCall::SystemReset).0,
            Action::Reset,
            "with vCPU 2 still on: Linux resets with its secondaries parked, not off"
        );
        assert_eq!(psci_on(&mut vm, PsciCall::SystemOff).0, Action::Exit(0));
        assert_eq!(psci_on(&mut vm, PsciCall::CpuOff).0, Action::CpuOff);
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
