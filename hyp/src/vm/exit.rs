//! What the hyp does when a guest leaves EL1: hypercalls, traps and faults.

use super::build::{Caller, RunState};
use super::idregs;
use super::ids::{VcpuIndex, VmIndex};
use super::sched::{self, GiveUp, Then};
use super::stats::ExitKind;
use super::{Vm, VmState};
use crate::arch::aarch64::esr::{self, Class, Syndrome, SysRegAccess};
pub use crate::arch::aarch64::exception::Exit;
use crate::arch::aarch64::{cpu, stage2, timer};
use crate::dev::gic;
use crate::hypercall::{self, Action, KillReason};
use crate::vdev::pl011::{PL011_IPA, PL011_SIZE};
use crate::vdev::vgic::{MmioAccess, VcpuMask};
use core::sync::atomic::{AtomicU32, Ordering};
use manifest::FaultPolicy;

/// What a VM reads from the ID registers, by its kind.
fn id_registers(vm: &Vm) -> &'static idregs::Policy {
    if vm.is_linux() {
        &idregs::LINUX_GUEST
    } else {
        &idregs::PV_GUEST
    }
}

/// The INTID of the hyp's scheduling timer (0: none, guests are not preempted).
static SCHEDULER_IRQ: AtomicU32 = AtomicU32::new(0);
/// The INTID of the guests' virtual timer.
static VTIMER_IRQ: AtomicU32 = AtomicU32::new(0);

/// Records which interrupts end a guest's slice and signal its virtual timer.
pub fn set_timer_irqs(scheduler: u32, vtimer: u32) {
    SCHEDULER_IRQ.store(scheduler, Ordering::Relaxed);
    VTIMER_IRQ.store(vtimer, Ordering::Relaxed);
}

/// The INTIDs `set_timer_irqs` stored (each CPU enables them in its own banked registers);
/// `None` before, or without a GIC.
pub fn timer_irqs() -> Option<(u32, u32)> {
    let scheduler = SCHEDULER_IRQ.load(Ordering::Relaxed);
    (scheduler != 0).then(|| (scheduler, VTIMER_IRQ.load(Ordering::Relaxed)))
}

/// Serves the physical interrupts pending now. The end of a slice yields; the running guest's
/// virtual timer becomes its timer event (`vm`: the guest and vCPU on the CPU, if any), its
/// interrupt masked until the guest acknowledges the event, or for a Linux vCPU its vGIC's
/// hardware-mapped timer interrupt, left active for the guest to deactivate; the maintenance
/// interrupt syncs the Linux vCPU's list registers (which deasserts it); a kick
/// has done its work by making the CPU leave the guest or its idle wait (the caller looks at
/// the requests).
pub fn take_interrupts(mut vm: Option<(&mut Vm, usize)>) -> Action {
    let mut action = Action::Resume;
    while let Some(acked) = gic::acknowledge() {
        let intid = acked.intid;
        if intid == SCHEDULER_IRQ.load(Ordering::Relaxed) {
            timer::disarm();
            action = Action::Yield;
        } else if intid == VTIMER_IRQ.load(Ordering::Relaxed)
            && let Some((vm, v)) = vm.as_mut().filter(|(vm, _)| vm.is_linux())
        {
            vm.vtimer_fired(*v);
            gic::end_forwarded(acked);
            continue;
        } else if intid == VTIMER_IRQ.load(Ordering::Relaxed) {
            let ctl = cpu::cntv_ctl();
            cpu::set_cntv_ctl(ctl | super::build::CNTV_CTL_IMASK);
            if let Some((vm, v)) = vm.as_mut() {
                vm.raise_event_on(super::event::TIMER_EVENT, *v);
            }
        } else if crate::vdev::vgic::hw::is_maintenance(intid) {
            // Level: asserted until the list registers change, so they are synced before it is
            // ended (only a Linux vCPU's interface is ever on).
            if let Some((vm, v)) = vm.as_mut() {
                vm.sync_vgic(*v);
            }
        } else if intid != gic::KICK_SGI
            && !crate::disk::on_interrupt(intid)
            && !crate::vm::device::irq::on_interrupt(intid)
        {
            warn!("unexpected interrupt {intid}");
        }
        gic::end(acked);
    }
    action
}

