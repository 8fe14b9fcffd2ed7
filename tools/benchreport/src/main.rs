//! benchreport: turns the console logs of `scripts/bench.sh`'s runs into the benchmark table,
//! a JSON array and an SVG chart.
//!
//! ```text
//! benchreport [--image FILE] [--json FILE] [--svg FILE] [--title TEXT] [--check-smp] LOG...
//! benchreport --check-json FILE
//! ```
//!
//! The logs hold the guests' `bench: name=...` lines and the hyp's `boot_to_guest`,
//! `hyp_overhead_bytes_per_vm` and `max_hold` log lines; `--image` is the hyp's Image (`hyp_image_bytes`).
//! Exit status 1 when a run reported a failure (a failed calibration, a failed call), or with
//! `--check-smp` when the smp check fails (`ABI_VERSION` grows with four CPUs calling at once:
//! [`results::Results::smp_check`]; printed either way), 2 for bad usage. `--check-json` checks a file `--json` wrote: valid JSON, every measure present.

#![forbid(unsafe_code)]

mod catalog;
mod json;
mod results;
mod svg;
mod table;

use results::Results;
use std::process::ExitCode;

const USAGE: &str = "usage: benchreport [--image FILE] [--json FILE] [--svg FILE] [--title TEXT] [--check-smp] LOG...\n       \
                     benchreport --check-json FILE";

#[derive(Debug, Default, PartialEq)]
struct Options {
    image: Option<String>,
    json: Option<String>,
    svg: Option<String>,
    title: Option<String>,
    check_json: Option<String>,
    check_smp: bool,
    logs: Vec<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{what} needs a value"));
        match a.as_str() {
            "--image" => o.image = Some(value("--image")?),
            "--json" => o.json = Some(value("--json")?),
            "--svg" => o.svg = Some(value("--svg")?),
            "--title" => o.title = Some(value("--title")?),
            "--check-json" => o.check_json = Some(value("--check-json")?),
            "--check-smp" => o.check_smp = true,
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => o.logs.push(a),
        }
    }
    if o.check_json.is_none() && o.logs.is_empty() {
        return Err("no log files".into());
    }
    Ok(o)
}

fn write(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
}

fn run(o: &Options) -> Result<bool, String> {
    if let Some(path) = &o.check_json {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let n = json::check(&text).map_err(|e| format!("{path}: {e}"))?;
        println!("{path}: valid JSON, {n} measures, every name present");
        return Ok(true);
    }
    let mut results = Results::default();
    for path in &o.logs {
        let text = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        results.read_log(&String::from_utf8_lossy(&text));
    }
    let image_bytes = match &o.image {
        Some(path) => Some(
            std::fs::metadata(path)
                .map_err(|e| format!("{path}: {e}"))?
                .len(),
        ),
        None => None,
    };
    results.derive(image_bytes);
    for c in &results.calibrations {
        println!("{c}");
    }
    if results.wall {
        println!(
            "WALL-CLOCK MODE: figures are nanoseconds of host time, NOT deterministic; budgets \
             are not judged"
        );
    }
    println!();
    print!("{}", table::render(&results));
    if let Some(cause) = &results.max_hold_cause {
        println!("max_hold: {cause}");
    }
    for note in &results.notes {
        println!("{note}");
    }
    if let Some((ok, line)) = results.smp_check() {
        println!("{line}");
        if !ok && o.check_smp {
            results
                .failures
                .push("the smp check failed (--check-smp)".into());
        }
    }
    if let Some(path) = &o.json {
        write(path, &json::render(&results))?;
    }
    if let Some(path) = &o.svg {
        let title = o.title.as_deref().unwrap_or("pvhyp benchmarks");
        write(path, &svg::render(&results, title))?;
    }
    for f in &results.failures {
        eprintln!("benchreport: {f}");
    }
    Ok(results.failures.is_empty())
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("benchreport: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("benchreport: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn options() {
        let o = parse_args(args("--image I --json J --svg S a.log b.log")).unwrap();
        assert!(!o.check_smp);
        assert!(parse_args(args("--check-smp a.log")).unwrap().check_smp);
        assert_eq!(o.image.as_deref(), Some("I"));
        assert_eq!(o.json.as_deref(), Some("J"));
        assert_eq!(o.svg.as_deref(), Some("S"));
        assert_eq!(o.logs, ["a.log", "b.log"]);
        assert!(parse_args(args("--json")).is_err());
        assert!(parse_args(args("--bogus x.log")).is_err());
        assert!(parse_args(args("")).is_err());
        assert!(parse_args(args("--check-json f.json")).is_ok());
    }
}
