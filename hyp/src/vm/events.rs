//! A VM's events: numbered virtual interrupts. An event is pending until the guest acks it;
//! a pending event that is not masked raises the vCPU's virtual IRQ (HCR_EL2.VI), identically
//! on GICv2 and GICv3 and with no GIC page in the guest. The hyp owns this state and mirrors it
//! into the guest's read-only event page. The page is the VM's; each event is routed to one
//! vCPU (vCPU 0 unless EVENT_SEND or the vCPU's own timer named another), whose virtual IRQ it
//! raises.

use hypercall_abi::Error;
use hypercall_abi::event::{EVENT_COUNT, EventSource};
use hypercall_abi::layout::EventPage;

/// Fixed event numbers of the sources every VM has; channel `n` is `FIRST_CHANNEL + n`.
pub const TIMER_EVENT: u32 = 0;
/// Console input waiting.
pub const CONSOLE_EVENT: u32 = 1;
/// Block requests completed.
pub const BLOCK_EVENT: u32 = 2;
/// The first channel's event.
pub const FIRST_CHANNEL_EVENT: u32 = 8;

const WORDS: usize = EVENT_COUNT as usize / 64;

/// Pending and masked bits of a VM's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    pending: [u64; WORDS],
    masked: [u64; WORDS],
    channels: u32,
    /// The vCPU each event was last raised on.
    route: [u8; EVENT_COUNT as usize],
}

fn bit(event: u32) -> (usize, u64) {
    ((event / 64) as usize, 1 << (event % 64))
}

impl Events {
    /// All events clear and masked: a guest unmasks the ones it handles.
    pub fn new(channels: u32) -> Self {
        Self {
            pending: [0; WORDS],
            masked: [u64::MAX; WORDS],
            channels,
            route: [0; EVENT_COUNT as usize],
        }
    }

    /// The event delivering `source` (EVENT_BIND).
    pub fn bind(&self, source: EventSource) -> Result<u32, Error> {
        match source {
            EventSource::VirtualTimer => Ok(TIMER_EVENT),
            EventSource::ConsoleRx => Ok(CONSOLE_EVENT),
            EventSource::BlockCompletion => Ok(BLOCK_EVENT),
            EventSource::Channel { channel } if channel < self.channels => {
                Ok(FIRST_CHANNEL_EVENT + channel)
            }
            EventSource::Channel { .. } => Err(Error::Denied),
        }
    }

    fn check(event: u32) -> Result<(usize, u64), Error> {
        if event < EVENT_COUNT {
            Ok(bit(event))
        } else {
            Err(Error::InvalidParameters)
        }
    }

    /// Declares how many channels the VM has (their events become bindable).
    pub fn set_channels(&mut self, channels: u32) {
        self.channels = channels;
    }

    /// Makes `event` pending, for vCPU 0.
    pub fn raise(&mut self, event: u32) -> Result<(), Error> {
        self.raise_on(event, 0)
    }

    /// Makes `event` pending, for vCPU `vcpu` (its virtual IRQ).
    pub fn raise_on(&mut self, event: u32, vcpu: u8) -> Result<(), Error> {
        let (w, b) = Self::check(event)?;
        self.pending[w] |= b;
        self.route[event as usize] = vcpu;
        Ok(())
    }

    /// Clears a pending event (EVENT_ACK).
    pub fn ack(&mut self, event: u32) -> Result<(), Error> {
        let (w, b) = Self::check(event)?;
        self.pending[w] &= !b;
        Ok(())
    }

    /// EVENT_MASK (`true`) and EVENT_UNMASK (`false`).
    pub fn set_masked(&mut self, event: u32, masked: bool) -> Result<(), Error> {
        let (w, b) = Self::check(event)?;
        if masked {
            self.masked[w] |= b
        } else {
            self.masked[w] &= !b
        }
        Ok(())
    }

    /// Whether something is pending and not masked, on any vCPU.
    #[cfg(test)]
    pub fn deliverable(&self) -> bool {
        self.pending
            .iter()
            .zip(&self.masked)
            .any(|(p, m)| p & !m != 0)
    }

    /// Whether vCPU `vcpu`'s virtual IRQ should be raised: an event routed to it is pending
    /// and not masked.
    pub fn deliverable_to(&self, vcpu: u8) -> bool {
        self.pending
            .iter()
            .zip(&self.masked)
            .enumerate()
            .any(|(w, (p, m))| {
                let mut bits = p & !m;
                while bits != 0 {
                    let event = w * 64 + bits.trailing_zeros() as usize;
                    if self.route[event] == vcpu {
                        return true;
                    }
                    bits &= bits - 1;
                }
                false
            })
    }

    /// The guest-visible page.
    pub fn page(&self) -> EventPage {
        EventPage {
            pending: self.pending,
            masked: self.masked,
            reserved: [0; 8],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_unmasked_event_is_deliverable_until_acked() {
        let mut e = Events::new(0);
        e.raise(CONSOLE_EVENT).unwrap();
        assert!(
            e.page().pending[0] & 1 << CONSOLE_EVENT != 0 && !e.deliverable(),
            "masked at first"
        );
        e.set_masked(CONSOLE_EVENT, false).unwrap();
        assert!(e.deliverable());
        e.ack(CONSOLE_EVENT).unwrap();
        assert!(!e.deliverable() && e.page().pending[0] == 0);
    }

    #[test]
    fn masking_holds_delivery_but_keeps_the_event() {
        let mut e = Events::new(0);
        e.set_masked(200, false).unwrap();
        e.raise(200).unwrap();
        e.set_masked(200, true).unwrap();
        assert!(!e.deliverable());
        e.set_masked(200, false).unwrap();
        assert!(e.deliverable());
        assert_eq!(e.page().pending[3], 1 << (200 - 192));
    }

    #[test]
    fn an_event_raises_the_virtual_irq_of_the_vcpu_it_is_routed_to() {
        let mut e = Events::new(0);
        e.set_masked(100, false).unwrap();
        e.set_masked(101, false).unwrap();
        e.raise_on(100, 2).unwrap();
        assert!(e.deliverable_to(2) && !e.deliverable_to(0) && !e.deliverable_to(1));
        e.raise(101).unwrap();
        assert!(e.deliverable_to(0));
        e.ack(100).unwrap();
        assert!(!e.deliverable_to(2) && e.deliverable_to(0));
    }

    #[test]
    fn event_numbers_and_sources_are_checked() {
        let mut e = Events::new(2);
        assert_eq!(e.raise(EVENT_COUNT), Err(Error::InvalidParameters));
        assert_eq!(e.set_masked(u32::MAX, false), Err(Error::InvalidParameters));
        assert_eq!(
            e.bind(EventSource::Channel { channel: 1 }),
            Ok(FIRST_CHANNEL_EVENT + 1)
        );
        assert_eq!(
            e.bind(EventSource::Channel { channel: 2 }),
            Err(Error::Denied)
        );
        assert_eq!(e.bind(EventSource::VirtualTimer), Ok(TIMER_EVENT));
    }
}
