//! Every measure the report knows, in table order: its unit, the budget, and the
//! reference figures measured the same way (instructions under QEMU `-icount shift=0`,
//! `-cpu cortex-a72`).

/// A budget: the figure must be at most (or at least) this.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    AtMost(f64),
    AtLeast(f64),
    /// At most this factor times the sum of the medians of these measures, from the same run
    /// of bench.sh (see [`Budget::resolve`]).
    Times(f64, &'static [&'static str]),
}

impl Budget {
    /// Whether `value` meets it; a [`Budget::Times`] never does until resolved.
    pub fn met(&self, value: f64) -> bool {
        match *self {
            Budget::AtMost(b) => value <= b,
            Budget::AtLeast(b) => value >= b,
            Budget::Times(..) => false,
        }
    }

    /// A [`Budget::Times`] as the figure it comes to, given each measure's median (None while
    /// one is missing); other budgets as they are.
    pub fn resolve(&self, median: impl Fn(&str) -> Option<f64>) -> Option<Budget> {
        match *self {
            Budget::Times(factor, of) => {
                let sum = of.iter().map(|name| median(name)).sum::<Option<f64>>()?;
                Some(Budget::AtMost((factor * sum).round()))
            }
            b => Some(b),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Budget::AtMost(b) => write!(f, "<= {}", crate::table::group(b as u64)),
            Budget::AtLeast(b) => write!(f, ">= {b}x"),
            Budget::Times(factor, of) => write!(f, "<= {factor}x {}", of.join(" + ")),
        }
    }
}

/// Where a measure's figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A `bench: name=...` line from a guest.
    Guest,
    /// Derived on the host (from the hyp's log lines, the Image, or other measures).
    Host,
}

/// One measure of the report.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    /// "instructions", "bytes" or "ratio" (guest measures are "ns" in wall-clock mode).
    pub unit: &'static str,
    pub source: Source,
    pub budget: Option<Budget>,
    /// Reference figures: (who, instructions), measured the same way.
    pub reference: &'static [(&'static str, u64)],
    /// Drawn in the chart's hot-path group.
    pub hot_path: bool,
}

const fn spec(name: &'static str, unit: &'static str, source: Source) -> Spec {
    Spec {
        name,
        unit,
        source,
        budget: None,
        reference: &[],
        hot_path: false,
    }
}

const fn hot(mut s: Spec) -> Spec {
    s.hot_path = true;
    s
}

const fn budget(mut s: Spec, b: Budget) -> Spec {
    s.budget = Some(b);
    s
}

const fn refs(mut s: Spec, r: &'static [(&'static str, u64)]) -> Spec {
    s.reference = r;
    s
}

const I: &str = "instructions";
use Budget::{AtLeast, AtMost, Times};
use Source::{Guest, Host};

