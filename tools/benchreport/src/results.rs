//! Reading the console logs of bench runs: the guests' `bench: ...` lines and the hyp's
//! `boot_to_guest` / `hyp_overhead_bytes_per_vm` / `max_hold` log lines; then the measures
//! derived on the host.

use crate::catalog::{self, Source};
use std::collections::BTreeMap;

/// One measure's outcome.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    Measured {
        unit: String,
        iterations: u64,
        min: f64,
        median: f64,
    },
    Unavailable(String),
}

/// One smp phase's windows, as the VMs in it reported them (pv-guest's bench/smp.rs).
#[derive(Clone, Debug, Default, PartialEq)]
struct SmpPhase {
    /// The VMs the phase has, and those that reported.
    vms: u64,
    reported: Vec<u64>,
    start: u64,
    end: u64,
    calls: u64,
    asked: u64,
    overhead: u64,
    frequency: u64,
}

impl SmpPhase {
    /// All CPUs' instructions (ns in wall mode) per call over the whole window.
    fn figure(&self, wall: bool) -> Figure {
        if (self.reported.len() as u64) < self.vms {
            return Figure::Unavailable(format!(
                "only {} of its {} VMs reported",
                self.reported.len(),
                self.vms
            ));
        }
        let ticks = u128::from(self.end.saturating_sub(self.start));
        let hz = u128::from(self.frequency.max(1));
        let calls = u128::from(self.calls.max(1));
        let per_call = ((ticks * 1_000_000_000 / hz + calls / 2) / calls) as u64;
        let per_call = if wall {
            per_call
        } else {
            per_call.saturating_sub(self.overhead)
        };
        Figure::Measured {
            unit: if wall { "ns" } else { "instructions" }.to_string(),
            iterations: self.calls,
            min: per_call as f64,
            median: per_call as f64,
        }
    }
}

/// Everything the logs said.
#[derive(Debug, Default)]
pub struct Results {
    figures: BTreeMap<String, Figure>,
    /// The smp phases, by measure name, until `derive` turns them into figures.
    smp: BTreeMap<String, SmpPhase>,
    /// What the table's reader should know about some figures (an smp phase cut short).
    pub notes: Vec<String>,
    /// Wall-clock mode (a guest said so): not deterministic.
    pub wall: bool,
    /// What went wrong (a guest's `bench: failed`, a failed calibration).
    pub failures: Vec<String>,
    /// The calibration lines, for the report's header.
    pub calibrations: Vec<String>,
    /// The `boot_to_guest` of the log being read, from which its `linux_init_line` counts.
    log_boot: Option<f64>,
    /// What the longest hold was (the hyp's words after the figure), for the report's footer.
    pub max_hold_cause: Option<String>,
}

/// The text after `key=` up to the next space.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

impl Results {
    pub fn get(&self, name: &str) -> Option<&Figure> {
        self.figures.get(name)
    }

    pub fn set(&mut self, name: &str, figure: Figure) {
        self.figures.insert(name.to_string(), figure);
    }

    /// Sets `name` unless an earlier log did: the hyp's figures come from the first log (the
    /// one-VM run; the two-VM run's boot builds two VMs).
    fn set_first(&mut self, name: &str, figure: Figure) {
        self.figures.entry(name.to_string()).or_insert(figure);
    }

    /// Reads one console log.
    pub fn read_log(&mut self, text: &str) {
        self.log_boot = None;
        for line in text.lines() {
            self.read_line(line.trim_end_matches('\r'));
        }
    }

