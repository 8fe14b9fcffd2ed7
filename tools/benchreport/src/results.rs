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

/// Everything the logs said.
#[derive(Debug, Default)]
pub struct Results {
    figures: BTreeMap<String, Figure>,
    /// Wall-clock mode (a guest said so): not deterministic.
    pub wall: bool,
    /// What went wrong (a guest's `bench: failed`, a failed calibration).
    pub failures: Vec<String>,
    /// The calibration lines, for the report's header.
    pub calibrations: Vec<String>,
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
        for line in text.lines() {
            self.read_line(line.trim_end_matches('\r'));
        }
    }

    fn read_line(&mut self, line: &str) {
        if let Some(at) = line.find("bench: name=") {
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
            for name in ["boot_to_guest", "max_hold"] {
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
