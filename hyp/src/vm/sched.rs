//! Scheduling: one global run queue (the VMs, under the short `SCHED` lock) shared by every
//! CPU. The unit is a (VM, vCPU) pair: each CPU runs one vCPU at a time (its PerCpu says which)
//! and, when it gives the CPU up, takes the next runnable vCPU round-robin that no other CPU
//! runs (two vCPUs of one VM may run at once on two CPUs); with nothing to run it
//! idles in WFI, its EL2 timer waking it at the next virtual-timer deadline or one slice later,
//! so a VM another CPU made runnable is picked up within a slice. A VM pinned by the manifest
//! (`cpus`) is only picked by the CPUs of its set.

use super::build::RunState;
use super::stats::{Ending, Totals, VmLine};
use super::{Vm, VmState};
use crate::arch::aarch64::{cpu, stage2, timer};
use crate::dev::console;
use crate::percpu;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::{Mutex, MutexGuard};

/// The byte (Ctrl-]) that moves the console focus to the next VM.
pub const FOCUS_ESCAPE: u8 = 0x1d;

/// The VMs. A CPU's PerCpu::regs points into a VM's `vcpus`, a heap buffer that never
/// grows, so the VMs themselves may move.
pub struct Scheduler {
    /// The VM typed input goes to.
    pub focus: usize,
    pub vms: Vec<Vm>,
    /// Every (VM, vCPU) pair in a fixed order (vCPU counts never change).
    units: Vec<(usize, usize)>,
    /// The vCPU picked last (by any CPU), as an index into `units`: the round-robin search
    /// starts after it.
    cursor: usize,
}

/// Never held across a guest entry or an idle wait: exit handling takes it and drops it before
/// returning to the guest.
pub static SCHED: Mutex<Option<Scheduler>> = Mutex::new(None);

/// Set once CPU 0 has built the VMs: the secondaries wait for it.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Points this CPU at vCPU `v` of VM `index`: its EL1, timer and FP/SIMD state, its VM's
/// stage 2, and the register block vectors.S restores from.
fn load(vm: &mut Vm, index: usize, v: usize) {
    let vttbr = vm.vttbr();
    if !vm.has_run && vm.spec.cpus.is_some() {
        vm.has_run = true;
        log::info!("VM {}: first runs on CPU {}", vm.name, percpu::index());
    }
    let vcpu = &mut vm.vcpus[v];
    vcpu.on_cpu = Some(percpu::index());
    cpu::set_hcr(vcpu.hcr);
    vcpu.el1.restore();
    vcpu.fp.restore();
    stage2::load(vttbr);
    percpu::set_current(Some((index, v)), &mut vcpu.regs);
}

/// Takes vCPU `v` off this CPU; `keep` says whether its state is worth saving (not when the VM
/// has ended or was rebuilt, or the vCPU is off).
fn unload(vm: &mut Vm, v: usize, keep: bool) {
    if let Some(vcpu) = vm.vcpus.get_mut(v) {
        if keep {
            vcpu.el1.save();
            vcpu.fp.save();
        }
        vcpu.on_cpu = None;
    }
    // Its timer must not fire while another vCPU (or nobody) is on the CPU; poll_timers
    // watches it from the saved state.
    cpu::set_cntv_ctl(0);
    percpu::set_current(None, core::ptr::null_mut());
}

/// What a CPU does after a scheduling decision.
enum Next {
    /// A vCPU is loaded: enter it.
    Run,
    /// Nothing to run now: wait until this deadline (a physical count) at most, then look again.
    Idle(Option<u64>),
    /// Every VM has ended.
    Done,
}

impl Scheduler {
    /// Whether vCPU `v` of VM `i` may be picked by a CPU: its VM alive, it runnable.
    fn runnable(&self, (i, v): (usize, usize)) -> bool {
        let vm = &self.vms[i];
        vm.is_alive() && vm.vcpus[v].run == RunState::Runnable
    }

    /// The next runnable vCPU after the cursor that no CPU runs, round-robin, `not` excluded;
    /// with its flat index.
    fn next_runnable(&self, not: Option<(usize, usize)>) -> Option<(usize, (usize, usize))> {
        // Round-robin: the first after the cursor (a plain loop: this runs on every switch).
        let n = self.units.len();
        let me = percpu::index();
        let mut flat = self.cursor;
        for _ in 0..n {
            flat += 1;
            if flat >= n {
                flat = 0;
            }
            let p = self.units[flat];
            if Some(p) != not
                && self.runnable(p)
                && self.vms[p.0].vcpus[p.1].on_cpu.is_none()
                // A pinned VM (manifest `cpus`) runs only on the CPUs of its set.
                && self.vms[p.0].spec.cpus.is_none_or(|set| set.contains(me))
            {
                return Some((flat, p));
            }
        }
        None
    }

