//! `reg` decoding and address translation through every parent bus's `ranges`.
//!
//! A `reg` address is in the address space of the node's parent. Each bus
//! between the node and the root maps its children's addresses into its own
//! parent's space with `ranges` (Devicetree Specification 2.3.8): a list of
//! (child address, parent address, size) triples, each field as wide as the
//! `#address-cells` / `#size-cells` that apply on its side. An empty `ranges`
//! is the identity; a missing one means the bus is not memory-mapped and its
//! children have no CPU address. On the Raspberry Pi 4, `/soc` maps bus
//! address 0x7e000000 to CPU address 0xfe000000.

use crate::Error;
use crate::Region;
use crate::cells::{MAX_CELLS, read_cells};
use crate::tree::Frame;

/// The `reg` entries of a node as CPU physical regions, in order.
pub(crate) struct Regions<'f, 'p, 'a> {
    frame: &'f Frame<'p, 'a>,
    value: &'a [u8],
    address_cells: usize,
    size_cells: usize,
}

/// The node's `reg` entries, translated. A node without `reg` has none.
pub(crate) fn regions<'f, 'p, 'a>(frame: &'f Frame<'p, 'a>) -> Result<Regions<'f, 'p, 'a>, Error> {
    let parent = frame
        .parent
        .ok_or(Error::Malformed("the root node has a reg"))?;
    let (address_cells, size_cells) = (parent.address_cells(), parent.size_cells());
    if address_cells == 0 || address_cells > MAX_CELLS || size_cells > MAX_CELLS {
        return Err(Error::Malformed(
            "#address-cells or #size-cells is out of range",
        ));
    }
    let value = frame.prop("reg").unwrap_or_default();
    if !value.len().is_multiple_of((address_cells + size_cells) * 4) {
        return Err(Error::Malformed(
            "reg is not a whole number of (address, size) entries",
        ));
    }
    Ok(Regions {
        frame,
        value,
        address_cells,
        size_cells,
    })
}

/// The node's first `reg` entry, translated; an error if it has none.
pub(crate) fn first_region(frame: &Frame<'_, '_>) -> Result<Region, Error> {
    regions(frame)?
        .next()
        .ok_or(Error::Malformed("a device the hypervisor needs has no reg"))?
}

impl Iterator for Regions<'_, '_, '_> {
    type Item = Result<Region, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let address = read_cells(self.value, self.address_cells)?;
        let size = read_cells(self.value.get(self.address_cells * 4..)?, self.size_cells)?;
        self.value = self
            .value
            .get((self.address_cells + self.size_cells) * 4..)?;
        Some(translate(self.frame, address, size))
    }
}

/// Translates `address` (with `size`) from the address space of `frame`'s
/// parent to a CPU physical address.
pub(crate) fn translate(frame: &Frame<'_, '_>, address: u128, size: u128) -> Result<Region, Error> {
    let mut address = address;
    let mut bus = frame.parent;
    while let Some(node) = bus {
        let Some(up) = node.parent else { break };
        address = through_ranges(node, up, address)?;
        bus = Some(up);
    }
    match (u64::try_from(address), u64::try_from(size)) {
        (Ok(base), Ok(size)) if base.checked_add(size).is_some() => Ok(Region { base, size }),
        _ => Err(Error::Malformed("a reg region does not fit 64 bits")),
    }
}

/// Maps `address` from `bus`'s child address space into `up`'s child address
/// space (the space `bus` itself lives in), through `bus`'s `ranges`.
fn through_ranges(bus: &Frame<'_, '_>, up: &Frame<'_, '_>, address: u128) -> Result<u128, Error> {
    let ranges = bus.prop("ranges").ok_or(Error::Malformed(
        "a device sits behind a bus without ranges (no CPU address)",
    ))?;
    if ranges.is_empty() {
        return Ok(address);
    }
    let (child_cells, size_cells, parent_cells) =
        (bus.address_cells(), bus.size_cells(), up.address_cells());
    if [child_cells, size_cells, parent_cells]
        .iter()
        .any(|&c| c > MAX_CELLS)
    {
        return Err(Error::Malformed(
            "#address-cells or #size-cells is out of range",
        ));
    }
    let entry = (child_cells + parent_cells + size_cells) * 4;
    if entry == 0 || !ranges.len().is_multiple_of(entry) {
        return Err(Error::Malformed("ranges is not a whole number of entries"));
    }
    for range in ranges.chunks_exact(entry) {
        let child = read_cells(range, child_cells).unwrap_or_default();
        let parent = read_cells(&range[child_cells * 4..], parent_cells).unwrap_or_default();
        let size =
            read_cells(&range[(child_cells + parent_cells) * 4..], size_cells).unwrap_or_default();
        if address >= child && address - child < size {
            return parent
                .checked_add(address - child)
                .ok_or(Error::Malformed("a translated address overflows"));
        }
    }
    Err(Error::Malformed(
        "a reg address is outside every range of its parent bus",
    ))
}