    /// A `bench: smp name=... vm=K vms=V start=S end=E calls=N asked=A overhead=O
    /// frequency=F` line: one VM's window of an smp phase.
    fn read_smp(&mut self, line: &str, rest: &str) {
        let num = |k| field(rest, k).and_then(|v| v.parse::<u64>().ok());
        let (Some(name), Some(vm), Some(vms), Some(start), Some(end)) = (
            field(rest, "name"),
            num("vm"),
            num("vms"),
            num("start"),
            num("end"),
        ) else {
            self.failures.push(format!("malformed line: {line}"));
            return;
        };
        let (Some(calls), Some(asked), Some(overhead), Some(frequency)) = (
            num("calls"),
            num("asked"),
            num("overhead"),
            num("frequency"),
        ) else {
            self.failures.push(format!("malformed line: {line}"));
            return;
        };
        let phase = self.smp.entry(name.to_string()).or_default();
        if phase.reported.is_empty() {
            *phase = SmpPhase {
                vms,
                start,
                end,
                overhead,
                frequency,
                ..SmpPhase::default()
            };
        }
        if phase.reported.contains(&vm) {
            self.failures.push(format!("VM {vm} reported {name} twice"));
            return;
        }
        phase.reported.push(vm);
        phase.start = phase.start.min(start);
        phase.end = phase.end.max(end);
        phase.calls += calls;
        phase.asked += asked;
    }

    fn read_line(&mut self, line: &str) {
        if let Some(at) = line.find("bench: smp name=") {
            let rest = &line[at + "bench: smp ".len()..];
            self.read_smp(line, rest);
        } else if let Some(at) = line.find("bench: name=") {
            let rest = &line[at + "bench: ".len()..];
            let Some(name) = field(rest, "name") else {
                return;
            };
            if let Some(at) = rest.find(" unavailable=") {
                let reason = rest[at + " unavailable=".len()..].trim();
                self.set(name, Figure::Unavailable(reason.to_string()));
                return;
            }
            let num = |k| field(rest, k).and_then(|v| v.parse::<f64>().ok());
            match (
                field(rest, "unit"),
                num("iterations"),
                num("min"),
                num("median"),
            ) {
                (Some(unit), Some(iterations), Some(min), Some(median)) => self.set(
                    name,
                    Figure::Measured {
                        unit: unit.to_string(),
                        iterations: iterations as u64,
                        min,
                        median,
                    },
                ),
                _ => self.failures.push(format!("malformed line: {line}")),
            }
        } else if let Some(at) = line.find("bench: calibration ") {
            let text = line[at + "bench: ".len()..].to_string();
            if text.starts_with("calibration wall") {
                self.wall = true;
            }
            if text.ends_with("FAILED") {
                self.failures.push(text.clone());
            }
            self.calibrations.push(text);
        } else if let Some(at) = line.find("bench: failed: ") {
            self.failures.push(line[at..].to_string());
        } else if let Some(at) = line.find("boot_to_guest: ") {
            if let Some(v) = counter_ns(&line[at..]) {
                self.set_first("boot_to_guest", single(self.wall_unit(), v));
                self.log_boot = Some(v);
            }
        } else if let Some(at) = line.find("linux_init_line: ") {
            // Both counted from the hyp's first instruction: their difference is the kernel's
            // entry (the first guest entry: the boot's only VM) to /init, less the time every
            // CPU idled (the hyp's "(idle N ticks)": under -icount the clock skips it).
            if let (Some(v), Some(boot)) = (counter_ns(&line[at..]), self.log_boot) {
                let idle = idle_ns(&line[at..]).unwrap_or(0.0);
                let unit = self.wall_unit();
                self.set(
                    "linux_entry_to_init",
                    single(unit, (v - boot - idle).max(0.0)),
                );
            }
        } else if let Some(at) = line.find("max_hold: ") {
            // "max_hold: N counter ticks at F Hz (cause)": the largest over every log.
            if let Some(v) = counter_ns(&line[at..]) {
                let larger = match self.get("max_hold") {
                    Some(Figure::Measured { min, .. }) => v > *min,
                    _ => true,
                };
                if larger {
                    self.set("max_hold", single(self.wall_unit(), v));
                    self.max_hold_cause = line[at..].split_once(" Hz (").map(|(_, cause)| {
                        let cause = cause.trim_end();
                        name_call(cause.strip_suffix(')').unwrap_or(cause))
                    });
                }
            }
        } else if let Some(at) = line.find("hyp_overhead_bytes_per_vm: ") {
            let value = line[at..].split_whitespace().nth(1);
            if let Some(v) = value.and_then(|v| v.parse::<f64>().ok()) {
                self.set_first("hyp_overhead_bytes_per_vm", single("bytes", v));
            }
        }
    }