/// Every measure, in the order of the table and the JSON array.
pub const ALL: &[Spec] = &[
    refs(
        hot(budget(spec("null_hypercall", I, Guest), AtMost(60.0))),
        &[("Xen 4.17", 417), ("KVM nVHE", 1490)],
    ),
    spec("null_hypercall_smccc_version", I, Guest),
    budget(spec("null_hypercall_abi_version", I, Guest), AtMost(100.0)),
    hot(spec("console_pv_64b", I, Guest)),
    hot(spec("console_trap_64b", I, Guest)),
    budget(spec("console_trap_over_pv", "ratio", Host), AtLeast(30.0)),
    refs(
        hot(budget(spec("mem_map_1", I, Guest), AtMost(340.0))),
        &[("Xen 4.17 populate", 2727)],
    ),
    hot(spec("mem_unmap_1", I, Guest)),
    // The same two in a VM that owns a PCI device behind the SMMU (bench.sh's run.sh --iommu
    // boot, virt only): the unmap's extra is the SMMU's CMD_TLBI_S2_IPA + CMD_SYNC.
    spec("mem_map_1_device_owner", I, Guest),
    spec("mem_unmap_1_device_owner", I, Guest),
    refs(
        hot(budget(
            spec("mem_batch_512_per_page", I, Guest),
            AtMost(130.0),
        )),
        &[("Xen 4.17 populate x512", 1957)],
    ),
    spec("mem_batch_512_unmap_per_page", I, Guest),
    hot(spec("stage2_fault_inject", I, Guest)),
    refs(
        hot(budget(spec("vm_switch", I, Guest), AtMost(500.0))),
        &[("Xen 4.17", 3799)],
    ),
    refs(
        hot(budget(spec("event_roundtrip", I, Guest), AtMost(1400.0))),
        &[("Xen 4.17 evtchn", 11842)],
    ),
    hot(spec("channel_roundtrip", I, Guest)),
    // A VM on the trap-and-emulate platform (bench-guest, a bare guest booted as a Linux VM:
    // vGIC, vtimer, PSCI), measured as the peers' bare guests were.
    refs(
        hot(budget(spec("gicd_read_trap", I, Guest), AtMost(200.0))),
        &[("Xen 4.17", 599), ("KVM nVHE", 2280)],
    ),
    // The timer's expiry (CNTV_CVAL) to the guest's handler reading the counter after
    // ICC_IAR1_EL1.
    hot(spec("vtimer_to_handler", I, Guest)),
    // vCPU 0's ICC_SGI1R_EL1 write to vCPU 1's handler (both vCPUs on one CPU: vCPU 0 waits in
    // WFI, so the figure includes the switch to vCPU 1).
    hot(spec("virtual_ipi", I, Guest)),
    // Debian's kernel from the Linux VM's first entry to /init's first console line: the
    // virtual clock, so idle waits (skipped ahead under -icount sleep=off) count too.
    spec("linux_entry_to_init", I, Host),
    // Four VMs on four CPUs at once (pv-guest's bench/smp.rs): all CPUs' instructions per call,
    // against one CPU's figures; the _alone twins are one VM alone in the same boot.
    hot(budget(
        spec("smp_hypercall_4cpu", I, Guest),
        Times(1.2, &["null_hypercall_abi_version"]),
    )),
    hot(spec("smp_hypercall_alone", I, Guest)),
    hot(budget(
        spec("smp_map_4cpu", I, Guest),
        Times(1.2, &["mem_map_1", "mem_unmap_1"]),
    )),
    hot(spec("smp_map_alone", I, Guest)),
    budget(spec("boot_to_guest", I, Host), AtMost(1_000_000.0)),
    // 192 KiB for this round of work (isolation, run loop, vGIC, SMMU, console; Xen: 983 KiB).
    budget(spec("hyp_image_bytes", "bytes", Host), AtMost(196608.0)),
    spec("hyp_overhead_bytes_per_vm", "bytes", Host),
    spec("max_hold", I, Host),
];

/// The spec called `name`.
pub fn find(name: &str) -> Option<&'static Spec> {
    ALL.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_budgets_read_both_ways() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
        assert!(AtMost(60.0).met(60.0) && !AtMost(60.0).met(61.0));
        assert!(AtLeast(30.0).met(31.5) && !AtLeast(30.0).met(29.9));
        assert_eq!(AtMost(131072.0).to_string(), "<= 131,072");
        assert_eq!(AtLeast(30.0).to_string(), ">= 30x");
        let pair = Times(1.2, &["mem_map_1", "mem_unmap_1"]);
        assert_eq!(pair.to_string(), "<= 1.2x mem_map_1 + mem_unmap_1");
        assert!(!pair.met(0.0), "judged only once resolved");
        let median = |name: &str| (name == "mem_map_1").then_some(700.0);
        assert_eq!(pair.resolve(median), None, "mem_unmap_1 missing");
        let median = |name: &str| Some(if name == "mem_map_1" { 700.0 } else { 1300.0 });
        assert_eq!(pair.resolve(median), Some(AtMost(2400.0)));
        assert_eq!(AtLeast(30.0).resolve(|_| None), Some(AtLeast(30.0)));
    }
}