    /// A directed yield: whether `unit` (VM, vCPU) is the vCPU this CPU would take next
    /// (runnable, on no CPU, this CPU in its VM's pin, first in the round robin), so that the
    /// caller gives the CPU up to it now. Never out of turn: two VMs notifying each other must
    /// not starve a third on their CPU.
    pub fn hand_over(&self, unit: (usize, usize)) -> bool {
        self.next_runnable(percpu::current_vm())
            .is_some_and(|(_, next)| next == unit)
    }

    /// Decides what this CPU runs next; `outgoing_alive` says whether the state of the vCPU on
    /// it now (if any) must be kept. The current vCPU goes on if nothing else waits for a CPU.
    fn switch(&mut self, outgoing_alive: bool) -> Next {
        if let Some(current) = percpu::current_vm() {
            let (vm, v) = current;
            let runnable = self.runnable(current);
            if outgoing_alive && runnable && self.next_runnable(Some(current)).is_none() {
                // Another CPU may have raised one of its events meanwhile.
                cpu::set_hcr(self.vms[vm].vcpus[v].hcr);
                timer::arm_slice();
                return Next::Run;
            }
            let keep = outgoing_alive && self.vms[vm].is_alive();
            unload(&mut self.vms[vm], v, keep);
            self.poll_timers();
            self.poll_console();
            // Others first: the outgoing vCPU runs again only if nobody else can.
            if let Some(next) = self
                .next_runnable(Some(current))
                .or_else(|| self.next_runnable(None))
            {
                return self.start(next);
            }
        } else {
            self.poll_timers();
            self.poll_console();
            if let Some(next) = self.next_runnable(None) {
                return self.start(next);
            }
        }
        if !self.vms.iter().any(|vm| vm.is_alive()) {
            // The end drops the VMs (`finish`): not while another CPU still runs a vCPU of one
            // that ended (its next exit, a slice at most, unloads it and that CPU ends the run).
            let mut vcpus = self.vms.iter().flat_map(|vm| vm.vcpus.iter());
            if vcpus.all(|v| v.on_cpu.is_none()) {
                return Next::Done;
            }
            return Next::Idle(None);
        }
        Next::Idle(self.next_deadline())
    }

    fn start(&mut self, (flat, (vm, v)): (usize, (usize, usize))) -> Next {
        self.cursor = flat;
        load(&mut self.vms[vm], vm, v);
        timer::arm_slice();
        Next::Run
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
            vm.raise_event(super::event::CONSOLE_EVENT);
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

    /// Raises the timer event of every vCPU off the CPUs whose virtual timer has expired (on
    /// that vCPU), and masks that timer until the guest acknowledges the event.
    fn poll_timers(&mut self) {
        let now = timer::counter();
        for vm in self.vms.iter_mut().filter(|vm| vm.is_alive()) {
            for v in 0..vm.vcpus.len() {
                let vcpu = &mut vm.vcpus[v];
                let el1 = &mut vcpu.el1;
                if vcpu.on_cpu.is_none()
                    && vcpu.run != RunState::Off
                    && timer::is_armed(el1.cntv_ctl)
                    && el1.cntv_cval <= now.wrapping_sub(el1.cntvoff)
                {
                    el1.cntv_ctl |= super::build::CNTV_CTL_IMASK;
                    vm.raise_event_on(super::event::TIMER_EVENT, v);
                }
            }
        }
    }

    /// The earliest virtual-timer deadline of a waiting vCPU, as a physical count.
    fn next_deadline(&self) -> Option<u64> {
        self.vms
            .iter()
            .filter(|vm| vm.is_alive())
            .flat_map(|vm| vm.vcpus.iter())
            .filter(|v| v.run == RunState::Waiting && timer::is_armed(v.el1.cntv_ctl))
            .map(|v| v.el1.cntv_cval.wrapping_add(v.el1.cntvoff))
            .min()
    }

    /// Ends the run's VMs for the summary: counts them, then drops them and the channels
    /// between them, so that every frame and heap byte they held goes back (the summary
    /// reports what does not). Every VM has ended: no CPU runs or will run a vCPU.
    pub fn finish(self) -> Tally {
        use crate::arch::{Cpu, Machine};
        use crate::mm::owner::Owner;
        let ok = self
            .vms
            .iter()
            .filter(|vm| vm.state == VmState::Exited(0))
            .count();
        let mut totals = Totals::default();
        for vm in &self.vms {
            totals.add(&vm.stats);
            crate::println!("{}", vm_line(vm));
        }
        percpu::each(|cpu, stats, _| {
            crate::println!(
                "hyp: cpustats: cpu={cpu} exits={} idle_ticks={}",
                stats.exits,
                stats.idle_ticks
            );
        });
        if crate::trace::enabled() {
            dump_traces(|line| crate::println!("{line}"));
        }
        let tally = Tally {
            vms: self.vms.len(),
            ok,
            totals,
        };
        // A channel's frames are listed by both its ends: take them from the first end.
        let channels: Vec<(u16, Vec<u64>)> = self
            .vms
            .iter()
            .flat_map(|vm| vm.channels.iter())
            .filter(|end| end.sends_on_first)
            .map(|end| (end.channel, end.frames.clone()))
            .collect();
        // No VM maps the channels' frames once the VMs are gone.
        drop(self);
        for (channel, frames) in channels {
            for pa in frames {
                Cpu::free_frame(Owner::Shared(channel), pa);
            }
        }
        tally
    }
}

/// The summary's count of VMs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// VMs that were built.
    pub vms: usize,
    /// Of those, the ones that exited with status 0.
    pub ok: usize,
    /// Their exits, hypercalls and faults.
    pub totals: Totals,
}