    fn wall_unit(&self) -> &'static str {
        if self.wall { "ns" } else { "instructions" }
    }

    /// The measures derived on the host: the Image's size, and console_trap_over_pv from the
    /// two console measures. Then every measure nobody reported is marked unavailable.
    pub fn derive(&mut self, image_bytes: Option<u64>) {
        // The hyp's line comes before any guest says it runs on wall time.
        if self.wall {
            for name in ["boot_to_guest", "max_hold", "linux_entry_to_init"] {
                if let Some(Figure::Measured { unit, .. }) = self.figures.get_mut(name) {
                    *unit = "ns".to_string();
                }
            }
        }
        if let Some(bytes) = image_bytes {
            self.set("hyp_image_bytes", single("bytes", bytes as f64));
        }
        let ratio = match (self.get("console_pv_64b"), self.get("console_trap_64b")) {
            (
                Some(Figure::Measured {
                    min: pv_min,
                    median: pv_median,
                    iterations,
                    ..
                }),
                Some(Figure::Measured {
                    min: trap_min,
                    median: trap_median,
                    ..
                }),
            ) if *pv_min > 0.0 && *pv_median > 0.0 => Figure::Measured {
                unit: "ratio".to_string(),
                iterations: *iterations,
                min: round1(trap_min / pv_min),
                median: round1(trap_median / pv_median),
            },
            _ => Figure::Unavailable("needs console_pv_64b and console_trap_64b".to_string()),
        };
        self.set("console_trap_over_pv", ratio);
        for (name, phase) in std::mem::take(&mut self.smp) {
            if phase.calls < phase.asked {
                self.notes.push(format!(
                    "{name}: {} of {} calls, cut short when its phase's time ran out",
                    phase.calls, phase.asked
                ));
            }
            self.set(&name, phase.figure(self.wall));
        }
        for spec in catalog::ALL {
            if !self.figures.contains_key(spec.name) {
                let why = match spec.source {
                    Source::Guest => "no run reported it",
                    Source::Host => "not found in the hyp's log",
                };
                self.set(spec.name, Figure::Unavailable(why.to_string()));
            }
        }
    }
}

/// How much more an `ABI_VERSION` call may cost with four CPUs calling at once than alone.
pub const SMP_GROWTH_ALLOWED: f64 = 1.2;
/// Calls of all the CPUs below which the check does not judge: under `-icount` QEMU gives each
/// CPU turns of up to a few million instructions, in which `--quick`'s few calls all fit, one
/// CPU after the other.
pub const SMP_CHECK_MIN_CALLS: u64 = 4000;

impl Results {
    /// The check that the general path takes no lock the CPUs share: `ABI_VERSION` touches no
    /// shared state, so four CPUs calling it at once must cost each call (all CPUs'
    /// instructions over all calls) what one alone does, within [`SMP_GROWTH_ALLOWED`]; a
    /// global lock makes them spin (under `-icount` for QEMU's whole turn of a CPU). The
    /// verdict and its line; None without both figures in instructions.
    pub fn smp_check(&self) -> Option<(bool, String)> {
        let measured = |name| match self.get(name) {
            Some(Figure::Measured {
                median,
                unit,
                iterations,
                ..
            }) if unit == "instructions" => Some((*median, *iterations)),
            _ => None,
        };
        let (together, calls) = measured("smp_hypercall_4cpu")?;
        let (alone, _) = measured("smp_hypercall_alone")?;
        let alone = alone.max(1.0);
        if calls < SMP_CHECK_MIN_CALLS {
            return Some((
                true,
                format!(
                    "smp check: not judged: {calls} calls in all are too few for QEMU to run the \
                     CPUs' loops interleaved (at least {SMP_CHECK_MIN_CALLS}: bench.sh without \
                     --quick)"
                ),
            ));
        }
        let ok = together <= SMP_GROWTH_ALLOWED * alone;
        let line = format!(
            "smp check: ABI_VERSION costs {} instructions a call with 4 CPUs calling at once, {} \
             alone ({:.1}x, at most {SMP_GROWTH_ALLOWED}x): {}",
            crate::table::group(together as u64),
            crate::table::group(alone as u64),
            together / alone,
            if ok {
                "ok, no lock shared by the CPUs on the general path"
            } else {
                "FAILED: the CPUs wait for each other (a lock they share?)"
            }
        );
        Some((ok, line))
    }
}

