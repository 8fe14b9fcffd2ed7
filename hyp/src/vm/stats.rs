//! What a VM made the hyp do: its exits by kind, its faults and the events raised for it.
//! Plain counters in the `Vm`, which the scheduler lock already guards; printed at the end of
//! a run as one `hyp: vmstats:` line a VM, and summed into the summary line.

#![forbid(unsafe_code)]

use crate::arch::aarch64::esr::Class;
use core::fmt;

/// Why a guest left, as the statistics and the trace count it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitKind {
    /// HVC (and the SMCs refused like one).
    Hypercall,
    /// A trapped system register access.
    SysReg,
    /// WFI or WFE.
    Wfi,
    /// A stage-2 fault: an emulated MMIO access or a fault.
    Stage2,
    /// A physical interrupt.
    Irq,
    /// Anything else (UNDEFINED instructions, unexpected exceptions).
    #[default]
    Other,
}

impl ExitKind {
    /// Every kind, in the order of [`VmStats`]'s counters.
    pub const ALL: [ExitKind; 6] = [
        ExitKind::Hypercall,
        ExitKind::SysReg,
        ExitKind::Wfi,
        ExitKind::Stage2,
        ExitKind::Irq,
        ExitKind::Other,
    ];

    /// The kind of a synchronous exit of this class.
    pub fn of(class: Class) -> Self {
        match class {
            Class::Hvc64 | Class::Smc64 => Self::Hypercall,
            Class::SysReg => Self::SysReg,
            Class::WfiWfe => Self::Wfi,
            Class::DataAbortLower | Class::InstructionAbortLower => Self::Stage2,
            _ => Self::Other,
        }
    }

    /// Its name in the vmstats and trace lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hypercall => "hypercall",
            Self::SysReg => "sysreg",
            Self::Wfi => "wfi",
            Self::Stage2 => "stage2",
            Self::Irq => "irq",
            Self::Other => "other",
        }
    }
}

/// One VM's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStats {
    exits: [u64; ExitKind::ALL.len()],
    /// Stage-2 faults that were not an emulated access (injected into the guest or fatal).
    pub faults: u64,
    /// Events raised for it (by peers, its timer, its console, the hyp).
    pub events: u64,
    /// DMA faults the SMMU recorded for its devices (one per event record).
    pub dma_faults: u64,
    /// How many of their log lines it may still cause.
    pub dma_fault_log: DmaFaultLog,
}

impl VmStats {
    /// Counts one exit of `kind` (a constant index: one add on the exit path).
    #[inline(always)]
    pub fn count(&mut self, kind: ExitKind) {
        let n = &mut self.exits[kind as usize];
        *n = n.wrapping_add(1);
    }

    /// Counts `n` exits of `kind` at once.
    pub fn count_n(&mut self, kind: ExitKind, n: u64) {
        let count = &mut self.exits[kind as usize];
        *count = count.wrapping_add(n);
    }

    pub fn count_fault(&mut self) {
        self.faults = self.faults.wrapping_add(1);
    }

    pub fn count_dma_faults(&mut self, n: u64) {
        self.dma_faults = self.dma_faults.wrapping_add(n);
    }

    pub fn count_event(&mut self) {
        self.events = self.events.wrapping_add(1);
    }

    /// Exits of `kind`.
    pub fn exits_of(&self, kind: ExitKind) -> u64 {
        self.exits[kind as usize]
    }

    /// Exits of every kind.
    pub fn exits(&self) -> u64 {
        self.exits.iter().fold(0, |sum, n| sum.wrapping_add(*n))
    }

    pub fn hypercalls(&self) -> u64 {
        self.exits_of(ExitKind::Hypercall)
    }
}

/// Log lines of DMA faults one VM may cause in one window; the faults beyond them are counted
/// and reported in one line once the window has passed.
pub const DMA_FAULT_LINES_PER_WINDOW: u32 = 4;

/// A VM's rate limit of DMA fault lines: at most `DMA_FAULT_LINES_PER_WINDOW` a window, so a
/// guest that keeps faulting its device cannot make the hyp log a line at each of its exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaFaultLog {
    /// The counter value its current window began at.
    window_start: u64,
    lines: u32,
    /// Faults whose lines were left out in the current window.
    suppressed: u64,
}