/// Handles one exit of this CPU's vCPU, decoded with its register block complete, and leaves
/// the CPU pointed at the vCPU to run next: true when that is the same vCPU, resumed as it
/// left but for x0..x17 (a PV vCPU's call answered in place: the run loop enters it again
/// with x20..x28, ELR_EL2 and SPSR_EL2 as the exit left them, `exception::RawExit::resume`).
pub fn handle(exit: Exit) -> bool {
    if let Exit::Call(x0) = exit {
        return handle_call(x0);
    }
    handle_exit::<false>(exit)
}

/// [`handle`] for a call (`HVC #0`, `x0`: the guest's x0 at the exit).
pub fn handle_call(x0: u64) -> bool {
    crate::percpu::note_call(x0);
    handle_exit::<true>(Exit::Call(x0))
}

/// Takes only the lock of the vCPU's VM (and, to change the run queue, the queue's). `CALL`:
/// whether `exit` may be a call, so that the calls' dispatch is inlined at its one site,
/// [`handle_call`]'s.
#[inline(always)]
fn handle_exit<const CALL: bool>(exit: Exit) -> bool {
    if let Exit::Irq = exit {
        // Off every caller's path: a bounded part of the queued console lines.
        crate::dev::console::drain(crate::dev::console::EXIT_DRAIN);
    }
    let Some((slot, _, vcpu)) = crate::percpu::current_vm() else {
        return false;
    };
    let mut guard = slot.lock();
    let Some(vm) = guard.as_mut() else {
        return false;
    };
    // A VM that owns no device has no SMMU events to hear: one branch, no call.
    if !vm.spec.devices.is_empty() {
        crate::vm::device::poll_events(vm);
    }
    let v = vcpu.get();
    let requests = slot.vcpu(vcpu).take_requests();
    // What vm::run answered without the lock since this vCPU's last exit here: one branch
    // when it answered nothing (a stated version comes only with a call counted, and
    // `fold_unlocked` takes both).
    let regs = &vm.vcpu(v).regs;
    if regs.unlocked_calls | regs.unlocked_loads != 0 {
        fold_unlocked(vm, v);
    }
    if !vm.is_alive() {
        // Its VM stops (or has ended) while this vCPU ran: leave it, which acknowledges.
        let _ = take_interrupts(None);
        sched::give_up(guard, slot, vcpu, GiveUp::Stop);
        return false;
    }
    if requests & sched::REQ_VIRQ != 0 {
        // Another CPU raised or dropped its virtual IRQ and kicked this one.
        cpu::set_hcr(vm.vcpu(v).hcr);
    }
    if let Exit::Sync(s, _) = &exit
        && s.class == Class::DataAbortLower
        && vm.is_linux()
        && requests & sched::REQ_VGIC == 0
        && answer_gic_read(vm, v, s)
    {
        // Traced as decoded (vm::run).
        return false;
    }
    // Each kind is traced where its fields are at hand: no choice among the kinds at one site
    // (7 instructions more a record), and with tracing off only the flag's test (a match on
    // the exit after the vGIC sync cost 7 more on a stage-2 fault). A call or an interrupt in
    // its arm, after its handling (the vGIC sync below leaves x0, the record's result, as it
    // is); a call answered in place and every other synchronous exit by the run loop (vm::run),
    // whose registers hold their fields.
    let action = match &exit {
        Exit::Call(_) if !CALL => return false,
        Exit::Call(_) => match call(vm, v) {
            // The hot way out of a PV vCPU's call, as the general one below takes it:
            // nothing to sync, the vCPU resumed in place (a separate return, so that a call
            // answered in place branches straight here).
            Action::Resume if !vm.is_linux() => return true,
            // A PV vCPU's yield, as the general way below takes it (a PV VM has no vGIC to
            // sync): no `Action` kept across the trace's test and matched again.
            Action::Yield if !vm.is_linux() => {
                if crate::trace::enabled() {
                    crate::percpu::trace_noted_call(crate::arch::aarch64::exception::ESR_HVC0);
                }
                sched::give_up(guard, slot, vcpu, GiveUp::Yield);
                return false;
            }
            action => {
                // Its x0 as vm::run noted it (`percpu::note_call`): not kept live through `call`.
                if crate::trace::enabled() {
                    crate::percpu::trace_noted_call(crate::arch::aarch64::exception::ESR_HVC0);
                }
                action
            }
        },
        // Traced as decoded (vm::run).
        Exit::Sync(s, _) => handle_sync(vm, v, s),
        Exit::Irq => {
            vm.stats.count(ExitKind::Irq);
            let action = take_interrupts(Some((&mut *vm, v)));
            trace(crate::trace::ESR_IRQ, 0, 0);
            action
        }
        &Exit::Unexpected { kind, esr } => {
            vm.stats.count(ExitKind::Other);
            trace(crate::trace::ESR_OTHER_ASYNC, 0, 0);
            Action::Kill(KillReason::Unexpected { kind, esr })
        }
    };
    // A Linux vCPU's list registers: what the guest did with them back into its vGIC, and
    // what this exit (or another CPU: REQ_VGIC, or a maintenance interrupt) changed into them.
    if vm.is_linux() {
        vm.sync_vgic(v);
    }
    let how = match action {
        Action::Resume => {
            if matches!(exit, Exit::Irq) {
                // What the disk's interrupt completed, for whichever VMs it was, and the writers a
                // drain made room for.
                drop(guard);
                super::block::deliver();
                super::device::irq::deliver();
                sched::wake_console_writers();
            }
            return false;
        }
        Action::Notify { vm: peer, event } => {
            // The raise, and the directed yield to the peer when it is next here.
            sched::notify_from(guard, slot, vcpu, VmIndex::new(peer), event);
            return false;
        }
        // Only the slice's end makes an interrupt exit yield (`take_interrupts`).
        Action::Yield if matches!(exit, Exit::Irq) => GiveUp::SliceEnd,
        Action::Yield => GiveUp::Yield,
        Action::Continue => {
            vm.vcpu_mut(v).regs.repeat_instruction();
            return false;
        }
        Action::Retry => {
            vm.vcpu_mut(v).regs.repeat_instruction();
            GiveUp::Yield
        }
        Action::Wait => {
            vm.vcpu_mut(v).run = RunState::Waiting;
            GiveUp::Leave
        }
        Action::WaitConsoleRoom => {
            super::console::block_writer(vm, v);
            GiveUp::Leave
        }
        Action::CpuOff => {
            vm.vcpu_mut(v).run = RunState::Off;
            if vm.vcpus.iter().all(|c| c.run == RunState::Off) {
                vm.flush_console();
                info!("VM {} exited with status 0 (its last vCPU is off)", vm.name);
                sched::begin_stop(vm, Then::Exit(0));
                GiveUp::Stop
            } else {
                GiveUp::Leave
            }
        }
        Action::Exit(status) => {
            vm.flush_console();
            info!("VM {} exited with status {status}", vm.name);
            sched::begin_stop(vm, Then::Exit(status));
            GiveUp::Stop
        }
        Action::Kill(reason) => {
            vm.flush_console();
            super::crash::report_guest(vm, v, &reason);
            error!("VM {} killed: {reason}", vm.name);
            sched::begin_stop(vm, Then::Kill);
            GiveUp::Stop
        }
        Action::Reset => {
            info!("VM {} resets", vm.name);
            sched::begin_stop(vm, Then::Restart);
            GiveUp::Stop
        }
    };
    sched::give_up(guard, slot, vcpu, how);
    false
}

