//! A VM's events: numbered virtual interrupts. An event is pending until the guest acks it;
//! a pending event that is not masked raises the vCPU's virtual IRQ (HCR_EL2.VI), identically
//! on GICv2 and GICv3 and with no GIC page in the guest. The hyp owns this state and mirrors it
//! into the guest's event page, word by word and atomically (the guest may read it at any
//! time, from any vCPU). The page is the VM's; each event is routed to one vCPU (vCPU 0 unless
//! EVENT_SEND or the vCPU's own timer named another), whose virtual IRQ it raises. A raise from
//! the hyp (a peer's notify, a device) sets its one bit in the page at once
//! ([`Events::raise_published`]); every change marks the vCPUs whose virtual IRQ it can move
//! ([`Events::take_stale`]), and only theirs are recomputed.
//!
//! Since ABI 1.5 a guest may acknowledge in the page itself (EVENT_SHARED_ACK: the page becomes
//! writable): it clears pending bits there, and the hyp reads them back at its next [`sync`]
//! with no trust beyond "the guest says it saw these": only a cleared bit of an event the hyp
//! had raised counts, a bit the guest set is taken out of the page again, `masked` is never
//! read. The guest may write the page concurrently with a sync on another CPU; every hyp
//! access to a word it shares is one atomic step, so neither side loses the other's bits.
//!
//! [`sync`]: Events::sync

use crate::addr::PhysAddr;
use crate::arch::Cpu;
use crate::arch::stage2::table::frame_atomics;
use crate::vm::mem::GuestMemory;
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall_abi::Error;
use hypercall_abi::event::{EVENT_COUNT, EventSource};
use hypercall_abi::layout::EventPage;

/// Fixed event numbers of the sources every VM has; channel `n` is `FIRST_CHANNEL + n`.
pub const TIMER_EVENT: u32 = 0;
/// Console input waiting.
pub const CONSOLE_EVENT: u32 = 1;
/// Block requests completed.
pub const BLOCK_EVENT: u32 = 2;
/// The VM's PCI device raised its interrupt (ABI 1.6; `vm::device::irq`).
pub const DEVICE_EVENT: u32 = 3;
/// The SMMU stopped a DMA of the VM's device (ABI 1.6).
pub const DEVICE_FAULT_EVENT: u32 = 4;
/// The first channel's event.
pub const FIRST_CHANNEL_EVENT: u32 = 8;

const WORDS: usize = EVENT_COUNT as usize / 64;

/// The words of the event page the hyp keeps: `pending`, then `masked` (the layout's first 64
/// bytes), as the hyp reaches them in the VM's frame.
pub type PageWords = [AtomicU64; 2 * WORDS];

/// Pending and masked bits of a VM's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Events {
    pending: [u64; WORDS],
    masked: [u64; WORDS],
    channels: u32,
    /// The vCPU each event was last raised on.
    route: [u8; EVENT_COUNT as usize],
    /// Where the VM sees its event page (0: it has none).
    page_ipa: u64,
    /// Where the hyp reaches the page's words, found by the first sync's stage-2 walk (0: not
    /// yet): the page is pinned for the VM's life, and a restart makes new `Events`.
    page_pa: u64,
    /// Pending bits raised and cleared since the page last saw them.
    unpublished_raised: [u64; WORDS],
    unpublished_cleared: [u64; WORDS],
    /// The `masked` words changed since the page last saw them, one bit each.
    unpublished_masks: u8,
    /// The words with anything unpublished (a raise, a clear or a mask), one bit each: a sync
    /// visits only those.
    unpublished_words: u8,
    /// The guest acknowledges in the page (EVENT_SHARED_ACK).
    acks_shared: bool,
    /// The vCPUs whose virtual IRQ may no longer be what their HCR_EL2 says, a bit each: every
    /// change that can make an event deliverable or not (a raise, an acknowledgement, a mask,
    /// an acknowledgement taken from the page) marks the vCPU the event is routed to; the
    /// recompute visits only those ([`Events::take_stale`]).
    stale: u8,
}

