//! The `channel` family: where a VM's end of a channel is, and the doorbell to its peer.

use super::{Action, GuestVm, answer, set_return};
use hypercall_abi::Error;

pub fn info(vm: &mut impl GuestVm, channel: u32) -> Result<[u64; 3], Error> {
    vm.channel(channel)
        .map(|end| end.info().to_values())
        .ok_or(Error::InvalidParameters)
}

/// Raises the peer's event for this channel (the scheduler does it: the peer is another VM).
pub fn notify(vm: &mut impl GuestVm, channel: u32) -> Action {
    match vm.channel(channel) {
        Some(end) => {
            let (peer, event) = (end.peer_vm, end.peer_event);
            // The caller's acknowledgements in its event page are taken by the scheduler: when
            // it goes on here, before it runs again; when it hands its CPU to the peer, at its
            // next load (`sched::notify_from`).
            set_return(vm.regs(), Ok([0; 3]));
            Action::Notify { vm: peer, event }
        }
        None => answer(vm, Err(Error::InvalidParameters)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeVm;
    use super::super::{Action, fake::dispatch};
    use crate::vm::channel::{ChannelEnd, channel_ipa};
    use hypercall_abi::{Call, ChannelInfo, Error, decode_return};
    use std::vec;

    fn with_channel() -> FakeVm {
        let mut vm = FakeVm::default();
        vm.channels.push(ChannelEnd {
            channel: 0,
            ipa: channel_ipa(0),
            frames: vec![0x1000],
            peer_vm: 4,
            peer_event: 9,
            sends_on_first: false,
        });
        vm
    }

    #[test]
    fn info_describes_this_vms_end() {
        let mut vm = with_channel();
        let mut regs = Call::ChannelInfo { channel: 0 }.to_regs();
        dispatch(&mut vm, &mut regs);
        let info =
            ChannelInfo::from_values(decode_return([regs[0], regs[1], regs[2], regs[3]]).unwrap());
        assert_eq!(
            (info.ipa, info.pages, info.peer_vm, info.flags),
            (channel_ipa(0), 1, 4, 0)
        );
    }

    #[test]
    fn notify_reaches_the_peer_and_unknown_channels_are_refused() {
        let mut vm = with_channel();
        let mut regs = Call::ChannelNotify { channel: 0 }.to_regs();
        assert_eq!(
            dispatch(&mut vm, &mut regs),
            Action::Notify { vm: 4, event: 9 }
        );
        assert_eq!(regs[0], 0);
        let mut regs = Call::ChannelNotify { channel: 1 }.to_regs();
        assert_eq!(dispatch(&mut vm, &mut regs), Action::Resume);
        assert_eq!(regs[0] as i64, Error::InvalidParameters.code());
    }
}
