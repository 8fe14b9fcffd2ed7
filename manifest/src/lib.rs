//! The VM manifest: which VMs the hypervisor starts, with what memory, vCPUs, command line,
//! console and fault policy, and the channels between them; and the cpio archive (the initrd)
//! that carries it together with the guest images.
//!
//! Two front ends share one model ([`Manifest`]) and one set of rules ([`validate`]):
//!
//! - the TOML users write (feature `host`: `parse_toml`); `docs/MANIFEST.md` is its
//!   normative reference;
//! - the compact line format inside the archive ([`encode`], [`decode`]), which the hyp parses
//!   bare-metal; [`decode`] checks every rule again, since its input comes from outside.
//!
//! `pvpack` turns the first into the second: it reads the TOML, resolves the images and writes
//! a [`cpio`] newc archive holding `manifest` (the compact form) and `images/<name>`.
//!
//! [`elf`] holds the rules a PV guest's image must meet, shared by the hyp's loader and
//! `pvpack`; [`linux_image`] those of a Linux VM's kernel and where its pieces go in its RAM.
//!
//! The crate is `no_std` + `alloc` without the `host` feature, and has no `unsafe`.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod bdf;
mod compact;
pub mod cpio;
pub mod elf;
mod fits;
pub mod linux_image;
mod model;
mod quoted;
mod size;
#[cfg(feature = "host")]
mod toml_front;
mod validate;

pub use bdf::Bdf;
pub use compact::{DecodeError, DecodeErrorKind, HEADER, decode, encode};
pub use fits::{HYP_ALLOWANCE_BYTES, ManifestError, check_fits};
pub use model::*;
pub use quoted::Quoted;
pub use size::{Size, parse_size};
#[cfg(feature = "host")]
pub use toml_front::{SourceLines, VmLines, parse_toml, parse_toml_with_lines};
pub use validate::{
    Invalid, Item, Problem, check_bootargs, check_channel, check_cmdline, check_disk,
    check_image_name, check_kind, check_memory, check_name, check_pages, check_relations,
    check_vcpus, check_vm, check_vm_name, validate,
};

/// Name of the compact manifest inside the archive.
pub const ARCHIVE_MANIFEST: &str = "manifest";
/// Directory of the guest images inside the archive.
pub const ARCHIVE_IMAGES_DIR: &str = "images/";
