//! The `event` family: a guest binds, masks, unmasks and acknowledges its events, and sends
//! events to its own vCPUs. Delivery (the virtual IRQ) follows from the state in `vm::event`.

use super::GuestVm;
use crate::vm::device::irq;
use crate::vm::event::DEVICE_EVENT;
use hypercall_abi::event::EventSource;
use hypercall_abi::{Error, MemPerms};

pub fn bind(vm: &mut impl GuestVm, source: EventSource) -> Result<[u64; 3], Error> {
    if matches!(
        source,
        EventSource::DeviceInterrupt | EventSource::DeviceFault
    ) && !irq::owns(vm.info().vm_index as usize)
    {
        return Err(Error::Denied);
    }
    vm.events().bind(source).map(|e| [e.into(), 0, 0])
}

/// EVENT_DEVICE_ACK: the device event is acknowledged and the device's interrupt, disabled
/// since the hyp took it, enabled again.
pub fn device_ack(vm: &mut impl GuestVm) -> Result<[u64; 3], Error> {
    let index = vm.info().vm_index as usize;
    if !irq::owns(index) {
        return Err(Error::Denied);
    }
    vm.events().ack(DEVICE_EVENT)?;
    vm.events_changed(Some(DEVICE_EVENT));
    irq::acknowledge(index);
    Ok([0; 3])
}

/// EVENT_DEVICE_FAULTS: how many of the device's DMAs the SMMU stopped, and the last address.
pub fn device_faults(vm: &mut impl GuestVm) -> Result<[u64; 3], Error> {
    let (count, ipa) = irq::faults(vm.info().vm_index as usize).ok_or(Error::Denied)?;
    Ok([count, ipa, 0])
}

pub fn set_masked(vm: &mut impl GuestVm, event: u32, masked: bool) -> Result<[u64; 3], Error> {
    vm.events().set_masked(event, masked)?;
    vm.events_changed(None);
    Ok([0; 3])
}

pub fn ack(vm: &mut impl GuestVm, event: u32) -> Result<[u64; 3], Error> {
    vm.events().ack(event)?;
    vm.events_changed(Some(event));
    Ok([0; 3])
}

/// EVENT_SHARED_ACK: the event page becomes writable for the guest, which may clear its
/// pending bits there from now on (vm::event takes them back without trusting them).
pub fn share_acks(vm: &mut impl GuestVm) -> Result<[u64; 3], Error> {
    let page = vm.events().page_ipa();
    vm.memory_mut().set_hyp_page_perms(page, MemPerms::RW)?;
    vm.events().share_acks();
    Ok([0; 3])
}

/// Raises `event` on one of the caller's own vCPUs (that vCPU's virtual IRQ).
pub fn send(vm: &mut impl GuestVm, vcpu: u32, event: u32) -> Result<[u64; 3], Error> {
    if vcpu as usize >= vm.vcpu_count() {
        return Err(Error::InvalidParameters);
    }
    vm.events().raise_on(event, vcpu as u8)?;
    vm.events_changed(None);
    Ok([0; 3])
}

#[cfg(test)]
mod tests {
    use super::super::fake::dispatch;
    use super::super::fake::{FakeVm, call};
    use hypercall_abi::event::EventSource;
    use hypercall_abi::{Call, Error};

    #[test]
    fn device_sources_and_calls_are_denied_to_a_vm_without_a_device() {
        let mut vm = FakeVm::empty(41, 16);
        for source in [EventSource::DeviceInterrupt, EventSource::DeviceFault] {
            assert_eq!(
                call(&mut vm, Call::EventBind { source }),
                Err(Error::Denied)
            );
        }
        assert_eq!(call(&mut vm, Call::EventDeviceAck), Err(Error::Denied));
        assert_eq!(call(&mut vm, Call::EventDeviceFaults), Err(Error::Denied));
        // Its owner binds them to the fixed events and acknowledges the interrupt's.
        crate::vm::device::irq::route(41, 0x30, Some(99)).unwrap();
        let bind = |vm: &mut FakeVm, source| call(vm, Call::EventBind { source });
        assert_eq!(bind(&mut vm, EventSource::DeviceInterrupt), Ok([3, 0, 0]));
        assert_eq!(bind(&mut vm, EventSource::DeviceFault), Ok([4, 0, 0]));
        vm.events.raise(3).unwrap();
        assert_eq!(call(&mut vm, Call::EventDeviceAck), Ok([0; 3]));
        assert_eq!(vm.events.page().pending[0] & 1 << 3, 0);
        crate::vm::device::irq::unroute(41);
    }

