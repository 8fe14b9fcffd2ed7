//! The hypervisor console, `hyp>`: where the console focus goes after the VMs (`Ctrl-]`,
//! `vm::sched::next_focus`). Typed bytes edit a line (echoed as the focused writer's partial
//! line, `echo.rs`); Enter runs it. This module is the generic part, tested on the host: the
//! line editor, the command parser and every command's output; `vm::sched` gathers the data
//! and carries the commands out.

#![forbid(unsafe_code)]

use crate::vm::stats::{ExitKind, VmStats};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The prompt of the hypervisor console.
pub const PROMPT: &str = "hyp> ";

/// The longest command line kept; more typed bytes are ignored.
pub const LINE_MAX: usize = 80;

/// The commands, for `help` and the error of an unknown one.
pub const HELP: [&str; 7] = [
    "vms              every VM: kind, state, vCPUs and their CPUs, memory, exits, uptime",
    "kill NAME        stop VM NAME on every CPU; it ends, killed (a failed VM)",
    "restart NAME     stop VM NAME, return its memory scrubbed, start it afresh from its image",
    "stats            per CPU: guest exits and idle time",
    "trace on|off     record each CPU's last exits (or stop recording)",
    "trace dump       print every CPU's recorded exits, decoded",
    "help             this list (Ctrl-] moves the console focus to the next VM)",
];

/// The command line being typed.
pub struct LineEditor {
    buf: [u8; LINE_MAX],
    len: usize,
}

/// What a typed byte did to the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// The line changed (a byte added or erased): echo it again.
    Changed,
    /// Enter: the line is complete.
    Done,
    /// Nothing (a control byte, a full line, backspace on an empty line).
    Nothing,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Takes one typed byte: printable ones join the line, backspace or DEL erases the last,
    /// CR or LF ends it.
    pub fn feed(&mut self, byte: u8) -> Edit {
        match byte {
            b'\r' | b'\n' => Edit::Done,
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                Edit::Changed
            }
            b' '..=b'~' if self.len < LINE_MAX => {
                self.buf[self.len] = byte;
                self.len += 1;
                Edit::Changed
            }
            _ => Edit::Nothing,
        }
    }

    /// The line so far (printable ASCII only).
    pub fn text(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// The prompt and the line so far, as the console shows them.
    pub fn shown(&self) -> String {
        format!("{PROMPT}{}", self.text())
    }

    /// Starts a new line.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// What `trace` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceOp {
    On,
    Off,
    Dump,
}

/// A command line, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Vms,
    Kill(&'a str),
    Restart(&'a str),
    Stats,
    Trace(TraceOp),
    Help,
    /// An empty line: nothing to do.
    Empty,
}

/// A line that is no command: one line of explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    Unknown(&'a str),
    Usage(&'static str),
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(word) => write!(f, "unknown command \"{word}\" (try help)"),
            Self::Usage(usage) => write!(f, "usage: {usage}"),
        }
    }
}

/// Parses one command line: a command word and its arguments, separated by spaces.
pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let Some(word) = words.next() else {
        return Ok(Command::Empty);
    };
    let args: Vec<&str> = words.collect();
    let one_name = |usage| match args[..] {
        [name] => Ok(name),
        _ => Err(ParseError::Usage(usage)),
    };
    let none = |command, usage| {
        if args.is_empty() {
            Ok(command)
        } else {
            Err(ParseError::Usage(usage))
        }
    };
    match word {
        "vms" => none(Command::Vms, "vms"),
        "stats" => none(Command::Stats, "stats"),
        "help" | "?" => none(Command::Help, "help"),
        "kill" => one_name("kill NAME").map(Command::Kill),
        "restart" => one_name("restart NAME").map(Command::Restart),
        "trace" => match args[..] {
            ["on"] => Ok(Command::Trace(TraceOp::On)),
            ["off"] => Ok(Command::Trace(TraceOp::Off)),
            ["dump"] => Ok(Command::Trace(TraceOp::Dump)),
            _ => Err(ParseError::Usage("trace on|off|dump")),
        },
        _ => Err(ParseError::Unknown(word)),
    }
}

/// Why `kill` or `restart` did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No VM of the run has that name (or it was refused at boot).
    NoSuchVm,
    /// It is being stopped already.
    Stopping,
    /// It has ended (for `kill`).
    Ended,
    /// The run is ending: every VM has ended.
    RunEnding,
}

