//! What the hyp does when a guest leaves EL1: hypercalls, traps and faults.

use super::sched::SCHED;
use super::{Vm, VmState};
use crate::arch::aarch64::esr::{Class, Syndrome};
use crate::arch::aarch64::{cpu, stage2};
use crate::hypercall::{self, Action};
use alloc::boxed::Box;
use hypercall_abi::Regs;

/// Why the guest left.
pub enum Exit {
    Sync(Syndrome),
    Irq,
    Unexpected { kind: u64, esr: u64 },
}

/// Handles one exit of the current vCPU and leaves the CPU pointed at the vCPU to run next.
pub fn handle(exit: Exit) {
    let mut guard = SCHED.lock();
    let Some(sched) = guard.as_mut() else { return };
    let vm = &mut sched.vms[sched.current];
    let action = match exit {
        Exit::Sync(s) => handle_sync(vm, &s),
        Exit::Irq => Action::Resume,
        Exit::Unexpected { kind, esr } => Action::Kill(alloc::format!(
            "unexpected exception kind {kind}, ESR {esr:#x}"
        )),
    };
    let alive = match action {
        Action::Resume => return,
        Action::Yield => true,
        Action::Exit(status) => {
            vm.flush_console();
            log::info!("VM {} exited with status {status}", vm.name);
            end(vm, VmState::Exited(status));
            false
        }
        Action::Kill(reason) => {
            vm.flush_console();
            log::error!("VM {} killed: {reason}", vm.name);
            end(vm, VmState::Killed);
            false
        }
        Action::Reset => {
            log::info!("VM {} resets", vm.name);
            reset(&mut sched.vms[sched.current]);
            // The fresh VM has no saved state worth keeping: reload it.
            false
        }
    };
    if !sched.switch(alive) {
        let sched = guard.take().expect("scheduler present");
        drop(guard);
        crate::power::finish(Some(&sched));
    }
}

fn end(vm: &mut Vm, state: VmState) {
    vm.state = state;
    // Forget the VM's translations now; its VMID is never reused.
    stage2::flush_vm(vm.vttbr());
}

fn reset(slot: &mut Box<Vm>) {
    let old = &**slot;
    let (index, vmid, spec, image) = (old.index, old.vmid, old.spec.clone(), old.image);
    let old_vttbr = old.vttbr();
    // Build first, then drop the old VM (its frames return to the pool scrubbed).
    match Vm::build(index, vmid, spec, image) {
        Ok(fresh) => {
            **slot = fresh;
            // The VMID is reused with new tables: drop every stale translation.
            stage2::flush_vm(old_vttbr);
        }
        Err(e) => {
            log::error!("VM {} cannot restart: {e}", slot.name);
            end(slot, VmState::Killed);
        }
    }
}

fn handle_sync(vm: &mut Vm, s: &Syndrome) -> Action {
    match s.class {
        Class::Hvc64 if s.imm16() != 0 => {
            // SMCCC reserves HVC #0 for calls; other immediates are not ours to define.
            vm.vcpu.regs.x[0] = hypercall_abi::Error::NotSupported.code() as u64;
            Action::Resume
        }
        Class::Hvc64 => {
            let mut regs: Regs = [0; 18];
            regs.copy_from_slice(&vm.vcpu.regs.x[..18]);
            let action = hypercall::dispatch(vm, &mut regs);
            vm.vcpu.regs.x[..18].copy_from_slice(&regs);
            action
        }
        Class::Smc64 => {
            // Guests call the hyp with HVC; a trapped SMC is not executed, only refused.
            vm.vcpu.regs.elr += 4;
            vm.vcpu.regs.x[0] = hypercall_abi::Error::NotSupported.code() as u64;
            Action::Resume
        }
        Class::WfiWfe => {
            vm.vcpu.regs.elr += 4;
            Action::Yield
        }
        Class::SysReg | Class::Unknown => {
            cpu::inject_undefined(&mut vm.vcpu.regs);
            Action::Resume
        }
        Class::DataAbortLower | Class::InstructionAbortLower => Action::Kill(alloc::format!(
            "stage-2 fault at IPA {:#x}, PC {:#x}: {s}",
            s.ipa,
            vm.vcpu.regs.elr
        )),
        _ => Action::Kill(alloc::format!("PC {:#x}: {s}", vm.vcpu.regs.elr)),
    }
}