    #[test]
    fn send_unmask_ack_cycle() {
        let mut vm = FakeVm::default();
        let e = call(
            &mut vm,
            Call::EventBind {
                source: EventSource::ConsoleRx,
            },
        )
        .unwrap()[0] as u32;
        assert_eq!(
            call(&mut vm, Call::EventSend { vcpu: 0, event: e }),
            Ok([0; 3])
        );
        assert!(!vm.events.deliverable(), "events start masked");
        call(&mut vm, Call::EventUnmask { event: e }).unwrap();
        assert!(vm.events.deliverable());
        call(&mut vm, Call::EventAck { event: e }).unwrap();
        assert!(!vm.events.deliverable());
        assert_eq!(vm.acked, [e]);
    }

    #[test]
    fn send_targets_a_vcpu() {
        let mut vm = FakeVm::default();
        vm.vcpus.resize(3, (super::super::Power::Off, 0, 0));
        call(&mut vm, Call::EventUnmask { event: 77 }).unwrap();
        assert_eq!(
            call(&mut vm, Call::EventSend { vcpu: 2, event: 77 }),
            Ok([0; 3])
        );
        assert!(vm.events.deliverable_to(2) && !vm.events.deliverable_to(0));
        assert_eq!(
            call(&mut vm, Call::EventSend { vcpu: 3, event: 77 }),
            Err(Error::InvalidParameters)
        );
    }

    #[test]
    fn shared_ack_makes_only_the_event_page_writable_and_keeps_event_ack() {
        use crate::vm::event::Events;
        use crate::vm::mem::Pin;
        use hypercall_abi::MemPerms;
        const PAGE: u64 = 0x4008_1000;
        let mut vm = FakeVm::default();
        vm.memory
            .map_pinned(PAGE, 1, MemPerms::READ, Pin::Hyp)
            .unwrap();
        vm.events = Events::new(0).at_page(PAGE);
        assert_eq!(vm.memory.query(PAGE), Ok(MemPerms::READ));
        assert_eq!(call(&mut vm, Call::EventSharedAck), Ok([0; 3]));
        assert_eq!(vm.memory.query(PAGE), Ok(MemPerms::RW));
        assert!(vm.events.acks_shared());
        // Again: nothing changes, nothing fails.
        assert_eq!(call(&mut vm, Call::EventSharedAck), Ok([0; 3]));
        assert_eq!(vm.memory.query(PAGE), Ok(MemPerms::RW));
        call(&mut vm, Call::EventUnmask { event: 4 }).unwrap();
        call(&mut vm, Call::EventSend { vcpu: 0, event: 4 }).unwrap();
        call(&mut vm, Call::EventAck { event: 4 }).unwrap();
        assert!(!vm.events.deliverable(), "EVENT_ACK still acknowledges");
        // Only a page the hyp shares changes: not one of the guest's own.
        assert_eq!(
            vm.memory
                .set_hyp_page_perms(super::super::fake::PAGE_IPA, MemPerms::RW),
            Err(Error::Denied)
        );
    }

    #[test]
    fn bad_events_and_vcpus_are_refused() {
        let mut vm = FakeVm::default();
        assert_eq!(
            call(&mut vm, Call::EventSend { vcpu: 1, event: 0 }),
            Err(Error::InvalidParameters)
        );
        let mut regs = Call::EventAck { event: 0 }.to_regs();
        regs[1] = 256;
        dispatch(&mut vm, &mut regs);
        assert_eq!(regs[0] as i64, Error::InvalidParameters.code());
        let channel = EventSource::Channel { channel: 5 };
        assert_eq!(
            call(&mut vm, Call::EventBind { source: channel }),
            Err(Error::Denied)
        );
    }
}