fn bit(event: u32) -> (usize, u64) {
    ((event / 64) as usize, 1 << (event % 64))
}

/// A vCPU's bit in [`Events::stale`] (a VM has at most 8 vCPUs).
fn vcpu_bit(vcpu: u8) -> u8 {
    1 << (vcpu % 8)
}

impl Events {
    /// All events clear and masked: a guest unmasks the ones it handles.
    pub fn new(channels: u32) -> Self {
        Self {
            pending: [0; WORDS],
            masked: [u64::MAX; WORDS],
            channels,
            route: [0; EVENT_COUNT as usize],
            page_ipa: 0,
            page_pa: 0,
            unpublished_raised: [0; WORDS],
            unpublished_cleared: [0; WORDS],
            unpublished_masks: 0,
            unpublished_words: 0,
            acks_shared: false,
            // The first recompute looks at every vCPU.
            stale: u8::MAX,
        }
    }

    /// The same, mirrored into the event page at `ipa` (which holds [`Events::page`] already).
    pub fn at_page(self, ipa: u64) -> Self {
        Self {
            page_ipa: ipa,
            ..self
        }
    }

    /// Where the VM sees its event page (0: none).
    pub fn page_ipa(&self) -> u64 {
        self.page_ipa
    }

    /// From now on the guest acknowledges in the page too (EVENT_SHARED_ACK).
    pub fn share_acks(&mut self) {
        self.acks_shared = true;
    }

    /// Whether the guest acknowledges in the page: its virtual IRQ may be stale until a sync.
    pub fn acks_shared(&self) -> bool {
        self.acks_shared
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
            // Whether the VM owns a device is the caller's check (`hypercall::event::bind`).
            EventSource::DeviceInterrupt => Ok(DEVICE_EVENT),
            EventSource::DeviceFault => Ok(DEVICE_FAULT_EVENT),
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
        self.raise_on(event, 0).map(|_| ())
    }

    /// Makes `event` pending, for vCPU `vcpu` (its virtual IRQ); true when it is delivered
    /// there (not masked: the vCPU's virtual IRQ is up for it).
    #[inline]
    pub fn raise_on(&mut self, event: u32, vcpu: u8) -> Result<bool, Error> {
        let (w, b) = Self::check(event)?;
        let delivered = self.make_pending(event, vcpu);
        self.unpublished_raised[w] |= b;
        self.unpublished_cleared[w] &= !b;
        self.unpublished_words |= 1 << w;
        Ok(delivered)
    }

    /// [`Events::raise_on`] but for the page: `event` (checked) pending for `vcpu`, the vCPUs
    /// whose virtual IRQ that can move marked stale; true when it is delivered.
    #[inline(always)]
    fn make_pending(&mut self, event: u32, vcpu: u8) -> bool {
        let (w, b) = bit(event);
        let was = self.route[event as usize];
        let delivered = self.masked[w] & b == 0;
        if delivered {
            if self.pending[w] & b == 0 {
                self.stale |= vcpu_bit(vcpu);
            } else if was != vcpu {
                // The vCPU it was pending for may lose its virtual IRQ. Pending for this
                // one already (a peer's notify before the last was taken): nothing moves.
                self.stale |= vcpu_bit(was) | vcpu_bit(vcpu);
            }
        }
        self.pending[w] |= b;
        self.route[event as usize] = vcpu;
        delivered
    }

    /// Clears a pending event (EVENT_ACK).
    pub fn ack(&mut self, event: u32) -> Result<(), Error> {
        let (w, b) = Self::check(event)?;
        if self.pending[w] & !self.masked[w] & b != 0 {
            self.stale |= vcpu_bit(self.route[event as usize]);
        }
        self.pending[w] &= !b;
        self.unpublished_cleared[w] |= b;
        self.unpublished_raised[w] &= !b;
        self.unpublished_words |= 1 << w;
        Ok(())
    }

