//! GIC interrupt specifiers (the `arm,gic` and `arm,gic-v3` bindings).
//!
//! Each entry of an `interrupts` property whose parent is the GIC is three
//! cells (four on a GICv3 that names PPI partitions): type (0 = SPI, 1 = PPI), number within that type, and flags.
//! INTIDs: SPI n is n + 32, PPI n is n + 16.

use crate::cells::be32;
use crate::tree::Frame;

/// First INTID of the shared peripheral interrupts.
const SPI_BASE: u32 = 32;
/// First INTID of the private peripheral interrupts.
const PPI_BASE: u32 = 16;
/// SPIs run up to INTID 1019.
const SPI_COUNT: u32 = 988;
/// PPIs are INTIDs 16 to 31.
const PPI_COUNT: u32 = 16;

/// The interrupt controller whose specifiers this crate decodes.
#[derive(Clone, Copy)]
pub(crate) struct GicInfo {
    pub phandle: u32,
    pub interrupt_cells: usize,
    /// Its `#address-cells` (0 if absent): the parent unit address an `interrupt-map` entry
    /// gives before the specifier.
    pub address_cells: usize,
}

/// One decoded GIC interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Irq {
    Spi(u32),
    Ppi(u32),
}

impl Irq {
    /// The GIC INTID.
    pub fn intid(self) -> u32 {
        match self {
            Irq::Spi(n) => n + SPI_BASE,
            Irq::Ppi(n) => n + PPI_BASE,
        }
    }
}

/// A node's interrupt specifiers as the walk finds them, to be decoded once
/// the GIC is known (it may come later in tree order).
#[derive(Clone, Copy)]
pub(crate) struct Interrupts<'a> {
    /// The phandle of the node's interrupt parent.
    parent: Option<u32>,
    /// Its `interrupts` property.
    value: Option<&'a [u8]>,
}

impl<'a> Interrupts<'a> {
    /// None: for filling fixed tables.
    pub const NONE: Interrupts<'static> = Interrupts {
        parent: None,
        value: None,
    };

    /// The interrupts of `frame`'s node.
    pub fn of(frame: &Frame<'_, 'a>) -> Self {
        Interrupts {
            parent: frame.interrupt_parent(),
            value: frame.prop("interrupts"),
        }
    }

    /// The entries in order, if the interrupt parent is the GIC: `Some(irq)`
    /// per entry, `None` for an entry of another type (extended SPI or PPI
    /// ranges) or out of range.
    pub fn decode(self, gic: Option<GicInfo>) -> Option<impl Iterator<Item = Option<Irq>> + 'a> {
        let gic = gic?;
        if !(3..=4).contains(&gic.interrupt_cells) || self.parent != Some(gic.phandle) {
            return None;
        }
        let value = self.value?;
        Some(value.chunks_exact(gic.interrupt_cells * 4).map(decode))
    }
}

pub(crate) fn decode(spec: &[u8]) -> Option<Irq> {
    let (kind, number) = (be32(spec, 0)?, be32(spec, 4)?);
    match kind {
        0 if number < SPI_COUNT => Some(Irq::Spi(number)),
        1 if number < PPI_COUNT => Some(Irq::Ppi(number)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_spis_and_ppis() {
        assert_eq!(
            decode(&[0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 1]),
            Some(Irq::Spi(16))
        );
        assert_eq!(Irq::Spi(16).intid(), 48);
        assert_eq!(
            decode(&[0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0xf, 4]),
            Some(Irq::Ppi(9))
        );
        assert_eq!(Irq::Ppi(9).intid(), 25);
    }

    #[test]
    fn refuses_other_types_and_out_of_range_numbers() {
        assert_eq!(decode(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4]), None);
        assert_eq!(decode(&[0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0, 4]), None);
        assert_eq!(decode(&[0, 0, 0, 0, 0, 0, 3, 0xdc, 0, 0, 0, 4]), None);
    }
}
