//! RAM (`/memory` nodes) and what must not be used (`/memreserve/`,
//! `/reserved-memory`).

use crate::board::{Board, push};
use crate::header::Header;
use crate::translate::regions;
use crate::tree::Frame;
use crate::validate::RESERVATION_SIZE;
use crate::{Error, Region};

/// Adds the `reg` entries of a `device_type = "memory"` node to the RAM list,
/// and those of a `/reserved-memory` child to the reserved list.
pub(crate) fn visit(frame: &Frame<'_, '_>, board: &mut Board<'_>) -> Result<(), Error> {
    if frame.depth == 1 && frame.device_type() == Some("memory") {
        for region in regions(frame)? {
            let region = region?;
            if region.size != 0 {
                push(
                    &mut board.memory,
                    &mut board.memory_count,
                    region,
                    "memory regions",
                )?;
            }
        }
    } else if frame.depth == 2
        && frame
            .parent
            .is_some_and(|p| p.is_top_level("reserved-memory"))
    {
        for region in regions(frame)? {
            push_reserved(board, region?)?;
        }
    }
    Ok(())
}

/// Adds the `/memreserve/` entries (validated to end with a zero entry).
pub(crate) fn add_reservations(
    dtb: &[u8],
    header: &Header,
    board: &mut Board<'_>,
) -> Result<(), Error> {
    let block = dtb
        .get(header.rsvmap_offset..header.total_size)
        .unwrap_or_default();
    for entry in block.chunks_exact(RESERVATION_SIZE) {
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&entry[i * 8..i * 8 + 8]);
            u64::from_be_bytes(bytes)
        };
        let (base, size) = (word(0), word(1));
        if base == 0 && size == 0 {
            break;
        }
        if base.checked_add(size).is_none() {
            return Err(Error::Malformed("a /memreserve/ entry runs past 64 bits"));
        }
        push_reserved(board, Region { base, size })?;
    }
    Ok(())
}

fn push_reserved(board: &mut Board<'_>, region: Region) -> Result<(), Error> {
    if region.size == 0 {
        return Ok(());
    }
    push(
        &mut board.reserved,
        &mut board.reserved_count,
        region,
        "reserved memory regions",
    )
}