impl DmaFaultLog {
    /// A limit with no line logged yet.
    pub const fn new() -> Self {
        Self {
            window_start: 0,
            lines: 0,
            suppressed: 0,
        }
    }

    /// A run of `faults` faults at counter value `now`, with windows `window` ticks long:
    /// whether its line is logged (else its faults are counted as suppressed). Call
    /// `take_suppressed` first, so that a window's suppressed faults are reported before the
    /// next window begins.
    pub fn admit(&mut self, now: u64, window: u64, faults: u64) -> bool {
        if now.wrapping_sub(self.window_start) >= window && self.suppressed == 0 {
            self.window_start = now;
            self.lines = 0;
        }
        if self.lines < DMA_FAULT_LINES_PER_WINDOW {
            self.lines += 1;
            true
        } else {
            self.suppressed = self.suppressed.wrapping_add(faults);
            false
        }
    }

    /// The faults suppressed in a window that has passed by `now` (or in any window, if
    /// `now` is None: the VM's end), to be reported in one line; the next window begins.
    pub fn take_suppressed(&mut self, now: Option<u64>, window: u64) -> Option<u64> {
        let passed = now.is_none_or(|now| now.wrapping_sub(self.window_start) >= window);
        if self.suppressed == 0 || !passed {
            return None;
        }
        let n = self.suppressed;
        self.suppressed = 0;
        if let Some(now) = now {
            self.window_start = now;
            self.lines = 0;
        }
        Some(n)
    }

    /// Faults suppressed and not reported yet.
    pub fn pending(&self) -> bool {
        self.suppressed != 0
    }
}

/// The summary line's totals over every VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub exits: u64,
    pub hypercalls: u64,
    pub faults: u64,
}

impl Totals {
    pub fn add(&mut self, vm: &VmStats) {
        self.exits = self.exits.wrapping_add(vm.exits());
        self.hypercalls = self.hypercalls.wrapping_add(vm.hypercalls());
        self.faults = self.faults.wrapping_add(vm.faults);
    }
}

/// The summary line's appended fields: ` exits=N hypercalls=N faults=N`.
impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " exits={} hypercalls={} faults={}",
            self.exits, self.hypercalls, self.faults
        )
    }
}

/// How a VM ended, for its vmstats line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Alive,
    Exited(u64),
    Killed,
}

/// One VM's `hyp: vmstats:` line: space-separated `key=value` fields (names are
/// `[A-Za-z0-9_-]`, so no value has a space), read by scripts/run.sh --json.
pub struct VmLine<'a> {
    pub name: &'a str,
    pub ending: Ending,
    pub vcpus: usize,
    pub restarts: u64,
    pub stats: &'a VmStats,
    pub mapped_pages: u64,
    pub quota_pages: u64,
}

