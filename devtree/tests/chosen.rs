//! `/chosen`: console selection, command line, initrd.

mod common;

use common::fdt_writer::{Writer, virt_like_root};
use devtree::{Error, Region, UartKind};

/// A virt-like tree with a disabled PL011, an enabled one, and a 16550, plus
/// whatever `chosen` writes into `/chosen` (`None`: no `/chosen` at all).
fn tree(chosen: Option<&dyn Fn(&mut Writer)>) -> Vec<u8> {
    let mut w = virt_like_root();
    w.begin("aliases")
        .string("serial0", "/pl011@9001000")
        .string("serial1", "/serial@9002000")
        .end();
    if let Some(chosen) = chosen {
        w.begin("chosen");
        chosen(&mut w);
        w.end();
    }
    w.begin("pl011@9000000")
        .string("compatible", "arm,pl011")
        .string("status", "disabled")
        .cells("reg", &[0, 0x0900_0000, 0, 0x1000])
        .end();
    w.begin("pl011@9001000")
        .string("compatible", "arm,pl011")
        .cells("reg", &[0, 0x0900_1000, 0, 0x1000])
        .cells("clock-frequency", &[48_000_000])
        .end();
    w.begin("serial@9002000")
        .string("compatible", "ns16550a")
        .cells("reg", &[0, 0x0900_2000, 0, 0x100])
        .end();
    w.end();
    w.finish()
}

#[test]
fn stdout_path_alias_with_options() {
    let dtb = tree(Some(&|w: &mut Writer| {
        w.string("stdout-path", "serial1:115200n8");
    }));
    let console = devtree::parse(&dtb).unwrap().console.unwrap();
    assert_eq!(console.kind, UartKind::Ns16550);
    assert_eq!(
        console.region,
        Region {
            base: 0x0900_2000,
            size: 0x100
        }
    );
}

#[test]
fn stdout_path_without_unit_address() {
    let dtb = tree(Some(&|w: &mut Writer| {
        w.string("stdout-path", "/serial");
    }));
    assert_eq!(
        devtree::parse(&dtb).unwrap().console.unwrap().kind,
        UartKind::Ns16550
    );
}

#[test]
fn without_stdout_path_the_first_enabled_uart() {
    let dtb = tree(None);
    let console = devtree::parse(&dtb).unwrap().console.unwrap();
    assert_eq!(console.kind, UartKind::Pl011);
    assert_eq!(
        console.region.base, 0x0900_1000,
        "the disabled PL011 is skipped"
    );
    assert_eq!(console.clock_hz, Some(48_000_000));
}

#[test]
fn a_stdout_path_naming_a_disabled_uart_falls_back() {
    let dtb = tree(Some(&|w: &mut Writer| {
        w.string("stdout-path", "/pl011@9000000");
    }));
    assert_eq!(
        devtree::parse(&dtb).unwrap().console.unwrap().region.base,
        0x0900_1000
    );
}

#[test]
fn initrd_in_32_bit_cells_and_bootargs() {
    let dtb = tree(Some(&|w: &mut Writer| {
        w.cells("linux,initrd-start", &[0x4800_0000])
            .cells("linux,initrd-end", &[0x4810_0000])
            .string("bootargs", "console=hvc0");
    }));
    let b = devtree::parse(&dtb).unwrap();
    assert_eq!(
        b.initrd,
        Some(Region {
            base: 0x4800_0000,
            size: 0x10_0000
        })
    );
    assert_eq!(b.bootargs, Some("console=hvc0"));
}

#[test]
fn initrd_in_64_bit_cells() {
    let dtb = tree(Some(&|w: &mut Writer| {
        w.cells("linux,initrd-start", &[0x1, 0x0])
            .cells("linux,initrd-end", &[0x1, 0x2000]);
    }));
    assert_eq!(
        devtree::parse(&dtb).unwrap().initrd,
        Some(Region {
            base: 1 << 32,
            size: 0x2000
        })
    );
}

#[test]
fn an_initrd_ending_before_it_starts_is_refused() {
    let dtb = tree(Some(&|w: &mut Writer| {
        w.cells("linux,initrd-start", &[0x2000])
            .cells("linux,initrd-end", &[0x1000]);
    }));
    assert_eq!(
        devtree::parse(&dtb),
        Err(Error::Malformed(
            "/chosen linux,initrd-end is below linux,initrd-start"
        ))
    );
}

#[test]
fn empty_bootargs_are_none() {
    let dtb = tree(Some(&|w: &mut Writer| {
        w.string("bootargs", "");
    }));
    assert_eq!(devtree::parse(&dtb).unwrap().bootargs, None);
}

/// A tree whose console PL011 takes its clock from the fixed clock with
/// phandle `console_clock`, among `clocks` fixed clocks (phandles 1..=clocks,
/// clock `n` at `n` MHz), all before the UART in tree order, or all after it.
fn clocked_console(clocks: u32, console_clock: u32, clocks_first: bool) -> Vec<u8> {
    let write_clocks = |w: &mut Writer| {
        for n in 1..=clocks {
            w.begin(&format!("clock{n}"))
                .string("compatible", "fixed-clock")
                .cells("phandle", &[n])
                .cells("clock-frequency", &[n * 1_000_000])
                .end();
        }
    };
    let mut w = virt_like_root();
    if clocks_first {
        write_clocks(&mut w);
    }
    w.begin("pl011@9000000")
        .string("compatible", "arm,pl011")
        .cells("reg", &[0, 0x0900_0000, 0, 0x1000])
        .cells("clocks", &[console_clock])
        .end();
    if !clocks_first {
        write_clocks(&mut w);
    }
    w.end();
    w.finish()
}

#[test]
fn the_console_clock_is_found_before_or_after_it_among_many() {
    for clocks_first in [true, false] {
        for (clocks, console_clock) in [(1, 1), (3, 2), (8, 8), (9, 9), (20, 17), (20, 3)] {
            let dtb = clocked_console(clocks, console_clock, clocks_first);
            let console = devtree::parse(&dtb).unwrap().console.unwrap();
            assert_eq!(
                console.clock_hz,
                Some(console_clock * 1_000_000),
                "{clocks} clocks, the console's #{console_clock}, clocks first: {clocks_first}"
            );
        }
    }
    // A phandle no fixed clock has: no frequency.
    let dtb = clocked_console(20, 21, true);
    assert_eq!(
        devtree::parse(&dtb).unwrap().console.unwrap().clock_hz,
        None
    );
}
