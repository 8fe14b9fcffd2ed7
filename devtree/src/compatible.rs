//! The `compatible` strings this crate acts on, in one place.
//!
//! A node's `compatible` list is read once, when the walk reaches the node,
//! into a set of [`Compatible`] bits; every later question ("is it a GIC? a
//! PL011?") is a bit test, not another pass over the strings.

/// A set of the device kinds this crate knows, as a node's `compatible` list
/// names them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Compatible(u16);

impl Compatible {
    /// A GICv2-style controller (Linux `irq-gic.c`).
    pub const GIC_V2: Compatible = Compatible(1 << 0);
    /// A GICv3 or GICv4.
    pub const GIC_V3: Compatible = Compatible(1 << 1);
    /// The architected timer.
    pub const TIMER: Compatible = Compatible(1 << 2);
    /// PSCI (the 0.1, 0.2 and 1.0 bindings).
    pub const PSCI: Compatible = Compatible(1 << 3);
    /// The Raspberry Pi power-management / watchdog block.
    pub const PM: Compatible = Compatible(1 << 4);
    /// virtio over MMIO.
    pub const VIRTIO_MMIO: Compatible = Compatible(1 << 5);
    /// An Arm PL011 UART.
    pub const PL011: Compatible = Compatible(1 << 6);
    /// The BCM2835 auxiliary mini UART.
    pub const BCM2835_AUX: Compatible = Compatible(1 << 7);
    /// A 16550-compatible UART.
    pub const NS16550: Compatible = Compatible(1 << 8);
    /// A fixed-rate clock.
    pub const FIXED_CLOCK: Compatible = Compatible(1 << 9);
    /// An Arm SMMUv3.
    pub const SMMU_V3: Compatible = Compatible(1 << 10);
    /// A generic PCIe host bridge with ECAM configuration space.
    pub const PCI_ECAM: Compatible = Compatible(1 << 11);

    /// The kinds a `compatible` property value (a NUL-separated list) names.
    pub fn of(value: &[u8]) -> Compatible {
        Compatible(
            value
                .split(|&b| b == 0)
                .fold(0, |set, string| set | kind(string).0),
        )
    }

    /// Whether the set holds any kind of `other`.
    pub fn any(self, other: Compatible) -> bool {
        self.0 & other.0 != 0
    }
}

/// The strings of each kind. A table searched in order, not a `match`: the match compiled to
/// a comparison tree of 3 KiB, inlined at each caller (6.5 KiB of the hyp's Image); this is
/// read once a node, at boot and at a VM's build.
const KINDS: [(&[u8], Compatible); 25] = [
    (b"arm,gic-400", Compatible::GIC_V2),
    (b"arm,cortex-a15-gic", Compatible::GIC_V2),
    (b"arm,cortex-a9-gic", Compatible::GIC_V2),
    (b"arm,cortex-a7-gic", Compatible::GIC_V2),
    (b"arm,arm11mp-gic", Compatible::GIC_V2),
    (b"arm,eb11mp-gic", Compatible::GIC_V2),
    (b"arm,tc11mp-gic", Compatible::GIC_V2),
    (b"arm,pl390", Compatible::GIC_V2),
    (b"arm,gic-v3", Compatible::GIC_V3),
    (b"arm,armv8-timer", Compatible::TIMER),
    (b"arm,armv7-timer", Compatible::TIMER),
    (b"arm,psci", Compatible::PSCI),
    (b"arm,psci-0.2", Compatible::PSCI),
    (b"arm,psci-1.0", Compatible::PSCI),
    (b"brcm,bcm2835-pm", Compatible::PM),
    (b"brcm,bcm2711-pm", Compatible::PM),
    (b"brcm,bcm2835-pm-wdt", Compatible::PM),
    (b"virtio,mmio", Compatible::VIRTIO_MMIO),
    (b"arm,pl011", Compatible::PL011),
    (b"brcm,bcm2835-aux-uart", Compatible::BCM2835_AUX),
    (b"ns16550a", Compatible::NS16550),
    (b"ns16550", Compatible::NS16550),
    (b"fixed-clock", Compatible::FIXED_CLOCK),
    (b"arm,smmu-v3", Compatible::SMMU_V3),
    (b"pci-host-ecam-generic", Compatible::PCI_ECAM),
];

/// The kind one `compatible` string names, or none.
fn kind(string: &[u8]) -> Compatible {
    KINDS
        .iter()
        .find(|(name, _)| *name == string)
        .map_or(Compatible(0), |&(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_of_the_list_counts() {
        let pl011 = Compatible::of(b"arm,pl011\0arm,primecell\0");
        assert!(pl011.any(Compatible::PL011));
        assert!(!pl011.any(Compatible::NS16550));
        let pm = Compatible::of(b"brcm,bcm2711-pm\0brcm,bcm2835-pm-wdt\0");
        assert_eq!(pm, Compatible::PM);
        assert!(Compatible::of(b"vendor,other\0arm,gic-400").any(Compatible::GIC_V2));
    }

    #[test]
    fn only_whole_strings_match() {
        assert_eq!(Compatible::of(b"arm,pl0110\0"), Compatible(0));
        assert_eq!(Compatible::of(b"arm,pl01\0"), Compatible(0));
        assert_eq!(Compatible::of(b""), Compatible(0));
    }
}
