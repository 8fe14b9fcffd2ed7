//! Finding the machine's disk at boot: the device tree's virtio-mmio slots are probed for a
//! block device; without one (the Raspberry Pi 4 has none) the VMs' regions live on a RAM disk,
//! each region's RAM taken now, and a VM whose region this RAM cannot hold is refused.
//! Nothing is touched unless some VM has a disk region.

use super::SECTOR_SIZE;
use super::ramdisk::TooLarge;
use crate::mm::PAGE_SIZE;
use crate::vm::block::Region;
use alloc::format;
use alloc::string::String;

/// The most of the address space the virtio-mmio slots may span to be mapped as one block
/// (QEMU `virt`: 32 slots of 0x200 bytes, 16 KiB).
const SPAN_MAX: u64 = 1 << 20;

/// The one device range covering every virtio-mmio slot, `(base, size)`, if there are slots
/// and they lie close together.
pub fn mmio_span(slots: &[devtree::VirtioMmio]) -> Option<(u64, u64)> {
    let base = slots.iter().map(|s| s.region.base).min()?;
    let end = slots.iter().map(|s| s.region.end()).max()?;
    (end > base && end - base <= SPAN_MAX).then_some((base, end - base))
}

/// The sectors a disk must have for every region: the end of the last one.
pub fn sectors_needed(regions: &[Region]) -> u64 {
    regions.iter().map(Region::end).max().unwrap_or(0)
}

/// The line that refuses VM `name`, whose disk `region` the RAM disk cannot hold.
pub fn refusal(name: &str, region: &Region, e: &TooLarge) -> String {
    let bytes = |frames: u64| frames * PAGE_SIZE;
    format!(
        "VM {name}: refused: its disk region (sectors {}..{}, {} MiB) needs {} MiB of RAM on this machine's RAM disk (no virtio-blk device), and {} MiB are free",
        region.first_sector,
        region.end(),
        (region.sectors * SECTOR_SIZE).div_ceil(1 << 20),
        bytes(e.frames).div_ceil(1 << 20),
        bytes(e.available) >> 20
    )
}

/// The line that refuses VM `name` if its disk `region` does not lie inside a disk of
/// `sectors` sectors.
pub fn beyond_the_disk(name: &str, region: &Region, sectors: u64) -> Option<String> {
    (region.end() > sectors).then(|| {
        format!(
            "VM {name}: refused: its disk region (sectors {}..{}) is beyond the {sectors}-sector disk: give a bigger image (scripts/run.sh --disk FILE); the other VMs run",
            region.first_sector,
            region.end(),
        )
    })
}

#[cfg(target_os = "none")]
use {
    super::queue::{Device, Queue},
    super::ramdisk::RamDisk,
    super::virtio_blk::{Slot, VirtioBlk},
    super::{Disk, install},
    crate::arch::Cpu,
    alloc::{boxed::Box, vec::Vec},
    devtree::Board,
};