/// Folds what vm::run answered for vCPU `v` without the lock into the VM: its calls and (a
/// Linux vCPU's only) loads into the stats, the version an `ABI_VERSION` stated.
fn fold_unlocked(vm: &mut Vm, v: usize) {
    let regs = &mut vm.vcpu_mut(v).regs;
    let calls = regs.take_unlocked_calls();
    let loads = core::mem::take(&mut regs.unlocked_loads);
    let stated = regs.take_stated_version();
    vm.stats.count_n(ExitKind::Hypercall, calls);
    vm.stats.count_n(ExitKind::Stage2, loads);
    if let Some(stated) = stated {
        vm.stated_version = vm
            .stated_version
            .or(hypercall_abi::Version::from_u64(stated));
    }
}

/// Records the exit of the vCPU loaded here just handled in this CPU's trace, if tracing is on
/// (`percpu::trace_exit`'s fields).
#[inline(always)]
fn trace(esr: u32, function: u64, ipa: u64) {
    if crate::trace::enabled() {
        crate::percpu::trace_exit(esr, function, ipa);
    }
}

/// A Linux vCPU's load from its vGIC's registers (`s`: its exit; no other CPU asked it to
/// reload its list registers), answered with only what a read needs: a read changes no
/// interrupt state, so its list registers stay as the guest has them, folded back first only
/// when the register shows state they own (`VGic::read_sees_list_registers`). False, nothing
/// done, for every other exit.
fn answer_gic_read(vm: &mut Vm, v: usize, s: &Syndrome) -> bool {
    if s.class != Class::DataAbortLower
        || esr::DataAccess::decode(s).is_none_or(|access| access.is_write)
    {
        return false;
    }
    let Some(linux) = vm.linux.as_ref() else {
        return false;
    };
    if linux.vgic.read_sees_list_registers(s.ipa) {
        vm.sync_vgic(v);
    }
    let Some(kick) = emulate_gic(vm, v, s) else {
        return false;
    };
    vm.stats.count(ExitKind::Stage2);
    vm.vcpu_mut(v).regs.skip_instruction();
    if kick.contains(v) {
        vm.sync_vgic(v);
    }
    true
}

