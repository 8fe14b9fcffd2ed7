//! The device tree reader (`devtree::parse`): the hyp's first input, straight from the
//! bootloader. Seeds: the QEMU and Raspberry Pi trees (fuzz/run.sh copies them from the cache).

#![no_main]

use devtree::{Board, Error, MAX_TOTAL_SIZE, Region};
use libfuzzer_sys::fuzz_target;
use pvhyp_fuzz::str_within;

fuzz_target!(|dtb: &[u8]| {
    if let Some(size) = devtree::total_size(dtb) {
        assert!((devtree::HEADER_SIZE..=MAX_TOTAL_SIZE).contains(&size));
    }
    // `parse` is this with "no RAM" made an error.
    match devtree::parse_allow_no_memory(dtb) {
        Ok(board) => check(dtb, &board),
        Err(e) => {
            assert_ne!(e, Error::NoMemory);
            drop(e.to_string());
        }
    }
});

/// What every board the parser returns must satisfy.
fn check(dtb: &[u8], board: &Board<'_>) {
    // Strings borrow from the blob's `totalsize` bytes, never from past them.
    let total = u32::from_be_bytes(dtb[4..8].try_into().unwrap()) as usize;
    let blob = &dtb[..total];
    assert!(str_within(blob, board.model));
    assert!(str_within(blob, board.compatible));
    if let Some(args) = board.bootargs {
        assert!(!args.is_empty() && str_within(blob, args));
    }

    // Regions never wrap ("the parser refuses regions that would"), listed ones are non-empty.
    let fits = |r: &Region| r.base.checked_add(r.size).is_some();
    for r in board.memory().iter().chain(board.reserved()) {
        assert!(fits(r) && r.size != 0, "{r:?}");
    }
    assert!(board.initrd.iter().all(|r| fits(r) && r.size != 0));
    assert!(board.console.iter().all(|u| fits(&u.region)));
    assert!(board.power.iter().all(|p| fits(&p.region)));
    if let Some(gic) = board.gic {
        let frames = [
            Some(gic.distributor),
            gic.cpu_interface,
            gic.redistributor,
            gic.hyp_interface,
            gic.vcpu_interface,
        ];
        assert!(frames.iter().flatten().all(fits));
        // A PPI (16..32) or SPI (32..1020) INTID.
        assert!(gic.maintenance_irq.is_none_or(|i| (16..1020).contains(&i)));
    }
    if let Some(timer) = board.timer {
        assert!(
            [timer.phys_ppi, timer.virt_ppi, timer.hyp_phys_ppi]
                .iter()
                .all(|&p| p < 16)
        );
    }
    let virtio = board.virtio();
    assert!(
        virtio
            .iter()
            .all(|v| fits(&v.region) && (16..1020).contains(&v.irq))
    );
    assert!(
        virtio
            .windows(2)
            .all(|w| w[0].region.base <= w[1].region.base)
    );
    let _ = board.cpus();
    assert_eq!(board.require_memory().is_err(), board.memory().is_empty());
}
