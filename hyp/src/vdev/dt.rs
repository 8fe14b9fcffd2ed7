//! The device tree a Linux VM (`kind = "linux"`) boots with: the small virtual platform of
//! `layout`, the same on every board, and nothing of the host's devices. The hyp writes it into
//! the VM's RAM and enters the kernel with x0 pointing at it.
//!
//! What Linux reads, node by node:
//! - `/`: `#address-cells`/`#size-cells` 2 (64-bit IPAs and sizes), our `compatible`/`model`,
//!   `interrupt-parent` = the GIC, so every device's `interrupts` are the GIC's.
//! - `memory@…`: its RAM, all of it mapped at boot.
//! - `cpus`: `cpu@N` with `reg = N`, the vCPU's MPIDR (Aff0 is the vCPU's index, see
//!   `hypercall/psci.rs`), brought up with PSCI `CPU_ON`.
//! - `psci`: 1.0 and 0.2 compatibles (Linux then asks `PSCI_VERSION`, and we say 1.1), `hvc`.
//! - `timer`: the four PPIs of the architected timer (secure and non-secure physical, virtual,
//!   hypervisor), level-low as Arm's own trees write them; on GICv2 with the mask of the CPUs
//!   they go to. No `always-on`: nothing here promises the timer keeps running in an idle state,
//!   and without it Linux only marks the timer as stopping in deep idle, which it never enters
//!   (the tree gives no idle states).
//! - the GIC: GICv3 (`arm,gic-v3`, distributor and one redistributor region of one frame pair a
//!   vCPU, found by Linux through `GICR_TYPER.Last`, so no `redistributor-stride`) or GICv2
//!   (`arm,cortex-a15-gic`, distributor and the two pages of the CPU interface). No maintenance
//!   interrupt (it is the hyp's), no ITS, no v2m: no MSIs, nothing to need them.
//! - the UART: a PL011 (`arm,pl011`, `arm,primecell`) with a 24 MHz `fixed-clock` as both its
//!   `uartclk` and `apb_pclk`, rather than an `arm,sbsa-uart`. Why: it is exactly the node QEMU
//!   `virt` gives Linux, the configuration of `amba-pl011.c` most exercised under
//!   virtualization; Debian's kernel builds it in (`CONFIG_SERIAL_AMBA_PL011`), and its AMBA bus,
//!   which enables `apb_pclk` before it reads the PrimeCell IDs, finds the IDs `pl011.rs`
//!   emulates. The SBSA flavour would save the clock node but lose the programmable line
//!   settings a PV guest of `console = "emulated-pl011"` and a Linux VM share today.
//! - `aliases { serial0 }` and `/chosen`: `bootargs`, `stdout-path = "serial0:115200n8"` (Linux
//!   resolves the alias and takes the options after `:` for its console, as does `earlycon`
//!   without arguments), and the initrd's `linux,initrd-start`/`-end` (end exclusive).

#![forbid(unsafe_code)]

use core::fmt::Write as _;

use devtree::Writer;

use super::layout;
use super::pl011::{PL011_IPA, PL011_SIZE};

/// Why the tree could not be written: the buffer is too small, or the platform cannot be
/// described (no vCPU, more than GICv2's eight, a NUL in the command line).
pub type DtError = devtree::WriteError;

/// Which GIC the VM's tree describes (its addresses are `layout`'s: GICD and GICC, or GICD and
/// GICR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicDt {
    V2,
    V3,
}

/// What the tree says about one Linux VM.
#[derive(Debug, Clone, Copy)]
pub struct Platform<'a> {
    pub ram_ipa: u64,
    pub ram_bytes: u64,
    /// `cpu@N` has `reg = N`.
    pub vcpus: usize,
    pub gic: GicDt,
    pub bootargs: &'a str,
    /// The initramfs: IPA start and end (exclusive).
    pub initrd: Option<(u64, u64)>,
}

/// The frequency of the UART's reference clock, as the tree states it.
const UART_CLOCK_HZ: u32 = layout::UART_CLOCK_HZ;

/// How many CPUs a GICv2 can route to (its target lists and the timer's CPU mask are 8 bits).
const GICV2_MAX_CPUS: usize = 8;