/// "NAME: N counter ticks at F Hz ..." as nanoseconds of the virtual clock (instructions under
/// `-icount shift=0`).
fn counter_ns(text: &str) -> Option<f64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if let [_, ticks, "counter", "ticks", "at", hz, "Hz", ..] = words[..]
        && let (Ok(ticks), Ok(hz)) = (ticks.parse::<u128>(), hz.parse::<u128>())
        && hz > 0
    {
        Some(((ticks * 1_000_000_000 + hz / 2) / hz) as f64)
    } else {
        None
    }
}

/// "... at F Hz (idle N ticks)" as nanoseconds of the virtual clock.
fn idle_ns(text: &str) -> Option<f64> {
    let hz = text.split_whitespace().skip_while(|w| *w != "at").nth(1)?;
    let idle = text.split_once("(idle ")?.1.split_whitespace().next()?;
    let (hz, idle) = (hz.parse::<u128>().ok()?, idle.parse::<u128>().ok()?);
    (hz > 0).then(|| ((idle * 1_000_000_000 + hz / 2) / hz) as f64)
}

/// The hyp's "CPU N, HVC 0xID" with the call's name from the ABI catalog: "CPU N, HVC NAME
/// (0xID)". Anything else as it is.
fn name_call(cause: &str) -> String {
    let Some((before, id)) = cause.split_once("HVC 0x") else {
        return cause.to_string();
    };
    let name = u32::from_str_radix(id, 16)
        .ok()
        .and_then(hypercall_abi::catalog::CallInfo::find)
        .map_or("unknown call", |c| c.name);
    format!("{before}HVC {name} (0x{id})")
}

