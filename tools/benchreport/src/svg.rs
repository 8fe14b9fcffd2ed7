//! A hand-written SVG bar chart: PV against trap-and-emulate, then the hot paths, each beside
//! the reference figures measured the same way; instructions on a log scale.

use crate::catalog::{self, Spec};
use crate::results::{Figure, Results};
use crate::table::group;
use std::fmt::Write;

const LABEL_W: f64 = 230.0;
const BAR_W: f64 = 480.0;
const ROW_H: f64 = 16.0;
const WIDTH: f64 = LABEL_W + BAR_W + 110.0;
/// The log scale: 10^1 .. 10^5 instructions.
const DECADES: (f64, f64) = (1.0, 5.0);

fn x_of(v: f64) -> f64 {
    let l = v.max(10.0).log10().clamp(DECADES.0, DECADES.1);
    LABEL_W + (l - DECADES.0) / (DECADES.1 - DECADES.0) * BAR_W
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One bar (or a "not available yet" note) and its value.
fn bar(out: &mut String, y: f64, label: &str, value: Option<f64>, fill: &str) {
    let _ = write!(
        out,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>",
        LABEL_W - 6.0,
        y + ROW_H - 4.0,
        escape(label)
    );
    match value {
        Some(v) => {
            let x1 = x_of(v);
            let _ = write!(
                out,
                "<rect x=\"{LABEL_W:.0}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{:.0}\" \
                 fill=\"{fill}\"/><text x=\"{:.1}\" y=\"{:.0}\">{}</text>",
                y + 2.0,
                (x1 - LABEL_W).max(1.0),
                ROW_H - 4.0,
                x1 + 4.0,
                y + ROW_H - 4.0,
                group(v.round() as u64)
            );
        }
        None => {
            let _ = write!(
                out,
                "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"#888\">not available yet</text>",
                LABEL_W + 4.0,
                y + ROW_H - 4.0
            );
        }
    }
    out.push('\n');
}

/// The median of a measured figure in instructions.
fn median(results: &Results, spec: &Spec) -> Option<f64> {
    match results.get(spec.name) {
        Some(Figure::Measured { median, unit, .. }) if unit == "instructions" => Some(*median),
        _ => None,
    }
}

/// The chart; `title` heads it.
pub fn render(results: &Results, title: &str) -> String {
    let console: Vec<&Spec> = ["console_pv_64b", "console_trap_64b"]
        .iter()
        .filter_map(|n| catalog::find(n))
        .collect();
    let hot: Vec<&Spec> = catalog::ALL
        .iter()
        .filter(|s| s.hot_path && !console.iter().any(|c| c.name == s.name))
        .collect();
    let mut body = String::new();
    let mut y = 40.0;
    for (heading, specs) in [
        (
            "PV against trap-and-emulate: 64 bytes to the console",
            &console,
        ),
        ("Hot paths (references: Xen and KVM, same method)", &hot),
    ] {
        let _ = writeln!(
            body,
            "<text x=\"8\" y=\"{:.0}\" font-weight=\"bold\">{}</text>",
            y + 12.0,
            escape(heading)
        );
        y += 20.0;
        for spec in specs.iter() {
            bar(&mut body, y, spec.name, median(results, spec), "#2b6cb0");
            y += ROW_H;
            for (who, v) in spec.reference {
                bar(&mut body, y, who, Some(*v as f64), "#b0b0b0");
                y += ROW_H;
            }
            y += 4.0;
        }
        y += 8.0;
    }
    // The scale: a line and a label per decade.
    let mut axis = String::new();
    let top = 40.0;
    for d in (DECADES.0 as u32)..=(DECADES.1 as u32) {
        let v = 10f64.powi(d as i32);
        let x = x_of(v);
        let _ = writeln!(
            axis,
            "<line x1=\"{x:.1}\" y1=\"{top:.0}\" x2=\"{x:.1}\" y2=\"{y:.0}\" stroke=\"#ddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
            y + 12.0,
            group(v as u64)
        );
    }
    let height = y + 40.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {WIDTH:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"20\" font-size=\"13\" font-weight=\"bold\">{}</text>\n\
         {axis}{body}\
         <text x=\"8\" y=\"{:.0}\" fill=\"#666\">median instructions per operation, log scale; \
         QEMU -icount shift=0, cortex-a72; pvhyp blue, references grey. Not cycles on silicon.</text>\n</svg>\n",
        escape(title),
        height - 10.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_measured_and_missing_rows() {
        let mut r = Results::default();
        r.read_log(
            "b: bench: name=null_hypercall unit=instructions iterations=9 min=40 median=41\n",
        );
        r.derive(None);
        let svg = render(&r, "pvhyp <test>");
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("pvhyp &lt;test&gt;"));
        assert!(svg.contains(">null_hypercall</text>"));
        assert!(svg.contains(">41</text>"));
        assert!(svg.contains(">Xen 4.17</text>") && svg.contains(">417</text>"));
        assert!(svg.contains("not available yet"));
        // Every opened element is closed.
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn the_scale_is_logarithmic() {
        assert_eq!(x_of(10.0), LABEL_W);
        assert_eq!(x_of(100_000.0), LABEL_W + BAR_W);
        assert!((x_of(1000.0) - (LABEL_W + BAR_W / 2.0)).abs() < 1e-9);
        assert_eq!(x_of(1.0), LABEL_W);
    }
}
