//! The console UART: the one `/chosen/stdout-path` names, else the first one.

use crate::Error;
use crate::cells::be32;
use crate::compatible::Compatible;
use crate::device::{Uart, UartKind};
use crate::translate::first_region;
use crate::tree::{Frame, find};

/// A UART found in the walk, with the phandle of its first clock if the
/// frequency must be looked up.
type Found = (Uart, Option<u32>);

/// Collects console candidates during the tree walk.
pub(crate) struct ConsoleSearch<'s> {
    /// The absolute path `/chosen` names.
    path: Option<&'s str>,
    named: Option<Found>,
    first: Option<Found>,
}

impl<'s> ConsoleSearch<'s> {
    pub fn new(path: Option<&'s str>) -> Self {
        ConsoleSearch {
            path,
            named: None,
            first: None,
        }
    }

    /// Considers `frame`. The named console must decode; another UART that does
    /// not is only passed over as a fallback.
    pub fn visit(&mut self, frame: &Frame<'_, '_>) -> Result<(), Error> {
        let Some(kind) = kind(frame) else {
            return Ok(());
        };
        let named = self.path.is_some_and(|path| frame.path_is(path));
        if !named && self.first.is_some() {
            return Ok(());
        }
        let found = first_region(frame).map(|region| {
            let clock_hz = frame.u32_prop("clock-frequency");
            let clock_ref = if clock_hz.is_none() {
                frame.prop("clocks").and_then(|c| be32(c, 0))
            } else {
                None
            };
            (
                Uart {
                    kind,
                    region,
                    clock_hz,
                },
                clock_ref,
            )
        });
        if named {
            self.named = Some(found?);
        } else if let Ok(found) = found {
            self.first = Some(found);
        }
        Ok(())
    }

    /// The console, with its clock frequency looked up if it names a `fixed-clock`.
    pub fn finish(self, root: &Frame<'_, '_>) -> Option<Uart> {
        let (mut uart, clock_ref) = self.named.or(self.first)?;
        if let Some(phandle) = clock_ref {
            uart.clock_hz = find(root, |frame| {
                (frame.phandle() == Some(phandle) && frame.is_compatible(Compatible::FIXED_CLOCK))
                    .then(|| frame.u32_prop("clock-frequency"))
            })
            .flatten();
        }
        Some(uart)
    }
}

/// The UART programming model `frame` is compatible with.
fn kind(frame: &Frame<'_, '_>) -> Option<UartKind> {
    if frame.is_compatible(Compatible::PL011) {
        Some(UartKind::Pl011)
    } else if frame.is_compatible(Compatible::BCM2835_AUX) {
        Some(UartKind::Bcm2835Aux)
    } else if frame.is_compatible(Compatible::NS16550) {
        Some(UartKind::Ns16550)
    } else {
        None
    }
}