    /// EVENT_MASK (`true`) and EVENT_UNMASK (`false`).
    pub fn set_masked(&mut self, event: u32, masked: bool) -> Result<(), Error> {
        let (w, b) = Self::check(event)?;
        if self.pending[w] & b != 0 {
            self.stale |= vcpu_bit(self.route[event as usize]);
        }
        if masked {
            self.masked[w] |= b
        } else {
            self.masked[w] &= !b
        }
        self.unpublished_masks |= 1 << w;
        self.unpublished_words |= 1 << w;
        Ok(())
    }

    /// Brings the VM's event page and this state together: what changed here goes into the
    /// page, then (when the guest acknowledges there) what the guest cleared comes back. Before
    /// the virtual IRQs are recomputed. Nothing to do, and no walk, for a guest that does not
    /// share acknowledgements when nothing changed.
    #[inline]
    pub fn sync(&mut self, memory: &GuestMemory<Cpu>) {
        if self.unpublished_words == 0 && !self.acks_shared {
            return;
        }
        if let Some(words) = self.page_words(memory) {
            self.sync_words(words);
        }
    }

    /// The page's words as the hyp reaches them. The page is pinned for the VM's life (the
    /// guest can neither unmap nor move it): one walk finds it, later calls go straight to the
    /// frame.
    #[inline]
    fn page_words<'m>(&mut self, memory: &'m GuestMemory<Cpu>) -> Option<&'m PageWords> {
        if self.page_pa != 0 {
            return Some(frame_atomics(memory, PhysAddr::new(self.page_pa)));
        }
        let words = memory.shared_words::<{ 2 * WORDS }>(self.page_ipa).ok()?;
        self.page_pa = words.as_ptr() as u64;
        Some(words)
    }

    /// [`Events::raise_on`] from the hyp (a peer's notify, a device, a timer), with just that
    /// bit set in the page at once: one atomic, no look at the rest of the page (what else is
    /// unpublished waits for the next [`Events::sync`], and the guest's acknowledgements in the
    /// page too: they can only lower virtual IRQs, and the vCPU this raises for gets its own
    /// up either way).
    /// True when it is delivered (as [`Events::raise_on`]): `vcpu`'s virtual IRQ is up for it,
    /// whatever else the guest has acknowledged in its page.
    #[inline]
    pub fn raise_published(
        &mut self,
        event: u32,
        vcpu: u8,
        memory: &GuestMemory<Cpu>,
    ) -> Result<bool, Error> {
        Self::check(event)?;
        match self.page_words(memory) {
            Some(words) => Ok(self.raise_into(event, vcpu, words)),
            None => self.raise_on(event, vcpu),
        }
    }

    /// [`Events::raise_published`] on the page's words, `event` checked: set in the page now
    /// and no longer waiting for a sync (what else of its word waits still does).
    #[inline]
    fn raise_into(&mut self, event: u32, vcpu: u8, words: &PageWords) -> bool {
        let delivered = self.make_pending(event, vcpu);
        let (w, b) = bit(event);
        self.unpublished_raised[w] &= !b;
        self.unpublished_cleared[w] &= !b;
        // Its word stays marked while other changes to it wait (marked when they were made).
        if self.unpublished_raised[w] | self.unpublished_cleared[w] == 0
            && self.unpublished_masks & 1 << w == 0
        {
            self.unpublished_words &= !(1 << w);
        }
        words[w].fetch_or(b, Ordering::SeqCst);
        delivered
    }

    /// [`Events::sync`] on the page's words.
    pub fn sync_words(&mut self, words: &PageWords) {
        let (pending, masked) = words.split_at(WORDS);
        let mut dirty = self.unpublished_words;
        while dirty != 0 {
            let w = dirty.trailing_zeros() as usize % WORDS;
            dirty &= dirty - 1;
            // Set and clear, never store: the guest may clear other bits of the word meanwhile.
            let raised = core::mem::take(&mut self.unpublished_raised[w]);
            if raised != 0 {
                pending[w].fetch_or(raised, Ordering::SeqCst);
            }
            let cleared = core::mem::take(&mut self.unpublished_cleared[w]);
            if cleared != 0 {
                pending[w].fetch_and(!cleared, Ordering::SeqCst);
            }
            if self.unpublished_masks & 1 << w != 0 {
                masked[w].store(self.masked[w], Ordering::SeqCst);
            }
        }
        self.unpublished_words = 0;
        self.unpublished_masks = 0;
        if self.acks_shared {
            self.take_acks(pending);
        }
    }

    /// What the guest cleared in the page's `pending` words: for events the hyp had raised,
    /// acknowledgements; bits it set of events not pending are taken out of the page again
    /// (one atomic clear of just those: its concurrent clears stand). No hyp raise runs
    /// meanwhile: the caller holds the VM (`&mut self`).
    fn take_acks(&mut self, pending: &[AtomicU64]) {
        for (w, shared) in pending.iter().enumerate().take(WORDS) {
            let held = self.pending[w];
            let seen = shared.load(Ordering::SeqCst);
            if seen == held {
                continue;
            }
            let mut delivered = held & !seen & !self.masked[w];
            self.pending[w] = held & seen;
            while delivered != 0 {
                let event = w * 64 + delivered.trailing_zeros() as usize;
                self.stale |= vcpu_bit(self.route[event % EVENT_COUNT as usize]);
                delivered &= delivered - 1;
            }
            let forged = seen & !held;
            if forged != 0 {
                shared.fetch_and(!forged, Ordering::SeqCst);
            }
        }
    }

    /// The vCPUs whose virtual IRQ may have changed since the last call, a bit each (all of
    /// them at first); the caller recomputes theirs.
    pub fn take_stale(&mut self) -> u8 {
        core::mem::take(&mut self.stale)
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
    #[inline]
    pub fn deliverable_to(&self, vcpu: u8) -> bool {
        for w in 0..WORDS {
            let mut bits = self.pending[w] & !self.masked[w];
            while bits != 0 {
                let event = w * 64 + bits.trailing_zeros() as usize;
                if self.route[event % EVENT_COUNT as usize] == vcpu {
                    return true;
                }
                bits &= bits - 1;
            }
        }
        false
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
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// A fresh event page as the hyp writes it at build: nothing pending, all masked.
    fn page() -> PageWords {
        core::array::from_fn(|i| AtomicU64::new(if i < WORDS { 0 } else { u64::MAX }))
    }

    fn load(words: &PageWords, i: usize) -> u64 {
        words[i].load(Ordering::SeqCst)
    }

    #[test]
    fn the_page_gets_each_change_word_by_word() {
        let words = page();
        let mut e = Events::new(0);
        e.set_masked(70, false).unwrap();
        e.raise(70).unwrap();
        e.raise(3).unwrap();
        e.sync_words(&words);
        assert_eq!((load(&words, 0), load(&words, 1)), (1 << 3, 1 << 6));
        assert_eq!(load(&words, WORDS + 1), !(1 << 6), "masked mirrored");
        e.ack(70).unwrap();
        e.sync_words(&words);
        assert_eq!((load(&words, 0), load(&words, 1)), (1 << 3, 0));
    }

    #[test]
    fn a_bit_cleared_in_the_page_acknowledges_only_a_guest_that_shares_acks() {
        let words = page();
        let mut e = Events::new(0);
        e.set_masked(CONSOLE_EVENT, false).unwrap();
        e.raise(CONSOLE_EVENT).unwrap();
        e.sync_words(&words);
        // A guest of an older minor cannot write the page; were it written, it would not count.
        words[0].fetch_and(!(1 << CONSOLE_EVENT), Ordering::SeqCst);
        e.sync_words(&words);
        assert!(
            e.deliverable(),
            "not an acknowledgement before EVENT_SHARED_ACK"
        );
        e.share_acks();
        e.sync_words(&words);
        assert!(!e.deliverable() && e.page().pending[0] == 0, "acknowledged");
        // Raised again after the acknowledgement: pending again, in both.
        e.raise(CONSOLE_EVENT).unwrap();
        e.sync_words(&words);
        assert!(e.deliverable() && load(&words, 0) == 1 << CONSOLE_EVENT);
    }

    #[test]
    fn a_raise_keeps_an_acknowledgement_the_hyp_has_not_taken_yet() {
        let words = page();
        let mut e = Events::new(0);
        e.share_acks();
        e.raise(1).unwrap();
        e.raise(3).unwrap();
        e.sync_words(&words);
        // The guest acknowledges 3; before the hyp looks, it raises 5 in the same word.
        words[0].fetch_and(!(1 << 3), Ordering::SeqCst);
        e.raise(5).unwrap();
        e.sync_words(&words);
        assert_eq!(e.page().pending[0], 1 << 1 | 1 << 5);
        assert_eq!(load(&words, 0), 1 << 1 | 1 << 5);
    }

    #[test]
    fn what_a_guest_forges_in_the_page_is_never_an_event() {
        let words = page();
        let mut e = Events::new(0);
        e.share_acks();
        e.set_masked(5, false).unwrap();
        e.raise(9).unwrap();
        e.sync_words(&words);
        // Every pending bit set, every mask cleared.
        for w in &words[..WORDS] {
            w.store(u64::MAX, Ordering::SeqCst);
        }
        for w in &words[WORDS..] {
            w.store(0, Ordering::SeqCst);
        }
        e.sync_words(&words);
        assert_eq!(
            e.page().pending,
            [1 << 9, 0, 0, 0],
            "only what the hyp raised"
        );
        assert!(
            !e.deliverable(),
            "event 9 stays masked whatever `masked` says"
        );
        assert_eq!(
            core::array::from_fn::<u64, WORDS, _>(|i| load(&words, i)),
            [1 << 9, 0, 0, 0],
            "the forged bits are taken out of the page"
        );
        // The hyp never read `masked`; a mask change writes the word again.
        e.set_masked(5, true).unwrap();
        e.sync_words(&words);
        assert_eq!(load(&words, WORDS), u64::MAX);
    }

    /// A guest vCPU on another CPU acknowledges what the hyp raises (two events) and scribbles
    /// garbage on other bits of the same word, while the hyp raises, syncs and re-raises: no
    /// acknowledgement and no raise is ever lost, and no forged bit becomes an event.
    #[test]
    fn concurrent_guest_writes_lose_neither_side_s_bits() {
        const ROUNDS: u32 = 2_000;
        const ACKED: [u64; 2] = [1 << 1, 1 << 3];
        const KEPT: u64 = 1 << 2;
        const FORGED: u64 = 0xF0;
        let words = Arc::new(page());
        let stop = Arc::new(AtomicBool::new(false));
        let guest = {
            let (words, stop) = (words.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut acks = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let w = &words[0];
                    w.fetch_or(FORGED, Ordering::SeqCst);
                    for bit in ACKED {
                        if w.load(Ordering::SeqCst) & bit != 0 {
                            w.fetch_and(!bit, Ordering::SeqCst);
                            acks += 1;
                        }
                    }
                    std::thread::yield_now();
                }
                acks
            })
        };
        let mut e = Events::new(0);
        e.share_acks();
        for event in [1, 2, 3] {
            e.set_masked(event, false).unwrap();
        }
        e.raise(2).unwrap();
        let mut raised = 0;
        while raised < ROUNDS {
            e.sync_words(&words);
            assert_eq!(
                e.page().pending[0] & FORGED,
                0,
                "a forged bit became an event"
            );
            assert_ne!(
                e.page().pending[0] & KEPT,
                0,
                "a raise never acknowledged was lost"
            );
            for (event, bit) in [1, 3].into_iter().zip(ACKED) {
                if e.page().pending[0] & bit == 0 {
                    e.raise(event).unwrap();
                    raised += 1;
                }
            }
            std::thread::yield_now();
        }
        // The last raises' acknowledgements, then the guest stops.
        while {
            e.sync_words(&words);
            e.page().pending[0] & (ACKED[0] | ACKED[1]) != 0
        } {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
        assert_eq!(
            guest.join().unwrap(),
            raised,
            "every raise acknowledged once"
        );
        e.sync_words(&words);
        assert_eq!(
            load(&words, 0),
            KEPT,
            "the page holds what is pending, nothing forged"
        );
    }

    #[test]
    fn a_raise_published_at_once_leaves_the_rest_of_its_word_to_the_sync() {
        let words = page();
        let mut e = Events::new(0);
        e.raise(3).unwrap();
        e.sync_words(&words);
        // An EVENT_ACK of 3 not yet in the page, then a raise of 5 in the same word.
        e.ack(3).unwrap();
        e.raise_into(5, 0, &words);
        assert_eq!(
            load(&words, 0),
            1 << 3 | 1 << 5,
            "5 at once, the ack of 3 waits"
        );
        e.sync_words(&words);
        assert_eq!(
            load(&words, 0),
            1 << 5,
            "the sync publishes the ack, keeps the raise"
        );
        // Nothing else unpublished: the raise alone leaves nothing for a sync.
        e.raise_into(7, 0, &words);
        assert_eq!(e.unpublished_words, 0);
        assert_eq!(load(&words, 0), 1 << 5 | 1 << 7);
    }

    #[test]
    fn only_the_vcpus_whose_delivery_can_have_changed_are_stale() {
        let words = page();
        let mut e = Events::new(0);
        e.share_acks();
        e.take_stale();
        assert!(!e.raise_on(40, 2).unwrap(), "masked: not delivered");
        assert!(!e.deliverable_to(2));
        assert_eq!(e.take_stale(), 0, "a masked event moves no virtual IRQ");
        e.set_masked(40, false).unwrap();
        assert_eq!(e.take_stale(), 1 << 2, "unmasked: its vCPU's");
        // Delivered, so the vCPU's virtual IRQ is up whatever else it acknowledged: the notify's
        // hand-over loads it without a look at its page (vm::sched::load's `irq_fresh`).
        assert!(e.raise_on(40, 3).unwrap(), "unmasked: delivered");
        assert!(e.deliverable_to(3));
        assert_eq!(e.take_stale(), 1 << 2 | 1 << 3, "moved: both vCPUs'");
        e.raise_on(40, 3).unwrap();
        assert_eq!(
            e.take_stale(),
            0,
            "pending for that vCPU already: nothing moves"
        );
        e.sync_words(&words);
        assert_eq!(e.take_stale(), 0, "publishing moves nothing");
        words[0].fetch_and(!(1 << 40), Ordering::SeqCst);
        e.sync_words(&words);
        assert_eq!(
            e.take_stale(),
            1 << 3,
            "acknowledged in the page: its vCPU's"
        );
        e.raise_on(41, 1).unwrap();
        e.ack(41).unwrap();
        assert_eq!(
            e.take_stale(),
            0,
            "masked: neither raise nor ack moves anything"
        );
        e.set_masked(41, false).unwrap();
        e.raise_on(41, 1).unwrap();
        e.take_stale();
        e.ack(41).unwrap();
        assert_eq!(
            e.take_stale(),
            1 << 1,
            "EVENT_ACK of a delivered event: its vCPU's"
        );
    }

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
