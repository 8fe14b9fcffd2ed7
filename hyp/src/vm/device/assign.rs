//! The boot-time and teardown steps of device assignment, on the real machine: they join
//! `dev::pci`, `dev::smmu` and the VM. The policy and its reasons are the parent module's doc.

use super::smmuv3::Stage2Regime;
use super::{DEVICE_BASE_IPA, irq, set_dma_vmid};
use crate::addr::{Ipa, PAGE_SIZE, PhysAddr};
use crate::arch::aarch64::timer;
use crate::arch::stage2::{IPA_BITS, ROOT_LEVEL};
use crate::dev::{pci, smmu};
use crate::vm::stats::DmaFaultLog;
use crate::vm::{Vm, VmState};
use alloc::format;
use alloc::string::String;
use manifest::Bdf;

/// Assigns each VM the devices its manifest entry names; a VM whose device cannot be assigned
/// is refused alone, one line saying which device and why, and nothing of it is assigned.
pub fn assign_at_boot(vms: &mut [Vm]) {
    for vm in vms.iter_mut().filter(|vm| !vm.spec.devices.is_empty()) {
        if vm.state != VmState::Alive {
            continue;
        }
        if let Err(why) = assign(vm) {
            release(vm);
            error!("VM {}: refused: {why}; the other VMs run", vm.name);
            vm.state = VmState::Killed;
        }
    }
    // A function no VM names stays as `pci::init` left it, memory decoding and bus mastering
    // off, and its stream table entry aborts (every one does until assigned): said once each.
    if smmu::get().is_none() {
        return;
    }
    for f in pci::functions()
        .iter()
        .filter(|f| f.class >> 16 != pci::CLASS_BRIDGE)
        .filter(|f| !vms.iter().any(|vm| vm.spec.devices.contains(&f.bdf)))
    {
        info!(
            "PCI {}: no VM owns it: stream {} aborts, bus mastering off",
            f.bdf,
            u32::from(f.bdf.requester_id())
        );
    }
}

/// Maps the VM's devices' BARs and points their streams at its DMA table, then enables them.
fn assign(vm: &mut Vm) -> Result<(), String> {
    let mut next_ipa = DEVICE_BASE_IPA;
    // The boot info describes the first device (it has room for one).
    let mut first = true;
    for bdf in vm.spec.devices.clone() {
        let Some(smmu) = smmu::get() else {
            return Err(format!(
                "device {bdf}: this board has no SMMU to confine its DMA"
            ));
        };
        let Some((function, behind_smmu)) = pci::function(bdf) else {
            return Err(format!("device {bdf}: no such PCI function"));
        };
        if !behind_smmu {
            return Err(format!(
                "device {bdf}: its DMA does not go through the SMMU (no iommu-map)"
            ));
        }
        let sid = u32::from(bdf.requester_id());
        if sid >= 1 << smmu::STREAM_TABLE_LOG2 {
            return Err(format!(
                "device {bdf}: stream {sid} is beyond the SMMU's {} streams",
                1u32 << smmu::STREAM_TABLE_LOG2
            ));
        }
        let mut bars = String::new();
        let mut info = hypercall_abi::DeviceInfo {
            pci_id: u32::from(function.vendor) | u32::from(function.device) << 16,
            requester_id: sid,
            event: crate::vm::event::DEVICE_EVENT,
            ..Default::default()
        };
        for (i, bar) in function.bars.iter().enumerate() {
            let Some(bar) = bar else { continue };
            if let Some(v) = function.virtio.filter(|v| usize::from(v.bar) == i) {
                info.bar_ipa = next_ipa;
                info.bar_size = bar.size;
                info.virtio_common = v.common;
                info.virtio_notify = v.notify;
                info.virtio_notify_multiplier = v.notify_multiplier;
                info.virtio_isr = v.isr;
                info.virtio_device = v.device;
            }
            let pages = bar.size.div_ceil(PAGE_SIZE);
            vm.memory
                .map_device(Ipa::new(next_ipa), PhysAddr::new(bar.cpu), pages)
                .map_err(|e| format!("device {bdf}: BAR{i} cannot be mapped: {e}"))?;
            bars.push_str(&format!(", BAR{i} at IPA {next_ipa:#x}"));
            next_ipa += pages * PAGE_SIZE;
        }
        let root = vm
            .memory
            .enable_dma()
            .map_err(|e| format!("device {bdf}: no room for its DMA table: {e}"))?;
        let mut smmu = smmu.lock();
        let regime = Stage2Regime {
            vmid: vm.vmid.get(),
            root,
            ipa_bits: IPA_BITS,
            root_level: ROOT_LEVEL as u32,
            ps_field: (crate::arch::aarch64::cpu::pa_range_capped() as u32)
                .min(smmu.features.oas_field),
        };
        smmu.write_ste(sid, super::smmuv3::ste_stage2(&regime))
            .map_err(|e| format!("device {bdf}: the SMMU refused its stream table entry: {e}"))?;
        drop(smmu);
        // The device the boot info describes is the one whose interrupt and faults the VM
        // hears as events.
        let mut interrupt = String::new();
        let routed = first;
        if first {
            write_device_info(vm, &info)
                .map_err(|e| format!("device {bdf}: the boot info cannot be written: {e}"))?;
            irq::route(vm.index.get(), sid, function.intx).map_err(|irq::Shared { with }| {
                format!("device {bdf}: its interrupt is shared with VM {with}'s device")
            })?;
            if let Some(intid) = function.intx {
                interrupt = format!(", SPI {intid} raises event {}", info.event);
            }
            first = false;
        }
        set_dma_vmid(vm.vmid.get(), true);
        // Its INTx only for the device whose interrupt is routed: another's could share a line
        // with a device of another VM, which `irq::route` checked for the first alone.
        pci::set_enabled(bdf, true, routed);
        info!(
            "VM {}: device {bdf} ({:04x}:{:04x}) assigned: stream {sid} translates with its DMA table (VMID {}: its RAM only){bars}{interrupt}",
            vm.name,
            u32::from(function.vendor),
            u32::from(function.device),
            vm.vmid
        );
    }
    Ok(())
}

