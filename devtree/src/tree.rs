//! Walking the tree with each node's ancestors at hand.
//!
//! Address translation and interrupt-parent lookup need every node up to the
//! root. A [`Frame`] is a node plus a link to its parent's frame; [`walk`]
//! builds them on the stack, depth first, in one pass over the structure
//! block: each child starts where the previous one ended. Making a frame reads
//! the node's properties once, keeping the ones every visitor asks about
//! ([`Known`]) and the kinds its `compatible` list names; other properties are
//! looked up by name, comparing bytes.

use crate::cells::{first_string, u32_value};
use crate::compatible::Compatible;
use crate::structure::{Node, Step};

/// `#address-cells` when a node does not say (Devicetree Specification 2.3.5).
const DEFAULT_ADDRESS_CELLS: usize = 2;
/// `#size-cells` when a node does not say.
const DEFAULT_SIZE_CELLS: usize = 1;

/// The properties a frame keeps from its one pass over the node's: those the
/// walk and the visitors read for every node or for every ancestor.
#[derive(Clone, Copy)]
enum Known {
    Status,
    Compatible,
    DeviceType,
    AddressCells,
    SizeCells,
    Phandle,
    LinuxPhandle,
    InterruptParent,
    Ranges,
    Reg,
    Interrupts,
    ClockFrequency,
    Clocks,
}

/// How many [`Known`] properties there are.
const KNOWN: usize = Known::Clocks as usize + 1;

impl Known {
    fn of(name: &[u8]) -> Option<Known> {
        Some(match name {
            b"status" => Known::Status,
            b"compatible" => Known::Compatible,
            b"device_type" => Known::DeviceType,
            b"#address-cells" => Known::AddressCells,
            b"#size-cells" => Known::SizeCells,
            b"phandle" => Known::Phandle,
            b"linux,phandle" => Known::LinuxPhandle,
            b"interrupt-parent" => Known::InterruptParent,
            b"ranges" => Known::Ranges,
            b"reg" => Known::Reg,
            b"interrupts" => Known::Interrupts,
            b"clock-frequency" => Known::ClockFrequency,
            b"clocks" => Known::Clocks,
            _ => return None,
        })
    }
}

/// A node and the chain of its ancestors.
#[derive(Clone, Copy)]
pub(crate) struct Frame<'p, 'a> {
    pub node: Node<'a>,
    pub parent: Option<&'p Frame<'p, 'a>>,
    /// 0 for the root.
    pub depth: usize,
    /// The values of the [`Known`] properties (the first of each, should a
    /// hostile tree repeat one).
    known: [Option<&'a [u8]>; KNOWN],
    compatible: Compatible,
    /// Where the node's properties end: its first child or its end.
    children_at: usize,
}

impl<'p, 'a> Frame<'p, 'a> {
    /// The frame of the root node.
    pub fn root(node: Node<'a>) -> Self {
        Frame::new(node, None)
    }

    /// The frame of `node`, a child of `parent` (`None`: the root).
    pub fn new(node: Node<'a>, parent: Option<&'p Frame<'p, 'a>>) -> Self {
        let mut known = [None; KNOWN];
        let children_at = node.scan_properties(|p| {
            if let Some(k) = Known::of(p.name) {
                known[k as usize].get_or_insert(p.value);
            }
        });
        Frame {
            node,
            parent,
            depth: parent.map_or(0, |p| p.depth + 1),
            known,
            compatible: Compatible::of(known[Known::Compatible as usize].unwrap_or_default()),
            children_at,
        }
    }

    /// The node name with its unit address, e.g. `serial@7e215040`.
    pub fn name(&self) -> &'a [u8] {
        self.node.name
    }

