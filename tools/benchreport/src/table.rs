//! The terminal table.

use crate::catalog::{self, Budget, Spec};
use crate::results::{Figure, Results};
use std::fmt::Write;

/// `1234567` as `1,234,567`.
pub fn group(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A figure as the table shows it: integers grouped, ratios with one decimal.
pub fn number(unit: &str, v: f64) -> String {
    if unit == "ratio" {
        format!("{v:.1}x")
    } else {
        group(v.round() as u64)
    }
}

/// The spec's budget as this run judges it: a relative one ([`Budget::Times`]) from the
/// run's medians (None while one of them is missing or not in instructions).
pub fn budget(spec: &Spec, results: &Results) -> Option<Budget> {
    spec.budget?.resolve(|name| match results.get(name) {
        Some(Figure::Measured { median, unit, .. }) if unit == "instructions" => Some(*median),
        _ => None,
    })
}

/// The budget as the table and the JSON say it: a relative one with what it comes to.
pub fn budget_text(spec: &Spec, results: &Results) -> String {
    match (spec.budget, budget(spec, results)) {
        (None, _) => String::new(),
        (Some(relative @ Budget::Times(..)), Some(figure)) => {
            let relative = relative.to_string();
            format!("{figure} ({})", relative.trim_start_matches("<= "))
        }
        (Some(b), _) => b.to_string(),
    }
}

/// Whether the figure meets the spec's budget (by median); None without a budget or figure.
pub fn budget_met(spec: &Spec, figure: &Figure, results: &Results) -> Option<bool> {
    match (budget(spec, results), figure) {
        (Some(b), Figure::Measured { median, unit, .. }) if unit != "ns" => Some(b.met(*median)),
        _ => None,
    }
}

/// The whole table, one measure a line, then the unavailable ones' reasons.
pub fn render(results: &Results) -> String {
    let mut rows = vec![[
        "measure".to_string(),
        "unit".into(),
        "iterations".into(),
        "min".into(),
        "median".into(),
        "budget".into(),
        "met".into(),
        "reference (same method)".into(),
    ]];
    let mut notes = Vec::new();
    for spec in catalog::ALL {
        let figure = results
            .get(spec.name)
            .cloned()
            .unwrap_or(Figure::Unavailable("not reported".into()));
        let budget = budget_text(spec, results);
        let reference = spec
            .reference
            .iter()
            .map(|(who, v)| format!("{who} {}", group(*v)))
            .collect::<Vec<_>>()
            .join(", ");
        let row = match &figure {
            Figure::Measured {
                unit,
                iterations,
                min,
                median,
            } => [
                spec.name.to_string(),
                unit.clone(),
                group(*iterations),
                number(unit, *min),
                number(unit, *median),
                budget,
                match budget_met(spec, &figure, results) {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => String::new(),
                },
                reference,
            ],
            Figure::Unavailable(reason) => {
                notes.push(format!("  {}: {reason}", spec.name));
                [
                    spec.name.to_string(),
                    spec.unit.to_string(),
                    "-".into(),
                    "not available yet".into(),
                    String::new(),
                    budget,
                    String::new(),
                    reference,
                ]
            }
        };
        rows.push(row);
    }
    let mut widths = [0; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, (cell, w)) in row.iter().zip(widths).enumerate() {
            // Names and text left, numbers right.
            if (2..=4).contains(&c) && i > 0 && cell != "not available yet" {
                let _ = write!(line, "{cell:>w$}  ");
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * 7));
            out.push('\n');
        }
    }
    if !notes.is_empty() {
        out.push_str("\nnot available yet:\n");
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_easily() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(number("ratio", 31.04), "31.0x");
        assert_eq!(number("instructions", 459.4), "459");
    }

    #[test]
    fn the_table_has_every_measure_and_says_what_is_missing() {
        let mut r = Results::default();
        r.read_log(
            "b: bench: name=null_hypercall unit=instructions iterations=1000 min=40 median=41\n\
             b: bench: name=vm_switch unit=instructions iterations=1000 min=1600 median=1600\n",
        );
        r.derive(Some(100_000));
        let t = render(&r);
        for spec in catalog::ALL {
            assert!(t.contains(spec.name), "{}", spec.name);
        }
        let line = |name: &str| {
            t.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap()
                .to_string()
        };
        assert!(line("null_hypercall").contains("yes"));
        assert!(line("vm_switch").contains("NO"));
        assert!(line("hyp_image_bytes").contains("100,000"));
        assert!(line("event_roundtrip").contains("not available yet"));
        assert!(t.contains("event_roundtrip: no run reported it"));
        // A relative budget with nothing to resolve it from says what it is relative to.
        assert!(line("smp_map_4cpu").contains("<= 1.2x mem_map_1 + mem_unmap_1"));
    }

    #[test]
    fn relative_budgets_come_from_the_same_run() {
        let mut r = Results::default();
        r.read_log(
            "b: bench: name=null_hypercall_abi_version unit=instructions iterations=9 min=500 \
             median=500\n",
        );
        r.set(
            "smp_hypercall_4cpu",
            Figure::Measured {
                unit: "instructions".into(),
                iterations: 40_000,
                min: 3300.0,
                median: 3300.0,
            },
        );
        r.derive(None);
        let spec = catalog::find("smp_hypercall_4cpu").unwrap();
        assert_eq!(budget(spec, &r), Some(Budget::AtMost(600.0)));
        assert_eq!(
            budget_text(spec, &r),
            "<= 600 (1.2x null_hypercall_abi_version)"
        );
        let figure = r.get("smp_hypercall_4cpu").unwrap().clone();
        assert_eq!(budget_met(spec, &figure, &r), Some(false));
        let t = render(&r);
        assert!(t.contains("<= 600 (1.2x null_hypercall_abi_version)  NO"));
    }
}
