//! QEMU `virt` (virtualization=on, 1 GiB, cortex-a72, 1 CPU), as dumped by
//! `scripts/setup.sh` with `dumpdtb`, GICv2 and GICv3.

mod common;

use devtree::{
    Board, Cpu, EnableMethod, Gic, GicVersion, Psci, PsciMethod, Region, Timer, Uart, UartKind,
};

fn board(dtb: &[u8]) -> Board<'_> {
    devtree::parse(dtb).expect("QEMU virt tree parses")
}

/// What both GIC versions share: everything but the GIC.
fn check_common(b: &Board<'_>) {
    assert_eq!(b.model, "linux,dummy-virt");
    assert_eq!(b.compatible, "linux,dummy-virt");
    assert_eq!(
        b.memory(),
        [Region {
            base: 0x4000_0000,
            size: 1 << 30
        }]
    );
    assert_eq!(b.reserved(), []);
    // stdout-path = "/pl011@9000000"; its clock is the 24 MHz fixed apb-pclk.
    assert_eq!(
        b.console,
        Some(Uart {
            kind: UartKind::Pl011,
            region: Region {
                base: 0x0900_0000,
                size: 0x1000
            },
            clock_hz: Some(24_000_000),
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
    assert_eq!(
        b.psci,
        Some(Psci {
            method: PsciMethod::Smc,
            cpu_on: Some(0xc400_0003)
        })
    );
    // One CPU: QEMU gives it no enable-method.
    assert_eq!(
        b.cpus(),
        [Cpu {
            mpidr: 0,
            enable: EnableMethod::None
        }]
    );
    assert_eq!(b.initrd, None);
    assert_eq!(b.bootargs, None);
    assert_eq!(b.power, None);
}

/// 32 transports at 0x0a000000 + n * 0x200 on SPI 16 + n (INTID 48 + n),
/// sorted by address although QEMU lists them last slot first.
fn check_virtio(b: &Board<'_>) {
    assert_eq!(b.virtio().len(), 32);
    for (n, slot) in b.virtio().iter().enumerate() {
        let n = n as u64;
        assert_eq!(
            slot.region,
            Region {
                base: 0x0a00_0000 + n * 0x200,
                size: 0x200
            }
        );
        assert_eq!(u64::from(slot.irq), 48 + n);
    }
}

#[test]
fn gicv3() {
    let dtb = common::load("qemu-virt-gicv3.dtb");
    let b = board(&dtb);
    check_common(&b);
    check_virtio(&b);
    assert_eq!(
        b.gic,
        Some(Gic {
            version: GicVersion::V3,
            distributor: Region {
                base: 0x0800_0000,
                size: 0x1_0000
            },
            cpu_interface: None,
            redistributor: Some(Region {
                base: 0x080a_0000,
                size: 0xf6_0000
            }),
            hyp_interface: None,
            vcpu_interface: None,
            maintenance_irq: Some(25),
        })
    );
}

#[test]
fn gicv2() {
    let dtb = common::load("qemu-virt-gicv2.dtb");
    let b = board(&dtb);
    check_common(&b);
    check_virtio(&b);
    assert_eq!(
        b.gic,
        Some(Gic {
            version: GicVersion::V2,
            distributor: Region {
                base: 0x0800_0000,
                size: 0x1_0000
            },
            cpu_interface: Some(Region {
                base: 0x0801_0000,
                size: 0x1_0000
            }),
            redistributor: None,
            hyp_interface: Some(Region {
                base: 0x0803_0000,
                size: 0x1_0000
            }),
            vcpu_interface: Some(Region {
                base: 0x0804_0000,
                size: 0x1_0000
            }),
            maintenance_irq: Some(25),
        })
    );
}

#[test]
fn total_size_of_a_qemu_dump_is_its_padded_megabyte() {
    let dtb = common::load("qemu-virt-gicv3.dtb");
    assert_eq!(
        devtree::total_size(&dtb[..devtree::HEADER_SIZE]),
        Some(1 << 20)
    );
}

/// The cached tree has no SMMU (no `iommu=smmuv3`): the host bridge is found, not behind one.
#[test]
fn pcie_host_bridge_and_its_32_bit_window() {
    let dtb = common::load("qemu-virt-gicv3.dtb");
    let b = board(&dtb);
    assert_eq!(b.smmu, None);
    assert_eq!(
        b.pci,
        Some(devtree::PciHost {
            ecam: Region {
                base: 0x40_1000_0000,
                size: 0x1000_0000
            },
            bus_first: 0,
            bus_last: 0xff,
            mem32: Some(devtree::PciWindow {
                pci_base: 0x1000_0000,
                cpu_base: 0x1000_0000,
                size: 0x2eff_0000
            }),
            behind_smmu: false,
            intx: b.pci.unwrap().intx,
        })
    );
    // interrupt-map: INTx of slot s, pin p (1..4) raises SPI 3 + (s + p - 1) % 4.
    let intx = b.pci.unwrap().intx;
    assert_eq!(intx.count, 16);
    assert_eq!(intx.intid(0, 1 << 3, 1), Some(32 + 4));
    assert_eq!(intx.intid(0, 0, 1), Some(32 + 3));
    assert_eq!(intx.intid(0, 3 << 3, 2), Some(32 + 3));
    assert_eq!(intx.intid(0, 5 << 3, 1), Some(32 + 4));
    assert_eq!(intx.intid(0, 1 << 3, 0), None);
}