    /// The node name without its unit address, e.g. `serial`.
    pub fn base_name(&self) -> &'a [u8] {
        base_name(self.name())
    }

    /// The raw value of property `name`.
    pub fn prop(&self, name: &str) -> Option<&'a [u8]> {
        let name = name.as_bytes();
        match Known::of(name) {
            Some(k) => self.known[k as usize],
            None => self.node.property(name),
        }
    }

    /// The first string of property `name`.
    pub fn str_prop(&self, name: &str) -> Option<&'a str> {
        self.prop(name).and_then(first_string)
    }

    /// A one-cell property.
    pub fn u32_prop(&self, name: &str) -> Option<u32> {
        self.prop(name).and_then(u32_value)
    }

    /// `status` is absent, `"okay"` or `"ok"`.
    pub fn is_enabled(&self) -> bool {
        self.str_prop("status")
            .is_none_or(|s| s == "okay" || s == "ok")
    }

    /// Whether the node's `compatible` list names a kind of `any`.
    pub fn is_compatible(&self, any: Compatible) -> bool {
        self.compatible.any(any)
    }

    /// `device_type`, e.g. `"memory"` or `"cpu"`.
    pub fn device_type(&self) -> Option<&'a str> {
        self.str_prop("device_type")
    }

    /// `#address-cells` for this node's children.
    pub fn address_cells(&self) -> usize {
        self.u32_prop("#address-cells")
            .map_or(DEFAULT_ADDRESS_CELLS, |c| c as usize)
    }

    /// `#size-cells` for this node's children.
    pub fn size_cells(&self) -> usize {
        self.u32_prop("#size-cells")
            .map_or(DEFAULT_SIZE_CELLS, |c| c as usize)
    }

    /// The node's `phandle` (or the older `linux,phandle`).
    pub fn phandle(&self) -> Option<u32> {
        self.u32_prop("phandle")
            .or_else(|| self.u32_prop("linux,phandle"))
    }

    /// The phandle of the node's interrupt parent: its own or nearest
    /// ancestor's `interrupt-parent`, else its tree parent (spec 2.4.1).
    pub fn interrupt_parent(&self) -> Option<u32> {
        let mut frame = Some(self);
        while let Some(f) = frame {
            if let Some(phandle) = f.u32_prop("interrupt-parent") {
                return Some(phandle);
            }
            frame = f.parent;
        }
        self.parent.and_then(Frame::phandle)
    }

    /// Whether `path` (absolute, e.g. `/soc/serial@7e215040`) names this node.
    /// A path component without `@` matches any unit address.
    pub fn path_is(&self, path: &str) -> bool {
        if !path.starts_with('/') {
            return false;
        }
        // Split as bytes: `str`'s reverse split is a searcher of its own in the Image.
        let mut components = path
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .rev();
        let mut frame = self;
        loop {
            match (components.next(), frame.parent) {
                (None, None) => return true,
                (Some(component), Some(parent)) => {
                    let matches = if component.contains(&b'@') {
                        frame.name() == component
                    } else {
                        frame.base_name() == component
                    };
                    if !matches {
                        return false;
                    }
                    frame = parent;
                }
                _ => return false,
            }
        }
    }

    /// Whether this is a child of the root named `name` (without unit address).
    pub fn is_top_level(&self, name: &str) -> bool {
        self.depth == 1 && self.base_name() == name.as_bytes()
    }
}

/// `name` without its unit address.
pub(crate) fn base_name(name: &[u8]) -> &[u8] {
    name.split(|&b| b == b'@').next().unwrap_or(name)
}

/// Calls `visit` on `frame` and every enabled node below it, depth first in
/// tree order, until it fails. A disabled node is skipped with everything under
/// it. Recursion is bounded by the validator's depth limit.
pub(crate) fn walk<'a, E, F>(frame: &Frame<'_, 'a>, visit: &mut F) -> Result<(), E>
where
    F: FnMut(&Frame<'_, 'a>) -> Result<(), E>,
{
    let mut failed = None;
    if frame.is_enabled() {
        // One walker for every caller's closure and error type (`dyn`, a stop flag): its
        // code once in the hyp's Image, not once per caller.
        let _ = walk_enabled(frame, &mut |f: &Frame<'_, 'a>| {
            visit(f).map_err(|e| failed = Some(e)).is_ok()
        });
    }
    failed.map_or(Ok(()), Err)
}

/// [`walk`] of an enabled `frame`, `visit` saying whether to go on: returns
/// where its node ends (just past its `FDT_END_NODE`), `Ok(None)` if the block
/// ends first (a validated one never does), `Err(())` once `visit` stopped it.
fn walk_enabled<'a>(
    frame: &Frame<'_, 'a>,
    visit: &mut dyn FnMut(&Frame<'_, 'a>) -> bool,
) -> Result<Option<usize>, ()> {
    if !visit(frame) {
        return Err(());
    }
    let blocks = frame.node.blocks();
    let mut pos = frame.children_at;
    loop {
        let child = match blocks.step(pos) {
            Some(Step::Child(node)) => Frame::new(node, Some(frame)),
            Some(Step::End(after)) => return Ok(Some(after)),
            None => return Ok(None),
        };
        let end = if child.is_enabled() {
            walk_enabled(&child, visit)?
        } else {
            blocks.skip_node(child.node.body())
        };
        match end {
            Some(end) => pos = end,
            None => return Ok(None),
        }
    }
}

/// The first enabled node, in tree order, for which `pick` returns `Some`.
pub(crate) fn find<'a, T>(
    root: &Frame<'_, 'a>,
    mut pick: impl FnMut(&Frame<'_, 'a>) -> Option<T>,
) -> Option<T> {
    let mut found = None;
    let _ = walk(root, &mut |frame: &Frame<'_, 'a>| match pick(frame) {
        Some(value) => {
            found = Some(value);
            Err(())
        }
        None => Ok(()),
    });
    found
}
