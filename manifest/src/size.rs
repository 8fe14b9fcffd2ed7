//! Byte sizes with binary units, as the TOML `memory` key and `pvpack --mem` write them.

use core::fmt;

/// Parses a size: decimal digits, optionally followed by a binary unit `K`, `M`, `G` or `T`
/// (also spelled `KiB`, `MiB`, `GiB`, `TiB`), meaning 2^10, 2^20, 2^30, 2^40. No unit means
/// bytes. No spaces, signs or fractions; `None` if malformed or above `u64::MAX`.
pub fn parse_size(text: &str) -> Option<u64> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return None;
    }
    let shift = match unit {
        "" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => return None,
    };
    let value: u64 = digits.parse().ok()?;
    value.checked_mul(1 << shift)
}

/// Displays a byte count in the largest binary unit that divides it exactly (`16M`, `4097`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u32, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
        let bytes = self.0;
        for (shift, unit) in UNITS {
            if bytes != 0 && bytes.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", bytes >> shift);
            }
        }
        write!(f, "{bytes}")
    }
}
