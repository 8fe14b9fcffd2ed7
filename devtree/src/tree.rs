//! Walking the tree with each node's ancestors at hand.
//!
//! Address translation and interrupt-parent lookup need every node up to the
//! root. A [`Frame`] is a node plus
//! a link to its parent's frame; [`walk`] builds them on the stack, depth first.

use crate::cells::{first_string, strings, u32_value};
use crate::structure::Node;

/// `#address-cells` when a node does not say (Devicetree Specification 2.3.5).
const DEFAULT_ADDRESS_CELLS: usize = 2;
/// `#size-cells` when a node does not say.
const DEFAULT_SIZE_CELLS: usize = 1;

/// A node and the chain of its ancestors.
#[derive(Clone, Copy)]
pub(crate) struct Frame<'p, 'a> {
    pub node: Node<'a>,
    pub parent: Option<&'p Frame<'p, 'a>>,
    /// 0 for the root.
    pub depth: usize,
}

impl<'p, 'a> Frame<'p, 'a> {
    /// The frame of the root node.
    pub fn root(node: Node<'a>) -> Self {
        Frame {
            node,
            parent: None,
            depth: 0,
        }
    }

    /// The node name with its unit address, e.g. `serial@7e215040`.
    pub fn name(&self) -> &'a str {
        self.node.name
    }

    /// The node name without its unit address, e.g. `serial`.
    pub fn base_name(&self) -> &'a str {
        base_name(self.name())
    }

    /// The raw value of property `name`.
    pub fn prop(&self, name: &str) -> Option<&'a [u8]> {
        self.node.property(name)
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

    /// Whether any of the node's `compatible` strings is in `any`.
    pub fn is_compatible(&self, any: &[&str]) -> bool {
        self.prop("compatible")
            .is_some_and(|v| strings(v).any(|c| any.contains(&c)))
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
        let mut components = path.split('/').filter(|c| !c.is_empty()).rev();
        let mut frame = self;
        loop {
            match (components.next(), frame.parent) {
                (None, None) => return true,
                (Some(component), Some(parent)) => {
                    let matches = if component.contains('@') {
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
        self.depth == 1 && self.base_name() == name
    }
}

/// `name` without its unit address.
pub(crate) fn base_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// Calls `visit` on `frame` and every enabled node below it, depth first in
/// tree order. A disabled node is skipped with everything under it. Recursion
/// is bounded by the validator's depth limit.
pub(crate) fn walk<'a, E, F>(frame: &Frame<'_, 'a>, visit: &mut F) -> Result<(), E>
where
    F: FnMut(&Frame<'_, 'a>) -> Result<(), E>,
{
    if !frame.is_enabled() {
        return Ok(());
    }
    visit(frame)?;
    for node in frame.node.children() {
        let child = Frame {
            node,
            parent: Some(frame),
            depth: frame.depth + 1,
        };
        walk(&child, visit)?;
    }
    Ok(())
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