/// Phandles of the nodes others point at.
const PHANDLE_GIC: u32 = 1;
const PHANDLE_CLOCK: u32 = 2;

/// Cells of a GIC interrupt specifier (both GICs' bindings): kind, number, flags.
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
const FIRST_PPI: u32 = 16;
const FIRST_SPI: u32 = 32;
/// `IRQ_TYPE_LEVEL_HIGH`, `IRQ_TYPE_LEVEL_LOW` (include/dt-bindings/interrupt-controller/irq.h).
const LEVEL_HIGH: u32 = 4;
const LEVEL_LOW: u32 = 8;
/// GICv2 PPIs: the CPU mask sits in bits 8..15 of the flags cell.
const GICV2_CPU_MASK_SHIFT: u32 = 8;

/// Writes the device tree of `p` into `out` and returns its size (the blob is `out[..size]`).
pub fn write(p: &Platform, out: &mut [u8]) -> Result<usize, DtError> {
    if p.vcpus == 0 {
        return Err(DtError::Invalid("a VM without vCPUs"));
    }
    if p.gic == GicDt::V2 && p.vcpus > GICV2_MAX_CPUS {
        return Err(DtError::Invalid("more than 8 vCPUs on a GICv2"));
    }
    let mut w = Writer::new(out)?;
    let mut name = Name::default();
    w.begin_node("")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_str("compatible", "pvhyp,linux-vm")?;
    w.property_str("model", "pvhyp Linux VM")?;
    w.property_u32("interrupt-parent", PHANDLE_GIC)?;

    w.begin_node(name.at("memory", p.ram_ipa))?;
    w.property_str("device_type", "memory")?;
    w.property_cells("reg", &reg(p.ram_ipa, p.ram_bytes))?;
    w.end_node()?;

    cpus(&mut w, p.vcpus)?;

    w.begin_node("psci")?;
    w.property_strs("compatible", &["arm,psci-1.0", "arm,psci-0.2"])?;
    w.property_str("method", "hvc")?;
    w.end_node()?;

    timer(&mut w, p)?;
    gic(&mut w, p)?;

    w.begin_node("apb-pclk")?;
    w.property_str("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    w.property_str("clock-output-names", "clk24mhz")?;
    w.property_u32("phandle", PHANDLE_CLOCK)?;
    w.end_node()?;

    w.begin_node(name.at("serial", PL011_IPA))?;
    w.property_strs("compatible", &["arm,pl011", "arm,primecell"])?;
    w.property_cells("reg", &reg(PL011_IPA, PL011_SIZE))?;
    w.property_cells(
        "interrupts",
        &[GIC_SPI, layout::INTID_UART - FIRST_SPI, LEVEL_HIGH],
    )?;
    w.property_cells("clocks", &[PHANDLE_CLOCK, PHANDLE_CLOCK])?;
    w.property_strs("clock-names", &["uartclk", "apb_pclk"])?;
    w.end_node()?;

    w.begin_node("aliases")?;
    w.property_str("serial0", name.path_at("serial", PL011_IPA))?;
    w.end_node()?;

    w.begin_node("chosen")?;
    w.property_str("bootargs", p.bootargs)?;
    w.property_str("stdout-path", "serial0:115200n8")?;
    if let Some((start, end)) = p.initrd {
        w.property_u64("linux,initrd-start", start)?;
        w.property_u64("linux,initrd-end", end)?;
    }
    w.end_node()?;

    w.end_node()?;
    w.finish()
}

fn cpus(w: &mut Writer, vcpus: usize) -> Result<(), DtError> {
    let mut name = Name::default();
    w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for index in 0..vcpus {
        let mpidr = u32::try_from(index).map_err(|_| DtError::Invalid("too many vCPUs"))?;
        w.begin_node(name.at("cpu", u64::from(mpidr)))?;
        w.property_str("device_type", "cpu")?;
        w.property_str("compatible", "arm,armv8")?;
        w.property_u32("reg", mpidr)?;
        w.property_str("enable-method", "psci")?;
        w.end_node()?;
    }
    w.end_node()
}

fn timer(w: &mut Writer, p: &Platform) -> Result<(), DtError> {
    let flags = match p.gic {
        // The low `vcpus` bits of the mask: GIC_CPU_MASK_SIMPLE(vcpus).
        GicDt::V2 => LEVEL_LOW | (((1u32 << p.vcpus) - 1) << GICV2_CPU_MASK_SHIFT),
        GicDt::V3 => LEVEL_LOW,
    };
    let ppi = |intid: u32| [GIC_PPI, intid - FIRST_PPI, flags];
    let [a, b, c, d] = [
        ppi(layout::INTID_SECURE_PHYS_TIMER),
        ppi(layout::INTID_PHYS_TIMER),
        ppi(layout::INTID_VIRT_TIMER),
        ppi(layout::INTID_HYP_TIMER),
    ];
    w.begin_node("timer")?;
    w.property_str("compatible", "arm,armv8-timer")?;
    w.property_cells(
        "interrupts",
        &[
            a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2], d[0], d[1], d[2],
        ],
    )?;
    w.end_node()
}