impl fmt::Display for VmLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hyp: vmstats: name={}", self.name)?;
        match self.ending {
            Ending::Alive => write!(f, " state=alive")?,
            Ending::Exited(status) => write!(f, " state=exited status={status}")?,
            Ending::Killed => write!(f, " state=killed")?,
        }
        let s = self.stats;
        write!(
            f,
            " vcpus={} restarts={} exits={} hypercalls={}",
            self.vcpus,
            self.restarts,
            s.exits(),
            s.hypercalls()
        )?;
        for kind in &ExitKind::ALL[1..] {
            write!(f, " exits_{}={}", kind.name(), s.exits_of(*kind))?;
        }
        write!(
            f,
            " faults={} events={} mapped_pages={} quota_pages={} dma_faults={}",
            s.faults, s.events, self.mapped_pages, self.quota_pages, s.dma_faults
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn exits_count_by_kind_and_sum() {
        let mut s = VmStats::default();
        for _ in 0..3 {
            s.count(ExitKind::Hypercall);
        }
        s.count(ExitKind::Irq);
        s.count(ExitKind::of(Class::WfiWfe));
        s.count(ExitKind::of(Class::DataAbortLower));
        s.count_fault();
        assert_eq!(s.hypercalls(), 3);
        assert_eq!(s.exits_of(ExitKind::Irq), 1);
        assert_eq!(s.exits_of(ExitKind::Wfi), 1);
        assert_eq!(s.exits_of(ExitKind::Stage2), 1);
        assert_eq!(s.exits_of(ExitKind::Other), 0);
        assert_eq!(s.exits(), 6);
        assert_eq!(s.faults, 1);
    }

    #[test]
    fn classes_map_to_their_kind() {
        assert_eq!(ExitKind::of(Class::Hvc64), ExitKind::Hypercall);
        assert_eq!(ExitKind::of(Class::Smc64), ExitKind::Hypercall);
        assert_eq!(ExitKind::of(Class::SysReg), ExitKind::SysReg);
        assert_eq!(ExitKind::of(Class::InstructionAbortLower), ExitKind::Stage2);
        assert_eq!(ExitKind::of(Class::Unknown), ExitKind::Other);
        // Every kind has its own counter and name.
        for (i, kind) in ExitKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
            assert_eq!(
                ExitKind::ALL
                    .iter()
                    .filter(|k| k.name() == kind.name())
                    .count(),
                1
            );
        }
    }

    #[test]
    fn totals_sum_every_vm() {
        let mut a = VmStats::default();
        a.count(ExitKind::Hypercall);
        a.count(ExitKind::SysReg);
        let mut b = VmStats::default();
        b.count(ExitKind::Hypercall);
        b.count_fault();
        let mut t = Totals::default();
        t.add(&a);
        t.add(&b);
        assert_eq!(t.to_string(), " exits=3 hypercalls=2 faults=1");
    }

    #[test]
    fn vm_line_has_every_field_by_key() {
        let mut s = VmStats::default();
        s.count(ExitKind::Hypercall);
        s.count(ExitKind::Wfi);
        s.count_event();
        let line = VmLine {
            name: "alpha",
            ending: Ending::Exited(0),
            vcpus: 2,
            restarts: 1,
            stats: &s,
            mapped_pages: 40,
            quota_pages: 256,
        }
        .to_string();
        assert_eq!(
            line,
            "hyp: vmstats: name=alpha state=exited status=0 vcpus=2 restarts=1 exits=2 \
             hypercalls=1 exits_sysreg=0 exits_wfi=1 exits_stage2=0 exits_irq=0 exits_other=0 \
             faults=0 events=1 mapped_pages=40 quota_pages=256 dma_faults=0"
        );
        let killed = VmLine {
            ending: Ending::Killed,
            name: "b",
            vcpus: 1,
            restarts: 0,
            stats: &s,
            mapped_pages: 0,
            quota_pages: 1,
        }
        .to_string();
        assert!(
            killed.starts_with("hyp: vmstats: name=b state=killed vcpus=1 "),
            "{killed}"
        );
    }

    #[test]
    fn dma_fault_lines_are_limited_per_window_and_the_rest_reported_once() {
        let window = 1000;
        let mut log = DmaFaultLog::default();
        let mut logged = 0;
        // A guest faulting at every exit, 10 runs of 3 faults within one window.
        for t in 0..10 {
            let now = 5000 + t;
            assert_eq!(log.take_suppressed(Some(now), window), None);
            if log.admit(now, window, 3) {
                logged += 1;
            }
        }
        assert_eq!(logged, DMA_FAULT_LINES_PER_WINDOW);
        assert!(log.pending());
        // Not before the window has passed; then once.
        assert_eq!(log.take_suppressed(Some(5999), window), None);
        assert_eq!(log.take_suppressed(Some(6000), window), Some(18));
        assert_eq!(log.take_suppressed(Some(6001), window), None);
        // The next window logs again.
        assert!(log.admit(6001, window, 1));
        // The VM's end reports what is left, whatever the window.
        for _ in 0..DMA_FAULT_LINES_PER_WINDOW {
            log.admit(6002, window, 1);
        }
        assert_eq!(log.take_suppressed(None, window), Some(1));
        assert!(!log.pending());
    }

    #[test]
    fn dma_faults_are_counted() {
        let mut s = VmStats::default();
        s.count_dma_faults(1025);
        s.count_dma_faults(3);
        assert_eq!(s.dma_faults, 1028);
    }
}