/// Takes the VM's devices back (see the module doc's teardown order): their interrupt is
/// disabled and routed nowhere, their streams abort, the SMMU forgets the VMID, bus mastering
/// goes off. Its frames may be freed after this. Any event the SMMU recorded is logged first,
/// named by the VM.
pub fn release(vm: &mut Vm) {
    if vm.spec.devices.is_empty() {
        return;
    }
    irq::unroute(vm.index.get());
    let Some(smmu) = smmu::get() else { return };
    drain(vm);
    report_suppressed(vm, None);
    let mut smmu = smmu.lock();
    for &bdf in &vm.spec.devices {
        let sid = u32::from(bdf.requester_id());
        if sid < 1 << smmu::STREAM_TABLE_LOG2
            && let Err(e) = smmu.write_ste(sid, super::smmuv3::ste_abort())
        {
            stuck(vm, bdf, &e);
        }
    }
    let vmid = vm.vmid.get();
    if let Err(e) = smmu.submit(&[
        super::smmuv3::Command::TlbiS12Vmall { vmid },
        super::smmuv3::Command::Sync,
    ]) {
        stuck(vm, vm.spec.devices[0], &e);
    }
    drop(smmu);
    set_dma_vmid(vmid, false);
    for &bdf in &vm.spec.devices {
        pci::set_enabled(bdf, false, false);
        info!(
            "VM {}: device {bdf} released: stream {} aborts, bus mastering off",
            vm.name,
            u32::from(bdf.requester_id())
        );
    }
}

/// After a restart (its memory torn down and reloaded, the same VMID): assigns its devices
/// again; on failure the VM is killed, its devices released.
pub fn restore(vm: &mut Vm) -> Result<(), String> {
    if vm.spec.devices.is_empty() {
        return Ok(());
    }
    assign(vm).inspect_err(|_| release(vm))
}

/// An SMMU that does not complete a command may still reach the VM's frames: stop.
fn stuck(vm: &Vm, bdf: Bdf, e: &smmu::Error) -> ! {
    error!(
        "VM {}: device {bdf}: the SMMU did not release it ({e}); stopping",
        vm.name
    );
    crate::power::halt_after_failure()
}