fn gic(w: &mut Writer, p: &Platform) -> Result<(), DtError> {
    let mut name = Name::default();
    w.begin_node(name.at("interrupt-controller", layout::GICD_IPA))?;
    let [d0, d1, d2, d3] = reg(layout::GICD_IPA, layout::GICD_SIZE);
    match p.gic {
        GicDt::V3 => {
            let gicr_bytes = layout::GICR_STRIDE * p.vcpus as u64;
            let [r0, r1, r2, r3] = reg(layout::GICR_IPA, gicr_bytes);
            w.property_str("compatible", "arm,gic-v3")?;
            w.property_cells("reg", &[d0, d1, d2, d3, r0, r1, r2, r3])?;
            w.property_u32("#redistributor-regions", 1)?;
        }
        GicDt::V2 => {
            let [c0, c1, c2, c3] = reg(layout::GICC_IPA, layout::GICC_SIZE);
            w.property_str("compatible", "arm,cortex-a15-gic")?;
            w.property_cells("reg", &[d0, d1, d2, d3, c0, c1, c2, c3])?;
        }
    }
    w.property_u32("#interrupt-cells", 3)?;
    w.property("interrupt-controller", &[])?;
    w.property_u32("#address-cells", 0)?;
    w.property_u32("phandle", PHANDLE_GIC)?;
    w.end_node()
}

/// One `reg` entry in the root's 2 + 2 cells.
fn reg(base: u64, size: u64) -> [u32; 4] {
    [
        (base >> 32) as u32,
        base as u32,
        (size >> 32) as u32,
        size as u32,
    ]
}

/// A node name or path formatted on the stack (the tree is written before there is a heap).
struct Name {
    bytes: [u8; 48],
    len: usize,
}

