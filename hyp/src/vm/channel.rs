//! Inter-VM channels: pages owned by the channel, mapped into its two VMs (and no one else),
//! holding two rings, one per direction; a notify raises the peer's channel event.

use crate::mm::PAGE_SIZE;
use alloc::vec::Vec;
use hypercall_abi::ChannelInfo;
use hypercall_abi::layout::{ChannelDesc, RingHeader};

/// Where a VM's channel `n` appears in its IPA space: far above anything else it maps.
pub const CHANNEL_BASE_IPA: u64 = 0x40_0000_0000;
/// IPA distance between consecutive channels of a VM (room for the largest channel).
pub const CHANNEL_STRIDE: u64 = 0x100_0000;

/// One VM's end of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelEnd {
    /// The channel's index in the manifest.
    pub channel: u16,
    /// Where this VM sees the region.
    pub ipa: u64,
    /// The frames of the region (owned by the channel).
    pub frames: Vec<u64>,
    /// The other VM, by manifest index.
    pub peer_vm: usize,
    /// The event a notify raises in the peer.
    pub peer_event: u32,
    /// This VM produces on the first ring (and consumes the second).
    pub sends_on_first: bool,
}

impl ChannelEnd {
    /// CHANNEL_INFO's answer.
    pub fn info(&self) -> ChannelInfo {
        ChannelInfo {
            ipa: self.ipa,
            pages: self.frames.len() as u64,
            peer_vm: self.peer_vm as u32,
            flags: if self.sends_on_first {
                ChannelInfo::SENDS_ON_FIRST
            } else {
                0
            },
        }
    }
}

/// The IPA of a VM's channel `local` (its n-th channel).
pub fn channel_ipa(local: usize) -> u64 {
    CHANNEL_BASE_IPA + local as u64 * CHANNEL_STRIDE
}

/// The two ring headers a fresh region of `pages` pages starts with, and where each goes:
/// each direction gets half the region, as many 64-byte slots as fit (a power of two).
pub fn ring_headers(pages: u64) -> [(u64, RingHeader); 2] {
    let half = pages * PAGE_SIZE / 2;
    let fit = (half - RingHeader::SLOTS_OFFSET as u64) / core::mem::size_of::<ChannelDesc>() as u64;
    let entries = 1u32 << (63 - fit.leading_zeros());
    let header = RingHeader::new(entries, core::mem::size_of::<ChannelDesc>() as u32);
    [(0, header), (half, header)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_direction_gets_half_the_region_in_power_of_two_slots() {
        let [(a, ha), (b, hb)] = ring_headers(1);
        assert_eq!((a, b), (0, 2048));
        assert_eq!((ha.entries, hb.entries, ha.entry_size), (16, 16, 64));
        let [_, (b, h)] = ring_headers(4);
        assert_eq!((b, h.entries), (8192, 64));
    }

    #[test]
    fn info_says_which_ring_this_end_sends_on() {
        let end = ChannelEnd {
            channel: 0,
            ipa: channel_ipa(1),
            frames: vec![0x4000_0000, 0x4000_1000],
            peer_vm: 3,
            peer_event: 8,
            sends_on_first: true,
        };
        let info = end.info();
        assert_eq!(
            (info.ipa, info.pages, info.peer_vm, info.flags),
            (CHANNEL_BASE_IPA + CHANNEL_STRIDE, 2, 3, 1)
        );
    }
}