/// The one line saying why `command` refused VM `name`.
pub fn refusal(name: &str, why: Refusal) -> String {
    match why {
        Refusal::NoSuchVm => format!("no VM named \"{name}\""),
        Refusal::Stopping => format!("VM {name} is stopping already"),
        Refusal::Ended => format!("VM {name} has ended (restart NAME starts it again)"),
        Refusal::RunEnding => format!("VM {name}: the run is ending (every VM has ended)"),
    }
}

/// Where a VM is, for the `vms` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmStatus {
    Running,
    Stopping,
    Exited(u64),
    Killed,
}

impl fmt::Display for VmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Running => f.write_str("running"),
            Self::Stopping => f.write_str("stopping"),
            Self::Exited(status) => write!(f, "exited({status})"),
            Self::Killed => f.write_str("killed"),
        }
    }
}

/// One VM as `vms` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmRow {
    pub name: String,
    /// `pv` (the paravirtual console ring) or `pv/pl011` (an emulated PL011).
    pub kind: &'static str,
    pub status: VmStatus,
    /// The CPU each vCPU is loaded on now, by vCPU (None: on none).
    pub on_cpus: Vec<Option<usize>>,
    pub mapped_pages: u64,
    pub quota_pages: u64,
    pub stats: VmStats,
    pub restarts: u64,
    /// Counter ticks since its current life began (None once it has ended).
    pub uptime_ticks: Option<u64>,
}

/// A duration of `ticks` of a counter of `hz`, as seconds with three decimals.
pub struct Seconds {
    pub ticks: u64,
    pub hz: u64,
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hz = self.hz.max(1);
        let millis = scaled(self.ticks % hz, 1000, hz);
        write!(f, "{}.{millis:03}s", self.ticks / hz)
    }
}

/// `part * scale / whole` rounded down, in u64 (u128's division is 1.4 KiB of the Image for two
/// tables): exact while `part % whole * scale` fits in u64, at most one above it otherwise. A
/// `whole` of 0 counts as 1.
fn scaled(part: u64, scale: u64, whole: u64) -> u64 {
    let whole = whole.max(1);
    let (whole_times, rest) = (part / whole, part % whole);
    let rest_scaled = match rest.checked_mul(scale) {
        Some(r) => r / whole,
        None => rest / (whole / scale),
    };
    whole_times
        .saturating_mul(scale)
        .saturating_add(rest_scaled)
}

/// Lays `rows` out as a table with a header, each column as wide as its widest cell (the
/// last one unpadded).
fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < widths.len() {
                out.extend(core::iter::repeat_n(' ', widths[i] - cell.len()));
            }
        }
        out.truncate(out.trim_ascii_end().len());
        out
    };
    let mut lines = Vec::with_capacity(rows.len() + 1);
    lines.push(line(&mut header.iter().copied()));
    for row in rows {
        lines.push(line(&mut row.iter().map(String::as_str)));
    }
    lines
}

/// The `vms` table, a line each (without the `hyp: ` prefix): memory in pages mapped of the
/// quota; exits in all, then by kind; `ON CPU` the CPU of each vCPU (`-`: none).
pub fn vms_table(rows: &[VmRow], hz: u64) -> Vec<String> {
    const HEADER: [&str; 17] = [
        "NAME", "KIND", "STATE", "VCPUS", "ON CPU", "PAGES", "EXITS", "HVC", "SYSREG", "WFI",
        "STAGE2", "IRQ", "OTHER", "FAULTS", "EVENTS", "RESTARTS", "UPTIME",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let on: Vec<String> = r
                .on_cpus
                .iter()
                .map(|c| c.map_or_else(|| String::from("-"), |c| format!("{c}")))
                .collect();
            let s = &r.stats;
            let mut row = alloc::vec![
                r.name.clone(),
                String::from(r.kind),
                format!("{}", r.status),
                format!("{}", r.on_cpus.len()),
                on.join(","),
                format!("{}/{}", r.mapped_pages, r.quota_pages),
                format!("{}", s.exits()),
            ];
            for kind in ExitKind::ALL {
                row.push(format!("{}", s.exits_of(kind)));
            }
            row.push(format!("{}", s.faults));
            row.push(format!("{}", s.events));
            row.push(format!("{}", r.restarts));
            row.push(r.uptime_ticks.map_or_else(
                || String::from("-"),
                |ticks| format!("{}", Seconds { ticks, hz }),
            ));
            row
        })
        .collect();
    if cells.is_empty() {
        return alloc::vec![String::from("no VMs")];
    }
    table(&HEADER, &cells)
}

