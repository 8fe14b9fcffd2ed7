//! Turning counter ticks into per-operation figures, and the line format `scripts/bench.sh`
//! reads. Pure arithmetic, tested on the host.

use core::fmt;

/// Timed batches per measure; the report gives their minimum and median.
pub const BATCHES: usize = 9;

/// Nanoseconds per second: under `-icount shift=0` QEMU runs one instruction per nanosecond of
/// its virtual clock, which the counter follows.
const NS_PER_S: u128 = 1_000_000_000;

/// What a tick is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// CNTFRQ_EL0.
    pub frequency: u64,
    /// Wall-clock mode (QEMU without `-icount`): figures are nanoseconds and not deterministic.
    pub wall: bool,
}

impl Clock {
    /// The unit every per-operation figure is in.
    pub fn unit(&self) -> &'static str {
        if self.wall { "ns" } else { "instructions" }
    }

    /// Instructions (or nanoseconds) in `ticks`, times `scale`, rounded to nearest.
    fn scaled(&self, ticks: u64, scale: u128) -> u128 {
        let f = u128::from(self.frequency.max(1));
        (u128::from(ticks) * NS_PER_S * scale + f / 2) / f
    }

    /// Instructions (or ns) per operation for `ticks` spent on `ops` operations, less `minus`
    /// instructions per operation that are the loop's, not the operation's; rounded to nearest.
    pub fn per_op(&self, ticks: u64, ops: u64, minus: u64) -> u64 {
        let ops = u128::from(ops.max(1));
        let total = self.scaled(ticks, 1);
        let per = (total + ops / 2) / ops;
        (per as u64).saturating_sub(if self.wall { 0 } else { minus })
    }

    /// Per operation in hundredths (for checks that need better than whole instructions).
    pub fn per_op_centi(&self, ticks: u64, ops: u64) -> u64 {
        let ops = u128::from(ops.max(1));
        ((self.scaled(ticks, 100) + ops / 2) / ops) as u64
    }

    /// Instructions per counter tick, as CNTFRQ says it should be, in hundredths.
    pub fn expected_per_tick_centi(&self) -> u64 {
        (NS_PER_S * 100 / u128::from(self.frequency.max(1))) as u64
    }
}

/// The calibration loop's verdict: `instructions` known to have run in `ticks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    pub instructions: u64,
    pub ticks: u64,
    pub frequency: u64,
}

impl Calibration {
    /// Instructions per tick measured, in hundredths, rounded.
    pub fn measured_centi(&self) -> u64 {
        let t = u128::from(self.ticks.max(1));
        ((u128::from(self.instructions) * 100 + t / 2) / t) as u64
    }

    /// Within 1% of the rate CNTFRQ implies (1e9 / CNTFRQ instructions a tick).
    pub fn ok(&self) -> bool {
        let measured = u128::from(self.instructions) * u128::from(self.frequency);
        let expected = u128::from(self.ticks) * NS_PER_S;
        measured.abs_diff(expected) * 100 <= expected && self.ticks > 0
    }
}

/// Minimum and median of the batches.
pub fn min_median(samples: &[u64; BATCHES]) -> (u64, u64) {
    let mut sorted = *samples;
    sorted.sort_unstable();
    (sorted[0], sorted[BATCHES / 2])
}

/// One measure's line: `bench: name=N unit=U iterations=I min=A median=B` (the VM's name
/// prefixes it on the console).
pub struct Measured<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    pub iterations: u64,
    pub samples: [u64; BATCHES],
}

impl fmt::Display for Measured<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (min, median) = min_median(&self.samples);
        write!(
            f,
            "bench: name={} unit={} iterations={} min={min} median={median}",
            self.name, self.unit, self.iterations
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A72: Clock = Clock {
        frequency: 62_500_000,
        wall: false,
    };
    const MAX: Clock = Clock {
        frequency: 1_000_000_000,
        wall: false,
    };

    #[test]
    fn ticks_become_instructions() {
        // 62.5 MHz: 16 instructions a tick.
        assert_eq!(A72.per_op(1000, 1, 0), 16_000);
        assert_eq!(A72.per_op(1000, 100, 0), 160);
        assert_eq!(A72.per_op(1000, 100, 4), 156);
        assert_eq!(A72.per_op(1, 100, 4), 0, "saturates, never wraps");
        assert_eq!(MAX.per_op(12_345, 1000, 0), 12);
        assert_eq!(A72.per_op_centi(1001, 1000), 1602);
        assert_eq!(A72.expected_per_tick_centi(), 1600);
        assert_eq!(MAX.expected_per_tick_centi(), 100);
    }

    #[test]
    fn wall_mode_is_nanoseconds_and_subtracts_nothing() {
        let wall = Clock {
            frequency: 62_500_000,
            wall: true,
        };
        assert_eq!(wall.unit(), "ns");
        assert_eq!(wall.per_op(1000, 100, 4), 160);
    }

    #[test]
    fn calibration_tolerates_one_percent() {
        let cal = |clock: &Clock, instructions, ticks| Calibration {
            instructions,
            ticks,
            frequency: clock.frequency,
        };
        let c = cal(&A72, 3_000_000, 187_500);
        assert_eq!(c.measured_centi(), 1600);
        assert!(c.ok());
        assert_eq!(cal(&MAX, 3_000_000, 3_000_050).measured_centi(), 100);
        assert!(cal(&A72, 3_000_000, 185_700).ok()); // 16.15
        assert!(!cal(&A72, 3_000_000, 185_000).ok()); // 16.22
        assert!(!cal(&MAX, 3_000_000, 187_500).ok());
        assert!(cal(&MAX, 3_000_000, 3_000_000).ok());
        assert!(!cal(&MAX, 3_000_000, 0).ok());
    }

    #[test]
    fn min_and_median_of_nine() {
        assert_eq!(min_median(&[9, 1, 8, 2, 7, 3, 6, 4, 5]), (1, 5));
    }

    #[test]
    fn lines_scripts_read() {
        let m = Measured {
            name: "null_hypercall",
            unit: "instructions",
            iterations: 1000,
            samples: [40, 41, 42, 40, 40, 43, 40, 40, 41],
        };
        assert_eq!(
            m.to_string(),
            "bench: name=null_hypercall unit=instructions iterations=1000 min=40 median=40"
        );
    }
}
