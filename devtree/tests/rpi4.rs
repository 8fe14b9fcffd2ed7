//! The Raspberry Pi 4 family: Debian's `bcm2711-rpi-*.dtb` as shipped (memory
//! left empty for the firmware to fill) and the same tree as QEMU `raspi4b`
//! completes it (memory filled in, unmodelled devices removed with FDT_NOP).
//! The Pi's peripherals sit on `/soc` at bus addresses; every region below is
//! the translated CPU address.

mod common;

use devtree::{
    Board, Cpu, EnableMethod, Error, Gic, GicVersion, PowerManagement, Region, Timer, Uart,
    UartKind,
};

/// What every BCM2711 tree here says, memory aside.
fn check_bcm2711(b: &Board<'_>) {
    assert_eq!(
        b.reserved(),
        [Region {
            base: 0,
            size: 0x1000
        }],
        "/memreserve/ only: linux,cma has no reg, nvram@0 is disabled"
    );
    // stdout-path = "serial1:115200n8" -> /soc/serial@7e215040 -> 0xfe215040.
    assert_eq!(
        b.console,
        Some(Uart {
            kind: UartKind::Bcm2835Aux,
            region: Region {
                base: 0xfe21_5040,
                size: 0x40
            },
            clock_hz: None,
        })
    );
    // GIC-400 at bus 0x40041000, /soc maps 0x40000000 -> 0xff800000.
    assert_eq!(
        b.gic,
        Some(Gic {
            version: GicVersion::V2,
            distributor: Region {
                base: 0xff84_1000,
                size: 0x1000
            },
            cpu_interface: Some(Region {
                base: 0xff84_2000,
                size: 0x2000
            }),
            redistributor: None,
            hyp_interface: Some(Region {
                base: 0xff84_4000,
                size: 0x2000
            }),
            vcpu_interface: Some(Region {
                base: 0xff84_6000,
                size: 0x2000
            }),
            maintenance_irq: Some(25),
        })
    );
    assert_eq!(
        b.timer,
        Some(Timer {
            phys_ppi: 14,
            virt_ppi: 11,
            hyp_phys_ppi: 10
        })
    );
    assert_eq!(b.psci, None, "the Pi has no PSCI");
    let spin = |mpidr, release_addr| Cpu {
        mpidr,
        enable: EnableMethod::SpinTable { release_addr },
    };
    assert_eq!(
        b.cpus(),
        [spin(0, 0xd8), spin(1, 0xe0), spin(2, 0xe8), spin(3, 0xf0)]
    );
    // The PM block (watchdog@7e100000, first reg entry "pm").
    assert_eq!(
        b.power,
        Some(PowerManagement {
            region: Region {
                base: 0xfe10_0000,
                size: 0x114
            }
        })
    );
    assert_eq!(b.virtio(), []);
    assert_eq!(b.initrd, None);
    assert_eq!(b.bootargs, None);
}

/// The Debian trees: `parse` refuses them (memory@0 has reg <0 0 0>), and the
/// lenient parse still finds the console to say so on.
fn check_debian(name: &str, model: &str, compatible: &str) {
    let dtb = common::load(name);
    assert_eq!(devtree::parse(&dtb), Err(Error::NoMemory));
    let b = devtree::parse_allow_no_memory(&dtb).expect("the rest of the tree parses");
    assert_eq!(b.memory(), []);
    assert_eq!(b.require_memory(), Err(Error::NoMemory));
    assert_eq!((b.model, b.compatible), (model, compatible));
    check_bcm2711(&b);
}

#[test]
fn rpi_4_b() {
    check_debian(
        "bcm2711-rpi-4-b.dtb",
        "Raspberry Pi 4 Model B",
        "raspberrypi,4-model-b",
    );
}

#[test]
fn rpi_400() {
    check_debian("bcm2711-rpi-400.dtb", "Raspberry Pi 400", "raspberrypi,400");
}

#[test]
fn rpi_cm4_io() {
    check_debian(
        "bcm2711-rpi-cm4-io.dtb",
        "Raspberry Pi Compute Module 4 IO Board",
        "raspberrypi,4-compute-module",
    );
}

#[test]
fn no_memory_message_is_clear() {
    let message = Error::NoMemory.to_string();
    assert!(message.contains("no memory"), "{message}");
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn qemu_raspi4b() {
    let dtb = common::load("qemu-raspi4b.dtb");
    let b = devtree::parse(&dtb).expect("QEMU fills in memory");
    assert_eq!(
        (b.model, b.compatible),
        ("Raspberry Pi 4 Model B", "raspberrypi,4-model-b")
    );
    // QEMU gives the ARM only the RAM below the VideoCore's 64 MiB at the top
    // of the first GiB (binfo.ram_size = vcram_base).
    assert_eq!(
        b.memory(),
        [Region {
            base: 0,
            size: 0x3c00_0000
        }]
    );
    check_bcm2711(&b);
}
