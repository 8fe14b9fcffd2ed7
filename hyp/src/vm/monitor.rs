//! The hypervisor console's commands carried out (`crate::monitor` parses them and formats
//! their output): the data gathered from the VMs, each locked in turn, and the CPUs; kill and
//! restart through `sched`. Runs on the CPU that reads the console input, in `sched::pick`,
//! with no VM's lock held.

#![forbid(unsafe_code)]

use super::VmState;
use super::ids::{VcpuIndex, VmIndex};
use super::sched::{self, Then};
use crate::arch::aarch64::timer;
use crate::dev::console;
use crate::echo::HYP_WRITER;
use crate::monitor::{
    self, Command, CpuRow, Edit, HELP, LineEditor, Refusal, TraceOp, VmRow, VmStatus,
};
use alloc::string::String;
use alloc::vec::Vec;
use manifest::ConsoleKind;

/// A byte typed at `hyp>`: the line edited and echoed; Enter runs it.
pub fn typed(editor: &mut LineEditor, byte: u8) {
    match editor.feed(byte) {
        Edit::Nothing => return,
        Edit::Changed => {}
        Edit::Done => {
            console::show_partial(HYP_WRITER, editor.shown().as_bytes(), false, true);
            console::end_partial_line();
            let line = String::from(editor.text());
            editor.clear();
            run(&line);
        }
    }
    console::show_partial(HYP_WRITER, editor.shown().as_bytes(), false, true);
    console::refresh();
}

fn say(line: &str) {
    crate::println!("hyp: {line}");
}

fn run(line: &str) {
    match monitor::parse(line) {
        Ok(Command::Empty) => {}
        Ok(Command::Help) => HELP.iter().for_each(|l| say(l)),
        Ok(Command::Vms) => monitor::vms_table(&vm_rows(), frequency())
            .iter()
            .for_each(|l| say(l)),
        Ok(Command::Stats) => {
            let mut rows = Vec::new();
            crate::percpu::each(|cpu, stats, _| {
                rows.push(CpuRow {
                    cpu,
                    exits: stats.exits,
                    idle_ticks: stats.idle_ticks,
                    lock_waits: stats.lock_waits,
                })
            });
            monitor::stats_table(&rows, timer::counter(), frequency())
                .iter()
                .for_each(|l| say(l));
        }
        Ok(Command::Kill(name)) => {
            if let Err(why) = stop(name, Then::Kill) {
                say(&monitor::refusal(name, why));
            }
        }
        Ok(Command::Restart(name)) => {
            if let Err(why) = stop(name, Then::Restart) {
                say(&monitor::refusal(name, why));
            }
        }
        Ok(Command::Trace(op)) => match op {
            TraceOp::On => {
                crate::trace::set_enabled(true);
                say("trace on: each CPU records its last exits (trace dump shows them)");
            }
            TraceOp::Off => {
                crate::trace::set_enabled(false);
                say("trace off: the records kept stay for trace dump");
            }
            TraceOp::Dump => sched::dump_traces(|l| crate::println!("{l}")),
        },
        Err(e) => say(&alloc::format!("{e}")),
    }
}

fn frequency() -> u64 {
    use aarch64_cpu::registers::{CNTFRQ_EL0, Readable};
    CNTFRQ_EL0.get()
}

/// The VM named `name`.
fn find(name: &str) -> Option<VmIndex> {
    (0..sched::vm_count()).map(VmIndex::new).find(|&index| {
        sched::slot(index)
            .lock()
            .as_ref()
            .is_some_and(|vm| vm.name == name)
    })
}

/// Kills or restarts VM `name`: a live one is stopped on every CPU first (`sched::stop_vm`,
/// which says so). One that has ended can be restarted, not killed; one that is stopping (a
/// kill, its own exit) restarts once stopped.
fn stop(name: &str, then: Then) -> Result<(), Refusal> {
    let index = find(name).ok_or(Refusal::NoSuchVm)?;
    if sched::stop_vm(index, then) {
        return Ok(());
    }
    let slot = sched::slot(index);
    let mut guard = slot.lock();
    let vm = guard.as_mut().ok_or(Refusal::NoSuchVm)?;
    match (vm.state, then) {
        (VmState::Exited(_) | VmState::Killed, Then::Restart) => {
            drop(guard);
            sched::restart_ended(index)
        }
        (VmState::Exited(_) | VmState::Killed, _) => Err(Refusal::Ended),
        (VmState::Stopping(_), Then::Restart) => {
            // The CPU that completes the stop reads this under the VM's lock.
            vm.state = VmState::Stopping(Then::Restart);
            info!(
                "VM {} restarts from the console once it has stopped",
                vm.name
            );
            Ok(())
        }
        // Stopping, or alive again after a stop that completed meanwhile (a reset).
        _ => Err(Refusal::Stopping),
    }
}

/// Every VM as `vms` shows it, each locked in turn.
fn vm_rows() -> Vec<VmRow> {
    let now = timer::counter();
    let mut rows = Vec::new();
    for index in (0..sched::vm_count()).map(VmIndex::new) {
        let slot = sched::slot(index);
        let guard = slot.lock();
        let Some(vm) = guard.as_ref() else { continue };
        let pages = vm.memory.pages_used();
        rows.push(VmRow {
            name: vm.name.clone(),
            kind: match vm.spec.console {
                ConsoleKind::Pv => "pv",
                ConsoleKind::EmulatedPl011 => "pv/pl011",
            },
            status: match vm.state {
                VmState::Alive => VmStatus::Running,
                VmState::Stopping(_) => VmStatus::Stopping,
                VmState::Exited(status) => VmStatus::Exited(status),
                VmState::Killed => VmStatus::Killed,
            },
            on_cpus: (0..vm.vcpus.len())
                .map(|v| slot.vcpu(VcpuIndex::new(v)).on_cpu())
                .collect(),
            mapped_pages: pages,
            quota_pages: pages + vm.memory.quota_left_bytes() / crate::mm::PAGE_SIZE,
            stats: vm.stats,
            restarts: vm.restarts,
            uptime_ticks: vm.is_alive().then(|| now.wrapping_sub(vm.started)),
        });
    }
    rows
}
