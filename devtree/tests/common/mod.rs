//! Helpers shared by the integration tests: the real device trees from the
//! cache, and a tiny DTB writer for the cases no real tree covers.

#![allow(dead_code)]

pub mod fdt_writer;

use std::path::PathBuf;

/// The directory `scripts/setup.sh` fills with device trees.
pub fn dtb_dir() -> PathBuf {
    let cache = std::env::var_os("PVHYP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
            xdg.unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
            })
            .join("pvhyp")
        });
    cache.join("dtb")
}

/// The bytes of the cached device tree `name`; fails the test with a pointer
/// to the setup script if it is missing.
pub fn load(name: &str) -> Vec<u8> {
    let path = dtb_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "device trees missing: run scripts/setup.sh ({}: {e})",
            path.display()
        )
    })
}

/// Every cached tree this suite knows, by file name.
pub const ALL: &[&str] = &[
    "qemu-virt-gicv2.dtb",
    "qemu-virt-gicv3.dtb",
    "qemu-raspi4b.dtb",
    "bcm2711-rpi-4-b.dtb",
    "bcm2711-rpi-400.dtb",
    "bcm2711-rpi-cm4-io.dtb",
];