/// Ends or restarts `vm` (locked), stopping: no CPU runs one of its vCPUs any more.
pub fn complete_stop(vm: &mut Vm) {
    match vm.state {
        VmState::Stopping(Then::Exit(status)) => end(vm, VmState::Exited(status)),
        VmState::Stopping(Then::Kill) => end(vm, VmState::Killed),
        VmState::Stopping(Then::Restart) => reset(vm),
        VmState::Alive | VmState::Exited(_) | VmState::Killed => {}
    }
}

/// Ends `vm` (locked), stopped or never running since its restart: its devices and frames
/// back, its translations forgotten.
pub(super) fn end(vm: &mut Vm, state: VmState) {
    crate::vm::device::release(vm);
    check_frame_accounting(vm);
    vm.state = state;
    // Frames set aside for a page call it left half done go back to the pool.
    vm.memory.abandon_pending();
    // Forget the VM's translations now; its VMID is not reused after it ends.
    stage2::flush_vm(vm.vttbr());
    sched::vm_ended();
}

fn reset(vm: &mut Vm) {
    // The old VM goes first (its frames back, its translations forgotten): a VM larger than
    // half the free RAM can restart too.
    crate::vm::device::release(vm);
    match vm
        .restart()
        .map_err(|e| alloc::format!("{e}"))
        .and_then(|()| crate::vm::device::restore(vm))
    {
        Ok(()) => {
            if vm.is_linux() {
                // A PV guest counts its own lives (x1 at entry); Linux is told nothing.
                info!(
                    "VM {}: Linux starts again (restart {})",
                    vm.name, vm.restarts
                );
            }
            sched::make_runnable(vm.index, VcpuIndex::new(0));
        }
        Err(e) => {
            error!("VM {} cannot restart: {e}; killed", vm.name);
            end(vm, VmState::Killed);
        }
    }
}

/// A call (`HVC #0`) of vCPU `v`: decoded and answered in its saved registers
/// (Caller::regs), no copy.
#[inline(always)]
fn call(vm: &mut Vm, v: usize) -> Action {
    vm.stats.count(ExitKind::Hypercall);
    if v >= vm.vcpus.len() {
        return Action::Kill(KillReason::NoVcpu(v));
    }
    let action = hypercall::dispatch(&mut Caller {
        vm: &mut *vm,
        vcpu: v,
    });
    #[cfg(debug_assertions)]
    check_frame_accounting(vm);
    action
}

