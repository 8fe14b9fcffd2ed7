//! The guest's side of events: the virtual IRQ handler acknowledges the deliverable events that
//! are this vCPU's and records them, and programs wait for an event in WFI.
//!
//! Which events are a vCPU's (pv-guest's convention, `docs/ABI.md` *event*): the hyp routes
//! each event to one vCPU, but the event page is the VM's, so every vCPU's handler sees every
//! pending event. In a VM of one vCPU, all of them are its own. With several vCPUs:
//!
//! - the virtual timer's event is acknowledged only by a vCPU whose own timer has fired
//!   (`CNTV_CTL_EL0` ENABLE and ISTATUS set);
//! - any other event belongs to vCPU 0 unless a vCPU claimed it ([`claim`]) before raising it
//!   on itself with `EVENT_SEND`: only the owner acknowledges it.
//!
//! Acknowledging ([`ack`]): on a hypervisor of ABI 1.5 or later, which lets the guest clear
//! pending bits in the event page itself (`EVENT_SHARED_ACK`, asked for at boot by [`init`]),
//! an atomic clear of the bit, no call; else `EVENT_ACK`. The timer's event, the IRQ handler's
//! acknowledgements and those just before a WFI always take the call: it unmasks the timer,
//! and it drops the virtual IRQ (a raised one keeps WFI from waiting, and an IRQ handler from
//! returning to code that runs with IRQs unmasked without taking it again).

use crate::arch::{MAX_VCPUS, vcpu_index};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// Whether the hypervisor lets us acknowledge in the event page (set once, by [`init`]).
static ACKS_SHARED: AtomicBool = AtomicBool::new(false);

/// Events each vCPU's IRQ handler has acknowledged (bit n = event n, for events below 64).
static SEEN: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// The vCPU that handles each event (timer aside): vCPU 0 unless claimed.
static OWNER: [AtomicU8; 256] = [const { AtomicU8::new(0) }; 256];

/// Asks to acknowledge events in the event page when the hypervisor offers it (ABI 1.5:
/// `EVENT_SHARED_ACK`); an older one keeps `EVENT_ACK`.
#[cfg(target_os = "none")]
pub fn init(info: &hypercall_abi::BootInfo) {
    use hypercall_abi::{Version, event::EVENT_SHARED_ACK};
    let since = hypercall_abi::CallInfo::find(EVENT_SHARED_ACK).map(|c| c.since);
    let offered = Version::from_u64(info.abi_version).zip(since);
    if offered.is_some_and(|(hyp, since)| hyp >= since) && crate::hv().event_shared_ack().is_ok() {
        ACKS_SHARED.store(true, Ordering::SeqCst);
    }
}

/// Whether events are acknowledged in the event page (its `pending` words are writable).
pub fn acks_shared() -> bool {
    ACKS_SHARED.load(Ordering::SeqCst)
}

/// Acknowledges `event`: an atomic clear of its pending bit when the page is ours to write
/// (not for the timer's event, whose `EVENT_ACK` unmasks the timer), else `EVENT_ACK`.
#[cfg(target_os = "none")]
pub fn ack(info: &hypercall_abi::BootInfo, event: u32) {
    use hypercall_abi::layout::EventPage;
    if !acks_shared() || event == info.timer_event || event >= hypercall_abi::event::EVENT_COUNT {
        let _ = crate::hv().event_ack(event);
        return;
    }
    let word = info.event_page_ipa
        + core::mem::offset_of!(EventPage, pending) as u64
        + 8 * u64::from(event / 64);
    // SAFETY: an aligned u64 of the event page, mapped writable for the VM's life once
    // EVENT_SHARED_ACK succeeded (VA = IPA); the hypervisor sets bits of it atomically, so we
    // clear ours atomically too.
    let word = unsafe { &*(word as *const AtomicU64) };
    word.fetch_and(!(1 << (event % 64)), Ordering::SeqCst);
}

/// Takes the set of events this vCPU's IRQ handler has seen since the last call.
pub fn take_seen() -> u64 {
    SEEN[vcpu_index()].swap(0, Ordering::SeqCst)
}

/// Makes `event` this vCPU's: its IRQ handler acknowledges it, the others leave it alone.
/// Claim an event before raising it on yourself (`EVENT_SEND` to your own index).
pub fn claim(event: u32) {
    if let Some(owner) = OWNER.get(event as usize) {
        owner.store(vcpu_index() as u8, Ordering::SeqCst);
    }
}

