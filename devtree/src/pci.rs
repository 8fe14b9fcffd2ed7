//! The SMMUv3 (`arm,smmu-v3`) and the generic PCIe host bridge (`pci-host-ecam-generic`).
//!
//! Both are optional: a host bridge whose `reg` or `ranges` cannot be decoded is left out
//! (the board then has no PCI the hypervisor drives) rather than failing the boot, since
//! nothing else the hypervisor needs depends on it.

use crate::Error;
use crate::cells::{be32, read_cells};
use crate::compatible::Compatible;
use crate::device::{IntxMap, MAX_INTX, PciHost, PciWindow, Smmu};
use crate::interrupts::{GicInfo, Irq, decode};
use crate::translate::{first_region, translate};
use crate::tree::Frame;

/// `phys.hi` space code of a 32-bit memory range (PCI bus binding, IEEE 1275 `ss` = 0b10).
const SPACE_MEM32: u32 = 0b10;
/// Cells of a PCI child address (`phys.hi phys.mid phys.lo`).
const PCI_ADDRESS_CELLS: usize = 3;

/// What the walk found of the host bridge's `interrupt-map` (and its mask), decoded once the
/// GIC is known.
pub(crate) type RawIntx<'a> = Option<(&'a [u8], Option<&'a [u8]>)>;

/// Records the first SMMUv3 and the first ECAM host bridge.
pub(crate) fn visit<'a>(
    frame: &Frame<'_, 'a>,
    smmu: &mut Option<(Smmu, Option<u32>)>,
    pci: &mut Option<PciHost>,
    iommu_phandle: &mut Option<u32>,
    intx: &mut RawIntx<'a>,
) {
    if smmu.is_none() && frame.is_compatible(Compatible::SMMU_V3) {
        if let Ok(region) = first_region(frame) {
            *smmu = Some((Smmu { region }, frame.phandle()));
        }
    } else if pci.is_none() && frame.is_compatible(Compatible::PCI_ECAM) {
        *pci = host(frame).ok();
        // iommu-map = <rid-base iommu-phandle iommu-base length>: the first entry's phandle.
        *iommu_phandle = frame.prop("iommu-map").and_then(|m| be32(m, 4));
        *intx = frame
            .prop("interrupt-map")
            .map(|m| (m, frame.prop("interrupt-map-mask")));
    }
}

/// Cells of a PCI `interrupt-map` entry's child specifier (the host's `#interrupt-cells`).
const PCI_INTERRUPT_CELLS: usize = 1;

/// Decodes the entries of `map` whose parent is the GIC into SPI INTIDs. An entry naming
/// another parent ends the walk (its length depends on that parent's cells); an entry whose
/// specifier is not an SPI is left out.
fn intx_map(raw: RawIntx<'_>, gic: Option<GicInfo>) -> IntxMap {
    let mut out = IntxMap::EMPTY;
    let (Some((map, mask)), Some(gic)) = (raw, gic) else {
        return out;
    };
    let mask = mask.unwrap_or_default();
    out.mask_hi = be32(mask, 0).unwrap_or(u32::MAX);
    out.mask_pin = be32(mask, PCI_ADDRESS_CELLS * 4).unwrap_or(u32::MAX);
    let child = (PCI_ADDRESS_CELLS + PCI_INTERRUPT_CELLS) * 4;
    let spec_at = child + 4 + gic.address_cells * 4;
    let entry = spec_at + gic.interrupt_cells * 4;
    if !(3..=4).contains(&gic.interrupt_cells) {
        return out;
    }
    let mut at = 0;
    while out.count < MAX_INTX {
        let Some(e) = map.get(at..at + entry) else {
            break;
        };
        if be32(e, child) != Some(gic.phandle) {
            break;
        }
        if let Some(Irq::Spi(n)) = decode(&e[spec_at..]) {
            let hi = be32(e, 0).unwrap_or_default() & out.mask_hi;
            let pin = be32(e, PCI_ADDRESS_CELLS * 4).unwrap_or_default() & out.mask_pin;
            out.entries[out.count] = (hi, pin, Irq::Spi(n).intid());
            out.count += 1;
        }
        at += entry;
    }
    out
}

/// Joins what the walk found: the host bridge is behind the SMMU when its `iommu-map` names
/// the SMMU's phandle (with the identity mapping from requester ID to stream ID QEMU uses).
pub(crate) fn finish(
    smmu: Option<(Smmu, Option<u32>)>,
    pci: Option<PciHost>,
    iommu_phandle: Option<u32>,
    intx: RawIntx<'_>,
    gic: Option<GicInfo>,
) -> (Option<Smmu>, Option<PciHost>) {
    let behind = matches!((smmu, iommu_phandle), (Some((_, Some(a))), Some(b)) if a == b);
    let pci = pci.map(|p| PciHost {
        behind_smmu: behind,
        intx: intx_map(intx, gic),
        ..p
    });
    (smmu.map(|(s, _)| s), pci)
}

fn host(frame: &Frame<'_, '_>) -> Result<PciHost, Error> {
    let ecam = first_region(frame)?;
    let (bus_first, bus_last) = match frame.prop("bus-range") {
        Some(r) => (
            be32(r, 0).ok_or(Error::Malformed("bus-range"))?,
            be32(r, 4).ok_or(Error::Malformed("bus-range"))?,
        ),
        None => (0, 0xff),
    };
    Ok(PciHost {
        ecam,
        bus_first: bus_first.min(0xff) as u8,
        bus_last: bus_last.min(0xff) as u8,
        mem32: mem32_window(frame)?,
        behind_smmu: false,
        intx: IntxMap::EMPTY,
    })
}

/// The first 32-bit memory range of the bridge's `ranges`: (PCI address, CPU address, size).
fn mem32_window(frame: &Frame<'_, '_>) -> Result<Option<PciWindow>, Error> {
    let ranges = frame.prop("ranges").unwrap_or_default();
    let parent = frame
        .parent
        .ok_or(Error::Malformed("the root is a PCI host"))?;
    let (parent_cells, size_cells) = (parent.address_cells(), frame.size_cells());
    if frame.address_cells() != PCI_ADDRESS_CELLS {
        return Err(Error::Malformed("a PCI host without 3 address cells"));
    }
    let entry = (PCI_ADDRESS_CELLS + parent_cells + size_cells) * 4;
    if entry == 0 || !ranges.len().is_multiple_of(entry) {
        return Err(Error::Malformed(
            "PCI ranges is not a whole number of entries",
        ));
    }
    for range in ranges.chunks_exact(entry) {
        let hi = be32(range, 0).unwrap_or_default();
        if (hi >> 24) & 0b11 != SPACE_MEM32 {
            continue;
        }
        let pci = read_cells(&range[4..], 2).unwrap_or_default();
        let cpu = read_cells(&range[PCI_ADDRESS_CELLS * 4..], parent_cells).unwrap_or_default();
        let size = read_cells(&range[(PCI_ADDRESS_CELLS + parent_cells) * 4..], size_cells)
            .unwrap_or_default();
        // The parent address is in the host's parent's space: translate it like a reg.
        let cpu = translate(frame, cpu, size)?;
        let pci_base = u64::try_from(pci).map_err(|_| Error::Malformed("PCI address"))?;
        return Ok(Some(PciWindow {
            pci_base,
            cpu_base: cpu.base,
            size: cpu.size,
        }));
    }
    Ok(None)
}