/// Writes `info` into the VM's boot-info page, field by field in the ABI's little-endian order.
fn write_device_info(
    vm: &mut Vm,
    info: &hypercall_abi::DeviceInfo,
) -> Result<(), hypercall_abi::Error> {
    let mut bytes = [0u8; core::mem::size_of::<hypercall_abi::DeviceInfo>()];
    let words: [(usize, &[u8]); 10] = [
        (0, &info.pci_id.to_le_bytes()),
        (4, &info.requester_id.to_le_bytes()),
        (8, &info.bar_ipa.to_le_bytes()),
        (16, &info.bar_size.to_le_bytes()),
        (24, &info.virtio_common.to_le_bytes()),
        (28, &info.virtio_notify.to_le_bytes()),
        (32, &info.virtio_notify_multiplier.to_le_bytes()),
        (36, &info.virtio_isr.to_le_bytes()),
        (40, &info.virtio_device.to_le_bytes()),
        (44, &info.event.to_le_bytes()),
    ];
    for (at, word) in words {
        bytes[at..at + word.len()].copy_from_slice(word);
    }
    let at = vm.boot_info_ipa + core::mem::offset_of!(hypercall_abi::BootInfo, device) as u64;
    vm.memory.write(at, &bytes)
}

/// Reads the SMMU's event queue (at each exit of a VM that owns a device): each run of faults
/// from a stream this VM owns is `dma_fault`'s, the others are logged unnamed; and raises its
/// device events if one of its DMAs was stopped or its device interrupted (another VM's stopped
/// DMA reaches it at the next delivery, `irq::deliver`). A VM without devices pays one atomic
/// load.
pub fn poll_events(vm: &mut Vm) {
    if !super::has_dma(vm.vmid.get()) {
        return;
    }
    drain(vm);
    let (interrupted, faulted) = irq::take_marks(vm.index.get());
    if interrupted || faulted {
        irq::raise(vm, interrupted, faulted);
    }
}

/// The drain of [`poll_events`] and [`release`]: each run of faults counts for its stream's
/// owner (`irq::dma_fault`: its device fault event), and is charged and logged here.
fn drain(vm: &mut Vm) {
    smmu::drain_events(|run| {
        irq::dma_fault(run.first.sid, run.first.address);
        if vm
            .spec
            .devices
            .iter()
            .any(|d| u32::from(d.requester_id()) == run.first.sid)
        {
            super::dma_fault(vm, run);
        } else {
            unnamed_fault(run);
        }
    });
    if vm.stats.dma_fault_log.pending() {
        report_suppressed(vm, Some(timer::counter()));
    }
}

/// The rate limit of the fault lines this drain cannot name a VM in: runs of another VM's
/// device, drained at this VM's exit, or of a stream no VM owns (their faults still count for
/// their owner: `irq::dma_fault`). A leaf lock (sched.rs's order, 3), taken with this VM's.
static UNNAMED_FAULT_LOG: spin::Mutex<DmaFaultLog> = spin::Mutex::new(DmaFaultLog::new());

/// A run of faults [`drain`] names no VM for: logged within one limit for all of them, so
/// that a VM faulting its device while another VM's exits drain the queue still cannot make
/// the hyp log a line at each exit.
fn unnamed_fault(run: &smmu::FaultRun) {
    let now = timer::counter();
    let (suppressed, admitted) = {
        let mut limit = UNNAMED_FAULT_LOG.lock();
        let suppressed = limit.take_suppressed(Some(now), fault_log_window());
        (
            suppressed,
            limit.admit(now, fault_log_window(), run.records as u64),
        )
    };
    if let Some(n) = suppressed {
        warn!("SMMU: {n} more DMA faults of other VMs' streams suppressed");
    }
    if admitted {
        smmu::log_fault(run, None);
    }
}

/// A run of DMA faults of a device `vm` owns: the one place a fault is charged to its VM.
/// Counted in its statistics; logged within its rate limit (`stats::DmaFaultLog`).
pub fn dma_fault(vm: &mut Vm, run: &smmu::FaultRun) {
    vm.stats.count_dma_faults(run.records as u64);
    let now = timer::counter();
    report_suppressed(vm, Some(now));
    if vm
        .stats
        .dma_fault_log
        .admit(now, fault_log_window(), run.records as u64)
    {
        smmu::log_fault(run, Some(&vm.name));
    }
}

/// One line for the faults of `vm` whose lines its rate limit left out, once their window has
/// passed by `now` (None: the VM's devices go, whatever the window).
fn report_suppressed(vm: &mut Vm, now: Option<u64>) {
    if let Some(n) = vm
        .stats
        .dma_fault_log
        .take_suppressed(now, fault_log_window())
    {
        warn!("SMMU: VM {}: {n} more DMA faults suppressed", vm.name);
    }
}

/// The rate limit's window: one second of the counter.
fn fault_log_window() -> u64 {
    use aarch64_cpu::registers::{CNTFRQ_EL0, Readable};
    CNTFRQ_EL0.get()
}