/// Finds or makes the disk the VMs' `regions` (name, manifest index, region) lie on, and
/// installs it. Returns the positions in `regions` of those refused (one log line each: the
/// region lies beyond the virtio-blk disk, the RAM disk cannot hold it, or there is no RAM for
/// its request buffers; their VMs must not run). An error is a reason the boot cannot go on
/// (the device itself failed).
#[cfg(target_os = "none")]
pub fn init(board: &Board, regions: &[(&str, usize, Region)]) -> Result<Vec<usize>, String> {
    let mut refused = Vec::new();
    if regions.is_empty() {
        return Ok(refused);
    }
    let needed = sectors_needed(&regions.iter().map(|r| r.2).collect::<alloc::vec::Vec<_>>());
    let mapped = mmio_span(board.virtio()).is_some();
    let found = board.virtio().iter().filter(|_| mapped).find_map(|slot| {
        let base = slot.region.base as usize;
        // SAFETY: boot::take_over_mmu mapped every slot as device memory (mmio_span).
        match unsafe { VirtioBlk::classify(base) } {
            Slot::Block(transport) => Some((base, slot.irq, transport)),
            _ => None,
        }
    });
    let (disk, irq) = match found {
        Some((base, irq, transport)) => {
            // SAFETY: a mapped virtio-mmio slot holding a block device; only the disk uses
            // it from here on.
            let dev = unsafe { VirtioBlk::new(base, transport) }
                .map_err(|e| format!("virtio-blk at {base:#x}: {e}"))?;
            info!(
                "virtio-blk ({transport:?} virtio-mmio) at {base:#x}, {} MiB, interrupt {irq}",
                (dev.sectors() * SECTOR_SIZE) >> 20
            );
            let mut queue = Queue::<Cpu>::new(Box::new(dev));
            for (i, (name, vm, r)) in regions.iter().enumerate() {
                if let Some(line) = beyond_the_disk(name, r, queue.sectors()) {
                    error!("{line}");
                    refused.push(i);
                } else if queue.reserve(*vm).is_err() {
                    error!(
                        "VM {name}: refused: no RAM for its disk request buffers ({} KiB)",
                        (Queue::<Cpu>::FRAMES_PER_VM as u64 * PAGE_SIZE) >> 10
                    );
                    refused.push(i);
                }
            }
            crate::dev::gic::enable_spi(irq);
            (Disk::Queued(queue), Some(irq))
        }
        None => {
            info!(
                "no virtio-blk device: the VMs' disk regions are a RAM disk of {} MiB, zeroed at boot, which does not persist",
                (needed * SECTOR_SIZE).div_ceil(1 << 20)
            );
            let mut disk = RamDisk::<Cpu>::new();
            for (i, (name, _, r)) in regions.iter().enumerate() {
                match disk.reserve(*r) {
                    Ok(()) => info!(
                        "VM {name}: its disk region's {} KiB of RAM taken for it at boot",
                        (RamDisk::<Cpu>::frames_needed(r) * PAGE_SIZE) >> 10
                    ),
                    Err(e) => {
                        error!("{}", refusal(name, r, &e));
                        refused.push(i);
                    }
                }
            }
            (Disk::Immediate(Box::new(disk)), None)
        }
    };
    install(disk, irq);
    for (i, (name, _, r)) in regions.iter().enumerate() {
        if refused.contains(&i) {
            continue;
        }
        info!(
            "VM {name}: disk sectors {}..{} ({} KiB)",
            r.first_sector,
            r.end(),
            (r.sectors * SECTOR_SIZE) >> 10
        );
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtree::{Region as DtRegion, VirtioMmio};

    fn slot(base: u64) -> VirtioMmio {
        VirtioMmio {
            region: DtRegion { base, size: 0x200 },
            irq: 48,
        }
    }

    #[test]
    fn the_slots_are_mapped_as_one_span_when_close() {
        let slots: std::vec::Vec<_> = (0..32).map(|i| slot(0x0a00_0000 + i * 0x200)).collect();
        assert_eq!(mmio_span(&slots), Some((0x0a00_0000, 0x4000)));
        assert_eq!(mmio_span(&[]), None);
        assert_eq!(mmio_span(&[slot(0x1000), slot(0x4000_0000)]), None);
    }

    #[test]
    fn the_disk_covers_the_last_region() {
        let r = |first_sector, sectors| Region {
            first_sector,
            sectors,
        };
        assert_eq!(sectors_needed(&[r(0, 8), r(100, 4), r(16, 8)]), 104);
        assert_eq!(sectors_needed(&[]), 0);
    }

    #[test]
    fn a_region_beyond_the_disk_refuses_its_vm_alone() {
        let r = |first_sector, sectors| Region {
            first_sector,
            sectors,
        };
        assert_eq!(beyond_the_disk("fits", &r(0, 2048), 2048), None);
        assert_eq!(beyond_the_disk("fits", &r(2000, 48), 2048), None);
        assert_eq!(
            beyond_the_disk("far", &r(2040, 16), 2048).as_deref(),
            Some(
                "VM far: refused: its disk region (sectors 2040..2056) is beyond the 2048-sector disk: give a bigger image (scripts/run.sh --disk FILE); the other VMs run"
            )
        );
    }

    #[test]
    fn a_refusal_names_the_vm_the_region_and_the_ram() {
        let tib = Region {
            first_sector: 0,
            sectors: 1 << 31,
        };
        let e = TooLarge {
            frames: (1 << 28) + (1 << 19),
            available: 400_000,
        };
        assert_eq!(
            refusal("big", &tib, &e),
            "VM big: refused: its disk region (sectors 0..2147483648, 1048576 MiB) needs 1050624 MiB of RAM on this machine's RAM disk (no virtio-blk device), and 1562 MiB are free"
        );
    }
}
