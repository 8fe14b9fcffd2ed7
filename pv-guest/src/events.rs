//! The guest's side of events: the virtual IRQ handler acknowledges every deliverable event
//! and records it, and programs wait for an event in WFI.

use core::sync::atomic::{AtomicU64, Ordering};

/// Events the IRQ handler has acknowledged (bit n = event n, for events below 64).
static SEEN: AtomicU64 = AtomicU64::new(0);

/// Takes the set of events seen by the IRQ handler since the last call.
pub fn take_seen() -> u64 {
    SEEN.swap(0, Ordering::SeqCst)
}

/// The IRQ vector's work: acknowledge what is pending and not masked, remember it.
#[cfg(target_os = "none")]
pub fn handle_irq(info: &hypercall_abi::BootInfo) {
    use hypercall_abi::layout::EventPage;
    // SAFETY: the event page is mapped read-only at this IPA for the VM's life (VA = IPA) and
    // holds plain integers; the hypervisor changes it only between our instructions.
    let page = unsafe { core::ptr::read_volatile(info.event_page_ipa as *const EventPage) };
    for (word, (pending, masked)) in page.pending.iter().zip(page.masked).enumerate() {
        let mut bits = pending & !masked;
        while bits != 0 {
            let event = word as u32 * 64 + bits.trailing_zeros();
            bits &= bits - 1;
            if event == info.timer_event {
                // One-shot: the acknowledgement unmasks the timer, which would fire again at
                // once with its deadline passed.
                // SAFETY: disables this VM's own virtual timer.
                unsafe {
                    core::arch::asm!("msr cntv_ctl_el0, xzr", "isb", options(nomem, nostack))
                };
            }
            let _ = crate::hv().event_ack(event);
            if event < 64 {
                SEEN.fetch_or(1 << event, Ordering::SeqCst);
            }
        }
    }
}

/// Whether `event` is pending in the event page.
#[cfg(target_os = "none")]
pub fn is_pending(info: &hypercall_abi::BootInfo, event: u32) -> bool {
    let word = info.event_page_ipa + 8 * u64::from(event / 64);
    // SAFETY: an aligned u64 of the read-only event page, mapped for the VM's life.
    let bits = unsafe { core::ptr::read_volatile(word as *const u64) };
    bits & (1 << (event % 64)) != 0
}
