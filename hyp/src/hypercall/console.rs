//! The `console` family: a guest's bytes, copied out of its memory (a buffer, or its output
//! ring), become its console lines; typed input waits in its queue for CONSOLE_READ.

use super::GuestVm;
use super::guest_buffer::{self, Access};
use crate::vm::console::NotifyCall;
use core::mem::{MaybeUninit, offset_of};
use hypercall_abi::Error;
use hypercall_abi::console::{CONSOLE_CHUNK_MAX, CONSOLE_RING_ENTRIES};
use hypercall_abi::layout::RingHeader;

/// Writes up to CONSOLE_CHUNK_MAX bytes from guest memory at `ipa` into the VM's console
/// lines; returns how many it took, fewer when the hyp's console queue has no room for more
/// lines now (the guest writes the rest with another call). `None` when it could take none:
/// the caller waits for room and issues the call again, so that it takes at least one byte.
pub fn write(vm: &mut impl GuestVm, ipa: u64, len: u64) -> Result<Option<[u64; 3]>, Error> {
    let n = len.min(CONSOLE_CHUNK_MAX) as usize;
    let mut buf = [0u8; CONSOLE_CHUNK_MAX as usize];
    // Copy first, then use: the guest cannot change the bytes after the check.
    vm.memory().read(ipa, &mut buf[..n])?;
    let took = vm.console_output(&buf[..n]);
    if took == 0 && n > 0 {
        return Ok(None);
    }
    Ok(Some([took as u64, 0, 0]))
}

/// The output ring's doorbell: takes the bytes between the hyp's consumer index and the
/// guest's producer index (at most one ring) into the VM's console lines: `None` when the
/// hyp's console queue has no room for all of them, and the caller waits for room and the call
/// is continued (re-entered at its `HVC`) for the rest, so the guest sees one call that took
/// everything. Only `producer` (read once, when the call starts) and the slots are read from
/// the shared page.
pub fn notify(vm: &mut impl GuestVm) -> Result<Option<[u64; 3]>, Error> {
    let ring = vm.console_io().ring_ipa.ok_or(Error::NotSupported)?;
    let consumer = vm.console_io().consumer;
    let (left, taken) = match vm.console_io().notify.take() {
        Some(call) => (call.left, call.taken),
        None => {
            // The producer is the low half of its aligned word: one load, no buffer cleared.
            const _: () = assert!(offset_of!(RingHeader, producer).is_multiple_of(8));
            let mut word = [MaybeUninit::uninit()];
            let at = ring + offset_of!(RingHeader, producer) as u64;
            let producer = vm.memory().read_words(at, &mut word)?[0] as u32;
            (producer.wrapping_sub(consumer).min(CONSOLE_RING_ENTRIES), 0)
        }
    };
    // A chunk at a time, so a short line copies only what it needs (into a buffer not cleared
    // first: the slots are all in the ring's page).
    let slots = ring + RingHeader::SLOTS_OFFSET as u64;
    let mut buf = [MaybeUninit::uninit(); COPY_CHUNK];
    let mut took = 0;
    while took < left {
        let at = consumer.wrapping_add(took) % CONSOLE_RING_ENTRIES;
        let n = ((left - took).min(CONSOLE_RING_ENTRIES - at) as usize).min(COPY_CHUNK);
        // The ring page is pinned: it cannot fail once the first chunk was read.
        let bytes = match vm
            .memory()
            .read_in_page(slots + u64::from(at), &mut buf[..n])
        {
            Ok(bytes) => bytes,
            Err(e) if took == 0 => return Err(e),
            Err(_) => break,
        };
        let chunk_took = vm.console_output(bytes);
        took += chunk_took as u32;
        if chunk_took < n {
            break;
        }
    }
    let consumer = consumer.wrapping_add(took);
    vm.console_io().consumer = consumer;
    vm.memory_mut()
        .write_u32(ring + offset_of!(RingHeader, consumer) as u64, consumer)?;
    let taken = taken + took;
    if took < left {
        vm.console_io().notify = Some(NotifyCall {
            left: left - took,
            taken,
        });
        return Ok(None);
    }
    Ok(Some([taken.into(), 0, 0]))
}

/// Ring bytes copied out of guest memory at a time: two lines of 64 bytes.
const COPY_CHUNK: usize = 128;

