//! Address translation through every parent bus's `ranges`.

mod common;

use common::fdt_writer::{Writer, virt_like_root};
use devtree::{Error, Region};

/// / (2+2 cells) -> bus@10000000 (1+1 cells, ranges 0x0 -> 0x10000000, 16 MiB)
/// -> sub@200000 (1+1 cells, ranges 0x100000 -> 0x200000, 64 KiB) -> uart.
/// `sub_ranges` replaces the inner bus's ranges (`None`: no ranges property).
fn nested(sub_ranges: Option<&[u32]>, uart_reg: &[u32]) -> Vec<u8> {
    let mut w: Writer = virt_like_root();
    w.begin("chosen")
        .string(
            "stdout-path",
            "/bus@10000000/sub@200000/serial@100040:115200",
        )
        .end();
    w.begin("bus@10000000")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1])
        .cells("ranges", &[0x0, 0x0, 0x1000_0000, 0x0100_0000]);
    w.begin("sub@200000")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[1]);
    if let Some(ranges) = sub_ranges {
        w.cells("ranges", ranges);
    }
    w.begin("serial@100040")
        .string("compatible", "arm,pl011")
        .cells("reg", uart_reg)
        .end();
    w.end().end().end();
    w.finish()
}

#[test]
fn translates_through_two_buses() {
    let dtb = nested(Some(&[0x10_0000, 0x20_0000, 0x1_0000]), &[0x10_0040, 0x40]);
    let console = devtree::parse(&dtb).unwrap().console.unwrap();
    assert_eq!(
        console.region,
        Region {
            base: 0x1020_0040,
            size: 0x40
        }
    );
}

#[test]
fn empty_ranges_is_the_identity() {
    let dtb = nested(Some(&[]), &[0x10_0040, 0x40]);
    let console = devtree::parse(&dtb).unwrap().console.unwrap();
    assert_eq!(
        console.region,
        Region {
            base: 0x1010_0040,
            size: 0x40
        }
    );
}

#[test]
fn missing_ranges_is_not_translatable() {
    let dtb = nested(None, &[0x10_0040, 0x40]);
    assert_eq!(
        devtree::parse(&dtb),
        Err(Error::Malformed(
            "a device sits behind a bus without ranges (no CPU address)"
        ))
    );
}

#[test]
fn an_address_outside_every_range_is_refused() {
    let dtb = nested(Some(&[0x10_0000, 0x20_0000, 0x1_0000]), &[0x30_0000, 0x40]);
    assert_eq!(
        devtree::parse(&dtb),
        Err(Error::Malformed(
            "a reg address is outside every range of its parent bus"
        ))
    );
}

#[test]
fn a_truncated_reg_is_refused() {
    let dtb = nested(Some(&[]), &[0x10_0040]);
    assert_eq!(
        devtree::parse(&dtb),
        Err(Error::Malformed(
            "reg is not a whole number of (address, size) entries"
        ))
    );
}

#[test]
fn pi_soc_ranges_map_bus_to_cpu_addresses() {
    // /soc ranges: 0x7e000000 -> 0xfe000000 and 0x40000000 -> 0xff800000.
    let dtb = common::load("bcm2711-rpi-4-b.dtb");
    let b = devtree::parse_allow_no_memory(&dtb).unwrap();
    assert_eq!(b.console.unwrap().region.base, 0xfe21_5040);
    assert_eq!(b.power.unwrap().region.base, 0xfe10_0000);
    assert_eq!(b.gic.unwrap().distributor.base, 0xff84_1000);
}
