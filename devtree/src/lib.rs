//! Reads a flattened device tree (DTB) into a [`Board`]: the plain summary the
//! hypervisor boots from — RAM, reserved memory, console UART, GIC, timer,
//! PSCI, CPUs, `/chosen`, the Raspberry Pi's PM block, virtio-mmio slots, and the SMMUv3
//! and PCIe host bridge.
//!
//! - [`Writer`] writes one (what the hypervisor gives an unmodified guest).
//! - `no_std` and no allocation: the hypervisor calls it before it has a heap.
//!   Lists live in fixed tables ([`MAX_MEMORY`], ...).
//! - Every address is a CPU physical address: `reg` values are translated
//!   through the `ranges` of every parent bus (the Pi's `/soc` maps bus address
//!   0x7e000000 to 0xfe000000).
//! - Disabled nodes (`status` other than `"okay"`/`"ok"`) and everything below
//!   them are ignored.
//! - A hostile or corrupt blob gives an [`Error`], never a panic: the structure
//!   block is validated (`validate.rs`), then walked by a small bounds-checked
//!   reader (`structure.rs`; why not the `fdt` crate is written there).
//!
//! ```no_run
//! # fn boot(dtb: &[u8]) -> Result<(), devtree::Error> {
//! let board = devtree::parse(dtb)?;
//! for ram in board.memory() {
//!     // hand ram.base .. ram.end() to the frame allocator
//! }
//! # Ok(()) }
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod board;
mod cells;
mod chosen;
mod compatible;
mod cpus;
mod device;
mod devices;
mod error;
mod gic;
mod header;
mod interrupts;
mod memory;
mod pci;
mod structure;
mod translate;
mod tree;
mod uart;
mod validate;
mod writer;

pub use board::{Board, MAX_CPUS, MAX_MEMORY, MAX_RESERVED, MAX_VIRTIO};
pub use device::{
    Cpu, EnableMethod, Gic, GicVersion, IntxMap, PciHost, PciWindow, PowerManagement, Psci,
    PsciMethod, Region, Smmu, Timer, Uart, UartKind, VirtioMmio,
};
pub use error::Error;
pub use header::{HEADER_SIZE, MAX_TOTAL_SIZE, total_size};
pub use writer::{WriteError, Writer};

use crate::header::Header;
use crate::tree::{Frame, walk};
use crate::uart::ConsoleSearch;

/// Summarises the device tree `dtb`, which must hold at least its `totalsize`
/// bytes.
///
/// Fails with [`Error::NoMemory`] if the tree gives no RAM (the Raspberry Pi
/// DTB as shipped, before the firmware fills it in). A caller that wants to
/// report that on the tree's console uses [`parse_allow_no_memory`] and then
/// [`Board::require_memory`].
pub fn parse(dtb: &[u8]) -> Result<Board<'_>, Error> {
    let board = parse_allow_no_memory(dtb)?;
    board.require_memory()?;
    Ok(board)
}

/// Like [`parse`], but a tree without RAM gives a [`Board`] whose
/// [`memory`](Board::memory) is empty instead of an error.
pub fn parse_allow_no_memory(dtb: &[u8]) -> Result<Board<'_>, Error> {
    let header = Header::parse(dtb)?;
    let dtb = dtb.get(..header.total_size).ok_or(Error::BadHeader)?;
    let tree = validate::validate(dtb, &header)?;
    let root = Frame::root(tree.blocks.root().ok_or(Error::Malformed("no root node"))?);

    let mut board = Board::empty();
    board.model = root.str_prop("model").unwrap_or_default();
    board.compatible = root.str_prop("compatible").unwrap_or_default();
    let chosen = chosen::read(&root, &tree)?;
    board.bootargs = chosen.bootargs;
    board.initrd = chosen.initrd;
    memory::add_reservations(dtb, &header, &mut board)?;

    // One walk. Interrupts are decoded once it is over, against the GIC it found
    // wherever that is in tree order.
    let mut gic = None;
    let mut pending = devices::Pending::new();
    let mut console = ConsoleSearch::new(chosen.stdout_path);
    let (mut smmu, mut pci, mut iommu_phandle, mut intx) = (None, None, None, None);
    walk(&root, &mut |frame: &Frame<'_, '_>| {
        memory::visit(frame, &mut board)?;
        cpus::visit(frame, &mut board)?;
        gic::visit(frame, &mut gic)?;
        devices::visit(frame, &mut pending, &mut board)?;
        pci::visit(frame, &mut smmu, &mut pci, &mut iommu_phandle, &mut intx);
        console.visit(frame)
    })?;
    board.gic = gic.map(|(gic, _)| gic);
    devices::finish(&pending, gic.and_then(|(_, info)| info), &mut board)?;
    board.console = console.finish(&root);
    (board.smmu, board.pci) = pci::finish(
        smmu,
        pci,
        iommu_phandle,
        intx,
        gic.and_then(|(_, info)| info),
    );
    // Insertion sort: at most MAX_VIRTIO slots, and it keeps a sort routine out of the image.
    let slots = &mut board.virtio_mmio[..board.virtio_count];
    for i in 1..slots.len() {
        let mut j = i;
        while j > 0 && slots[j - 1].region.base > slots[j].region.base {
            slots.swap(j - 1, j);
            j -= 1;
        }
    }
    Ok(board)
}

/// The value of property `name` of the first enabled node, in tree order, at `path` (absolute;
/// a component without `@` matches any unit address: `/cpus/cpu`, `/memory`), or `None` if no
/// such node has it. For a caller checking one property of a tree, e.g. one it wrote.
pub fn find_property<'a>(dtb: &'a [u8], path: &str, name: &str) -> Result<Option<&'a [u8]>, Error> {
    let header = Header::parse(dtb)?;
    let dtb = dtb.get(..header.total_size).ok_or(Error::BadHeader)?;
    let tree = validate::validate(dtb, &header)?;
    let root = Frame::root(tree.blocks.root().ok_or(Error::Malformed("no root node"))?);
    Ok(tree::find(&root, |frame| {
        frame.path_is(path).then(|| frame.prop(name)).flatten()
    }))
}