fn single(unit: &str, v: f64) -> Figure {
    Figure::Measured {
        unit: unit.to_string(),
        iterations: 1,
        min: v,
        median: v,
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
hyp: INFO  [bench] boot_to_guest: 151121 counter ticks at 62500000 Hz\r
hyp: INFO  [bench] hyp_overhead_bytes_per_vm: 18488 bytes (Vm struct 2048, ...)
bench: ABI 1.1 (hypervisor), built for 1.1; running \"bench\"
bench: bench: calibration frequency=62500000 instructions_per_tick=16.00 expected=16.00 ok
bench: bench: name=null_hypercall unit=instructions iterations=1000 min=459 median=460
bench: bench: name=console_trap_64b unit=instructions iterations=1000 min=9000 median=9100
bench: bench: name=event_roundtrip unavailable=needs the event calls (EVENT_* live since 1.2)
";

    #[test]
    fn reads_guest_and_hyp_lines() {
        let mut r = Results::default();
        r.read_log(LOG);
        r.derive(Some(136_264));
        assert_eq!(
            r.get("null_hypercall"),
            Some(&Figure::Measured {
                unit: "instructions".into(),
                iterations: 1000,
                min: 459.0,
                median: 460.0
            })
        );
        assert_eq!(
            r.get("event_roundtrip"),
            Some(&Figure::Unavailable(
                "needs the event calls (EVENT_* live since 1.2)".into()
            ))
        );
        let Some(Figure::Measured { min, .. }) = r.get("boot_to_guest") else {
            panic!("boot_to_guest missing");
        };
        assert_eq!(*min, 151_121.0 * 16.0);
        let Some(Figure::Measured { min, unit, .. }) = r.get("hyp_image_bytes") else {
            panic!("hyp_image_bytes missing");
        };
        assert_eq!((*min, unit.as_str()), (136_264.0, "bytes"));
        assert!(matches!(
            r.get("hyp_overhead_bytes_per_vm"),
            Some(Figure::Measured { min, .. }) if *min == 18_488.0
        ));
        // Only one console measure: no ratio, and a reason.
        assert!(matches!(
            r.get("console_trap_over_pv"),
            Some(Figure::Unavailable(_))
        ));
        // Everything in the catalog has a figure or a reason.
        assert!(catalog::ALL.iter().all(|s| r.get(s.name).is_some()));
        assert!(r.failures.is_empty() && !r.wall);
    }

    #[test]
    fn the_device_owner_boot_gives_its_own_figures_beside_the_plain_ones() {
        let mut r = Results::default();
        r.read_log(
            "bench: bench: name=mem_unmap_1 unit=instructions iterations=8 min=600 median=610",
        );
        r.read_log(
            "bench: bench: name=mem_unmap_1_device_owner unit=instructions iterations=8 min=900 \
             median=910",
        );
        r.derive(None);
        let median = |name| match r.get(name) {
            Some(Figure::Measured { median, .. }) => Some(*median),
            _ => None,
        };
        assert_eq!(median("mem_unmap_1"), Some(610.0));
        assert_eq!(median("mem_unmap_1_device_owner"), Some(910.0));
        assert!(matches!(
            r.get("mem_map_1_device_owner"),
            Some(Figure::Unavailable(_))
        ));
    }

    #[test]
    fn linux_entry_to_init_counts_from_its_own_logs_first_entry() {
        let mut r = Results::default();
        r.read_log("hyp: INFO  [bench] boot_to_guest: 10 counter ticks at 62500000 Hz");
        r.read_log(
            "hyp: INFO  [bench] linux_init_line: 900 counter ticks at 62500000 Hz\n\
             hyp: INFO  [bench] boot_to_guest: 100 counter ticks at 62500000 Hz\n\
             hyp: INFO  [bench] linux_init_line: 1100 counter ticks at 62500000 Hz (idle 1 ticks)",
        );
        r.derive(None);
        assert!(matches!(r.get("linux_entry_to_init"),
            Some(Figure::Measured { min, unit, .. }) if *min == 15_984.0 && unit == "instructions"));
        let mut r = Results::default();
        r.read_log("hyp: INFO  [bench] linux_init_line: 900 counter ticks at 62500000 Hz");
        r.derive(None);
        assert!(matches!(
            r.get("linux_entry_to_init"),
            Some(Figure::Unavailable(_))
        ));
    }

    #[test]
    fn the_first_log_gives_the_hyp_figures() {
        let mut r = Results::default();
        r.read_log("hyp: INFO  [bench] boot_to_guest: 10 counter ticks at 1000000000 Hz");
        r.read_log("hyp: INFO  [bench] boot_to_guest: 20 counter ticks at 1000000000 Hz");
        assert!(
            matches!(r.get("boot_to_guest"), Some(Figure::Measured { min, .. }) if *min == 10.0)
        );
    }

    #[test]
    fn max_hold_is_the_largest_of_every_log_with_its_cause() {
        let mut r = Results::default();
        r.read_log("hyp: INFO  [bench] max_hold: 100 counter ticks at 62500000 Hz (CPU 0, IRQ)");
        r.read_log(
            "hyp: INFO  [bench] max_hold: 3000 counter ticks at 62500000 Hz (CPU 0, HVC \
             0xc6000030)",
        );
        r.read_log("hyp: INFO  [bench] max_hold: 200 counter ticks at 62500000 Hz (CPU 1, IRQ)");
        r.derive(None);
        assert!(
            matches!(r.get("max_hold"), Some(Figure::Measured { min, unit, .. })
                if *min == 48_000.0 && unit == "instructions")
        );
        assert_eq!(
            r.max_hold_cause.as_deref(),
            Some("CPU 0, HVC MEM_MAP (0xc6000030)")
        );
        assert_eq!(
            name_call("CPU 2, HVC 0x1234"),
            "CPU 2, HVC unknown call (0x1234)"
        );
        assert_eq!(name_call("CPU 0, trap EC 0x24"), "CPU 0, trap EC 0x24");
    }

    #[test]
    fn derives_the_console_ratio() {
        let mut r = Results::default();
        r.read_log(
            "x: bench: name=console_pv_64b unit=instructions iterations=100 min=300 median=310\n\
             x: bench: name=console_trap_64b unit=instructions iterations=100 min=9000 median=9610",
        );
        r.derive(None);
        assert_eq!(
            r.get("console_trap_over_pv"),
            Some(&Figure::Measured {
                unit: "ratio".into(),
                iterations: 100,
                min: 30.0,
                median: 31.0
            })
        );
    }

    const SMP: &str = "\
smp-0: bench: smp name=smp_hypercall_alone vm=0 vms=1 start=1000 end=1330 calls=10 asked=10 overhead=7 frequency=62500000
smp-0: bench: smp name=smp_hypercall_4cpu vm=0 vms=4 start=5000 end=5100 calls=10 asked=10 overhead=7 frequency=62500000
smp-1: bench: smp name=smp_hypercall_4cpu vm=1 vms=4 start=5001 end=6000 calls=10 asked=10 overhead=7 frequency=62500000
smp-2: bench: smp name=smp_hypercall_4cpu vm=2 vms=4 start=5002 end=5900 calls=10 asked=10 overhead=7 frequency=62500000
smp-3: bench: smp name=smp_hypercall_4cpu vm=3 vms=4 start=5003 end=5500 calls=10 asked=10 overhead=7 frequency=62500000
smp-1: bench: smp name=smp_map_4cpu vm=1 vms=4 start=9000 end=9500 calls=3 asked=10 overhead=14 frequency=62500000
";

    #[test]
    fn an_smp_figure_is_every_cpus_instructions_over_every_call() {
        let mut r = Results::default();
        r.read_log(SMP);
        r.derive(None);
        // 330 ticks of 16 instructions over 10 calls, less the loop's 7.
        assert_eq!(
            r.get("smp_hypercall_alone"),
            Some(&Figure::Measured {
                unit: "instructions".into(),
                iterations: 10,
                min: 521.0,
                median: 521.0
            })
        );
        // The earliest start to the latest end: 1000 ticks over 40 calls.
        assert!(matches!(
            r.get("smp_hypercall_4cpu"),
            Some(Figure::Measured { iterations: 40, median, .. }) if *median == 393.0
        ));
        assert_eq!(
            r.get("smp_map_4cpu"),
            Some(&Figure::Unavailable("only 1 of its 4 VMs reported".into()))
        );
        assert_eq!(r.notes.len(), 1);
        assert!(r.notes[0].starts_with("smp_map_4cpu: 3 of 10 calls"));
        assert!(r.failures.is_empty());
    }

    #[test]
    fn the_smp_check_compares_four_cpus_with_one() {
        let mut r = Results::default();
        assert_eq!(r.smp_check(), None);
        let set = |r: &mut Results, name, v, iterations| {
            r.set(
                name,
                Figure::Measured {
                    unit: "instructions".into(),
                    iterations,
                    min: v,
                    median: v,
                },
            )
        };
        set(&mut r, "smp_hypercall_alone", 500.0, 10_000);
        set(&mut r, "smp_hypercall_4cpu", 600.0, 40_000);
        let (ok, line) = r.smp_check().unwrap();
        assert!(ok && line.contains(": ok"), "{line}");
        set(&mut r, "smp_hypercall_4cpu", 601.0, 40_000);
        let (ok, line) = r.smp_check().unwrap();
        assert!(!ok);
        assert!(
            line.contains("601 instructions") && line.contains("FAILED"),
            "{line}"
        );
        // --quick's few calls judge nothing, either way.
        set(&mut r, "smp_hypercall_4cpu", 601.0, 256);
        let (ok, line) = r.smp_check().unwrap();
        assert!(ok && line.contains("not judged"), "{line}");
    }

    #[test]
    fn an_smp_line_twice_or_malformed_is_a_failure() {
        let mut r = Results::default();
        let line = SMP.lines().next().unwrap();
        r.read_log(&format!(
            "{line}\n{line}\nx: bench: smp name=smp_map_4cpu vm=1\n"
        ));
        assert_eq!(r.failures.len(), 2);
    }

    #[test]
    fn failures_and_wall_mode_are_noticed() {
        let mut r = Results::default();
        r.read_log(
            "a: bench: calibration wall frequency=62500000 ...\n\
             a: bench: failed: mem.map failed\n\
             a: bench: name=x unit=ns iterations=oops\n",
        );
        assert!(r.wall);
        assert_eq!(r.failures.len(), 2);
    }
}
