//! A device's interrupt and the DMAs the SMMU stopped, as its owner's events (ABI 1.6).
//!
//! The owner never sees the GIC. The device's INTx (level-triggered, its SPI from the host
//! bridge's `interrupt-map`) is the hyp's: when it takes it ([`on_interrupt`], any CPU, any VM
//! running) it disables the SPI at the distributor, ends it, and marks the owner; the owner's
//! device event is raised when no VM's lock is held ([`deliver`]). The SPI stays disabled until
//! the owner says it handled it ([`acknowledge`]: `EVENT_DEVICE_ACK`), so a guest that leaves
//! its line asserted costs the hyp one interrupt per call it makes, never a storm.
//!
//! A DMA the SMMU stopped ([`dma_fault`], called where the event drain attributes a fault to a
//! stream) counts for the stream's owner, which reads the count and the last address with
//! `EVENT_DEVICE_FAULTS` and hears of it on its device fault event.
//!
//! The state is per VM index, in atomics: the interrupt path and the SMMU drain reach it with
//! no VM's lock, whichever VM they interrupted.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use manifest::MAX_VMS;

/// A stream ID or an INTID, or none, kept inverted: "none" is 0, so that [`OWNERS`] is all
/// zeros and lives in .bss (as `u32::MAX`, the marker it was, the table took 1.5 KiB of the
/// Image's .data). `u32::MAX` itself is never an ID here (no SMMU stream or GIC INTID has it).
struct MaybeId(AtomicU32);

impl MaybeId {
    const fn none() -> Self {
        Self(AtomicU32::new(0))
    }

    fn decode(raw: u32) -> Option<u32> {
        Some(!raw).filter(|&id| id != u32::MAX)
    }

    fn load(&self) -> Option<u32> {
        Self::decode(self.0.load(Ordering::Acquire))
    }

    /// Whether it holds `id` (never for `u32::MAX`).
    fn is(&self, id: u32) -> bool {
        id != u32::MAX && self.0.load(Ordering::Acquire) == !id
    }

    fn store(&self, id: Option<u32>) {
        self.0.store(!id.unwrap_or(u32::MAX), Ordering::Release);
    }

    /// What it held; it holds none now.
    fn take(&self) -> Option<u32> {
        Self::decode(self.0.swap(0, Ordering::AcqRel))
    }
}

/// What the hyp keeps of a VM's device.
struct Owner {
    /// The stream ID of the device the boot info describes (none: the VM owns none).
    stream: MaybeId,
    /// The INTID of its interrupt (none: it has none the hyp can route).
    intid: MaybeId,
    /// DMAs the SMMU stopped in this life, and the last one's input address.
    faults: AtomicU64,
    last_fault: AtomicU64,
}

static OWNERS: [Owner; MAX_VMS] = [const {
    Owner {
        stream: MaybeId::none(),
        intid: MaybeId::none(),
        faults: AtomicU64::new(0),
        last_fault: AtomicU64::new(0),
    }
}; MAX_VMS];

/// VMs (bit = index) whose device interrupt was taken, and whose device DMA was stopped, since
/// [`deliver`] last looked.
static INTERRUPTED: AtomicU64 = AtomicU64::new(0);
static FAULTED: AtomicU64 = AtomicU64::new(0);

const _: () = assert!(MAX_VMS <= u64::BITS as usize);

/// Why a device's interrupt cannot be routed to its VM.
#[derive(Debug, PartialEq, Eq)]
pub struct Shared {
    /// The VM whose device raises the same SPI.
    pub with: usize,
}

/// Makes VM `vm` the owner of stream `stream` and, if it has one, of interrupt `intid`: its
/// fault count starts at zero, and the interrupt is enabled for the hyp. Refused (nothing
/// recorded) when another VM's device raises the same interrupt: one guest could then hold it
/// masked, or asserted, for the other.
pub fn route(vm: usize, stream: u32, intid: Option<u32>) -> Result<(), Shared> {
    let Some(owner) = OWNERS.get(vm) else {
        return Ok(());
    };
    if let Some(intid) = intid
        && let Some(with) = OWNERS
            .iter()
            .enumerate()
            .position(|(i, o)| i != vm && o.intid.is(intid))
    {
        return Err(Shared { with });
    }
    owner.faults.store(0, Ordering::Relaxed);
    owner.last_fault.store(0, Ordering::Relaxed);
    owner.stream.store(Some(stream));
    owner.intid.store(intid);
    clear_marks(vm);
    if let Some(intid) = intid {
        enable(intid, true);
    }
    Ok(())
}

