//! The single-purpose nodes: timer, PSCI, the Pi's PM block, virtio-mmio.

use crate::Error;
use crate::board::{Board, MAX_VIRTIO, push};
use crate::compatible::Compatible;
use crate::device::{PowerManagement, Psci, PsciMethod, Region, Timer, VirtioMmio};
use crate::interrupts::{GicInfo, Interrupts, Irq};
use crate::translate::first_region;
use crate::tree::Frame;

/// What the walk found that needs the GIC to finish (it may come later in
/// tree order): the timer's interrupts and the virtio-mmio transports'.
pub(crate) struct Pending<'a> {
    timer: Option<Interrupts<'a>>,
    /// Each transport's first region (or why it has none) and interrupts.
    virtio: [(Result<Region, Error>, Interrupts<'a>); MAX_VIRTIO],
    virtio_count: usize,
}

impl Pending<'_> {
    pub const fn new() -> Self {
        Pending {
            timer: None,
            virtio: [(Ok(Region::EMPTY), Interrupts::NONE); MAX_VIRTIO],
            virtio_count: 0,
        }
    }
}

/// Records `frame` if it is one of the nodes this module knows. The first
/// timer, PSCI and PM node win; every virtio-mmio node is listed.
pub(crate) fn visit<'a>(
    frame: &Frame<'_, 'a>,
    pending: &mut Pending<'a>,
    board: &mut Board<'_>,
) -> Result<(), Error> {
    if pending.timer.is_none() && frame.is_compatible(Compatible::TIMER) {
        pending.timer = Some(Interrupts::of(frame));
    } else if board.psci.is_none() && frame.is_compatible(Compatible::PSCI) {
        board.psci = Some(psci(frame)?);
    } else if board.power.is_none() && frame.is_compatible(Compatible::PM) {
        board.power = Some(PowerManagement {
            region: first_region(frame)?,
        });
    } else if frame.is_compatible(Compatible::VIRTIO_MMIO) {
        let transport = (first_region(frame), Interrupts::of(frame));
        push(
            &mut pending.virtio,
            &mut pending.virtio_count,
            transport,
            "virtio-mmio transports",
        )?;
    }
    Ok(())
}

/// Decodes what `pending` holds against the GIC (`gic`, if it has a phandle)
/// into `board`.
pub(crate) fn finish(
    pending: &Pending<'_>,
    gic: Option<GicInfo>,
    board: &mut Board<'_>,
) -> Result<(), Error> {
    if let Some(irqs) = pending.timer {
        board.timer = Some(timer(irqs, gic)?);
    }
    for &(region, irqs) in &pending.virtio[..pending.virtio_count] {
        let irq = irqs.decode(gic).and_then(|mut irqs| irqs.next().flatten());
        // A transport whose interrupt is not on the GIC cannot be used: leave it out.
        if let Some(irq) = irq {
            let virtio = VirtioMmio {
                region: region?,
                irq: irq.intid(),
            };
            push(
                &mut board.virtio_mmio,
                &mut board.virtio_count,
                virtio,
                "virtio-mmio transports",
            )?;
        }
    }
    Ok(())
}

/// The PPIs of the timer's secure-physical, physical, virtual and hyp-physical
/// interrupts, in that order.
fn timer(irqs: Interrupts<'_>, gic: Option<GicInfo>) -> Result<Timer, Error> {
    let mut ppis = [0u32; 4];
    let mut irqs = irqs.decode(gic).ok_or(Error::Malformed(
        "the timer's interrupts are not on the GIC",
    ))?;
    for ppi in &mut ppis {
        match irqs.next() {
            Some(Some(Irq::Ppi(n))) => *ppi = n,
            _ => return Err(Error::Malformed("the timer does not list four GIC PPIs")),
        }
    }
    Ok(Timer {
        phys_ppi: ppis[1],
        virt_ppi: ppis[2],
        hyp_phys_ppi: ppis[3],
    })
}

fn psci(frame: &Frame<'_, '_>) -> Result<Psci, Error> {
    let method = match frame.str_prop("method") {
        Some("smc") => PsciMethod::Smc,
        Some("hvc") => PsciMethod::Hvc,
        _ => {
            return Err(Error::Malformed(
                "/psci method is neither \"smc\" nor \"hvc\"",
            ));
        }
    };
    Ok(Psci {
        method,
        cpu_on: frame.u32_prop("cpu_on"),
    })
}