fn handle_sync(vm: &mut Vm, v: usize, s: &Syndrome) -> Action {
    match s.class {
        // HVC #0 is an Exit::Call; SMCCC reserves it for calls, other immediates are not ours
        // to define.
        Class::Hvc64 => {
            vm.stats.count(ExitKind::Hypercall);
            vm.vcpu_mut(v).regs.x[0] = hypercall_abi::Error::NotSupported.code() as u64;
            Action::Resume
        }
        Class::Smc64 => {
            vm.stats.count(ExitKind::Hypercall);
            // Guests call the hyp with HVC; a trapped SMC is not executed, only refused, as
            // KVM refuses it: NOT_SUPPORTED in x0, every other register kept, the SMC skipped.
            vm.vcpu_mut(v).regs.skip_instruction();
            vm.vcpu_mut(v).regs.x[0] = hypercall_abi::Error::NotSupported.code() as u64;
            Action::Resume
        }
        Class::WfiWfe => {
            vm.stats.count(ExitKind::Wfi);
            vm.vcpu_mut(v).regs.skip_instruction();
            // WFI waits for the vCPU's next event (a Linux vCPU: its next vGIC interrupt),
            // unless one is already there.
            if vm.wfi_wakes(v) {
                Action::Resume
            } else {
                Action::Wait
            }
        }
        Class::SysReg => {
            vm.stats.count(ExitKind::SysReg);
            let access = SysRegAccess::decode(s.iss);
            if access.is_read && idregs::is_id_register(access.reg) {
                let value = id_registers(vm).read(access.reg, cpu::read_id_register);
                let regs = &mut vm.vcpu_mut(v).regs;
                if let Some(rt) = regs.x.get_mut(usize::from(access.rt)) {
                    *rt = value;
                }
                regs.skip_instruction();
            } else if (!access.is_read && emulate_vm_register_write(vm, v, access))
                || (vm.is_linux() && emulate_linux_register(vm, v, access))
            {
                vm.vcpu_mut(v).regs.skip_instruction();
            } else {
                // Every other trapped register (PMU, debug, AMU, LOR, RAS, PAC keys, IMPDEF...)
                // does not exist for the guest, as its ID registers say.
                cpu::inject_undefined(&mut vm.vcpu_mut(v).regs);
            }
            Action::Resume
        }
        // An UNDEFINED instruction, and the instructions of features the ID registers hide
        // (CPTR_EL2.TZ/TSM, HCR_EL2.API): a CPU without them would find them UNDEFINED too.
        Class::Unknown | Class::Sve | Class::Sme | Class::PointerAuth => {
            vm.stats.count(ExitKind::Other);
            cpu::inject_undefined(&mut vm.vcpu_mut(v).regs);
            Action::Resume
        }
        Class::DataAbortLower | Class::InstructionAbortLower => {
            vm.stats.count(ExitKind::Stage2);
            stage2_fault(vm, v, s)
        }
        _ => {
            vm.stats.count(ExitKind::Other);
            Action::Kill(KillReason::Trap {
                pc: vm.vcpu(v).regs.elr,
                syndrome: *s,
            })
        }
    }
}

/// A guest's write to an EL1 translation register (trapped by HCR_EL2.TVM) takes effect; when
/// it turns its MMU on, the vCPU stops needing DC and the traps.
fn emulate_vm_register_write(vm: &mut Vm, v: usize, access: SysRegAccess) -> bool {
    let value = match access.rt {
        31 => 0,
        rt => vm.vcpu(v).regs.x[usize::from(rt)],
    };
    if !cpu::write_vm_register(access.reg, value) {
        return false;
    }
    const SCTLR_M: u64 = 1;
    if access.reg == esr::SCTLR_EL1 && value & SCTLR_M != 0 {
        vm.vcpu_mut(v).hcr &= !(cpu::HCR_DC | cpu::HCR_TVM);
        cpu::set_hcr(vm.vcpu(v).hcr);
        debug!("VM {} turned its MMU on", vm.name);
    }
    true
}

/// A Linux vCPU's trapped access to a register its early setup touches (`linux::sysreg`):
/// the debug, OS-lock and PMU registers do nothing, ICC_SGI1R_EL1 sends SGIs through its vGIC;
/// false for a register that is UNDEFINED for it.
fn emulate_linux_register(vm: &mut Vm, v: usize, access: SysRegAccess) -> bool {
    use super::linux::sysreg::{Emulated, emulated};
    let rt = usize::from(access.rt);
    match emulated(access.reg, access.is_read) {
        Emulated::Fixed(value) => {
            if access.is_read
                && let Some(reg) = vm.vcpu_mut(v).regs.x.get_mut(rt)
            {
                *reg = value;
            }
            true
        }
        Emulated::Sgi1r => {
            let value = vm.vcpu(v).regs.x.get(rt).copied().unwrap_or(0);
            if let Some(linux) = vm.linux.as_mut() {
                let mask = linux.vgic.write_sgi1r(v, value);
                vm.vgic_changed(mask);
            }
            true
        }
        Emulated::Undefined => false,
    }
}

