//! Round-robin scheduling of vCPUs on this CPU, and the context switch between them.

use super::{Vm, VmState};
use crate::arch::aarch64::{cpu, stage2, timer};
use crate::dev::console;
use crate::percpu::PerCpu;
use alloc::boxed::Box;
use alloc::vec::Vec;
use spin::Mutex;

/// The byte (Ctrl-]) that moves the console focus to the next VM.
pub const FOCUS_ESCAPE: u8 = 0x1d;

/// The VMs and which one runs. VMs are boxed so their register blocks never move while
/// PerCpu::regs points at them.
pub struct Scheduler {
    /// The VM typed input goes to.
    pub focus: usize,
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
    vm.on_cpu = true;
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
    // Its timer must not fire while another vCPU (or nobody) is on the CPU; poll_timers
    // watches it from the saved state.
    cpu::set_cntv_ctl(0);
    vm.on_cpu = false;
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
    /// one's state must be kept. With nothing runnable but vCPUs waiting for events, the CPU
    /// idles until an event arrives. Returns false when no VM is left.
    pub fn switch(&mut self, outgoing_alive: bool) -> bool {
        let current_runnable = self.vms[self.current].state == VmState::Runnable;
        if outgoing_alive && current_runnable && self.next_runnable() == Some(self.current) {
            timer::arm_slice();
            return true;
        }
        if outgoing_alive && self.vms[self.current].on_cpu {
            save(&mut self.vms[self.current]);
        }
        loop {
            self.poll_timers();
            self.poll_console();
            if let Some(next) = self.next_runnable() {
                self.current = next;
                load(&mut self.vms[next]);
                timer::arm_slice();
                return true;
            }
            if !self.vms.iter().any(|vm| vm.state == VmState::Waiting) {
                return false;
            }
            self.idle();
        }
    }

    /// Hands typed bytes to the focused VM (raising its console event); the escape byte moves
    /// the focus to the next VM still running.
    fn poll_console(&mut self) {
        let mut typed = [0u8; 64];
        let mut n = 0;
        while let Some(byte) = console::read_byte() {
            if byte == FOCUS_ESCAPE {
                self.deliver_input(&typed[..n]);
                n = 0;
                self.next_focus();
            } else if n < typed.len() {
                typed[n] = byte;
                n += 1;
            }
        }
        self.deliver_input(&typed[..n]);
    }

    fn deliver_input(&mut self, bytes: &[u8]) {
        let Some(vm) = self.vms.get_mut(self.focus).filter(|vm| vm.is_alive()) else {
            return;
        };
        if vm.console_io.push_input(bytes) {
            vm.raise_event(super::events::CONSOLE_EVENT);
        }
    }

    /// Moves the console focus to the next live VM and says so.
    pub fn next_focus(&mut self) {
        let n = self.vms.len();
        if let Some(next) = (1..=n)
            .map(|i| (self.focus + i) % n)
            .find(|&i| self.vms[i].is_alive())
        {
            self.focus = next;
            crate::println!(
                "hyp: console focus: {} (Ctrl-] moves it)",
                self.vms[next].name
            );
        }
    }

    /// Raises the timer event of every vCPU off the CPU whose virtual timer has expired, and
    /// masks that timer until the guest acknowledges the event.
    fn poll_timers(&mut self) {
        let now = timer::counter();
        for vm in self.vms.iter_mut().filter(|vm| !vm.on_cpu && vm.is_alive()) {
            let el1 = &mut vm.vcpu.el1;
            if timer::is_armed(el1.cntv_ctl) && el1.cntv_cval <= now.wrapping_sub(el1.cntvoff) {
                el1.cntv_ctl |= super::build::CNTV_CTL_IMASK;
                vm.raise_event(super::events::TIMER_EVENT);
            }
        }
    }

    /// Waits (WFI at EL2) until the earliest waiting virtual timer, or a slice at most, then
    /// serves the interrupts that woke the CPU.
    fn idle(&mut self) {
        let deadline = self
            .vms
            .iter()
            .filter(|vm| vm.state == VmState::Waiting && timer::is_armed(vm.vcpu.el1.cntv_ctl))
            .map(|vm| vm.vcpu.el1.cntv_cval.wrapping_add(vm.vcpu.el1.cntvoff))
            .min();
        timer::wait_until(deadline);
        super::exit::take_interrupts(None);
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
    let sched = guard.insert(Scheduler {
        vms,
        current: 0,
        focus: 0,
    });
    if sched.vms.is_empty() {
        drop(guard);
        crate::power::finish(None);
    }
    log::info!(
        "console input goes to {} (Ctrl-] moves it)",
        sched.vms[0].name
    );
    load(&mut sched.vms[0]);
    timer::arm_slice();
    crate::bench::at_first_guest_entry(&sched.vms);
    drop(guard);
    // SAFETY: this CPU's PerCpu was set up at boot; stack_top is its own EL2 stack.
    let stack_top = unsafe { (*this_cpu()).stack_top };
    cpu::enter_guest_first(stack_top)
}
