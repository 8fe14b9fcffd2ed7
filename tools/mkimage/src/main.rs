//! mkimage: turns the hypervisor ELF into the raw arm64 Image bootloaders load (what
//! `objcopy -O binary` does), so the build needs no toolchain component beyond rustc.
//!
//! The loadable segments are laid out by physical address from the lowest one; gaps are
//! zero-filled and `.bss` (no file bytes) is not written: the Image header's `image_size`
//! tells the bootloader how much memory to reserve beyond the file.

use std::process::ExitCode;

/// A PT_LOAD segment's placement and bytes.
#[derive(Debug, PartialEq, Eq)]
struct Load<'a> {
    paddr: u64,
    data: &'a [u8],
}

fn field<const N: usize>(elf: &[u8], at: usize) -> Result<[u8; N], String> {
    elf.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("ELF truncated at offset {at}"))
}

fn u16_at(elf: &[u8], at: usize) -> Result<u16, String> {
    field(elf, at).map(u16::from_le_bytes)
}

fn u32_at(elf: &[u8], at: usize) -> Result<u32, String> {
    field(elf, at).map(u32::from_le_bytes)
}

fn u64_at(elf: &[u8], at: usize) -> Result<u64, String> {
    field(elf, at).map(u64::from_le_bytes)
}

fn loads(elf: &[u8]) -> Result<Vec<Load<'_>>, String> {
    if elf.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err("not a little-endian ELF64 file".into());
    }
    let phoff = u64_at(elf, 32)? as usize;
    let phentsize = usize::from(u16_at(elf, 54)?);
    let phnum = usize::from(u16_at(elf, 56)?);
    let mut out = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(elf, ph)? != 1 {
            continue;
        }
        let offset = u64_at(elf, ph + 8)? as usize;
        let paddr = u64_at(elf, ph + 24)?;
        let filesz = u64_at(elf, ph + 32)? as usize;
        if filesz == 0 {
            continue;
        }
        let data = elf
            .get(offset..offset + filesz)
            .ok_or("segment beyond the end of the file")?;
        out.push(Load { paddr, data });
    }
    out.sort_by_key(|l| l.paddr);
    Ok(out)
}

/// The raw image: every loadable byte at its offset from the first segment.
fn raw_image(elf: &[u8]) -> Result<Vec<u8>, String> {
    let loads = loads(elf)?;
    let base = loads.first().ok_or("no loadable segments")?.paddr;
    let mut image = Vec::new();
    for l in &loads {
        let at = (l.paddr - base) as usize;
        if image.len() < at {
            image.resize(at, 0);
        }
        if image.len() > at {
            return Err(format!("segments overlap at {:#x}", l.paddr));
        }
        image.extend_from_slice(l.data);
    }
    Ok(image)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: mkimage HYP.elf OUT.img");
        return ExitCode::from(2);
    };
    let result = std::fs::read(input)
        .map_err(|e| format!("{input}: {e}"))
        .and_then(|elf| raw_image(&elf).map_err(|e| format!("{input}: {e}")))
        .and_then(|img| std::fs::write(output, img).map_err(|e| format!("{output}: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkimage: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 with the given (paddr, bytes) PT_LOAD segments.
    fn elf(segments: &[(u64, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        let data_start = 64 + 56 * segments.len();
        let mut data = Vec::new();
        for (paddr, bytes) in segments {
            let mut ph = vec![0u8; 56];
            ph[0..4].copy_from_slice(&1u32.to_le_bytes());
            ph[8..16].copy_from_slice(&((data_start + data.len()) as u64).to_le_bytes());
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[32..40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            b.extend_from_slice(&ph);
            data.extend_from_slice(bytes);
        }
        b.extend_from_slice(&data);
        b
    }

    #[test]
    fn lays_segments_out_by_address_with_zero_gaps() {
        let e = elf(&[(0x1008, b"BB"), (0x1000, b"AAAA")]);
        assert_eq!(raw_image(&e).unwrap(), b"AAAA\0\0\0\0BB");
    }

    #[test]
    fn refuses_overlaps_and_non_elf() {
        assert!(raw_image(&elf(&[(0x1000, b"AAAA"), (0x1002, b"BB")])).is_err());
        assert!(raw_image(b"not an elf").is_err());
        assert!(raw_image(&elf(&[])).is_err());
    }
}