/// A guest touched an IPA it has no (or not that) access to: its emulated UART if it has one
/// there, a Linux VM's GIC distributor and redistributors, else the VM's fault policy decides.
fn stage2_fault(vm: &mut Vm, v: usize, s: &Syndrome) -> Action {
    if s.class == Class::DataAbortLower && emulate_pl011(vm, v, s) {
        vm.vcpu_mut(v).regs.skip_instruction();
        if vm.is_linux() {
            vm.update_uart_line();
        }
        return Action::Resume;
    }
    if s.class == Class::DataAbortLower && vm.is_linux() && emulate_gic(vm, v, s).is_some() {
        vm.vcpu_mut(v).regs.skip_instruction();
        return Action::Resume;
    }
    vm.stats.count_fault();
    // Indexed here: the fields of `vm` below are borrowed beside it.
    let regs = &mut vm.vcpus[v].regs;
    if vm.spec.on_fault == FaultPolicy::Inject {
        // SPSR.M[3:2] is the exception level the guest was at.
        let from_el1 = (regs.spsr >> 2) & 3 == 1;
        debug!(
            "VM {}: stage-2 fault at IPA {:#x} injected: {s}",
            vm.name, s.ipa
        );
        cpu::inject_sync(regs, esr::injected_abort_syndrome(s, from_el1), s.far);
        return Action::Resume;
    }
    Action::Kill(KillReason::Stage2Fault {
        pc: regs.elr,
        syndrome: *s,
    })
}

/// Every frame backing the VM is owned by it: checked after each hypercall in debug builds, and
/// when a VM ends in all builds. That it owns no other is checked in debug builds only: the
/// count scans the owner of every frame of RAM, millions of instructions in one exit of a
/// release build, where the summary's `frames_leaked` catches a frame a VM kept.
fn check_frame_accounting(vm: &Vm) {
    use crate::mm::{frames, owner::Owner};
    let owner = Owner::Vm(vm.index.owner());
    for pa in vm.memory.frames() {
        // The owner as its encoded number: `assert_eq!`'s Debug of both sides is 1.5 KiB of
        // the Image for this one check.
        let found = frames::owner(pa);
        assert!(
            found == owner,
            "VM {}: frame {pa:#x} has another owner ({:#x})",
            vm.name,
            u32::from(found.encode())
        );
    }
    if cfg!(debug_assertions) {
        assert_eq!(
            frames::count(owner) as u64,
            vm.memory.frames_held(),
            "VM {}: frame count",
            vm.name
        );
    }
}

/// Emulates one access to an `emulated-pl011` VM's UART; false if this abort is not one.
fn emulate_pl011(vm: &mut Vm, v: usize, s: &Syndrome) -> bool {
    let Some(offset) = s.ipa.checked_sub(PL011_IPA).filter(|&o| o < PL011_SIZE) else {
        return false;
    };
    let (Some(uart), Some(access)) = (vm.pl011.as_mut(), esr::DataAccess::decode(s)) else {
        return false;
    };
    let reg = usize::from(access.reg);
    if access.is_write {
        let value = if reg == 31 {
            0
        } else {
            vm.vcpus[v].regs.x[reg] as u32
        };
        let mut sent = None;
        uart.write(offset, value, |b| sent = Some(b));
        if let Some(b) = sent {
            vm.console_output(&[b]);
        }
    } else {
        let input = &mut vm.console_io.input;
        let value = uart.read(offset, !input.is_empty(), || input.pop_front().unwrap_or(0));
        if reg != 31 {
            vm.vcpus[v].regs.x[reg] = u64::from(value);
        }
    }
    true
}

/// Emulates one access of a Linux vCPU to its vGIC's distributor or redistributors: the vCPUs
/// it changed the vGIC for (kicked); `None` if this abort is not one (not a Linux VM, another
/// address, an access the syndrome does not describe).
fn emulate_gic(vm: &mut Vm, v: usize, s: &Syndrome) -> Option<VcpuMask> {
    let (Some(linux), Some(access)) = (vm.linux.as_mut(), esr::DataAccess::decode(s)) else {
        return None;
    };
    let regs = &mut vm.vcpus[v].regs;
    let reg = usize::from(access.reg);
    let written = match (access.is_write, reg) {
        (false, _) => None,
        (true, 31) => Some(0),
        (true, r) => Some(regs.x[r]),
    };
    let (value, mask) = linux.vgic.mmio(
        v,
        s.ipa,
        MmioAccess {
            size: access.size,
            write: written,
        },
    )?;
    if !access.is_write && reg != 31 {
        regs.x[reg] = access.loaded_value(value);
    }
    // From now on vm::run answers its loads of the registers that never change.
    regs.fixed_gic = linux.vgic.fixed().encode();
    vm.vgic_changed(mask);
    Some(mask)
}