/// Gives the guest up to `len` typed bytes, into a buffer it may write itself (its image, boot
/// info and event page are read-only to it). The buffer (up to one chunk) is checked whole
/// first, input waiting or not: a bad one gets `BAD_ADDRESS` with nothing written and the
/// input still queued, so none of it is delivered twice.
pub fn read(vm: &mut impl GuestVm, ipa: u64, len: u64) -> Result<[u64; 3], Error> {
    let len = len.min(CONSOLE_CHUNK_MAX);
    guest_buffer::check(vm.memory(), ipa, len, Access::Write)?;
    let n = (len as usize).min(vm.console_io().input.len());
    let mut buf = [0u8; CONSOLE_CHUNK_MAX as usize];
    for (slot, byte) in buf[..n].iter_mut().zip(vm.console_io().input.iter()) {
        *slot = *byte;
    }
    vm.memory_mut().write(ipa, &buf[..n])?;
    vm.console_io().input.drain(..n);
    vm.console_reading();
    Ok([n as u64, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeVm, PAGE_IPA};
    use super::*;
    use hypercall_abi::MemPerms;

    #[test]
    fn copies_bytes_from_guest_memory() {
        let mut vm = FakeVm::default();
        vm.memory.write(PAGE_IPA, b"hello").unwrap();
        assert_eq!(write(&mut vm, PAGE_IPA, 5), Ok(Some([5, 0, 0])));
        assert_eq!(vm.console, b"hello");
    }

    #[test]
    fn refuses_unmapped_and_wrapping_buffers() {
        let mut vm = FakeVm::default();
        assert_eq!(write(&mut vm, 0x9000, 4), Err(Error::BadAddress));
        assert_eq!(write(&mut vm, PAGE_IPA + 4090, 10), Err(Error::BadAddress));
        assert_eq!(write(&mut vm, u64::MAX - 2, 10), Err(Error::BadAddress));
        assert!(vm.console.is_empty());
    }

    const RING: u64 = 0x8000;

    fn with_ring(produced: &[u8], producer: u32) -> FakeVm {
        let mut vm = FakeVm::default();
        vm.memory.map(RING, 1, MemPerms::RW).unwrap();
        vm.console_io.ring_ipa = Some(RING);
        vm.console_io.consumer = producer.wrapping_sub(produced.len() as u32);
        let start = vm.console_io.consumer % CONSOLE_RING_ENTRIES;
        for (i, b) in produced.iter().enumerate() {
            let slot = (start + i as u32) % CONSOLE_RING_ENTRIES;
            vm.memory
                .write(RING + 192 + u64::from(slot), &[*b])
                .unwrap();
        }
        vm.memory.write(RING + 64, &producer.to_le_bytes()).unwrap();
        vm
    }

    #[test]
    fn the_ring_doorbell_takes_everything_produced_even_across_the_wrap() {
        let mut vm = with_ring(b"wrapped line\n", 2048 * 7 + 5);
        assert_eq!(notify(&mut vm), Ok(Some([13, 0, 0])));
        assert_eq!(vm.console, b"wrapped line\n");
        let mut consumer = [0u8; 4];
        vm.memory.read(RING + 128, &mut consumer).unwrap();
        assert_eq!(u32::from_le_bytes(consumer), 2048 * 7 + 5);
        assert_eq!(notify(&mut vm), Ok(Some([0, 0, 0])), "nothing new");
    }

    /// Rings the doorbell through the dispatcher as the guest's vCPU would.
    fn ring_doorbell(vm: &mut FakeVm) -> (Result<[u64; 3], Error>, usize) {
        super::super::fake::call_continued(vm, hypercall_abi::Call::ConsoleNotify)
    }

    #[test]
    fn a_lying_producer_gets_at_most_one_ring() {
        let mut vm = with_ring(b"", 0);
        vm.memory.write(RING + 64, &u32::MAX.to_le_bytes()).unwrap();
        // 2048 zero bytes: one ring, taken in one call (queueing them writes no UART).
        let (answer, entries) = ring_doorbell(&mut vm);
        assert_eq!((answer, entries), (Ok([2048, 0, 0]), 1));
        assert_eq!(vm.console, [0; 2048]);
        assert_eq!(vm.console_io.notify, None);
        let mut no_ring = FakeVm::default();
        assert_eq!(notify(&mut no_ring), Err(Error::NotSupported));
    }

    fn consumer_in_page(vm: &FakeVm) -> u32 {
        let mut consumer = [0u8; 4];
        vm.memory.read(RING + 128, &mut consumer).unwrap();
        u32::from_le_bytes(consumer)
    }

    #[test]
    fn a_ring_whose_lines_do_not_fit_waits_for_room_then_takes_the_rest() {
        let lines: std::vec::Vec<u8> = b"ok\n".repeat(682);
        let mut vm = with_ring(&lines, 2048 * 3 + 7);
        vm.queue_room = Some(100);
        let mut regs = hypercall_abi::Call::ConsoleNotify.to_regs();
        let call = regs;
        assert_eq!(
            super::super::fake::dispatch(&mut vm, &mut regs),
            super::super::Action::WaitConsoleRoom
        );
        assert_eq!(regs, call, "a call that waits leaves its registers");
        assert_eq!(vm.lines.len(), 100);
        assert_eq!(consumer_in_page(&vm), 2048 * 3 + 7 - 682 * 3 + 300);
        // Still no room: it waits again, taking nothing.
        vm.queue_room = Some(0);
        assert_eq!(notify(&mut vm), Ok(None));
        assert_eq!(vm.lines.len(), 100);
        vm.queue_room = None;
        assert_eq!(
            notify(&mut vm),
            Ok(Some([lines.len() as u64, 0, 0])),
            "the call reports all it took"
        );
        assert_eq!(vm.lines.len(), 682);
        assert_eq!(vm.console, lines);
        assert_eq!(consumer_in_page(&vm), 2048 * 3 + 7);
        assert_eq!(vm.console_io.notify, None);
    }

    #[test]
    fn a_write_takes_at_least_one_byte_or_waits_for_room() {
        let mut vm = FakeVm::default();
        vm.memory.write(PAGE_IPA, b"ab\ncd").unwrap();
        vm.queue_room = Some(0);
        assert_eq!(
            write(&mut vm, PAGE_IPA, 5),
            Ok(None),
            "nothing taken: it waits"
        );
        let mut regs = hypercall_abi::Call::ConsoleWrite {
            ipa: PAGE_IPA,
            len: 5,
        }
        .to_regs();
        assert_eq!(
            super::super::fake::dispatch(&mut vm, &mut regs),
            super::super::Action::WaitConsoleRoom
        );
        vm.queue_room = Some(1);
        // The partial line needs no room.
        assert_eq!(write(&mut vm, PAGE_IPA, 5), Ok(Some([5, 0, 0])));
        assert_eq!(vm.lines, [b"ab"]);
        assert_eq!(vm.console, b"ab\ncd");
    }

    #[test]
    fn input_is_read_in_order_and_kept_when_the_buffer_is_bad() {
        let mut vm = FakeVm::default();
        vm.console_io.push_input(b"ls\r");
        assert_eq!(read(&mut vm, 0x9000, 8), Err(Error::BadAddress));
        assert_eq!(read(&mut vm, PAGE_IPA, 2), Ok([2, 0, 0]));
        assert_eq!(read(&mut vm, PAGE_IPA + 2, 8), Ok([1, 0, 0]));
        let mut got = [0u8; 3];
        vm.memory.read(PAGE_IPA, &mut got).unwrap();
        assert_eq!(&got, b"ls\r");
    }

    #[test]
    fn input_never_lands_in_a_page_the_guest_cannot_write() {
        let mut vm = FakeVm::default();
        vm.memory.map(0x2000, 1, MemPerms::READ).unwrap();
        vm.memory.write(0x2000, b"image").unwrap();
        vm.console_io.push_input(b"rm -rf");
        assert_eq!(read(&mut vm, 0x2000, 6), Err(Error::BadAddress));
        let mut page = [0u8; 6];
        vm.memory.read(0x2000, &mut page).unwrap();
        assert_eq!(&page, b"image\0", "the read-only page is unchanged");
        assert_eq!(vm.console_io.input.len(), 6, "the input is kept");
        let mut idle = FakeVm::default();
        idle.memory.map(0x2000, 1, MemPerms::READ).unwrap();
        assert_eq!(
            read(&mut idle, 0x2000, 6),
            Err(Error::BadAddress),
            "refused even with no input waiting"
        );
    }

    #[test]
    fn a_buffer_running_into_an_unmapped_page_gets_nothing() {
        let mut vm = FakeVm::default();
        vm.console_io.push_input(b"abcdef");
        // Three bytes fit at the end of the mapped page, the rest would fall off it.
        let tail = PAGE_IPA + 4093;
        assert_eq!(read(&mut vm, tail, 6), Err(Error::BadAddress));
        let mut page = [0xFFu8; 3];
        vm.memory.read(tail, &mut page).unwrap();
        assert_eq!(page, [0; 3], "nothing written");
        // The input is delivered once, whole, to a good buffer.
        assert_eq!(read(&mut vm, PAGE_IPA, 8), Ok([6, 0, 0]));
        let mut got = [0u8; 6];
        vm.memory.read(PAGE_IPA, &mut got).unwrap();
        assert_eq!(&got, b"abcdef");
        assert_eq!(read(&mut vm, PAGE_IPA, 8), Ok([0, 0, 0]));
    }

    #[test]
    fn caps_a_huge_length_at_one_chunk() {
        // Only the one mapped page is read (a whole length would run off it): some of it is
        // taken, the page is plain text.
        let mut vm = FakeVm::default();
        vm.memory.write(PAGE_IPA, &[b'a'; 4096]).unwrap();
        let got = write(&mut vm, PAGE_IPA, u64::MAX);
        assert!(matches!(got, Ok(Some([1..=4096, 0, 0]))), "{got:?}");
    }
}
