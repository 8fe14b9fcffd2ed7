//! `/cpus`: each CPU's affinity and how to start it.

use crate::Error;
use crate::board::{Board, push};
use crate::cells::{read_cells, strings, u32_or_u64_value};
use crate::device::{Cpu, EnableMethod};
use crate::tree::Frame;

/// Adds `frame` to the CPU list if it is a `device_type = "cpu"` child of `/cpus`.
pub(crate) fn visit(frame: &Frame<'_, '_>, board: &mut Board<'_>) -> Result<(), Error> {
    let Some(cpus) = frame.parent else {
        return Ok(());
    };
    if frame.depth != 2 || !cpus.is_top_level("cpus") || frame.device_type() != Some("cpu") {
        return Ok(());
    }
    let address_cells = cpus.address_cells();
    if !(1..=2).contains(&address_cells) {
        return Err(Error::Malformed("/cpus #address-cells is neither 1 nor 2"));
    }
    let mpidr = frame
        .prop("reg")
        .and_then(|reg| read_cells(reg, address_cells))
        .and_then(|id| u64::try_from(id).ok())
        .ok_or(Error::Malformed("a cpu node has no reg (MPIDR)"))?;
    let cpu = Cpu {
        mpidr,
        enable: enable_method(frame)?,
    };
    push(&mut board.cpus, &mut board.cpu_count, cpu, "cpus")
}

/// The first `enable-method` string this crate knows.
fn enable_method(cpu: &Frame<'_, '_>) -> Result<EnableMethod, Error> {
    let methods = cpu.prop("enable-method").unwrap_or_default();
    for method in strings(methods) {
        match method {
            "psci" => return Ok(EnableMethod::Psci),
            "spin-table" => {
                let release_addr = cpu
                    .prop("cpu-release-addr")
                    .and_then(u32_or_u64_value)
                    .ok_or(Error::Malformed("a spin-table cpu has no cpu-release-addr"))?;
                return Ok(EnableMethod::SpinTable { release_addr });
            }
            _ => {}
        }
    }
    Ok(EnableMethod::None)
}
