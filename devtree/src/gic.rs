//! The GIC: version, register frames, maintenance interrupt.

use crate::compatible::Compatible;
use crate::device::{Gic, GicVersion, Region};
use crate::interrupts::{GicInfo, Interrupts};
use crate::translate::regions;
use crate::tree::Frame;
use crate::{Error, cells::MAX_CELLS};

/// Most `reg` entries read from a GIC node: GICD, up to 8 GICR regions, GICC, GICH, GICV.
const MAX_GIC_REGS: usize = 12;

/// The first enabled GIC in tree order, decoded, and what decoding other
/// nodes' interrupts against it needs.
pub(crate) type Found = Option<(Gic, Option<GicInfo>)>;

/// Decodes `frame` into `found` if it is the first GIC the walk meets.
pub(crate) fn visit(frame: &Frame<'_, '_>, found: &mut Found) -> Result<(), Error> {
    if found.is_some() {
        return Ok(());
    }
    let version = if frame.is_compatible(Compatible::GIC_V2) {
        GicVersion::V2
    } else if frame.is_compatible(Compatible::GIC_V3) {
        GicVersion::V3
    } else {
        return Ok(());
    };
    *found = Some(decode(frame, version)?);
    Ok(())
}

/// The GIC's frames and, if it has a phandle other nodes can name it by, what
/// decoding their interrupt specifiers needs.
fn decode(frame: &Frame<'_, '_>, version: GicVersion) -> Result<(Gic, Option<GicInfo>), Error> {
    let mut regs = [Region::EMPTY; MAX_GIC_REGS];
    let mut count = 0;
    for (slot, region) in regs.iter_mut().zip(regions(frame)?) {
        *slot = region?;
        count += 1;
    }
    let reg = |i: usize| regs.get(..count).and_then(|used| used.get(i)).copied();
    let distributor = reg(0).ok_or(Error::Malformed("the GIC has no distributor reg"))?;
    let gic = match version {
        GicVersion::V2 => Gic {
            version,
            distributor,
            cpu_interface: reg(1),
            redistributor: None,
            hyp_interface: reg(2),
            vcpu_interface: reg(3),
            maintenance_irq: None,
        },
        GicVersion::V3 => {
            let redistributors = frame.u32_prop("#redistributor-regions").unwrap_or(1) as usize;
            let after = 1usize.saturating_add(redistributors);
            Gic {
                version,
                distributor,
                cpu_interface: reg(after),
                redistributor: Some(
                    reg(1).ok_or(Error::Malformed("the GICv3 has no redistributor reg"))?,
                ),
                hyp_interface: reg(after + 1),
                vcpu_interface: reg(after + 2),
                maintenance_irq: None,
            }
        }
    };
    let info = frame.phandle().map(|phandle| GicInfo {
        phandle,
        interrupt_cells: frame
            .u32_prop("#interrupt-cells")
            .map_or(0, |c| (c as usize).min(MAX_CELLS + 1)),
        address_cells: frame
            .u32_prop("#address-cells")
            .map_or(0, |c| (c as usize).min(MAX_CELLS + 1)),
    });
    let maintenance_irq = Interrupts::of(frame)
        .decode(info)
        .and_then(|mut irqs| irqs.next().flatten())
        .map(|irq| irq.intid());
    Ok((
        Gic {
            maintenance_irq,
            ..gic
        },
        info,
    ))
}
