//! Memory: everything pv-guest has beyond its image it asks the hypervisor for with `mem.map`.
//!
//! - [`frames`]: page ranges mapped on request and unmapped when freed (IPAs from
//!   [`ipa_range`]);
//! - [`heap`]: the global allocator, growing a chunk per `mem.map`;
//! - [`stage1`]: the EL1 identity map, in frames, and turning the MMU on;
//! - [`batch`]: `mem.batch` lists.

pub mod batch;
pub mod frames;
pub mod heap;
pub mod ipa_range;
pub mod layout;
#[cfg(test)]
pub mod mock;
pub mod stage1;

#[cfg(target_os = "none")]
mod target {
    use super::stage1::{self, ImageLayout};
    use hypercall_abi::BootInfo;

    unsafe extern "C" {
        static __text_end: u8;
        static __rodata_end: u8;
        static __guest_end: u8;
    }

    /// Where the image's sections are, from the linker script's symbols.
    fn image_layout(info: &BootInfo, boot_info_ipa: u64) -> ImageLayout {
        // Only the symbols' addresses are taken, never their contents.
        let (text_end, rodata_end, guest_end) = (
            &raw const __text_end as u64,
            &raw const __rodata_end as u64,
            &raw const __guest_end as u64,
        );
        ImageLayout {
            text: info.image_start,
            rodata: text_end,
            data: rodata_end,
            end: guest_end.max(info.image_end),
            boot_info: boot_info_ipa,
            pl011: (info.flags & BootInfo::FLAG_PL011 != 0).then_some(info.pl011_ipa),
        }
    }

    /// Sets up memory before any program runs: with `mmu`, the stage-1 identity map (its
    /// tables are the first frames asked for) and the MMU on. The heap needs nothing: it maps
    /// its first chunk on its first allocation.
    pub fn init(
        info: &BootInfo,
        boot_info_ipa: u64,
        mmu: bool,
    ) -> Result<(), aarch64_paging::MapError> {
        if mmu {
            stage1::enable(&image_layout(info, boot_info_ipa))?;
        }
        Ok(())
    }
}

#[cfg(target_os = "none")]
pub use target::init;