impl Default for Name {
    fn default() -> Self {
        Name {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl Name {
    /// `base@unit`, the unit address in lower-case hex as the specification writes it.
    fn at(&mut self, base: &str, unit: u64) -> &str {
        self.format(format_args!("{base}@{unit:x}"))
    }

    /// `/base@unit`: the path of a child of the root.
    fn path_at(&mut self, base: &str, unit: u64) -> &str {
        self.format(format_args!("/{base}@{unit:x}"))
    }

    fn format(&mut self, args: core::fmt::Arguments) -> &str {
        self.len = 0;
        // Every name formatted here fits: the longest is a 16-digit unit address after
        // "interrupt-controller@", 37 bytes.
        let _ = self.write_fmt(args);
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl core::fmt::Write for Name {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devtree::{EnableMethod, GicVersion, PsciMethod, Region, UartKind};

    fn platform(gic: GicDt, vcpus: usize) -> Platform<'static> {
        Platform {
            ram_ipa: layout::RAM_IPA,
            ram_bytes: 256 << 20,
            vcpus,
            gic,
            bootargs: "console=ttyAMA0 rdinit=/init",
            initrd: Some((0x4800_0000, 0x4834_5679)),
        }
    }

    fn cells(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn prop<'a>(dtb: &'a [u8], path: &str, name: &str) -> &'a [u8] {
        devtree::find_property(dtb, path, name)
            .unwrap()
            .unwrap_or_else(|| panic!("{path} has no {name}"))
    }

    fn strs(bytes: &[u8]) -> Vec<&str> {
        bytes
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| core::str::from_utf8(s).unwrap())
            .collect()
    }

    fn written(p: &Platform) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        let size = write(p, &mut buf).unwrap();
        buf.truncate(size);
        buf
    }

    #[test]
    fn gives_linux_what_it_boots_from_on_either_gic_and_any_vcpu_count() {
        for gic in [GicDt::V2, GicDt::V3] {
            for vcpus in [1, 2, 8] {
                let p = platform(gic, vcpus);
                let dtb = written(&p);
                let board = devtree::parse(&dtb).unwrap();
                assert_eq!(
                    board.memory(),
                    &[Region {
                        base: layout::RAM_IPA,
                        size: 256 << 20
                    }]
                );
                assert_eq!(board.cpus().len(), vcpus);
                for (i, cpu) in board.cpus().iter().enumerate() {
                    assert_eq!(cpu.mpidr, i as u64);
                    assert_eq!(cpu.enable, EnableMethod::Psci);
                }
                assert_eq!(board.psci.unwrap().method, PsciMethod::Hvc);
                let uart = board.console.unwrap();
                assert_eq!(uart.kind, UartKind::Pl011);
                assert_eq!(
                    uart.region,
                    Region {
                        base: PL011_IPA,
                        size: PL011_SIZE
                    }
                );
                assert_eq!(uart.clock_hz, Some(UART_CLOCK_HZ));
                assert_eq!(board.bootargs, Some(p.bootargs));
                assert_eq!(
                    board.initrd,
                    Some(Region {
                        base: 0x4800_0000,
                        size: 0x34_5679
                    })
                );
                let timer = board.timer.unwrap();
                assert_eq!(
                    (timer.phys_ppi, timer.virt_ppi, timer.hyp_phys_ppi),
                    (
                        layout::INTID_PHYS_TIMER - FIRST_PPI,
                        layout::INTID_VIRT_TIMER - FIRST_PPI,
                        layout::INTID_HYP_TIMER - FIRST_PPI
                    ),
                    "the reader gives PPI numbers"
                );
                let found = board.gic.unwrap();
                assert_eq!(
                    found.distributor,
                    Region {
                        base: layout::GICD_IPA,
                        size: layout::GICD_SIZE
                    }
                );
                assert_eq!(found.maintenance_irq, None);
                match gic {
                    GicDt::V3 => {
                        assert_eq!(found.version, GicVersion::V3);
                        assert_eq!(
                            found.redistributor,
                            Some(Region {
                                base: layout::GICR_IPA,
                                size: layout::GICR_STRIDE * vcpus as u64
                            })
                        );
                    }
                    GicDt::V2 => {
                        assert_eq!(found.version, GicVersion::V2);
                        assert_eq!(
                            found.cpu_interface,
                            Some(Region {
                                base: layout::GICC_IPA,
                                size: layout::GICC_SIZE
                            })
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_property_the_kernel_reads_is_as_its_bindings_say() {
        let dtb = written(&platform(GicDt::V3, 2));
        assert_eq!(cells(prop(&dtb, "/", "#address-cells")), [2]);
        assert_eq!(cells(prop(&dtb, "/", "#size-cells")), [2]);
        assert_eq!(cells(prop(&dtb, "/", "interrupt-parent")), [PHANDLE_GIC]);
        assert_eq!(
            cells(prop(&dtb, "/interrupt-controller", "phandle")),
            [PHANDLE_GIC]
        );
        assert_eq!(cells(prop(&dtb, "/cpus", "#address-cells")), [1]);
        assert_eq!(cells(prop(&dtb, "/cpus", "#size-cells")), [0]);
        assert_eq!(strs(prop(&dtb, "/cpus/cpu@1", "compatible")), ["arm,armv8"]);
        assert_eq!(strs(prop(&dtb, "/cpus/cpu@1", "device_type")), ["cpu"]);
        assert_eq!(
            strs(prop(&dtb, "/psci", "compatible")),
            ["arm,psci-1.0", "arm,psci-0.2"]
        );
        assert_eq!(
            strs(prop(&dtb, "/timer", "compatible")),
            ["arm,armv8-timer"]
        );
        assert_eq!(
            cells(prop(&dtb, "/timer", "interrupts")),
            [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]
        );
        assert_eq!(
            devtree::find_property(&dtb, "/timer", "always-on").unwrap(),
            None
        );
        let gic = "/interrupt-controller@8000000";
        assert_eq!(strs(prop(&dtb, gic, "compatible")), ["arm,gic-v3"]);
        assert_eq!(cells(prop(&dtb, gic, "#interrupt-cells")), [3]);
        assert_eq!(prop(&dtb, gic, "interrupt-controller"), b"");
        assert_eq!(cells(prop(&dtb, gic, "#redistributor-regions")), [1]);
        assert_eq!(
            cells(prop(&dtb, gic, "reg")),
            [0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0x4_0000]
        );
        let uart = "/serial@9000000";
        assert_eq!(
            strs(prop(&dtb, uart, "compatible")),
            ["arm,pl011", "arm,primecell"]
        );
        assert_eq!(cells(prop(&dtb, uart, "interrupts")), [0, 1, 4]);
        assert_eq!(
            strs(prop(&dtb, uart, "clock-names")),
            ["uartclk", "apb_pclk"]
        );
        assert_eq!(
            cells(prop(&dtb, uart, "clocks")),
            [PHANDLE_CLOCK, PHANDLE_CLOCK]
        );
        assert_eq!(cells(prop(&dtb, "/apb-pclk", "phandle")), [PHANDLE_CLOCK]);
        assert_eq!(strs(prop(&dtb, "/apb-pclk", "compatible")), ["fixed-clock"]);
        assert_eq!(cells(prop(&dtb, "/apb-pclk", "#clock-cells")), [0]);
        assert_eq!(strs(prop(&dtb, "/aliases", "serial0")), [uart]);
        assert_eq!(
            strs(prop(&dtb, "/chosen", "stdout-path")),
            ["serial0:115200n8"]
        );
        assert_eq!(
            cells(prop(&dtb, "/chosen", "linux,initrd-end")),
            [0, 0x4834_5679],
            "u64, exclusive"
        );
    }

    #[test]
    fn gicv2_names_its_cpu_interface_and_masks_the_timer_to_the_vcpus() {
        let dtb = written(&platform(GicDt::V2, 2));
        let gic = "/interrupt-controller";
        assert_eq!(strs(prop(&dtb, gic, "compatible")), ["arm,cortex-a15-gic"]);
        assert_eq!(
            cells(prop(&dtb, gic, "reg")),
            [0, 0x0800_0000, 0, 0x1_0000, 0, 0x0801_0000, 0, 0x2000]
        );
        assert_eq!(
            devtree::find_property(&dtb, gic, "#redistributor-regions").unwrap(),
            None
        );
        let flags = 0x308; // CPUs 0 and 1, level-low
        assert_eq!(
            cells(prop(&dtb, "/timer", "interrupts")),
            [1, 13, flags, 1, 14, flags, 1, 11, flags, 1, 10, flags]
        );
        let dtb = written(&platform(GicDt::V2, 8));
        assert_eq!(cells(prop(&dtb, "/timer", "interrupts"))[2], 0xff08);
    }

    #[test]
    fn without_an_initrd_chosen_names_none() {
        let mut p = platform(GicDt::V3, 1);
        p.initrd = None;
        let dtb = written(&p);
        assert_eq!(
            devtree::find_property(&dtb, "/chosen", "linux,initrd-start").unwrap(),
            None
        );
        assert_eq!(devtree::parse(&dtb).unwrap().initrd, None);
    }

    #[test]
    fn refuses_a_small_buffer_and_an_impossible_platform() {
        let p = platform(GicDt::V3, 8);
        let size = written(&p).len();
        let mut buf = vec![0u8; size];
        assert_eq!(write(&p, &mut buf[..size - 1]), Err(DtError::Full));
        assert_eq!(write(&p, &mut buf[..64]), Err(DtError::Full));
        assert_eq!(write(&p, &mut buf), Ok(size));
        assert!(write(&platform(GicDt::V3, 0), &mut buf).is_err());
        assert!(write(&platform(GicDt::V2, 9), &mut buf).is_err());
        let mut nul = platform(GicDt::V3, 1);
        nul.bootargs = "console=ttyAMA0\0evil";
        assert!(write(&nul, &mut buf).is_err());
    }
}