/// A VM's `hyp: vmstats:` line.
fn vm_line(vm: &Vm) -> VmLine<'_> {
    let pages = vm.memory.pages_used();
    VmLine {
        name: &vm.name,
        ending: match vm.state {
            VmState::Alive => Ending::Alive,
            VmState::Exited(status) => Ending::Exited(status),
            VmState::Killed => Ending::Killed,
        },
        vcpus: vm.vcpus.len(),
        restarts: vm.restarts,
        stats: &vm.stats,
        mapped_pages: pages,
        quota_pages: pages + vm.memory.quota_left_bytes() / crate::mm::PAGE_SIZE,
    }
}

/// Writes every CPU's trace ring through `out` (the console, or its emergency path), oldest
/// record first, CPU by CPU. Takes no lock.
pub fn dump_traces(mut out: impl FnMut(core::fmt::Arguments)) {
    percpu::each(|cpu, _, ring| crate::trace::dump(cpu, ring, &mut out));
}

/// Gives this CPU its next vCPU and returns when one is loaded (the caller enters it). Idles,
/// with the lock released, while there is nothing to run. When every VM has ended, the CPU that
/// sees it first prints the summary and powers off; the others stop.
pub fn reschedule(mut guard: MutexGuard<'_, Option<Scheduler>>, outgoing_alive: bool) {
    let mut alive = outgoing_alive;
    loop {
        let Some(sched) = guard.as_mut() else {
            // Another CPU has ended the run.
            drop(guard);
            cpu::wait_forever();
        };
        match sched.switch(alive) {
            Next::Run => return,
            Next::Done => {
                let sched = guard.take();
                drop(guard);
                crate::bench::at_end();
                crate::power::finish(sched);
            }
            Next::Idle(deadline) => {
                drop(guard);
                // Idle until the lock is back: waiting for it here is not this CPU's work.
                let idle_from = timer::counter();
                guard = crate::bench::idle(|| {
                    timer::wait_until(deadline);
                    super::exit::take_interrupts(None);
                    SCHED.lock()
                });
                percpu::add_idle(timer::counter().wrapping_sub(idle_from));
                alive = false;
            }
        }
    }
}

/// Runs the VMs on the boot CPU (the secondaries join in `run_secondary`); never returns.
pub fn run(vms: Vec<Vm>) -> ! {
    let mut guard = SCHED.lock();
    let units = vms
        .iter()
        .enumerate()
        .flat_map(|(i, vm)| (0..vm.vcpus.len()).map(move |v| (i, v)))
        .collect();
    let sched = guard.insert(Scheduler {
        vms,
        units,
        cursor: 0,
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
    // VM 0 first, on CPU 0.
    sched.cursor = sched.units.len() - 1;
    crate::bench::at_first_guest_entry(&sched.vms);
    STARTED.store(true, Ordering::Release);
    aarch64_cpu::asm::sev();
    reschedule(guard, false);
    cpu::enter_guest_first(percpu::stack_top())
}

/// A secondary CPU, set up, waits for the VMs and then runs them with the others.
pub fn run_secondary() -> ! {
    while !STARTED.load(Ordering::Acquire) {
        aarch64_cpu::asm::wfe();
    }
    reschedule(SCHED.lock(), false);
    cpu::enter_guest_first(percpu::stack_top())
}