/// Takes VM `vm`'s device back (it ends, is killed or restarts): its interrupt is disabled and
/// routed nowhere, its marks and counts forgotten.
pub fn unroute(vm: usize) {
    let Some(owner) = OWNERS.get(vm) else { return };
    if let Some(intid) = owner.intid.take() {
        enable(intid, false);
    }
    owner.stream.store(None);
    clear_marks(vm);
}

fn clear_marks(vm: usize) {
    INTERRUPTED.fetch_and(!(1 << vm), Ordering::AcqRel);
    FAULTED.fetch_and(!(1 << vm), Ordering::AcqRel);
}

/// Whether VM `vm` owns a device (its device event sources and calls are its own).
pub fn owns(vm: usize) -> bool {
    OWNERS.get(vm).is_some_and(|o| o.stream.load().is_some())
}

/// Serves interrupt `intid` if it is an owned device's (false if not): it is disabled until
/// its owner acknowledges, and the owner marked for [`deliver`]. The caller ends it.
pub fn on_interrupt(intid: u32) -> bool {
    let Some(vm) = OWNERS.iter().position(|o| o.intid.is(intid)) else {
        return false;
    };
    enable(intid, false);
    INTERRUPTED.fetch_or(1 << vm, Ordering::AcqRel);
    true
}

/// `EVENT_DEVICE_ACK` of VM `vm` (the caller cleared the event): its device's interrupt is
/// enabled again. False if it owns no device.
pub fn acknowledge(vm: usize) -> bool {
    let Some(owner) = OWNERS.get(vm).filter(|_| owns(vm)) else {
        return false;
    };
    if let Some(intid) = owner.intid.load() {
        enable(intid, true);
    }
    true
}

/// `EVENT_DEVICE_FAULTS` of VM `vm`: (DMAs the SMMU stopped, the last one's IPA); None if it
/// owns no device.
pub fn faults(vm: usize) -> Option<(u64, u64)> {
    let owner = OWNERS.get(vm).filter(|_| owns(vm))?;
    Some((
        owner.faults.load(Ordering::Acquire),
        owner.last_fault.load(Ordering::Acquire),
    ))
}

/// The SMMU stopped a DMA of stream `stream` at input address `ipa` (one run of fault records,
/// as the event drain logs it): counted for the stream's owner, which is marked for
/// [`deliver`]. A stream no VM owns counts for nobody.
pub fn dma_fault(stream: u32, ipa: u64) {
    let Some(vm) = OWNERS.iter().position(|o| o.stream.is(stream)) else {
        return;
    };
    let owner = &OWNERS[vm];
    owner.last_fault.store(ipa, Ordering::Release);
    owner.faults.fetch_add(1, Ordering::AcqRel);
    FAULTED.fetch_or(1 << vm, Ordering::AcqRel);
}

/// Takes VM `vm`'s own marks: (its interrupt was taken, its DMA was stopped).
pub fn take_marks(vm: usize) -> (bool, bool) {
    let bit = 1u64 << (vm % MAX_VMS);
    let take = |marks: &AtomicU64| {
        marks.load(Ordering::Relaxed) & bit != 0
            && marks.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    };
    (take(&INTERRUPTED), take(&FAULTED))
}

/// Takes every VM's marks: (interrupted, faulted), bit = VM index.
fn take_all_marks() -> (u64, u64) {
    let take = |marks: &AtomicU64| {
        if marks.load(Ordering::Relaxed) == 0 {
            0
        } else {
            marks.swap(0, Ordering::AcqRel)
        }
    };
    (take(&INTERRUPTED), take(&FAULTED))
}

/// Raises the device events of the VMs marked since the last look: each VM's lock in turn, no
/// other held. Two loads when nothing happened.
#[cfg(target_os = "none")]
pub fn deliver() {
    let (interrupted, faulted) = take_all_marks();
    let mut all = interrupted | faulted;
    while all != 0 {
        let i = all.trailing_zeros() as usize;
        all &= all - 1;
        let mut guard = crate::vm::sched::slot(crate::vm::ids::VmIndex::new(i)).lock();
        if let Some(vm) = guard.as_mut().filter(|vm| vm.is_alive()) {
            raise(vm, interrupted & (1 << i) != 0, faulted & (1 << i) != 0);
        }
    }
}

