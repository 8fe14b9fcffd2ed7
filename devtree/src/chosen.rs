//! `/chosen` (console path, command line, initrd) and `/aliases`.

use crate::Error;
use crate::Region;
use crate::cells::{first_string, u32_or_u64_value};
use crate::structure::Node;
use crate::tree::Frame;
use crate::validate::Validated;

/// What `/chosen` says.
pub(crate) struct Chosen<'a> {
    /// The absolute path of the console node, aliases resolved, options stripped.
    pub stdout_path: Option<&'a str>,
    pub bootargs: Option<&'a str>,
    pub initrd: Option<Region>,
}

/// Reads `/chosen`, resolving `stdout-path` through `/aliases` (both as the
/// validator found them: children of `root`).
pub(crate) fn read<'a>(root: &Frame<'_, 'a>, tree: &Validated<'a>) -> Result<Chosen<'a>, Error> {
    let Some(chosen) = tree.chosen.map(|node| Frame::new(node, Some(root))) else {
        return Ok(Chosen {
            stdout_path: None,
            bootargs: None,
            initrd: None,
        });
    };
    let stdout = chosen
        .str_prop("stdout-path")
        .or_else(|| chosen.str_prop("linux,stdout-path"));
    Ok(Chosen {
        stdout_path: stdout.and_then(|s| resolve(root, tree.aliases, strip_options(s))),
        bootargs: chosen.str_prop("bootargs").filter(|s| !s.is_empty()),
        initrd: initrd(&chosen)?,
    })
}

/// `serial1:115200n8` -> `serial1`.
fn strip_options(stdout_path: &str) -> &str {
    stdout_path.split(':').next().unwrap_or(stdout_path)
}

/// An absolute path as is; otherwise the path `/aliases` gives the name.
fn resolve<'a>(
    root: &Frame<'_, 'a>,
    aliases: Option<Node<'a>>,
    path_or_alias: &'a str,
) -> Option<&'a str> {
    if path_or_alias.starts_with('/') {
        return Some(path_or_alias);
    }
    let aliases = Frame::new(aliases?, Some(root));
    aliases
        .prop(path_or_alias)
        .and_then(first_string)
        .filter(|p| p.starts_with('/'))
}

/// `linux,initrd-start` and `linux,initrd-end`, each one or two cells.
fn initrd(chosen: &Frame<'_, '_>) -> Result<Option<Region>, Error> {
    let (Some(start), Some(end)) = (
        chosen.prop("linux,initrd-start"),
        chosen.prop("linux,initrd-end"),
    ) else {
        return Ok(None);
    };
    let (Some(start), Some(end)) = (u32_or_u64_value(start), u32_or_u64_value(end)) else {
        return Err(Error::Malformed(
            "/chosen linux,initrd-start or -end is not one or two cells",
        ));
    };
    match end.checked_sub(start) {
        Some(0) => Ok(None),
        Some(size) => Ok(Some(Region { base: start, size })),
        None => Err(Error::Malformed(
            "/chosen linux,initrd-end is below linux,initrd-start",
        )),
    }
}
