//! The console UART: the one `/chosen/stdout-path` names, else the first one.

use crate::Error;
use crate::board::push;
use crate::cells::be32;
use crate::compatible::Compatible;
use crate::device::{Uart, UartKind};
use crate::translate::first_region;
use crate::tree::{Frame, find};

/// A UART found in the walk, with the phandle of its first clock if the
/// frequency must be looked up.
type Found = (Uart, Option<u32>);

/// Most fixed clocks the walk remembers for the console's clock; a tree with
/// more has the console's looked up by another walk.
const MAX_FIXED_CLOCKS: usize = 8;

/// Collects console candidates during the tree walk, and the fixed clocks
/// one may name.
pub(crate) struct ConsoleSearch<'s> {
    /// The absolute path `/chosen` names.
    path: Option<&'s str>,
    named: Option<Found>,
    first: Option<Found>,
    /// The enabled fixed clocks in tree order: phandle and `clock-frequency`.
    clocks: [(u32, Option<u32>); MAX_FIXED_CLOCKS],
    clock_count: usize,
    /// Whether the tree has more fixed clocks than `clocks` holds.
    clocks_left_out: bool,
}

impl<'s> ConsoleSearch<'s> {
    pub fn new(path: Option<&'s str>) -> Self {
        ConsoleSearch {
            path,
            named: None,
            first: None,
            clocks: [(0, None); MAX_FIXED_CLOCKS],
            clock_count: 0,
            clocks_left_out: false,
        }
    }

    /// Considers `frame`. The named console must decode; another UART that does
    /// not is only passed over as a fallback.
    pub fn visit(&mut self, frame: &Frame<'_, '_>) -> Result<(), Error> {
        if frame.is_compatible(Compatible::FIXED_CLOCK)
            && let Some(phandle) = frame.phandle()
        {
            let clock = (phandle, frame.u32_prop("clock-frequency"));
            let stored = push(
                &mut self.clocks,
                &mut self.clock_count,
                clock,
                "fixed clocks",
            );
            self.clocks_left_out |= stored.is_err();
        }
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
            let clocks = &self.clocks[..self.clock_count];
            uart.clock_hz = match clocks.iter().find(|&&(p, _)| p == phandle) {
                Some(&(_, hz)) => hz,
                None if self.clocks_left_out => find(root, |frame| {
                    (frame.phandle() == Some(phandle)
                        && frame.is_compatible(Compatible::FIXED_CLOCK))
                    .then(|| frame.u32_prop("clock-frequency"))
                })
                .flatten(),
                None => None,
            };
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
