//! Round-robin scheduling of vCPUs on this CPU, and the context switch between them.

use super::{Vm, VmState};
use crate::arch::aarch64::{cpu, stage2, timer};
use crate::percpu::PerCpu;
use alloc::boxed::Box;
use alloc::vec::Vec;
use spin::Mutex;

/// The VMs and which one runs. VMs are boxed so their register blocks never move while
/// PerCpu::regs points at them.
pub struct Scheduler {
    #[allow(
        clippy::vec_box,
        reason = "a VM must not move: PerCpu points at its registers"
    )]
    pub vms: Vec<Box<Vm>>,
    pub current: usize,
}

/// Never held across a guest entry: exit handling takes it and drops it before returning.
pub static SCHED: Mutex<Option<Scheduler>> = Mutex::new(None);

fn this_cpu() -> *mut PerCpu {
    aarch64_cpu::registers::TPIDR_EL2.get() as *mut PerCpu
}

use aarch64_cpu::registers::Readable;

/// Points this CPU at `vm`'s vCPU: its EL1, timer and FP/SIMD state, its stage 2, and the
/// register block vectors.S restores from.
fn load(vm: &mut Vm) {
    cpu::set_hcr(vm.vcpu.hcr);
    vm.vcpu.el1.restore();
    vm.vcpu.fp.restore();
    stage2::load(vm.vttbr());
    // SAFETY: this CPU's PerCpu is only touched by this CPU; the VM is boxed, so the pointer
    // stays valid while the VM is in the scheduler.
    unsafe { (*this_cpu()).regs = &mut vm.vcpu.regs };
}

fn save(vm: &mut Vm) {
    vm.vcpu.el1.save();
    vm.vcpu.fp.save();
}

impl Scheduler {
    /// The next runnable VM after the current one, round-robin (the current one last).
    fn next_runnable(&self) -> Option<usize> {
        let n = self.vms.len();
        (1..=n)
            .map(|i| (self.current + i) % n)
            .find(|&i| self.vms[i].state == VmState::Runnable)
    }

    /// Gives the CPU to the next runnable vCPU; `outgoing_alive` says whether the current
    /// one's state must be kept. Returns false when nothing is left to run.
    pub fn switch(&mut self, outgoing_alive: bool) -> bool {
        let Some(next) = self.next_runnable() else {
            return false;
        };
        timer::arm_slice();
        if next == self.current && outgoing_alive {
            return true;
        }
        if outgoing_alive {
            save(&mut self.vms[self.current]);
        }
        self.current = next;
        load(&mut self.vms[next]);
        true
    }

    /// Prints the summary scripts read.
    pub fn summary(&self) {
        let ok = self
            .vms
            .iter()
            .filter(|vm| vm.state == VmState::Exited(0))
            .count();
        let n = self.vms.len();
        crate::println!("hyp: summary: vms={n} ok={ok} failed={}", n - ok);
    }
}

/// Runs the VMs until all have ended; never returns.
#[allow(
    clippy::vec_box,
    reason = "a VM must not move: PerCpu points at its registers"
)]
pub fn run(vms: Vec<Box<Vm>>) -> ! {
    stage2::init_vtcr();
    let mut guard = SCHED.lock();
    let sched = guard.insert(Scheduler { vms, current: 0 });
    if sched.vms.is_empty() {
        drop(guard);
        crate::power::finish(None);
    }
    load(&mut sched.vms[0]);
    timer::arm_slice();
    drop(guard);
    // SAFETY: this CPU's PerCpu was set up at boot; stack_top is its own EL2 stack.
    let stack_top = unsafe { (*this_cpu()).stack_top };
    cpu::enter_guest_first(stack_top)
}