/// Raises `vm`'s device interrupt and device fault events as marked.
#[cfg(target_os = "none")]
pub fn raise(vm: &mut crate::vm::Vm, interrupted: bool, faulted: bool) {
    use crate::vm::event::{DEVICE_EVENT, DEVICE_FAULT_EVENT};
    if interrupted {
        vm.raise_event(DEVICE_EVENT);
    }
    if faulted {
        vm.raise_event(DEVICE_FAULT_EVENT);
    }
}

#[cfg(target_os = "none")]
fn enable(intid: u32, on: bool) {
    if on {
        // Routed to this CPU, the one its owner routes or acknowledges it on: the interrupt
        // its device raises next costs its owner's CPU the exit, not another VM's.
        crate::dev::gic::enable_spi(intid);
    } else {
        crate::dev::gic::set_spi_enabled(intid, false);
    }
}

/// On the host: what the GIC would have been told, for the tests.
#[cfg(not(target_os = "none"))]
fn enable(intid: u32, on: bool) {
    #[cfg(test)]
    tests::ENABLED.with(|e| e.borrow_mut().push((intid, on)));
    #[cfg(not(test))]
    let _ = (intid, on);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    std::thread_local! {
        /// What the GIC was told, in order (host stand-in).
        pub static ENABLED: RefCell<std::vec::Vec<(u32, bool)>> = const { RefCell::new(std::vec::Vec::new()) };
    }

    fn gic() -> std::vec::Vec<(u32, bool)> {
        ENABLED.with(|e| e.take())
    }

    #[test]
    fn an_id_is_none_when_zero_and_never_u32_max() {
        let id = MaybeId::none();
        assert_eq!((id.load(), id.is(0), id.is(u32::MAX)), (None, false, false));
        for value in [0, 8, 1019, u32::MAX - 1] {
            id.store(Some(value));
            assert_eq!(
                (id.load(), id.is(value), id.is(value ^ 1)),
                (Some(value), true, false)
            );
        }
        assert_eq!(id.take(), Some(u32::MAX - 1));
        assert_eq!(
            (id.load(), id.take(), id.0.load(Ordering::Relaxed)),
            (None, None, 0)
        );
        id.store(Some(u32::MAX));
        assert_eq!((id.load(), id.is(u32::MAX)), (None, false));
    }

    // Each test uses VM indices of its own: the table is the process's.

    #[test]
    fn a_taken_interrupt_stays_disabled_until_its_owner_acknowledges() {
        route(10, 8, Some(36)).unwrap();
        assert_eq!(gic(), [(36, true)]);
        assert!(on_interrupt(36));
        assert_eq!(gic(), [(36, false)]);
        assert_eq!(take_marks(10), (true, false));
        // A second look finds nothing: one raise per interrupt taken.
        assert_eq!(take_marks(10), (false, false));
        assert!(acknowledge(10));
        assert_eq!(gic(), [(36, true)]);
        assert!(!on_interrupt(37));
        unroute(10);
        assert_eq!(gic(), [(36, false)]);
        assert!(!on_interrupt(36) && !owns(10) && !acknowledge(10));
        assert_eq!(gic(), []);
    }

    #[test]
    fn stopped_dmas_count_for_the_streams_owner_alone() {
        route(11, 0x10, None).unwrap();
        route(12, 0x18, None).unwrap();
        dma_fault(0x10, 0x5000);
        dma_fault(0x10, 0x9000);
        dma_fault(0x99, 0x1000);
        assert_eq!(faults(11), Some((2, 0x9000)));
        assert_eq!(faults(12), Some((0, 0)));
        assert_eq!(take_marks(11), (false, true));
        assert_eq!(take_marks(12), (false, false));
        // A new life starts at zero.
        unroute(11);
        assert_eq!(faults(11), None);
        route(11, 0x10, None).unwrap();
        assert_eq!(faults(11), Some((0, 0)));
        unroute(11);
        unroute(12);
        assert_eq!(gic(), []);
    }

    #[test]
    fn an_interrupt_two_vms_devices_share_is_refused_and_bad_indices_are_ignored() {
        route(13, 0x20, Some(40)).unwrap();
        assert_eq!(route(14, 0x28, Some(40)), Err(Shared { with: 13 }));
        assert!(!owns(14));
        // Re-routing its own (a restart) is fine.
        route(13, 0x20, Some(40)).unwrap();
        unroute(13);
        assert_eq!(route(MAX_VMS, 1, Some(41)), Ok(()));
        assert!(!owns(MAX_VMS) && faults(MAX_VMS).is_none() && !acknowledge(MAX_VMS));
        unroute(MAX_VMS);
        gic();
    }
}