/// One CPU as `stats` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuRow {
    pub cpu: usize,
    pub exits: u64,
    pub idle_ticks: u64,
    /// Spins waiting for a VM's or the run queue's lock another CPU held.
    pub lock_waits: u64,
}

/// The `stats` table: each CPU's guest exits, idle time (of `now_ticks` since the counter
/// started, about when the machine did) and lock waits.
pub fn stats_table(rows: &[CpuRow], now_ticks: u64, hz: u64) -> Vec<String> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let share = scaled(r.idle_ticks, 100, now_ticks);
            alloc::vec![
                format!("{}", r.cpu),
                format!("{}", r.exits),
                format!(
                    "{}",
                    Seconds {
                        ticks: r.idle_ticks,
                        hz
                    }
                ),
                format!("{share}%"),
                format!("{}", r.lock_waits),
            ]
        })
        .collect();
    let mut lines = table(&["CPU", "EXITS", "IDLE", "OF UPTIME", "LOCK WAITS"], &cells);
    lines.push(format!(
        "uptime {}; lock waits: spins for a VM's or the run queue's lock",
        Seconds {
            ticks: now_ticks,
            hz
        }
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn parses_every_command_and_refuses_the_rest_in_one_line() {
        assert_eq!(parse("vms"), Ok(Command::Vms));
        assert_eq!(parse("  kill  spinner "), Ok(Command::Kill("spinner")));
        assert_eq!(parse("restart st"), Ok(Command::Restart("st")));
        assert_eq!(parse("stats"), Ok(Command::Stats));
        assert_eq!(parse("trace on"), Ok(Command::Trace(TraceOp::On)));
        assert_eq!(parse("trace off"), Ok(Command::Trace(TraceOp::Off)));
        assert_eq!(parse("trace dump"), Ok(Command::Trace(TraceOp::Dump)));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("   "), Ok(Command::Empty));
        let err = |line| parse(line).unwrap_err().to_string();
        assert_eq!(err("bogus"), "unknown command \"bogus\" (try help)");
        assert_eq!(err("bogus x y"), "unknown command \"bogus\" (try help)");
        assert_eq!(err("kill"), "usage: kill NAME");
        assert_eq!(err("kill a b"), "usage: kill NAME");
        assert_eq!(err("restart"), "usage: restart NAME");
        assert_eq!(err("trace"), "usage: trace on|off|dump");
        assert_eq!(err("trace up"), "usage: trace on|off|dump");
        assert_eq!(err("vms all"), "usage: vms");
    }

    #[test]
    fn refusals_name_the_vm() {
        assert_eq!(refusal("x", Refusal::NoSuchVm), "no VM named \"x\"");
        assert!(refusal("st", Refusal::Ended).starts_with("VM st has ended"));
        assert!(refusal("st", Refusal::Stopping).starts_with("VM st is stopping"));
        assert!(refusal("st", Refusal::RunEnding).starts_with("VM st: the run is ending"));
    }

    #[test]
    fn edits_a_line_with_backspace_and_delete() {
        let mut e = LineEditor::default();
        assert_eq!(e.feed(0x7f), Edit::Nothing, "nothing to erase");
        for b in b"killx" {
            assert_eq!(e.feed(*b), Edit::Changed);
        }
        assert_eq!(e.feed(0x08), Edit::Changed);
        assert_eq!(e.feed(0x7f), Edit::Changed);
        assert_eq!(e.feed(0x1b), Edit::Nothing);
        assert_eq!(e.feed(b'l'), Edit::Changed);
        assert_eq!(e.shown(), "hyp> kill");
        assert_eq!(e.feed(b'\r'), Edit::Done);
        assert_eq!(e.text(), "kill");
        e.clear();
        assert_eq!(e.shown(), "hyp> ");
        for _ in 0..LINE_MAX + 5 {
            e.feed(b'a');
        }
        assert_eq!(e.text().len(), LINE_MAX, "a full line takes no more");
    }

    fn stats(hvc: u64, irq: u64) -> VmStats {
        let mut s = VmStats::default();
        s.count_n(ExitKind::Hypercall, hvc);
        s.count_n(ExitKind::Irq, irq);
        s.count_n(ExitKind::SysReg, 14);
        s.count_event();
        s
    }

    #[test]
    fn the_vms_table_lines_up_every_field() {
        let rows = [
            VmRow {
                name: "sh".into(),
                kind: "pv",
                status: VmStatus::Running,
                on_cpus: vec![Some(0)],
                mapped_pages: 40,
                quota_pages: 2048,
                stats: stats(120, 3),
                restarts: 0,
                uptime_ticks: Some(62_500_000 * 3 + 62_500),
            },
            VmRow {
                name: "spinner".into(),
                kind: "pv/pl011",
                status: VmStatus::Killed,
                on_cpus: vec![None, None],
                mapped_pages: 129,
                quota_pages: 4096,
                stats: stats(7, 1234),
                restarts: 2,
                uptime_ticks: None,
            },
            VmRow {
                name: "st".into(),
                kind: "pv",
                status: VmStatus::Exited(3),
                on_cpus: vec![None, Some(3)],
                mapped_pages: 1,
                quota_pages: 1,
                stats: VmStats::default(),
                restarts: 0,
                uptime_ticks: None,
            },
        ];
        let lines = vms_table(&rows, 62_500_000);
        let want = [
            "NAME     KIND      STATE      VCPUS  ON CPU  PAGES     EXITS  HVC  SYSREG  WFI  STAGE2  IRQ   OTHER  FAULTS  EVENTS  RESTARTS  UPTIME",
            "sh       pv        running    1      0       40/2048   137    120  14      0    0       3     0      0       1       0         3.001s",
            "spinner  pv/pl011  killed     2      -,-     129/4096  1255   7    14      0    0       1234  0      0       1       2         -",
            "st       pv        exited(3)  2      -,3     1/1       0      0    0       0    0       0     0      0       0       0         -",
        ];
        assert_eq!(lines, want);
        assert_eq!(vms_table(&[], 1), ["no VMs"]);
    }

    #[test]
    fn the_stats_table_shows_idle_time_its_share_and_lock_waits() {
        let rows = [
            CpuRow {
                cpu: 0,
                exits: 151,
                idle_ticks: 1_000,
                lock_waits: 0,
            },
            CpuRow {
                cpu: 1,
                exits: 0,
                idle_ticks: 3_000,
                lock_waits: 42,
            },
        ];
        assert_eq!(
            stats_table(&rows, 4_000, 1_000),
            [
                "CPU  EXITS  IDLE    OF UPTIME  LOCK WAITS",
                "0    151    1.000s  25%        0",
                "1    0      3.000s  75%        42",
                "uptime 4.000s; lock waits: spins for a VM's or the run queue's lock",
            ]
        );
    }

    #[test]
    fn seconds_round_down_to_milliseconds() {
        assert_eq!(
            Seconds {
                ticks: 1999,
                hz: 1000
            }
            .to_string(),
            "1.999s"
        );
        assert_eq!(Seconds { ticks: 5, hz: 0 }.to_string(), "5.000s");
        assert_eq!(
            Seconds {
                ticks: u64::MAX,
                hz: u64::MAX - 1
            }
            .to_string(),
            "1.000s"
        );
        assert_eq!(
            Seconds {
                ticks: u64::MAX,
                hz: 1
            }
            .to_string()
            .len(),
            25
        );
    }

    #[test]
    fn a_share_is_exact_in_u64_and_close_where_the_product_would_not_fit() {
        assert_eq!(scaled(1, 100, 3), 33);
        assert_eq!(scaled(2, 100, 3), 66);
        assert_eq!(scaled(7, 100, 0), 700);
        // 24.99...: where the product would not fit, at most one above.
        assert_eq!(scaled(u64::MAX / 4, 100, u64::MAX), 25);
        assert_eq!(scaled(u64::MAX / 2, 100, u64::MAX / 2 + 1), 100);
        assert_eq!(scaled(u64::MAX, 100, u64::MAX), 100);
        assert_eq!(scaled(u64::MAX, 100, 1), u64::MAX);
    }
}
