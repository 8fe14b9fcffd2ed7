//! A PCI function's address on its host bridge: bus, device and function, written
//! `BB:DD.F` in hex (`00:01.0`), as `lspci` prints it.

use core::fmt;

/// Bus, device (0..32) and function (0..8). Its requester ID, `bus << 8 | device << 3 |
/// function`, is the SMMU stream ID of the function's DMA (QEMU `virt`'s identity
/// `iommu-map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf(u16);

impl Bdf {
    /// `bus:device.function`; `device` is taken modulo 32 and `function` modulo 8.
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Self((bus as u16) << 8 | ((device as u16) & 31) << 3 | (function as u16) & 7)
    }

    /// Parses `BB:DD.F` (hex, two digits for bus and device, one for the function).
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 7 || b[2] != b':' || b[5] != b'.' {
            return None;
        }
        // Hex digits read as bytes: no slice of the text, so no char boundary to check.
        let hex = |digits: &[u8]| {
            digits.iter().try_fold(0u8, |value, &d| {
                Some(value << 4 | char::from(d).to_digit(16)? as u8)
            })
        };
        let (bus, device, function) = (hex(&b[0..2])?, hex(&b[3..5])?, hex(&b[6..7])?);
        (device < 32 && function < 8).then(|| Self::new(bus, device, function))
    }

    /// The bus.
    pub const fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Device and function as one byte (`device << 3 | function`).
    pub const fn devfn(self) -> u8 {
        self.0 as u8
    }

    /// The requester ID, the function's SMMU stream ID.
    pub const fn requester_id(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{:x}",
            // As u32, as the hyp prints most numbers: no hex of u8 in it for this.
            u32::from(self.bus()),
            u32::from(self.devfn() >> 3),
            u32::from(self.devfn() & 7)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_and_prints_lspci_style() {
        let bdf = Bdf::parse("00:01.0").unwrap();
        assert_eq!(bdf, Bdf::new(0, 1, 0));
        assert_eq!(bdf.requester_id(), 0x08);
        assert_eq!(bdf.to_string(), "00:01.0");
        assert_eq!(Bdf::parse("0a:1f.7").unwrap().requester_id(), 0x0aff);
    }

    #[test]
    fn refuses_what_is_not_a_function() {
        for bad in [
            "00:20.0", "00:01.8", "0:01.0", "00-01.0", "00:01.0 ", "zz:01.0", "00:1.00", "+0:01.0",
            "00:é.0", "é0:01.0",
        ] {
            assert_eq!(Bdf::parse(bad), None, "{bad}");
        }
    }
}
