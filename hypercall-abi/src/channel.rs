//! The `channel` family (`0xC600_006n`): shared-memory channels between two VMs, named in the
//! manifest and numbered per VM from 0. Live since 1.4.
//!
//! A channel is a run of pages mapped into both VMs (neither can unmap them) holding two
//! [`crate::layout::RingHeader`] rings of [`crate::layout::ChannelDesc`] slots, one per
//! direction, each taking half the region; [`ChannelInfo::SENDS_ON_FIRST`] says which half this
//! VM sends on.

use crate::abi::vendor_id;

/// `CHANNEL_INFO` (`0xC600_0060`): x1 = channel number. Result: [`ChannelInfo`] in x1..x3.
/// Errors: `INVALID_PARAMETERS` (no such channel). Live since 1.4.
pub const CHANNEL_INFO: u32 = vendor_id(0x60);
/// `CHANNEL_NOTIFY` (`0xC600_0061`): x1 = channel number. Raises the peer's event for this
/// channel (nothing happens if the peer has ended). Errors: `INVALID_PARAMETERS` (no such
/// channel). Live since 1.4.
pub const CHANNEL_NOTIFY: u32 = vendor_id(0x61);

/// The result of `CHANNEL_INFO`: x1 = `ipa`, x2 = `pages`, x3 = `peer_vm | (flags << 32)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelInfo {
    /// IPA of the shared region in this VM.
    pub ipa: u64,
    /// Its size in 4 KiB pages.
    pub pages: u64,
    /// The other VM's index.
    pub peer_vm: u32,
    /// Bit 0: this VM sends on the first ring. Other bits reserved (0).
    pub flags: u32,
}

impl ChannelInfo {
    /// Flag: this VM sends on the first ring of the region (and receives on the second).
    pub const SENDS_ON_FIRST: u32 = 1 << 0;

    /// The result registers x1..x3.
    pub fn to_values(self) -> [u64; 3] {
        [
            self.ipa,
            self.pages,
            u64::from(self.peer_vm) | u64::from(self.flags) << 32,
        ]
    }

    /// Reads x1..x3.
    pub fn from_values(v: [u64; 3]) -> ChannelInfo {
        ChannelInfo {
            ipa: v[0],
            pages: v[1],
            peer_vm: v[2] as u32,
            flags: (v[2] >> 32) as u32,
        }
    }
}
