//! A Linux VM's virtual platform while it runs: its vGIC (`vdev::vgic`), beside the emulated
//! PL011 every `emulated-pl011` VM has, and where its device tree is. What happens when one of
//! its vCPUs is loaded on a CPU, leaves it, or exits is here; `vm::exit` and `vm::sched` call
//! these hooks for a Linux VM only.

use super::super::build::{RunState, Vm};
use super::super::ids::VcpuIndex;
use super::super::sched;
use crate::vdev::layout;
use crate::vdev::vgic::lr::LrState;
use crate::vdev::vgic::{GicModel, VGic, VcpuMask, hw};
use alloc::vec::Vec;

/// The platform of a Linux VM.
pub struct Platform {
    pub vgic: VGic,
    /// Each vCPU's virtual CPU interface while it is off a CPU (its list registers, VMCR,
    /// active priorities).
    pub cpu_interfaces: Vec<LrState>,
}

impl Platform {
    /// A fresh platform for `vcpus` vCPUs with the board's GIC `model`, every interrupt off.
    pub fn new(model: GicModel, vcpus: usize) -> Self {
        Self {
            vgic: VGic::new(model, vcpus),
            cpu_interfaces: (0..vcpus)
                .map(|_| LrState::new(hw::list_registers()))
                .collect(),
        }
    }
}

impl Vm {
    /// Whether the VM runs an unmodified kernel (`kind = "linux"`). From its manifest entry,
    /// one byte (the build gives exactly such a VM its platform): `linux.is_some()` compares a
    /// niche constant, two instructions more at each of a PV exit's several looks.
    pub fn is_linux(&self) -> bool {
        let linux = self.spec.kind == manifest::VmKind::Linux;
        debug_assert_eq!(
            linux,
            self.linux.is_some(),
            "a Linux VM without its platform"
        );
        linux
    }

    /// vCPU `v` of a Linux VM is loaded on this CPU (its EL1 state, the timer's included,
    /// restored): its virtual CPU interface goes live. Nothing for a PV VM, whose interface
    /// stays off.
    pub fn switch_in_vgic(&mut self, v: usize) {
        if let Some(linux) = self.linux.as_mut()
            && let Some(state) = linux.cpu_interfaces.get_mut(v)
        {
            hw::switch_in(&mut linux.vgic, v, state);
        }
    }

    /// vCPU `v` of a Linux VM leaves this CPU (its timer stopped): what the guest did to its
    /// list registers goes back into the vGIC, and the interface is off.
    pub fn switch_out_vgic(&mut self, v: usize) {
        if let Some(linux) = self.linux.as_mut()
            && let Some(state) = linux.cpu_interfaces.get_mut(v)
        {
            let mask = hw::switch_out(&mut linux.vgic, v, state);
            self.vgic_changed(mask);
        }
    }

    /// vCPU `v` of a Linux VM, loaded here, stays loaded across an exit: its list registers are
    /// folded back into the vGIC and loaded anew with what changed meanwhile (this exit, other
    /// CPUs, a maintenance interrupt).
    pub fn sync_vgic(&mut self, v: usize) {
        if let Some(linux) = self.linux.as_mut()
            && let Some(state) = linux.cpu_interfaces.get_mut(v)
        {
            let mask = hw::sync(&mut linux.vgic, v, state);
            self.vgic_changed(mask);
        }
    }

    /// After the vGIC changed for the vCPUs in `mask`: each that waits is runnable again, and
    /// each that runs on another CPU is kicked to load its list registers anew (every exit of
    /// a Linux vCPU syncs them). One on this CPU is the one whose exit is handled: its exit
    /// syncs it.
    pub fn vgic_changed(&mut self, mask: VcpuMask) {
        if mask.is_empty() {
            return;
        }
        for (i, vcpu) in self.vcpus.iter_mut().enumerate() {
            if !mask.contains(i) {
                continue;
            }
            let v = VcpuIndex::new(i);
            if vcpu.run == RunState::Waiting {
                vcpu.run = RunState::Runnable;
                sched::make_runnable(self.index, v);
            }
            sched::vcpu(self.index, v).request(sched::REQ_VGIC);
        }
    }

    /// The UART's interrupt line follows its state (input waiting, interrupts it enabled).
    pub fn update_uart_line(&mut self) {
        let rx_waiting = !self.console_io.input.is_empty();
        let (Some(linux), Some(uart)) = (self.linux.as_mut(), self.pl011.as_ref()) else {
            return;
        };
        let mask = linux
            .vgic
            .set_line(layout::INTID_UART, uart.irq_line(rx_waiting));
        self.vgic_changed(mask);
    }

    /// Typed input was queued for the VM: a PV guest gets its console event, a Linux one its
    /// UART's interrupt (if it enabled it).
    pub fn console_input_arrived(&mut self) {
        if self.is_linux() {
            self.update_uart_line();
        } else {
            self.raise_event(super::super::event::CONSOLE_EVENT);
        }
    }

    /// The virtual timer of vCPU `v` (on this CPU) fired: a hardware-mapped interrupt, whose
    /// deactivation by the guest deactivates the physical one.
    pub fn vtimer_fired(&mut self, v: usize) {
        if let Some(linux) = self.linux.as_mut() {
            let mask = linux.vgic.raise_hw(v, layout::INTID_VIRT_TIMER);
            self.vgic_changed(mask);
        }
    }

    /// The virtual timer of vCPU `v`, off every CPU, expired (`sched::poll_timers`): a Linux
    /// guest's hardware-mapped timer interrupt is pending (its physical one fires again once
    /// it is loaded, and the guest's deactivation ends both); a PV guest gets its timer event,
    /// the timer masked in its saved state until it acknowledges the event.
    pub fn vtimer_expired(&mut self, v: usize) {
        if let Some(linux) = self.linux.as_mut() {
            let mask = linux.vgic.raise_hw(v, layout::INTID_VIRT_TIMER);
            self.vgic_changed(mask);
            return;
        }
        if let Some(vcpu) = self.vcpus.get_mut(v) {
            vcpu.el1.cntv_ctl |= super::super::build::CNTV_CTL_IMASK;
            self.raise_event_on(super::super::event::TIMER_EVENT, v);
        }
    }

    /// Whether vCPU `v` (loaded here) has something to wake it from WFI: a vGIC interrupt
    /// pending for it, once its list registers are folded back (a Linux VM), or a deliverable
    /// event (a PV one).
    pub fn wfi_wakes(&mut self, v: usize) -> bool {
        if self.is_linux() {
            self.sync_vgic(v);
        }
        match self.linux.as_ref() {
            Some(linux) => linux.vgic.has_pending(v),
            None => {
                // After the acknowledgements a guest made in its event page (they may drop
                // HCR_EL2.VI).
                if self.events.acks_shared() {
                    self.events_changed();
                }
                self.events.deliverable_to(v as u8)
            }
        }
    }
}