/// Whether vCPU `me` of a VM of `vcpus` handles `event` (not the timer's).
fn owns(me: usize, vcpus: u32, event: u32) -> bool {
    vcpus <= 1
        || OWNER
            .get(event as usize)
            .is_some_and(|o| usize::from(o.load(Ordering::SeqCst)) == me)
}

/// Whether this vCPU's own virtual timer has fired (enabled, condition met).
#[cfg(target_os = "none")]
fn own_timer_fired() -> bool {
    let ctl: u64;
    // SAFETY: reads this vCPU's own virtual timer control; no side effects.
    unsafe { core::arch::asm!("mrs {}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack)) };
    ctl & 0b101 == 0b101
}

/// The IRQ vector's work: acknowledge what is pending, not masked and this vCPU's; remember it.
#[cfg(target_os = "none")]
pub fn handle_irq(info: &hypercall_abi::BootInfo) {
    use hypercall_abi::layout::EventPage;
    let me = vcpu_index();
    let single = info.vcpu_count <= 1;
    // SAFETY: the event page is mapped read-only at this IPA for the VM's life (VA = IPA) and
    // holds plain integers; the hypervisor changes it only between our instructions.
    let page = unsafe { core::ptr::read_volatile(info.event_page_ipa as *const EventPage) };
    for (word, (pending, masked)) in page.pending.iter().zip(page.masked).enumerate() {
        let mut bits = pending & !masked;
        while bits != 0 {
            let event = word as u32 * 64 + bits.trailing_zeros();
            bits &= bits - 1;
            if event == info.timer_event {
                if !single && !own_timer_fired() {
                    continue; // another vCPU's timer
                }
                // One-shot: the acknowledgement unmasks the timer, which would fire again at
                // once with its deadline passed.
                // SAFETY: disables this VM's own virtual timer.
                unsafe {
                    core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack))
                };
            } else if !owns(me, info.vcpu_count, event) {
                continue;
            }
            // The call, not the page: it drops the virtual IRQ before we return with IRQs on.
            let _ = crate::hv().event_ack(event);
            if event < 64 {
                SEEN[me].fetch_or(1 << event, Ordering::SeqCst);
            }
        }
    }
}

/// Whether `event` is pending in the event page.
#[cfg(target_os = "none")]
pub fn is_pending(info: &hypercall_abi::BootInfo, event: u32) -> bool {
    use hypercall_abi::layout::EventPage;
    let word = info.event_page_ipa
        + core::mem::offset_of!(EventPage, pending) as u64
        + 8 * u64::from(event / 64);
    // SAFETY: an aligned u64 of the event page, mapped for the VM's life.
    let bits = unsafe { core::ptr::read_volatile(word as *const u64) };
    bits & (1 << (event % 64)) != 0
}

/// Waits in WFI until `ready` holds, `event` being the one raised after `ready` may have
/// become true. An `event` seen pending before a check of `ready` that fails is stale: it is
/// acknowledged and `ready` checked again before the next WFI, so a raise between a check
/// and the wait is never lost (the hypervisor does not let WFI sleep while an unmasked event
/// is pending) and a stale one does not keep waking us.
///
/// An event that was pending when `ready` held is left pending, so `ready` may itself be
/// "`event` is pending" (the caller then acknowledges it once `wait` returns).
#[cfg(target_os = "none")]
pub fn wait(event: u32, mut ready: impl FnMut() -> bool) {
    let info = crate::boot_info();
    loop {
        let pending = is_pending(info, event);
        if ready() {
            return;
        }
        if pending {
            // The call, not the page: a WFI follows, and it would not wait (nor trap) while
            // the virtual IRQ the stale event raised is still up.
            let _ = crate::hv().event_ack(event);
            if ready() {
                return;
            }
        }
        // SAFETY: WFI only waits; the hypervisor wakes this vCPU when an event is raised.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_vcpu_0_s_unless_claimed() {
        assert!(owns(0, 4, 150) && !owns(1, 4, 150));
        assert!(owns(3, 1, 150), "one vCPU: every event is its own");
        claim(151); // on the host, vcpu_index() is 0
        assert!(owns(0, 4, 151));
        OWNER[152].store(2, Ordering::SeqCst);
        assert!(owns(2, 4, 152) && !owns(0, 4, 152));
    }
}
