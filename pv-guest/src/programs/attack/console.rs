//! Console output the hypervisor must take in bounded chunks and still take whole: a ring-full
//! of lines rung once, and lines of bytes that are each shown as 4 characters.

use super::Report;
use core::mem::offset_of;
use hypercall_abi::BootInfo;
use hypercall_abi::console::CONSOLE_RING_ENTRIES;
use hypercall_abi::layout::RingHeader;

/// Lines in the burst, 64 bytes each: exactly one ring.
const LINES: usize = CONSOLE_RING_ENTRIES as usize / 64;

fn ring_index(ring: u64, field: usize) -> u32 {
    // SAFETY: an aligned u32 in the console ring page, mapped for the VM's life (VA = IPA).
    unsafe { core::ptr::read_volatile((ring + field as u64) as *const u32) }
}

pub fn run(r: &mut Report, info: &BootInfo) {
    let ring = info.console_ring_ipa;
    if ring == 0 || info.flags & BootInfo::FLAG_PL011 != 0 {
        return; // no ring: output is one CONSOLE_WRITE or one trapped byte at a time
    }
    // One ring of 64-byte lines, half of them escaped bytes (4 characters each on the UART):
    // more than one chunk of the doorbell, which must still take it all in the one call.
    let mut burst = [0u8; LINES * 64];
    for (i, line) in burst.chunks_mut(64).enumerate() {
        let text = b"attack: console burst line .. of 32, taken whole: ";
        line[..text.len()].copy_from_slice(text);
        line[27] = b'0' + (i / 10) as u8;
        line[28] = b'0' + (i % 10) as u8;
        let fill = if i % 2 == 0 { b'=' } else { 0x7f };
        line[text.len()..63].fill(fill);
        line[63] = b'\n';
    }
    crate::console::send(&burst);
    let producer = ring_index(ring, offset_of!(RingHeader, producer));
    let consumer = ring_index(ring, offset_of!(RingHeader, consumer));
    let what = format_args!("a ring-full of console lines rung once left in the ring");
    if producer == consumer {
        r.blocked(what, "all taken by the one doorbell");
    } else {
        r.through(
            what,
            format_args!("{} bytes left", producer.wrapping_sub(consumer)),
        );
    }
}
